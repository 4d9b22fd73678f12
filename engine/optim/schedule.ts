// Learning-rate schedules: pure functions of (base rate, iteration, epoch), so every owner
// of a slice computes the same rate from the same counters, and a restored optimiser
// continues with the rate it would have used. `iteration` is the 0-based index of the step
// about to run. Specs (plain objects) describe the same schedules where a function cannot
// travel: configuration files and the driver's launch messages.
import { checkNames, checkNumber, checkObject, describe } from './options.js';

export type Schedule = (baseLr: number, iteration: number, epoch: number) => number;

export type ScheduleSpec =
  | { type: 'constant' }
  | { type: 'step'; stepSize: number; gamma?: number; per?: 'iteration' | 'epoch' }
  | { type: 'poly'; maxIteration: number; power: number }
  | { type: 'warmup'; iterations: number; startFactor?: number; then?: ScheduleSpec | Schedule };

export interface StepOptions {
  /** Multiply by gamma every stepSize iterations (or epochs). */
  stepSize: number;
  /** Default 0.1, as torch.optim.lr_scheduler.StepLR. */
  gamma?: number;
  /** What stepSize counts. Default 'iteration'. */
  per?: 'iteration' | 'epoch';
}

export interface PolyOptions {
  /** The rate reaches 0 here and stays 0 after. */
  maxIteration: number;
  power: number;
}

export interface WarmupOptions {
  /** Length of the linear ramp; iteration `iterations` is the delegate's iteration 0. */
  iterations: number;
  /** Factor of the base rate at iteration 0; default 1/3, as torch's LinearLR. */
  startFactor?: number;
  /** The schedule after the ramp; default constant. */
  then?: Schedule | ScheduleSpec;
}

function checkCounter(owner: string, name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${owner}: ${name} must be a non-negative integer, got ${v}`);
}

export function constantLr(): Schedule {
  return (baseLr, iteration) => {
    checkCounter('constantLr', 'iteration', iteration);
    return baseLr;
  };
}

/** Caffe's and BigDL's "step": baseLr * gamma ^ floor(t / stepSize), t the iteration or the epoch. */
export function stepLr(o: StepOptions): Schedule {
  const owner = 'stepLr';
  const opts = checkObject(owner, 'options', o);
  checkNames(owner, opts, ['stepSize', 'gamma', 'per']);
  const stepSize = checkNumber(owner, 'stepSize', opts.stepSize, undefined, { min: 1, integer: true });
  const gamma = checkNumber(owner, 'gamma', opts.gamma, 0.1, { min: 0 });
  const per = opts.per ?? 'iteration';
  if (per !== 'iteration' && per !== 'epoch') {
    throw new TypeError(`${owner}: option 'per' must be 'iteration' or 'epoch', got ${describe(per)}`);
  }
  return (baseLr, iteration, epoch) => {
    checkCounter(owner, 'iteration', iteration);
    checkCounter(owner, 'epoch', epoch);
    const t = per === 'epoch' ? epoch : iteration;
    return baseLr * gamma ** Math.floor(t / stepSize);
  };
}

/** Caffe's and BigDL's "poly": baseLr * (1 - iteration / maxIteration) ^ power, 0 from maxIteration on. */
export function polyLr(o: PolyOptions): Schedule {
  const owner = 'polyLr';
  const opts = checkObject(owner, 'options', o);
  checkNames(owner, opts, ['maxIteration', 'power']);
  const maxIteration = checkNumber(owner, 'maxIteration', opts.maxIteration, undefined, { min: 1, integer: true });
  const power = checkNumber(owner, 'power', opts.power, undefined, { min: 0 });
  return (baseLr, iteration) => {
    checkCounter(owner, 'iteration', iteration);
    // Past the end the base would be negative: a fractional power would give NaN.
    if (iteration >= maxIteration) return 0;
    return baseLr * (1 - iteration / maxIteration) ** power;
  };
}

/**
 * Linear warm-up (Goyal et al.; torch's LinearLR): baseLr * (startFactor + (1 - startFactor)
 * * iteration / iterations) during the ramp, then `then` with the iteration counted from
 * the ramp's end (the epoch is passed unchanged).
 */
export function warmupLr(o: WarmupOptions): Schedule {
  const owner = 'warmupLr';
  const opts = checkObject(owner, 'options', o);
  checkNames(owner, opts, ['iterations', 'startFactor', 'then']);
  const iterations = checkNumber(owner, 'iterations', opts.iterations, undefined, { min: 1, integer: true });
  const startFactor = checkNumber(owner, 'startFactor', opts.startFactor, 1 / 3, { min: 0, max: 1 });
  const then = opts.then === undefined ? constantLr() : makeSchedule(opts.then as Schedule | ScheduleSpec, `${owner}: option 'then'`);
  return (baseLr, iteration, epoch) => {
    checkCounter(owner, 'iteration', iteration);
    if (iteration < iterations) return baseLr * (startFactor + (1 - startFactor) * iteration / iterations);
    return then(baseLr, iteration - iterations, epoch);
  };
}

const specTypes = ['constant', 'step', 'poly', 'warmup'] as const;

/** A schedule from a function (returned as is) or a spec. */
export function makeSchedule(spec: Schedule | ScheduleSpec, owner = 'makeSchedule'): Schedule {
  if (typeof spec === 'function') return spec;
  const o = checkObject(owner, 'the schedule', spec);
  if (spec === undefined) throw new TypeError(`${owner}: a schedule (function or spec) is required`);
  const { type, ...rest } = o;
  switch (type) {
    case 'constant':
      checkNames(`${owner} (constant)`, rest, []);
      return constantLr();
    case 'step':
      return stepLr(rest as unknown as StepOptions);
    case 'poly':
      return polyLr(rest as unknown as PolyOptions);
    case 'warmup':
      return warmupLr(rest as unknown as WarmupOptions);
    default:
      throw new TypeError(`${owner}: schedule 'type' must be one of ${specTypes.join(', ')}, got ${describe(type)}`);
  }
}
