// Learning-rate schedules against their formulas, written here independently of
// engine/optim/schedule.ts (step by repeated multiplication, warm-up by interpolation
// between two end points), and the optimiser's use of them.
import t from 'tap';
import type { Backend } from '../../engine/backends/backend.js';
import {
  SGD, constantLr, makeSchedule, polyLr, stepLr, warmupLr, type Schedule, type ScheduleSpec,
} from '../../engine/optim/index.js';
import { Rng, close, expectError, forEachBackend, randArray, sameBits, toF64, type Tap } from '../conformance/util.js';
import { RefSgd } from './reference.js';

const LR = 0.4;
const ITERS = 60;

/** Step decay by repeated multiplication: one factor gamma each time t reaches a multiple of stepSize. */
function stepRef(stepSize: number, gamma: number): (t: number) => number {
  return (t) => {
    let lr = LR;
    for (let i = 1; i <= t; i++) if (i % stepSize === 0) lr *= gamma;
    return lr;
  };
}

function polyRef(maxIter: number, power: number): (t: number) => number {
  return (t) => (t < maxIter ? LR * Math.pow((maxIter - t) / maxIter, power) : 0);
}

/** Straight line from LR * startFactor at 0 to LR at W, then `after` counted from W. */
function warmupRef(w: number, startFactor: number, after: (t: number) => number): (t: number) => number {
  const a = LR * startFactor;
  return (t) => (t < w ? a + (LR - a) * (t / w) : after(t - w));
}

function near(x: number, y: number): boolean {
  return Math.abs(x - y) <= 1e-12 * Math.max(1, Math.abs(y));
}

function agrees(t: Tap, s: Schedule, want: (i: number) => number, what: string, epoch = 0): void {
  const bad: string[] = [];
  for (let i = 0; i < ITERS; i++) {
    const got = s(LR, i, epoch);
    if (!near(got, want(i))) bad.push(`iteration ${i}: ${got}, expected ${want(i)}`);
  }
  t.same(bad, [], what);
}

t.test('constant', (t) => {
  agrees(t, constantLr(), () => LR, 'constant');
  agrees(t, makeSchedule({ type: 'constant' }), () => LR, 'constant from a spec');
  t.end();
});

t.test('step', (t) => {
  for (const [stepSize, gamma] of [[1, 0.9], [7, 0.5], [25, 0.1]] as const) {
    agrees(t, stepLr({ stepSize, gamma }), stepRef(stepSize, gamma), `step ${stepSize} gamma ${gamma}`);
    agrees(t, makeSchedule({ type: 'step', stepSize, gamma }), stepRef(stepSize, gamma), `spec step ${stepSize} gamma ${gamma}`);
  }
  agrees(t, stepLr({ stepSize: 10 }), stepRef(10, 0.1), 'gamma defaults to 0.1');
  const byEpoch = stepLr({ stepSize: 2, gamma: 0.5, per: 'epoch' });
  for (let e = 0; e < 7; e++) agrees(t, byEpoch, () => stepRef(2, 0.5)(e), `per epoch, epoch ${e}: the iteration does not matter`, e);
  t.end();
});

t.test('poly', (t) => {
  for (const [maxIteration, power] of [[20, 0.5], [40, 2], [ITERS, 1], [10, 0]] as const) {
    agrees(t, polyLr({ maxIteration, power }), polyRef(maxIteration, power), `poly max ${maxIteration} power ${power}`);
    agrees(t, makeSchedule({ type: 'poly', maxIteration, power }), polyRef(maxIteration, power), `spec poly ${maxIteration} ${power}`);
  }
  t.equal(polyLr({ maxIteration: 20, power: 0.5 })(LR, 20, 0), 0, 'zero at maxIteration');
  t.equal(polyLr({ maxIteration: 20, power: 0.5 })(LR, 1000, 0), 0, 'zero (not NaN) past maxIteration');
  t.end();
});

t.test('warm-up', (t) => {
  agrees(t, warmupLr({ iterations: 5, startFactor: 0.2 }), warmupRef(5, 0.2, () => LR), 'warm-up then constant');
  agrees(t, warmupLr({ iterations: 8 }), warmupRef(8, 1 / 3, () => LR), 'start factor defaults to 1/3');
  agrees(t, warmupLr({ iterations: 4, startFactor: 0, then: stepLr({ stepSize: 3, gamma: 0.1 }) }),
    warmupRef(4, 0, stepRef(3, 0.1)), 'warm-up from 0, then step counted from the end of the ramp');
  const spec: ScheduleSpec = { type: 'warmup', iterations: 10, startFactor: 0.1, then: { type: 'poly', maxIteration: 30, power: 2 } };
  agrees(t, makeSchedule(spec), warmupRef(10, 0.1, polyRef(30, 2)), 'nested spec: warm-up then poly');
  t.end();
});

