// Parameter initialisers. Defaults follow PyTorch (kaiming_uniform with a = sqrt(5), i.e.
// U(-1/sqrt(fanIn), 1/sqrt(fanIn)) for weights and biases of Linear and convolutions), so
// a Squall model starts from the same distribution as its PyTorch twin.
import type { Initialiser } from './module.js';

/** U(-bound, bound) */
export function uniform(bound: number): Initialiser {
  return (t, rng) => {
    const d = t.data;
    for (let i = 0; i < d.length; i++) d[i] = (2 * rng.uniform() - 1) * bound;
  };
}

/** PyTorch's default for Linear / Conv weights and biases. */
export function fanInUniform(fanIn: number): Initialiser {
  return uniform(fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0);
}

export function constant(value: number): Initialiser {
  return (t) => {
    t.data.fill(value);
  };
}
