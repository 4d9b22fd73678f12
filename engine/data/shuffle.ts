// Seeded shuffling. The order of epoch e under seed s is a pure function of (s, e, n), so
// every worker of a job computes the same global order without being sent it, a run can be
// repeated exactly, and each epoch visits the data in a different order.
import { Random } from '../tensor/random.js';
import { checkSeed, deriveSeed } from './seed.js';

/**
 * Uniform integer in [0, n) for 1 <= n <= 2^32, without the bias of floor(u * n) (which
 * favours some values by up to n / 2^32): draws above the largest multiple of n are redrawn.
 */
export function randomBelow(rng: Random, n: number): number {
  if (!(Number.isInteger(n) && n >= 1 && n <= 4294967296)) throw new RangeError(`randomBelow: n must be an integer in [1, 2^32], got ${n}`);
  const limit = 4294967296 - (4294967296 % n);
  let u = rng.nextU32();
  while (u >= limit) u = rng.nextU32();
  return u % n;
}

/** Fisher-Yates shuffle of `items` in place with draws from `rng`. */
export function shuffleInPlace(items: Int32Array | number[], rng: Random): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomBelow(rng, i + 1);
    const t = items[i]!;
    items[i] = items[j]!;
    items[j] = t;
  }
}

/** 0 .. n-1 in order. */
export function identityOrder(n: number): Int32Array {
  checkLength(n);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  return order;
}

/** The permutation of 0 .. n-1 for `epoch` under `seed`; reproducible, new for each epoch. */
export function epochPermutation(n: number, seed: number, epoch = 0): Int32Array {
  checkSeed(seed, 'shuffle seed');
  checkSeed(epoch, 'epoch');
  if (epoch < 0) throw new RangeError(`epoch must be non-negative, got ${epoch}`);
  const order = identityOrder(n);
  shuffleInPlace(order, new Random(deriveSeed(seed, epoch)));
  return order;
}

function checkLength(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0 || n > 0x7fffffff) throw new RangeError(`data set length must be an integer in [0, 2^31), got ${n}`);
}
