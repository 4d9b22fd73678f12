// Batch normalisation: training forward (output, saved mean / inverse std, running
// statistics with momentum and unbiased variance), inference forward (running statistics;
// saved and running statistics untouched), training backward (gradInput overwritten,
// gradGamma / gradBeta accumulated) against the float64 reference, and the backward also
// against finite differences of the training forward.
import t from 'tap';
import type { Backend, BatchNormShape } from '../../engine/backends/backend.js';
import * as ref from './reference.js';
import {
  Rng, close, closeToFD, dot, filled, finiteDiff, fmt, forEachBackend, randArray, sameBits, sampleIndices, toF64, type Tap,
} from './util.js';

const shapes: BatchNormShape[] = [
  { n: 4, c: 3, spatial: 1, eps: 1e-5 }, // the 1-d form
  { n: 2, c: 5, spatial: 49, eps: 1e-5 },
  { n: 7, c: 17, spatial: 9, eps: 1e-3 },
  { n: 1, c: 2, spatial: 8, eps: 1e-5 }, // one image: statistics over space only
  { n: 33, c: 1, spatial: 1, eps: 0.1 },
  { n: 16, c: 64, spatial: 16, eps: 1e-5 },
];

function len(s: BatchNormShape): number {
  return s.n * s.c * s.spatial;
}

/** x with a per-channel offset and spread, so that a one-pass E[x^2] - E[x]^2 in float32 shows. */
function inputs(rng: Rng, s: BatchNormShape, offset: number): Float32Array {
  const x = new Float32Array(len(s));
  const mu = Array.from({ length: s.c }, () => rng.uniform(-offset, offset));
  const sd = Array.from({ length: s.c }, () => rng.uniform(0.5, 2));
  for (let i = 0; i < x.length; i++) {
    const ch = Math.floor(i / s.spatial) % s.c;
    x[i] = mu[ch]! + sd[ch]! * rng.normal();
  }
  return x;
}

function check(t: Tap, be: Backend, rng: Rng, s: BatchNormShape, offset: number): void {
  const n = len(s);
  const name = `${fmt(s)} offset=${offset}`;
  const x = inputs(rng, s, offset);
  const gamma = randArray(rng, s.c, 0.5, 1.5);
  const beta = randArray(rng, s.c, -0.5, 0.5);
  const rm = randArray(rng, s.c);
  const rv = randArray(rng, s.c, 0.5, 2);
  const momentum = rng.pick([0.1, 0.01, 1]);

  // training forward
  const want = ref.batchNormTrain(s, x, gamma, beta, rm, rv, momentum);
  const y = filled(n, NaN);
  const rmB = rm.slice();
  const rvB = rv.slice();
  const saveMean = filled(s.c, NaN);
  const saveInvStd = filled(s.c, NaN);
  be.batchNormForward(s, x, y, gamma, beta, rmB, rvB, saveMean, saveInvStd, true, momentum);
  close(t, y, want.y, `training forward ${name}`);
  close(t, saveMean, want.saveMean, `saveMean ${name}`);
  close(t, saveInvStd, want.saveInvStd, `saveInvStd ${name}`);
  close(t, rmB, want.runningMean, `runningMean (momentum ${momentum}) ${name}`);
  close(t, rvB, want.runningVar, `runningVar, unbiased (momentum ${momentum}) ${name}`);

  // inference forward: running statistics; save* and running* untouched
  const yi = filled(n, NaN);
  const sm = filled(s.c, 12.5);
  const si = filled(s.c, -3.25);
  const rm2 = rm.slice();
  const rv2 = rv.slice();
  be.batchNormForward(s, x, yi, gamma, beta, rm2, rv2, sm, si, false, momentum);
  close(t, yi, ref.batchNormInference(s, x, gamma, beta, rm, rv), `inference forward ${name}`);
  t.ok(sm.every((v) => v === 12.5) && si.every((v) => v === -3.25), `inference leaves saveMean/saveInvStd alone ${name}`);
  sameBits(t, rm2, rm, `inference leaves runningMean alone ${name}`);
  sameBits(t, rv2, rv, `inference leaves runningVar alone ${name}`);

  // backward: gradInput overwritten, gradGamma/gradBeta accumulated
  const g = randArray(rng, n);
  const gi = filled(n, NaN);
  const gg = randArray(rng, s.c);
  const gb = randArray(rng, s.c);
  const ggPrior = toF64(gg);
  const gbPrior = toF64(gb);
  be.batchNormBackward(s, x, gamma, saveMean, saveInvStd, g, gi, gg, gb);
  const r = ref.batchNormBackward(s, x, gamma, saveMean, saveInvStd, g);
  close(t, gi, r.gradInput, `backward gradInput ${name}`);
  close(t, gg, r.gradGamma.map((v, i) => v + ggPrior[i]!), `backward gradGamma += ${name}`);
  close(t, gb, r.gradBeta.map((v, i) => v + gbPrior[i]!), `backward gradBeta += ${name}`);
}

function checkFD(t: Tap, be: Backend, rng: Rng, s: BatchNormShape): void {
  const n = len(s);
  const name = fmt(s);
  const x = inputs(rng, s, 1);
  const gamma = randArray(rng, s.c, 0.5, 1.5);
  const beta = randArray(rng, s.c, -0.5, 0.5);
  const w = randArray(rng, n);
  const y = new Float32Array(n);
  const saveMean = new Float32Array(s.c);
  const saveInvStd = new Float32Array(s.c);
  be.batchNormForward(s, x, y, gamma, beta, new Float32Array(s.c), filled(s.c, 1), saveMean, saveInvStd, true, 0.1);
  const gi = new Float32Array(n);
  const gg = new Float32Array(s.c);
  const gb = new Float32Array(s.c);
  be.batchNormBackward(s, x, gamma, saveMean, saveInvStd, w, gi, gg, gb);
  const zeros = new Float64Array(s.c);
  const x64 = toF64(x);
  const g64 = toF64(gamma);
  const b64 = toF64(beta);
  const L = (xx: ArrayLike<number>, gm: ArrayLike<number>, bt: ArrayLike<number>) => dot(w, ref.batchNormTrain(s, xx, gm, bt, zeros, zeros, 0.1).y);
  closeToFD(t, gi, finiteDiff((xx) => L(xx, g64, b64), x64, 1e-5, sampleIndices(rng, n, 40)), `backward gradInput ${name}`);
  closeToFD(t, gg, finiteDiff((gm) => L(x64, gm, b64), g64, 1e-5), `backward gradGamma ${name}`);
  closeToFD(t, gb, finiteDiff((bt) => L(x64, g64, bt), b64, 1e-5), `backward gradBeta ${name}`);
}

forEachBackend(t, async (t, be) => {
  const rng = new Rng(7);
  t.test('training, inference, backward', (t) => {
    for (const s of shapes) check(t, be, rng, s, 1);
    t.end();
  });
  t.test('inputs with a large mean relative to their spread', (t) => {
    for (const s of [shapes[1]!, shapes[2]!, shapes[5]!]) check(t, be, rng, s, 8);
    t.end();
  });
  t.test('backward vs finite differences', (t) => {
    for (const s of [shapes[0]!, shapes[2]!, shapes[3]!]) checkFD(t, be, rng, s);
    t.end();
  });
});
