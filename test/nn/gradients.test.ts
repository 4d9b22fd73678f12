// Every module's backward against finite differences, on every backend (gradcheck.ts).
import t from 'tap';
import {
  BatchNormalization, Concat, Dropout, LeakyReLU, Linear, LogSoftMax, ReLU, Reshape, Sequential, Sigmoid, SoftMax, SpatialAveragePooling,
  SpatialBatchNormalization, SpatialConvolution, SpatialCrossMapLRN, SpatialMaxPooling, Tanh, View, type Module,
} from '../../engine/nn/index.js';
import { Rng, forEachBackend } from '../conformance/util.js';
import { gradCheck, randomTensor } from './gradcheck.js';

interface Case {
  name: string;
  build: () => Module;
  input: number[];
  /** Keep max-pool windows free of near-ties: distinct, well-separated inputs. */
  distinct?: boolean;
  eval?: boolean;
  h?: number;
  tol?: number;
}

const cases: Case[] = [
  { name: 'Linear', build: () => new Linear(7, 5), input: [3, 7] },
  { name: 'Linear without bias', build: () => new Linear(4, 6, false), input: [2, 4] },
  { name: 'SpatialConvolution 3x3 stride 2 pad 1', build: () => new SpatialConvolution(3, 4, 3, 3, 2, 2, 1, 1), input: [2, 3, 7, 6] },
  { name: 'SpatialConvolution 5x3 groups 2 dilation 2', build: () => new SpatialConvolution(4, 6, 3, 5, 1, 1, 2, 1, { groups: 2, dilationW: 2, dilationH: 1 }), input: [2, 4, 8, 9] },
  { name: 'SpatialConvolution on a 2x2 plane (batched path)', build: () => new SpatialConvolution(5, 3, 3, 3, 1, 1, 1, 1), input: [6, 5, 2, 2] },
  { name: 'SpatialConvolution 1x1', build: () => new SpatialConvolution(6, 3, 1, 1), input: [3, 6, 4, 5] },
  { name: 'SpatialMaxPooling 3x3 s2 pad 1 ceil', build: () => new SpatialMaxPooling(3, 3, 2, 2, 1, 1).ceil(), input: [2, 3, 8, 7], distinct: true },
  { name: 'SpatialMaxPooling 2x2 floor', build: () => new SpatialMaxPooling(2, 2, 2, 2), input: [2, 2, 5, 5], distinct: true },
  { name: 'SpatialAveragePooling 3x3 s2 pad 1 ceil', build: () => new SpatialAveragePooling(3, 3, 2, 2, 1, 1).ceil(), input: [2, 3, 8, 7] },
  { name: 'SpatialAveragePooling exclude pad', build: () => new SpatialAveragePooling(3, 3, 2, 2, 1, 1).setCountExcludePad(), input: [2, 2, 6, 6] },
  { name: 'ReLU', build: () => new ReLU(), input: [2, 3, 4, 5], distinct: true },
  { name: 'LeakyReLU 0.1', build: () => new LeakyReLU(0.1), input: [2, 3, 4, 5], distinct: true },
  { name: 'LeakyReLU -0.5 (slope below 0)', build: () => new LeakyReLU(-0.5), input: [3, 8], distinct: true }, // even size: no input at the kink 0
  { name: 'Tanh', build: () => new Tanh(), input: [3, 11] },
  { name: 'Sigmoid', build: () => new Sigmoid(), input: [3, 11] },
  { name: 'SpatialCrossMapLRN', build: () => new SpatialCrossMapLRN(5, 0.5, 0.75, 2), input: [2, 7, 3, 4] },
  { name: 'SpatialCrossMapLRN size 3', build: () => new SpatialCrossMapLRN(3, 1e-1, 0.6, 1), input: [1, 4, 3, 3] },
  { name: 'BatchNormalization (training)', build: () => new BatchNormalization(6), input: [5, 6] },
  { name: 'BatchNormalization without affine', build: () => new BatchNormalization(4, { affine: false }), input: [6, 4] },
  { name: 'SpatialBatchNormalization (training)', build: () => new SpatialBatchNormalization(3, { eps: 1e-3 }), input: [4, 3, 3, 3] },
  { name: 'SpatialBatchNormalization (evaluation)', build: () => new SpatialBatchNormalization(3), input: [2, 3, 2, 3], eval: true },
  { name: 'View', build: () => new View(-1), input: [2, 3, 2, 2] },
  { name: 'Reshape', build: () => new Reshape(3, 4), input: [2, 12] },
  { name: 'SoftMax', build: () => new SoftMax(), input: [4, 6] },
  { name: 'LogSoftMax', build: () => new LogSoftMax(), input: [4, 6] },
  { name: 'LogSoftMax 1-d', build: () => new LogSoftMax(), input: [9] },
  {
    name: 'Concat of branches (Inception-style)',
    build: () => new Concat(1,
      new SpatialConvolution(3, 2, 1, 1),
      new Sequential(new SpatialConvolution(3, 2, 1, 1), new Tanh(), new SpatialConvolution(2, 3, 3, 3, 1, 1, 1, 1)),
      new Sequential(new SpatialAveragePooling(3, 3, 1, 1, 1, 1), new SpatialConvolution(3, 1, 1, 1))),
    input: [2, 3, 5, 5],
  },
  {
    name: 'Sequential (a small LeNet)',
    build: () => new Sequential(new SpatialConvolution(1, 3, 3, 3), new Tanh(), new SpatialAveragePooling(2, 2, 2, 2), new View(3 * 3 * 3),
      new Linear(27, 8), new Sigmoid(), new Linear(8, 4), new LogSoftMax()),
    input: [3, 1, 8, 8],
  },
];

