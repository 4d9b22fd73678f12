// Cross-channel LRN forward (output and the saved scale) and backward against the float64
// reference, sizes 3 and 5 (and 1, and windows wider than the channel count), Caffe's and
// larger alphas; backward also against finite differences.
import t from 'tap';
import type { Backend, LrnShape } from '../../engine/backends/backend.js';
import * as ref from './reference.js';
import { Rng, close, closeToFD, dot, filled, finiteDiff, fmt, forEachBackend, randArray, sampleIndices, toF64, type Tap } from './util.js';

const shapes: LrnShape[] = [
  // Caffe / Inception-v1 settings
  { batch: 2, channels: 7, height: 5, width: 3, size: 5, alpha: 1e-4, beta: 0.75, k: 1 },
  { batch: 1, channels: 16, height: 4, width: 4, size: 5, alpha: 1e-4, beta: 0.75, k: 2 },
  // alpha large enough that the cross-channel term matters
  { batch: 2, channels: 9, height: 3, width: 5, size: 3, alpha: 0.5, beta: 0.75, k: 1 },
  { batch: 1, channels: 17, height: 7, width: 1, size: 5, alpha: 2, beta: 0.6, k: 1.5 },
  { batch: 3, channels: 5, height: 2, width: 2, size: 3, alpha: 1, beta: 1, k: 2 },
  // window wider than the channel count
  { batch: 1, channels: 3, height: 3, width: 3, size: 5, alpha: 1, beta: 0.75, k: 1 },
  { batch: 2, channels: 1, height: 4, width: 2, size: 3, alpha: 1, beta: 0.75, k: 1 },
  // size 1: a per-element normalisation
  { batch: 1, channels: 4, height: 3, width: 3, size: 1, alpha: 1, beta: 0.5, k: 1 },
];

function len(s: LrnShape): number {
  return s.batch * s.channels * s.height * s.width;
}

function check(t: Tap, be: Backend, rng: Rng, s: LrnShape): void {
  const n = len(s);
  const name = fmt(s);
  const x = randArray(rng, n, -2, 2);
  const want = ref.lrnForward(s, x);
  const y = filled(n, NaN);
  const scale = filled(n, NaN);
  be.lrnForward(s, x, y, scale);
  close(t, y, want.output, `forward output ${name}`);
  close(t, scale, want.scale, `forward scale ${name}`);
  const g = randArray(rng, n);
  const gi = filled(n, NaN);
  be.lrnBackward(s, x, y, scale, g, gi);
  close(t, gi, ref.lrnBackward(s, x, g), `backward ${name}`);
  const x64 = toF64(x);
  closeToFD(t, gi, finiteDiff((xx) => dot(g, ref.lrnForward(s, xx).output), x64, 1e-6, sampleIndices(rng, n, 40)), `backward ${name}`);
}

forEachBackend(t, async (t, be) => {
  const rng = new Rng(5);
  t.test('fixed shapes', (t) => {
    for (const s of shapes) check(t, be, rng, s);
    t.end();
  });
  t.test('random shapes, sizes 3 and 5', (t) => {
    for (let i = 0; i < 6; i++) {
      check(t, be, rng, {
        batch: rng.int(1, 3), channels: rng.int(1, 12), height: rng.int(1, 6), width: rng.int(1, 6),
        size: rng.pick([3, 5]), alpha: rng.pick([1e-4, 0.1, 1]), beta: rng.pick([0.75, 0.5]), k: rng.pick([1, 2]),
      });
    }
    t.end();
  });
});
