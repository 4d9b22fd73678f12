// What SGD and Adam share: the slice-length and finiteness checks that guard step(), the
// iteration and epoch counters the schedule reads, state allocation through the caller's
// allocator, and the validated, all-or-nothing state()/loadState(). A subclass supplies its
// hyper-parameter validation, its buffers and the one backend call that updates the slice.
import type { Backend } from '../backends/backend.js';
import { NonFiniteGradientError, type Optimizer, type OptimizerName, type OptimizerState } from './optimizer.js';
import { checkFunction, checkNames, checkObject, checkSliceLength, describe } from './options.js';
import { constantLr, makeSchedule, type Schedule, type ScheduleSpec } from './schedule.js';

export type Hyper = Record<string, number | boolean> & { lr: number };

/** The options every optimiser takes besides its hyper-parameters. */
export const commonOptionNames = ['schedule', 'alloc', 'free'] as const;

export interface BufferSpec {
  /** Present in every state. */
  required: readonly string[];
  /** Present once the optimiser has something to keep in them. */
  optional: readonly string[];
}

export abstract class SliceOptimizer<H extends Hyper> implements Optimizer {
  readonly sliceLength: number;
  protected readonly backend: Backend;
  protected hyper: H;
  private iter = 0;
  private ep = 0;
  private readonly schedule: Schedule;
  private readonly allocFn: (n: number) => Float32Array;
  private readonly freeFn: ((a: Float32Array) => void) | undefined;
  private readonly owned: Float32Array[] = [];
  private disposed = false;

  /**
   * `config` has been checked to be an object with known option names, and `hyper` is its
   * validated hyper-parameters; the subclass does both before calling super.
   */
  protected constructor(readonly name: OptimizerName, protected readonly label: string, backend: Backend,
    sliceLength: number, config: Record<string, unknown>, hyper: H, kernel: keyof Backend) {
    this.sliceLength = checkSliceLength(label, sliceLength);
    if (backend === null || typeof backend !== 'object' || typeof backend[kernel] !== 'function') {
      throw new TypeError(`${label}: backend must be a Backend with ${String(kernel)}(), got ${describe(backend)}`);
    }
    this.backend = backend;
    this.hyper = hyper;
    const schedule = config.schedule as Schedule | ScheduleSpec | undefined;
    this.schedule = schedule === undefined ? constantLr() : makeSchedule(schedule, `${label}: option 'schedule'`);
    this.allocFn = checkFunction<(n: number) => Float32Array>(label, 'alloc', config.alloc) ?? ((n) => new Float32Array(n));
    this.freeFn = checkFunction<(a: Float32Array) => void>(label, 'free', config.free);
  }

  get iteration(): number {
    return this.iter;
  }

  get epoch(): number {
    return this.ep;
  }

  setEpoch(epoch: number): void {
    this.live('setEpoch');
    if (!Number.isSafeInteger(epoch) || epoch < 0) {
      throw new RangeError(`${this.label}.setEpoch: epoch must be a non-negative integer, got ${describe(epoch)}`);
    }
    this.ep = epoch;
  }

  learningRate(): number {
    const lr = this.schedule(this.hyper.lr, this.iter, this.ep);
    if (typeof lr !== 'number' || !Number.isFinite(lr) || lr < 0) {
      throw new RangeError(`${this.label}: the schedule gave learning rate ${describe(lr)} at iteration ${this.iter} ` +
        `(epoch ${this.ep}); it must be a finite number >= 0`);
    }
    return lr;
  }

  step(params: Float32Array, grads: Float32Array): void {
    const fn = `${this.label}.step`;
    this.live('step');
    if (!(params instanceof Float32Array)) throw new TypeError(`${fn}: params must be a Float32Array, got ${describe(params)}`);
    if (!(grads instanceof Float32Array)) throw new TypeError(`${fn}: grads must be a Float32Array, got ${describe(grads)}`);
    const n = this.sliceLength;
    if (params.length !== n || grads.length !== n) {
      throw new RangeError(`${fn}: params has length ${params.length} and grads has length ${grads.length}; ` +
        `both must have this optimiser's slice length ${n}`);
    }
    const bad = firstNonFinite(grads);
    if (bad >= 0) throw new NonFiniteGradientError(this.label, bad, grads[bad]!, this.iter);
    const lr = this.learningRate();
    // Some kernels reject empty arrays; an empty slice (more workers than parameters) has nothing to update.
    if (n > 0) this.update(params, grads, lr);
    this.iter++;
  }

