// The property the parameter manager relies on (DESIGN.md §4): one optimiser per
// contiguous slice, each with state for its slice only, updates the parameters exactly as
// one optimiser over the whole vector does.
import t from 'tap';
import type { Backend } from '../../engine/backends/backend.js';
import { createOptimizer, type Optimizer, type OptimizerName, type SgdConfig, type AdamConfig } from '../../engine/optim/index.js';
import { Rng, forEachBackend, randArray, sameBits, type Tap } from '../conformance/util.js';

const N = 1001;
const STEPS = 5;

/** Slice sizes as the parameter manager cuts them (differ by at most one), and lopsided ones. */
const splits = [
  [334, 334, 333],
  [1, 999, 1],
  [0, 1000, 1],
];

const cases: { name: OptimizerName; options: SgdConfig | AdamConfig }[] = [
  { name: 'sgd', options: { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-3,
    schedule: { type: 'warmup', iterations: 2, startFactor: 0.25, then: { type: 'poly', maxIteration: 10, power: 2 } } } },
  { name: 'sgd', options: { lr: 0.05, momentum: 0.9, dampening: 0.2 } },
  { name: 'sgd', options: { lr: 0.05 } },
  { name: 'adam', options: { lr: 0.01, weightDecay: 1e-2, schedule: { type: 'step', stepSize: 2, gamma: 0.5 } } },
];

function run(t: Tap, be: Backend, rng: Rng, c: (typeof cases)[number], sizes: number[]): void {
  const what = `${c.name} ${JSON.stringify(c.options)} slices ${sizes.join('+')}`;
  const init = randArray(rng, N);
  const gradSeq = Array.from({ length: STEPS }, () => randArray(rng, N));

  const whole = init.slice();
  const one = createOptimizer(c.name, be, N, c.options);
  for (const g of gradSeq) one.step(whole, g);

  // The sliced run works on views of one flat buffer, as a worker does.
  const flat = init.slice();
  const offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
  const parts: Optimizer[] = sizes.map((n) => createOptimizer(c.name, be, n, c.options));
  for (const g of gradSeq) {
    parts.forEach((opt, i) => {
      const lo = offsets[i]!, hi = lo + sizes[i]!;
      opt.step(flat.subarray(lo, hi), g.subarray(lo, hi));
    });
  }
  sameBits(t, flat, whole, `params, ${what}`);
  const wholeState = one.state();
  for (const [k, buf] of Object.entries(wholeState.buffers)) {
    const joined = new Float32Array(N);
    parts.forEach((opt, i) => {
      const b = opt.state().buffers[k];
      if (b) joined.set(b, offsets[i]);
      else t.equal(sizes[i], 0, `only an empty slice may lack buffer '${k}'`);
    });
    sameBits(t, joined, buf, `buffer '${k}' joined from the slices, ${what}`);
  }
  parts.forEach((opt) => t.equal(opt.iteration, STEPS));
}

forEachBackend(t, (t, be) => {
  const rng = new Rng(303);
  for (const c of cases) {
    t.test(`${c.name}: slices update as the whole`, (t) => {
      for (const sizes of splits) run(t, be, rng, c, sizes);
      t.end();
    });
  }
});
