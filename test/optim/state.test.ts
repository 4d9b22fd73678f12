// state() and loadState(): a restored optimiser continues bit for bit as the original
// does; a state that does not fit is rejected, naming what is wrong, and changes nothing.
import t from 'tap';
import type { Backend } from '../../engine/backends/backend.js';
import {
  Adam, SGD, createOptimizer, type Optimizer, type OptimizerName, type OptimizerState,
} from '../../engine/optim/index.js';
import { Rng, expectError, forEachBackend, randArray, sameBits, type Tap } from '../conformance/util.js';

const N = 513;

const configs: Record<OptimizerName, Record<string, number | boolean>> = {
  sgd: { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3 },
  adam: { lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 1e-3 },
};

function sameState(t: Tap, got: OptimizerState, want: OptimizerState, what: string): void {
  t.equal(got.name, want.name, `${what}: name`);
  t.equal(got.iteration, want.iteration, `${what}: iteration`);
  t.equal(got.epoch, want.epoch, `${what}: epoch`);
  t.same(got.hyper, want.hyper, `${what}: hyper-parameters`);
  t.same(Object.keys(got.buffers).sort(), Object.keys(want.buffers).sort(), `${what}: buffer names`);
  for (const [k, b] of Object.entries(want.buffers)) if (got.buffers[k]) sameBits(t, got.buffers[k]!, b, `${what}: buffer '${k}'`);
}

function continues(t: Tap, be: Backend, rng: Rng, name: OptimizerName): void {
  const a = createOptimizer(name, be, N, configs[name]);
  const p = randArray(rng, N);
  for (let i = 0; i < 3; i++) a.step(p, randArray(rng, N));
  a.setEpoch(1);
  const snap = a.state();
  const snapCopy = structuredClone(snap);

  // Restored into an optimiser built with default hyper-parameters: the state brings its own.
  const b = createOptimizer(name, be, N);
  b.loadState(snap);
  sameState(t, b.state(), snap, `${name}: restored state`);
  const q = p.slice();
  for (let i = 0; i < 4; i++) {
    const g = randArray(rng, N);
    a.step(p, g);
    b.step(q, g);
  }
  sameBits(t, q, p, `${name}: params after 4 more steps from the restored state`);
  sameState(t, b.state(), a.state(), `${name}: state after 4 more steps`);
  sameState(t, snap, snapCopy, `${name}: a snapshot does not change as the optimiser steps on`);
}

forEachBackend(t, (t, be) => {
  const rng = new Rng(505);
  t.test('sgd round trip continues identically', (t) => {
    continues(t, be, rng, 'sgd');
    t.end();
  });
  t.test('adam round trip continues identically', (t) => {
    continues(t, be, rng, 'adam');
    t.end();
  });
  t.test('loading a fresh SGD state brings back the first-step rule', (t) => {
    const fresh = new SGD(be, N, { lr: 0.1, momentum: 0.9 }).state();
    const used = new SGD(be, N, { lr: 0.1, momentum: 0.9 });
    const p = randArray(rng, N);
    used.step(p, randArray(rng, N));
    used.loadState(fresh);
    t.same(Object.keys(used.state().buffers), [], 'no momentum buffer');
    const other = new SGD(be, N, { lr: 0.1, momentum: 0.9 });
    const q = p.slice();
    const g = randArray(rng, N);
    used.step(p, g);
    other.step(q, g);
    sameBits(t, p, q, 'steps as a new optimiser');
    t.end();
  });
});

t.test('invalid states are rejected and change nothing', async (t) => {
  const be = { sgdUpdate: () => {}, adamUpdate: () => {} } as unknown as Backend;
  const adam = new Adam(be, 8, { lr: 0.01 });
  adam.step(new Float32Array(8), new Float32Array(8).fill(0.5));
  const good = adam.state();
  const before = structuredClone(good);
  const bad = (patch: Partial<OptimizerState>): OptimizerState => ({ ...structuredClone(good), ...patch });
  const cases: [string, () => unknown, ErrorConstructor, string[]][] = [
    ['not an object', () => adam.loadState(null as unknown as OptimizerState), TypeError, ['state']],
    ["another optimiser's state", () => adam.loadState(new SGD(be, 8).state()), TypeError, ['name']],
    ['negative iteration', () => adam.loadState(bad({ iteration: -1 })), RangeError, ['iteration']],
    ['fractional epoch', () => adam.loadState(bad({ epoch: 0.5 })), RangeError, ['epoch']],
    ['buffer of the wrong length', () => adam.loadState(bad({ buffers: { m: new Float32Array(7), v: new Float32Array(8) } })),
      RangeError, ['m']],
    ['missing buffer', () => adam.loadState(bad({ buffers: { m: new Float32Array(8) } })), TypeError, ['v']],
    ['unknown buffer', () => adam.loadState(bad({ buffers: { ...good.buffers, momentum: new Float32Array(8) } })),
      TypeError, ['momentum']],
    ['buffer not a Float32Array', () => adam.loadState(bad({ buffers: { m: new Float64Array(8), v: new Float32Array(8) } as never })),
      TypeError, ['m']],
    ['non-finite buffer', () => adam.loadState(bad({ buffers: { m: new Float32Array(8), v: new Float32Array(8).fill(NaN) } })),
      RangeError, ['v']],
    ['unknown hyper-parameter', () => adam.loadState(bad({ hyper: { ...good.hyper, momentum: 0.9 } })), TypeError, ['momentum']],
    ['invalid hyper-parameter', () => adam.loadState(bad({ hyper: { ...good.hyper, beta1: 1 } })), RangeError, ['beta1']],
  ];
  for (const [what, fn, ctor, names] of cases) {
    await expectError(t, fn, ctor, names, what);
    sameState(t, adam.state(), before, `${what}: state unchanged`);
  }
  const sgd = new SGD(be, 8);
  await expectError(t, () => sgd.loadState({ ...sgd.state(), hyper: { nesterov: true } }), RangeError, ['nesterov'],
    'SGD: nesterov without momentum');
  t.same(sgd.state().hyper.nesterov, false, 'SGD: hyper unchanged');
});

t.test('state() is a copy: changing it does not change the optimiser', (t) => {
  const be = { adamUpdate: (_o: unknown, _p: Float32Array, _g: Float32Array, m: Float32Array) => m.fill(1) } as unknown as Backend;
  const opt: Optimizer = new Adam(be, 4);
  opt.step(new Float32Array(4), new Float32Array(4));
  const s = opt.state();
  s.buffers.m!.fill(7);
  s.hyper.lr = 3;
  t.same([...opt.state().buffers.m!], [1, 1, 1, 1]);
  t.equal(opt.state().hyper.lr, 1e-3);
  t.end();
});
