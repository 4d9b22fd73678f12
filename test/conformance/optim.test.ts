// SGD (momentum, dampening, Nesterov, weight decay, the first step) and Adam (bias
// correction, L2 weight decay) on one flat slice, against the float64 reference of PyTorch's
// definitions. Each step is checked on its own, from the backend's float32 state before it:
// the parameters, the update itself (new - old, relative to its own size) and the state.
import t from 'tap';
import type { AdamOptions, Backend, SgdOptions } from '../../engine/backends/backend.js';
import * as ref from './reference.js';
import { Rng, close, forEachBackend, fmt, randArray, toF64, type Tap } from './util.js';

const lengths = [1, 7, 33, 1000, 65537];

/** The update (new - old) is checked relative to its own largest element. */
const TOL_UPDATE = 1e-4;

function delta(after: ArrayLike<number>, before: ArrayLike<number>): Float64Array {
  return Float64Array.from(after, (v, i) => v - before[i]!);
}

function checkSgd(t: Tap, be: Backend, rng: Rng, base: Omit<SgdOptions, 'firstStep'>): void {
  for (const n of lengths) {
    const params = randArray(rng, n);
    const buf = new Float32Array(n).fill(NaN); // the first step must not read it
    for (let step = 0; step < 3; step++) {
      const o: SgdOptions = { ...base, firstStep: step === 0 };
      const grads = randArray(rng, n);
      const p0 = toF64(params);
      const want = ref.sgdUpdate(o, params, grads, buf);
      be.sgdUpdate(o, params, grads, buf);
      const name = `${fmt(o)} n=${n}`;
      close(t, params, want.params, `sgd params ${name}`);
      close(t, delta(params, p0), delta(want.params, p0), `sgd update ${name}`, TOL_UPDATE, 0);
      if (o.momentum !== 0) close(t, buf, want.momentumBuf, `sgd momentum buffer ${name}`);
    }
  }
}

function checkAdam(t: Tap, be: Backend, rng: Rng, base: Omit<AdamOptions, 'step'>, firstStep: number): void {
  for (const n of lengths) {
    const params = randArray(rng, n);
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    for (let step = firstStep; step < firstStep + 3; step++) {
      const o: AdamOptions = { ...base, step };
      const grads = randArray(rng, n, -2, 2);
      const p0 = toF64(params);
      const want = ref.adamUpdate(o, params, grads, m, v);
      be.adamUpdate(o, params, grads, m, v);
      const name = `${fmt(o)} n=${n}`;
      close(t, params, want.params, `adam params ${name}`);
      close(t, delta(params, p0), delta(want.params, p0), `adam update ${name}`, TOL_UPDATE, 0);
      close(t, m, want.m, `adam m ${name}`);
      close(t, v, want.v, `adam v ${name}`);
    }
  }
}

forEachBackend(t, async (t, be) => {
  const rng = new Rng(11);
  t.test('sgd', (t) => {
    checkSgd(t, be, rng, { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false });
    checkSgd(t, be, rng, { lr: 0.05, momentum: 0, dampening: 0, weightDecay: 0.01, nesterov: false });
    checkSgd(t, be, rng, { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false });
    checkSgd(t, be, rng, { lr: 0.1, momentum: 0.9, dampening: 0.3, weightDecay: 5e-4, nesterov: false });
    checkSgd(t, be, rng, { lr: 0.2, momentum: 0.9, dampening: 0, weightDecay: 1e-2, nesterov: true });
    checkSgd(t, be, rng, { lr: 0.01, momentum: 0.5, dampening: 0.5, weightDecay: 0, nesterov: true });
    t.end();
  });
  t.test('sgd first step ignores the buffer and dampening', (t) => {
    const o: SgdOptions = { lr: 0.5, momentum: 0.9, dampening: 0.7, weightDecay: 0.1, nesterov: false, firstStep: true };
    const p = Float32Array.from([1, -2]);
    const g = Float32Array.from([0.5, 0.25]);
    const buf = Float32Array.from([NaN, 100]);
    be.sgdUpdate(o, p, g, buf);
    // g' = g + 0.1 p = [0.6, 0.05]; buf = g'; p -= 0.5 * buf
    close(t, buf, [0.6, 0.05], 'buffer = gradient (with weight decay)', 1e-6);
    close(t, p, [0.7, -2.025], 'params', 1e-6);
    t.end();
  });
  t.test('adam', (t) => {
    checkAdam(t, be, rng, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, 1);
    checkAdam(t, be, rng, { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 }, 1);
    checkAdam(t, be, rng, { lr: 0.05, beta1: 0.8, beta2: 0.99, eps: 1e-3, weightDecay: 0 }, 10);
    checkAdam(t, be, rng, { lr: 0.1, beta1: 0.5, beta2: 0.9, eps: 1e-6, weightDecay: 1e-3 }, 1000);
    t.end();
  });
});
