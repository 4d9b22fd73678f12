// ReLU, tanh and sigmoid, forward and backward, against the float64 reference on lengths
// that exercise vector tails and thread chunking, with zeros (+0 and -0) and saturating
// inputs; backward also against finite differences; the allowed aliasing (y === x in
// forward, gradInput === gradOutput in backward) gives the same result as separate buffers.
import t from 'tap';
import type { Backend } from '../../engine/backends/backend.js';
import * as ref from './reference.js';
import { Rng, close, closeToFD, dot, filled, finiteDiff, forEachBackend, randArray, sameBits, sampleIndices, toF64, type Tap } from './util.js';

const lengths = [1, 3, 7, 8, 17, 33, 1000, 65537];

/** Inputs in [-6, 6] with exact zeros of both signs and a few saturating values. */
function inputs(rng: Rng, n: number): Float32Array {
  const x = randArray(rng, n, -6, 6);
  const specials = [0, -0, 20, -20, 88, -88, 100, -100, 1e30, -1e30, 1e-30, -1e-30];
  for (let i = 0; i < Math.min(specials.length, Math.floor(n / 3)); i++) x[rng.int(0, n - 1)] = specials[i]!;
  if (n >= 1 && n < 3) x[0] = rng.pick([0, -0, 1.5]);
  return x;
}

interface Act {
  name: 'relu' | 'tanh' | 'sigmoid';
  fwd: (be: Backend, x: Float32Array, y: Float32Array) => void;
  bwd: (be: Backend, xOrY: Float32Array, g: Float32Array, gi: Float32Array) => void;
  ref: (x: ArrayLike<number>) => Float64Array;
  refBwd: (xOrY: ArrayLike<number>, g: ArrayLike<number>) => Float64Array;
  /** The backward takes the forward input (relu) or output (tanh, sigmoid). */
  bwdTakesInput: boolean;
}

const acts: Act[] = [
  { name: 'relu', fwd: (b, x, y) => b.relu(x, y), bwd: (b, x, g, gi) => b.reluBackward(x, g, gi), ref: ref.relu, refBwd: ref.reluBackward, bwdTakesInput: true },
  { name: 'tanh', fwd: (b, x, y) => b.tanh(x, y), bwd: (b, y, g, gi) => b.tanhBackward(y, g, gi), ref: ref.tanh, refBwd: ref.tanhBackward, bwdTakesInput: false },
  { name: 'sigmoid', fwd: (b, x, y) => b.sigmoid(x, y), bwd: (b, y, g, gi) => b.sigmoidBackward(y, g, gi), ref: ref.sigmoid, refBwd: ref.sigmoidBackward, bwdTakesInput: false },
];

function checkAct(t: Tap, be: Backend, rng: Rng, a: Act): void {
  for (const n of lengths) {
    const x = inputs(rng, n);
    const x0 = x.slice();
    const y = filled(n, NaN);
    a.fwd(be, x, y);
    close(t, y, a.ref(x), `${a.name} forward n=${n}`);
    sameBits(t, x, x0, `${a.name} forward n=${n} leaves x alone`);
    const g = randArray(rng, n);
    const gi = filled(n, NaN);
    const saved = a.bwdTakesInput ? x : y;
    a.bwd(be, saved, g, gi);
    close(t, gi, a.refBwd(saved, g), `${a.name} backward n=${n}`);

    // aliasing
    const xa = x.slice();
    a.fwd(be, xa, xa);
    sameBits(t, xa, y, `${a.name} forward in place (y === x) n=${n}`);
    const ga = g.slice();
    a.bwd(be, saved, ga, ga);
    sameBits(t, ga, gi, `${a.name} backward in place (gradInput === gradOutput) n=${n}`);
  }
  // exact values where they are exact
  if (a.name === 'relu') {
    const x = Float32Array.from([-0, 0, -1e-30, 1e-30, -3, 3]);
    const y = new Float32Array(6);
    be.relu(x, y);
    t.same([...y].map((v) => v === 0 ? 0 : v), [0, 0, 0, Math.fround(1e-30), 0, 3], 'relu exact values');
    const gi = new Float32Array(6);
    be.reluBackward(x, filled(6, 2), gi);
    t.same([...gi], [0, 0, 0, 2, 0, 2], 'reluBackward: gradient only where x > 0 (not at +-0)');
  }
}

function checkFD(t: Tap, be: Backend, rng: Rng, a: Act): void {
  const n = 200;
  const x = randArray(rng, n, -4, 4);
  const w = randArray(rng, n);
  const y = new Float32Array(n);
  a.fwd(be, x, y);
  const gi = new Float32Array(n);
  a.bwd(be, a.bwdTakesInput ? x : y, w, gi);
  closeToFD(t, gi, finiteDiff((xx) => dot(w, a.ref(xx)), toF64(x), 1e-6, sampleIndices(rng, n, 60)), `${a.name} backward`);
}

forEachBackend(t, async (t, be) => {
  const rng = new Rng(4);
  for (const a of acts) {
    t.test(a.name, (t) => {
      checkAct(t, be, rng, a);
      checkFD(t, be, rng, a);
      t.end();
    });
  }
});
