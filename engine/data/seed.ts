// Derived seeds: one user seed has to drive many independent streams (one per epoch, one
// per synthetic sample) that any process can recreate on its own. Random seeds itself
// through splitmix32, whose streams for seeds s and s + 0x9e3779b9 overlap shifted by one,
// so keys are mixed through a full avalanche hash rather than added to the seed.

/** murmur3's 32-bit finaliser: every input bit flips each output bit with p ~ 1/2. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Checks that `value` is an integer usable as a seed or key; `what` names it in the error. */
export function checkSeed(value: number, what: string): void {
  if (!Number.isSafeInteger(value)) throw new RangeError(`${what} must be an integer, got ${value}`);
}

/** A 32-bit seed for the stream named by `keys` under `seed` (e.g. deriveSeed(seed, epoch)). */
export function deriveSeed(seed: number, ...keys: number[]): number {
  let h = fmix32((seed >>> 0) ^ 0x2545f491);
  // The high bits of a key above 2^32 are folded in so that distinct keys stay distinct.
  h = fmix32(h ^ fmix32(Math.floor(seed / 4294967296) >>> 0));
  for (const k of keys) {
    h = fmix32((h + 0x6a09e667) ^ fmix32((k >>> 0) ^ 0x5bd1e995));
    h = fmix32(h ^ Math.floor(k / 4294967296) >>> 0);
  }
  return h;
}