  state(): OptimizerState {
    this.live('state');
    const buffers: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(this.liveBuffers())) buffers[k] = v.slice();
    return { name: this.name, iteration: this.iter, epoch: this.ep, buffers, hyper: { ...this.hyper } };
  }

  loadState(s: OptimizerState): void {
    const fn = `${this.label}.loadState`;
    this.live('loadState');
    const st = checkObject(fn, 'the state', s, true);
    if (st.name !== this.name) {
      throw new TypeError(`${fn}: the state's name is ${describe(st.name)}, but this optimiser is '${this.name}'`);
    }
    const iteration = counter(fn, 'iteration', st.iteration, undefined);
    const epoch = counter(fn, 'epoch', st.epoch, 0);
    const buffers = checkObject(fn, 'buffers', st.buffers, true);
    const spec = this.bufferSpec();
    const known = [...spec.required, ...spec.optional];
    for (const k of Object.keys(buffers)) {
      if (!known.includes(k)) throw new TypeError(`${fn}: unknown buffer '${k}' (${this.label} keeps: ${known.join(', ')})`);
    }
    for (const k of spec.required) {
      if (!(k in buffers)) throw new TypeError(`${fn}: buffer '${k}' is missing`);
    }
    for (const [k, b] of Object.entries(buffers)) {
      if (!(b instanceof Float32Array)) throw new TypeError(`${fn}: buffer '${k}' must be a Float32Array, got ${describe(b)}`);
      if (b.length !== this.sliceLength) {
        throw new RangeError(`${fn}: buffer '${k}' has length ${b.length}, but this optimiser's slice has length ${this.sliceLength}`);
      }
      const bad = firstNonFinite(b);
      if (bad >= 0) throw new RangeError(`${fn}: buffer '${k}'[${bad}] is ${b[bad]}; state must be finite`);
    }
    const hyperIn = checkObject(fn, 'hyper', st.hyper);
    checkNames(`${fn} (hyper)`, hyperIn, Object.keys(this.hyper));
    const hyper = this.checkHyper(fn, hyperIn, this.hyper);
    // Everything is valid: only now change anything.
    this.restoreBuffers(buffers as Record<string, Float32Array>);
    this.hyper = hyper;
    this.iter = iteration;
    this.ep = epoch;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.freeFn) for (const a of this.owned) this.freeFn(a);
    this.owned.length = 0;
  }

  /** A zeroed state array of the slice's length from the caller's allocator. */
  protected allocState(what: string): Float32Array {
    const a = this.allocFn(this.sliceLength);
    if (!(a instanceof Float32Array) || a.length !== this.sliceLength) {
      throw new TypeError(`${this.label}: option 'alloc' returned ${describe(a)}` +
        `${a instanceof Float32Array ? ` of length ${a.length}` : ''} for '${what}'; ` +
        `it must return a Float32Array of the requested length ${this.sliceLength}`);
    }
    a.fill(0); // an allocator may hand back reused memory
    this.owned.push(a);
    return a;
  }

  private live(what: string): void {
    if (this.disposed) throw new Error(`${this.label}.${what}: the optimiser was disposed`);
  }

  protected abstract bufferSpec(): BufferSpec;
  /** The arrays state() exports, by name (state() copies them). */
  protected abstract liveBuffers(): Record<string, Float32Array>;
  /** Copies validated buffers into the optimiser's own arrays. */
  protected abstract restoreBuffers(b: Record<string, Float32Array>): void;
  /** Validates `o` over `base` (keys already known); must not change the optimiser. */
  protected abstract checkHyper(owner: string, o: Record<string, unknown>, base: H): H;
  /** One update of the whole slice (length > 0, inputs checked). */
  protected abstract update(params: Float32Array, grads: Float32Array, lr: number): void;
}

/** Index of the first NaN or infinity, or -1. */
function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    if (x - x !== 0) return i; // NaN for NaN and for +-Infinity; a cheap test on a hot path
  }
  return -1;
}

function counter(owner: string, name: string, v: unknown, fallback: number | undefined): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new RangeError(`${owner}: ${name} must be a non-negative integer, got ${describe(v)}`);
  }
  return v;
}

/** Checks the config object and its option names, for a subclass to call before super(). */
export function checkConfig(owner: string, config: unknown, hyperNames: readonly string[]): Record<string, unknown> {
  const o = checkObject(owner, 'options', config);
  checkNames(owner, o, [...hyperNames, ...commonOptionNames]);
  return o;
}