/** Inputs with pairwise gaps of at least 1/n of the range, shuffled: no ties within a small h. */
function distinctInput(rng: Rng, shape: number[]): ReturnType<typeof randomTensor> {
  const x = randomTensor(rng, shape);
  const n = x.size;
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  for (let i = 0; i < n; i++) x.data[order[i]!] = -1 + (2 * (i + 0.5)) / n;
  return x;
}

forEachBackend(t, async (t, be) => {
  for (const [k, c] of cases.entries()) {
    await t.test(c.name, async (t) => {
      const rng = new Rng(1000 + k);
      const m = c.build().reset(17 + k).to(be);
      if (c.eval) {
        // Give the running statistics values other than the initial 0 / 1.
        for (const s of m.states()) for (let i = 0; i < s.value.size; i++) s.value.data[i] = s.name === 'runningVar' ? rng.uniform(0.5, 2) : rng.uniform(-0.5, 0.5);
        m.evaluate();
      }
      const input = c.distinct ? distinctInput(rng, c.input) : randomTensor(rng, c.input);
      // With distinct inputs 2/n apart, h * |v| must stay below half a gap.
      const h = c.h ?? (c.distinct ? 0.4 / input.size : 1e-2);
      await gradCheck(t, m, input, rng, c.name, { h, tol: c.tol ?? (c.distinct ? 2e-2 : 1e-2) });
      m.dispose();
    });
  }

  await t.test('LeakyReLU forward is x or slope * x by sign', async (t) => {
    const rng = new Rng(78);
    const m = new LeakyReLU(0.2).to(be);
    const x = randomTensor(rng, [4, 9]);
    const y = await m.forward(x);
    const want = Array.from(x.data, (v) => Math.fround(v > 0 ? v : 0.2 * v));
    t.same(Array.from(y.data), want, 'every element');
    t.ok(x.data.some((v) => v < 0) && x.data.some((v) => v > 0), 'the input has both signs');
    m.dispose();
  });

  await t.test('Dropout with a fixed mask', async (t) => {
    const rng = new Rng(77);
    const d = new Dropout(0.4).reset(5).to(be);
    await gradCheck(t, d, randomTensor(rng, [3, 20]), rng, 'Dropout', { beforeForward: () => d.setSeed(1234) });
    const x = randomTensor(rng, [4, 50]);
    d.setSeed(99);
    const y = await d.forward(x);
    let zeros = 0;
    let scaledOk = true;
    for (let i = 0; i < x.size; i++) {
      if (y.data[i] === 0) zeros++;
      else scaledOk &&= Math.abs(y.data[i]! - x.data[i]! / 0.6) <= 1e-6 * Math.max(1, Math.abs(x.data[i]!));
    }
    t.ok(zeros > 40 && zeros < 120, `about 40% of 200 dropped (${zeros})`);
    t.ok(scaledOk, 'kept values are scaled by 1 / (1 - p)');
    d.evaluate();
    t.equal(await d.forward(x), x, 'evaluation mode is the identity');
    d.dispose();
  });
});