t.test('validation', async (t) => {
  await expectError(t, () => stepLr({ stepSize: 0 }), RangeError, ['stepSize'], 'stepSize 0');
  await expectError(t, () => stepLr({ stepSize: 2.5 }), RangeError, ['stepSize'], 'fractional stepSize');
  await expectError(t, () => stepLr({ stepSize: 2, gamma: -1 }), RangeError, ['gamma'], 'negative gamma');
  await expectError(t, () => stepLr({ stepSize: 2, per: 'batch' as 'epoch' }), TypeError, ['per'], 'bad per');
  await expectError(t, () => polyLr({ maxIteration: 10 } as { maxIteration: number; power: number }), TypeError, ['power'],
    'missing power');
  await expectError(t, () => polyLr({ maxIteration: 0, power: 1 }), RangeError, ['maxIteration'], 'maxIteration 0');
  await expectError(t, () => warmupLr({ iterations: 5, startFactor: 2 }), RangeError, ['startFactor'], 'startFactor > 1');
  await expectError(t, () => warmupLr({ iterations: 0 }), RangeError, ['iterations'], 'no warm-up iterations');
  await expectError(t, () => makeSchedule({ type: 'cosine' } as unknown as ScheduleSpec), TypeError, ['type'], 'unknown type');
  await expectError(t, () => makeSchedule({ type: 'step', step_size: 3 } as unknown as ScheduleSpec), TypeError, ['step_size'],
    'misspelt option');
  await expectError(t, () => makeSchedule({ type: 'warmup', iterations: 2, then: { type: 'poly', maxIteration: 5 } } as ScheduleSpec),
    TypeError, ['power'], 'bad nested spec');
  await expectError(t, () => stepLr({ stepSize: 3 })(LR, -1, 0), RangeError, ['iteration'], 'negative iteration');
});

forEachBackend(t, (t, be: Backend) => {
  t.test('the optimiser steps with learningRate(), which follows its schedule', (t) => {
    const rng = new Rng(404);
    const n = 257;
    const want = warmupRef(3, 0.5, stepRef(4, 0.5));
    const opt = new SGD(be, n, { lr: LR, momentum: 0.9, weightDecay: 1e-3,
      schedule: { type: 'warmup', iterations: 3, startFactor: 0.5, then: { type: 'step', stepSize: 4, gamma: 0.5 } } });
    const ref = new RefSgd({ momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 1e-3 });
    const params = randArray(rng, n);
    const p64 = toF64(params);
    const rates: string[] = [];
    for (let i = 0; i < 12; i++) {
      if (!near(opt.learningRate(), want(i))) rates.push(`before step ${i}: ${opt.learningRate()}, expected ${want(i)}`);
      const g = randArray(rng, n);
      ref.step(p64, g, want(i));
      opt.step(params, g);
    }
    t.same(rates, [], 'learningRate() before each step');
    close(t, params, p64, 'params after 12 scheduled steps', 1e-5);
    t.end();
  });

  t.test('epoch schedules read setEpoch()', async (t) => {
    const opt = new SGD(be, 4, { lr: LR, schedule: stepLr({ stepSize: 2, gamma: 0.1, per: 'epoch' }) });
    t.equal(opt.learningRate(), LR);
    opt.setEpoch(2);
    t.ok(near(opt.learningRate(), LR * 0.1), 'epoch 2');
    opt.setEpoch(5);
    t.ok(near(opt.learningRate(), LR * 0.1 * 0.1), 'epoch 5');
    t.equal(opt.state().epoch, 5, 'the epoch is part of the state');
    await expectError(t, () => opt.setEpoch(-1), RangeError, ['epoch'], 'negative epoch');
  });

  t.test('a schedule that gives a bad rate stops the step before anything changes', async (t) => {
    const opt = new SGD(be, 3, { lr: 0.1, schedule: (lr, i) => (i < 1 ? lr : NaN) });
    const p = Float32Array.of(1, 2, 3);
    opt.step(p, Float32Array.of(1, 1, 1));
    const before = p.slice();
    await expectError(t, () => opt.step(p, Float32Array.of(1, 1, 1)), RangeError, ['schedule'], 'NaN rate');
    sameBits(t, p, before, 'params unchanged');
    t.equal(opt.iteration, 1, 'iteration unchanged');
    await expectError(t, () => new SGD(be, 3, { schedule: 'poly' as unknown as ScheduleSpec }), TypeError, ['schedule'],
      'schedule neither function nor spec');
  });
});
