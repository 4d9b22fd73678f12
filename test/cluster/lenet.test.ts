// Data-parallel LeNet-5 against one process (engine/train) on the same global batches:
// K = 5 iterations of SGD with momentum, global batch 64 over 300 samples (the fifth batch
// is a short one of 44), split over N = 2 and 3 workers evenly, 2:1:1, and with a worker
// whose share is empty; native only, wasm only, and native and wasm side by side. With
// f32 on the wire every worker's weights equal the one-process weights to relative 1e-5
// (workers back-propagate the sum of the loss over their share, owners scale by 1/64), and
// the replicas are identical to each other. Shuffled delivery gives the same bits; the
// in-process transport gives the same result. bf16 on the wire: weights within bf16
// rounding of the f32 run, and the loss keeps falling over 20 iterations. A NaN in one
// worker's data stops iteration 2 on every worker with no weight change anywhere.
import t from 'tap';
import type { Backend, BackendName } from '../../engine/backends/backend.js';
import { loadBackend } from '../../engine/backends/registry.js';
import { IterationAbortedError, LocalClusterError, runLocalCluster, sliceRanges, type LocalClusterOptions, type LocalClusterResult } from '../../engine/cluster/index.js';
import { cloneDataset, epochOrder, shareRange, splitBatch, syntheticDataset } from '../../engine/data/index.js';
import { lenet5 } from '../../engine/models/index.js';
import { ClassNLLCriterion } from '../../engine/nn/index.js';
import { SGD } from '../../engine/optim/index.js';
import { train } from '../../engine/train/index.js';
import { createInProcessMesh } from '../../transport/inproc/index.js';
import type { Transport } from '../../transport/transport.js';
import { sameBits, within, type Tap } from '../conformance/util.js';
import { createFakeMesh } from './fake-transport.js';
import { testBackends } from './pm-harness.js';
import { relErr } from './compare.js';

const B = 64;
const K = 5;
const SEED = 3;
const MODEL_SEED = 5;
const data = syntheticDataset({ length: 300, shape: [1, 28, 28], classes: 10, seed: 11, separation: 1 });
const names = testBackends().map((b) => b.name);
t.ok(names.length >= 1, `backends: ${names.join(', ')}`);

function sgd(be: Backend, n: number): SGD {
  return new SGD(be, n, { lr: 0.05, momentum: 0.9, ...(n > 0 ? { alloc: (k: number) => be.allocFloat32(k), free: (a: Float32Array) => be.free(a) } : {}) });
}


const refs = new Map<string, { weights: Float32Array; losses: number[] }>();
/** One process on `backend`: engine/train with the mean loss, the same seed and batches. */
async function reference(backend: BackendName, iterations = K, ds = data): Promise<{ weights: Float32Array; losses: number[] }> {
  const key = `${backend}:${iterations}:${ds === data}`;
  const have = refs.get(key);
  if (have) return have;
  const be = loadBackend(backend);
  const model = lenet5().reset(MODEL_SEED).to(be);
  const losses: number[] = [];
  await train({ model, criterion: new ClassNLLCriterion(), optimizer: sgd(be, model.flatParameters().length), train: ds, epochs: Math.ceil(iterations / 5),
    batchSize: B, seed: SEED, progress: null, maxIterations: iterations, onIteration: (i) => losses.push(i.loss) });
  const r = { weights: model.flatParameters().values.slice(), losses };
  model.dispose();
  refs.set(key, r);
  return r;
}

type Config = Partial<LocalClusterOptions> & { backends: BackendName[] };

function cluster(c: Config): Promise<LocalClusterResult> {
  const n = c.backends.length;
  return within(runLocalCluster({
    transports: c.transports ?? createFakeMesh(n), model: () => lenet5().reset(MODEL_SEED), optimizer: sgd,
    data, batchSize: B, iterations: K, seed: SEED, ...c,
  }), `cluster ${c.backends.join('+')}`, 120_000);
}

/** The initial weights (every worker and the reference start from them). */
function initialWeights(): Float32Array {
  const m = lenet5().reset(MODEL_SEED).to(loadBackend(names[0]!));
  const w = m.flatParameters().values.slice();
  m.dispose();
  return w;
}
const w0 = initialWeights();

async function checkEquivalent(t: Tap, c: Config, what: string, refBackend: BackendName = c.backends[0]!): Promise<LocalClusterResult> {
  const res = await cluster(c);
  const ref = await reference(refBackend);
  const refUpdate = ref.weights.map((v, i) => v - w0[i]!);
  for (const [r, w] of res.weights.entries()) {
    const e = relErr(w, ref.weights);
    // Stricter: the change the 5 iterations made, relative to its own size.
    const eu = relErr(w.map((v, i) => v - w0[i]!), refUpdate);
    t.ok(e <= 1e-5 && eu <= 1e-4, `${what}: rank ${r} weights equal one process (${refBackend}) to ${e.toExponential(2)} <= 1e-5 ` +
      `(the update itself to ${eu.toExponential(2)})`);
  }
  for (let r = 1; r < res.weights.length; r++) sameBits(t, res.weights[r]!, res.weights[0]!, `${what}: rank ${r} replica equals rank 0's`);
  const le = Math.max(...res.losses.map((l, k) => Math.abs(l - ref.losses[k]!) / Math.abs(ref.losses[k]!)));
  t.ok(res.losses.length === K && le <= 1e-5, `${what}: global mean loss per iteration as one process (${le.toExponential(2)})`);
  return res;
}

t.test('f32 wire: N workers end where one process does', async (t) => {
  for (const be of names) {
    await checkEquivalent(t, { backends: [be, be] }, `${be} N=2 even`);
    await checkEquivalent(t, { backends: [be, be, be], weights: [2, 1, 1], chunkElements: 4000 }, `${be} N=3 2:1:1, chunks of 4000`);
  }
  const be = names[0]!;
  await checkEquivalent(t, { backends: [be, be, be], weights: [1, 0, 1] }, `${be} N=3, rank 1's share empty`);
  await checkEquivalent(t, { backends: [be, be, be], weights: [3, 1, 2], overlap: false }, `${be} N=3 3:1:2, no overlap`);
  if (names.length > 1) {
    await checkEquivalent(t, { backends: ['native', 'wasm'] }, 'native+wasm N=2 even', 'native');
    const mixed = await checkEquivalent(t, { backends: ['wasm', 'native', 'wasm'], weights: [1, 2, 1], chunkElements: 3000 }, 'wasm+native+wasm N=3 1:2:1', 'wasm');
    const nref = await reference('native');
    t.ok(relErr(mixed.weights[0]!, nref.weights) <= 1e-5, 'the mixed cluster also matches one native process');
  }
});

t.test('the gradients move during the backward pass', async (t) => {
  const be = names[0]!;
  const res = await cluster({ backends: [be, be, be], chunkElements: 2000, iterations: 1 });
  for (const [r, reps] of res.reports.entries()) {
    const rep = reps[0]!;
    t.ok(rep.earlyGradientFrames > 0, `rank ${r}: ${rep.earlyGradientFrames} of ${rep.gradientFrames} gradient frames sent by gradientsReady() as layers finished, before finish()`);
  }
  const P = res.weights[0]!.length;
  const bytes = res.reports.map((reps) => reps[0]!.bytesSent);
  const s = sliceRanges(P, 3);
  for (const [r, b] of bytes.entries()) {
    const payload = 4 * (P - s[r]!.length) + 4 * 2 * s[r]!.length; // gradients of others' slices + own slice to two peers
    t.ok(b >= payload && b < payload + 2000, `rank ${r}: ${b} payload bytes sent, about 2 (N-1)/N P values (${payload}) plus status frames`);
  }
});

t.test('shuffled delivery and the in-process transport give the same bits', async (t) => {
  const be = names[0]!;
  const c: Config = { backends: [be, be, be], weights: [2, 1, 1], chunkElements: 2500 };
  const base = await cluster(c);
  for (const seed of [1, 2]) {
    const sh = await cluster({ ...c, transports: createFakeMesh(3, { shuffleSeed: seed }) });
    sameBits(t, sh.weights[0]!, base.weights[0]!, `shuffle seed ${seed}`);
  }
  const ip = await cluster({ ...c, transports: createInProcessMesh(3) as Transport[] });
  sameBits(t, ip.weights[2]!, base.weights[2]!, 'transport/inproc');
});

t.test('bf16 wire: within bf16 rounding of the f32 run, and the loss falls', async (t) => {
  const be = names[0]!;
  const c: Config = { backends: [be, be, be], gradientWire: 'bf16', weightWire: 'bf16' };
  const f32 = await cluster({ ...c, gradientWire: 'f32', weightWire: 'f32' });
  const bf = await cluster(c);
  // Master weights (each slice from its owner) drift from the f32 run only through rounded
  // gradients and the rounded weights the forward pass used: a few bf16 ulps (2^-8 relative)
  // of the weights' magnitude after 5 iterations. Non-owned copies add one more rounding.
  const em = relErr(bf.masterWeights, f32.masterWeights);
  t.ok(em > 0 && em <= 2 ** -8, `master weights within ${em.toExponential(2)} <= 2^-8 of the f32 run (and not identical: bf16 was used)`);
  for (const [r, w] of bf.weights.entries()) {
    const e = relErr(w, f32.weights[r]!);
    t.ok(e <= 2 * 2 ** -8, `rank ${r}'s weights (its master slice, rounded copies of the others) within ${e.toExponential(2)} <= 2^-7 of the f32 run`);
  }
  const long = await cluster({ ...c, iterations: 20 });
  const first = long.losses.slice(0, 5).reduce((a, b) => a + b) / 5;
  const last = long.losses.slice(-5).reduce((a, b) => a + b) / 5;
  t.ok(long.losses.every(Number.isFinite) && last < 0.5 * first, `bf16: mean loss of iterations 1-5 ${first.toFixed(3)} -> 16-20 ${last.toFixed(3)}`);
  const fp = await cluster({ ...c, gradientWire: 'fp16', weightWire: 'fp16' });
  const ef = relErr(fp.masterWeights, f32.masterWeights);
  t.ok(ef <= 2 ** -8, `fp16 wire: master weights within ${ef.toExponential(2)} of the f32 run`);
});

t.test('a NaN in one worker\'s data stops iteration 2 everywhere, no weight changes', async (t) => {
  const be = names[0]!;
  const weights = [2, 1, 1];
  const ds = cloneDataset(data);
  // The first sample of rank 1's share of global batch 2 (epoch 0).
  const order = epochOrder(ds.length, { seed: SEED, epoch: 0 });
  const share = shareRange(splitBatch(B, weights), 1);
  const sample = order[2 * B + share.start]!;
  ds.images[sample * 784 + 300] = NaN;
  const after2 = await cluster({ backends: [be, be, be], weights, iterations: 2, data: ds });
  const err = await cluster({ backends: [be, be, be], weights, data: ds, chunkElements: 5000 }).then(() => null, (e: unknown) => e);
  t.ok(err instanceof LocalClusterError, 'the cluster run fails');
  if (!(err instanceof LocalClusterError)) return;
  t.same(err.completedIterations, [2, 2, 2], 'every worker completed iterations 0 and 1 only');
  for (const [r, e] of err.errors.entries()) {
    t.ok(e instanceof IterationAbortedError, `rank ${r}: IterationAbortedError`);
    if (!(e instanceof IterationAbortedError)) continue;
    t.equal(e.iteration, 2, `rank ${r}: iteration 2`);
    t.equal(e.index, 0, `rank ${r}: first bad flat index 0 (the whole gradient is NaN)`);
    t.equal(e.contributor, 1, `rank ${r}: contributed by rank 1`);
    t.match(e.message, /^iteration 2 stopped on every worker: the reduced gradient is NaN at flat index 0/, `rank ${r}: message names the iteration and index`);
    sameBits(t, err.weights[r]!, after2.weights[r]!, `rank ${r}: weights are those after iteration 1`);
  }
});

t.test('a worker failing in its backward pass stops its peers instead of leaving them waiting', async (t) => {
  const be = names[0]!;
  const boom = new Error('injected failure');
  const err = await cluster({
    backends: [be, be, be], iterations: 3,
    afterBackward: ({ rank, iteration }) => {
      if (rank === 1 && iteration === 1) throw boom;
    },
  }).then(() => null, (e: unknown) => e);
  t.ok(err instanceof LocalClusterError, 'the run fails');
  if (!(err instanceof LocalClusterError)) return;
  t.equal(err.errors[1], boom, 'rank 1 rethrows its own error');
  for (const r of [0, 2]) {
    const e = err.errors[r];
    t.ok(e instanceof IterationAbortedError && e.iteration === 1 && /rank 1 vetoed it: rank 1 failed in forward\/backward: injected failure/.test(e.message),
      `rank ${r}: stopped at iteration 1 by rank 1's veto`);
  }
  t.same(err.completedIterations, [1, 1, 1], 'nobody went past iteration 0');
});

t.test('a criterion that averages is refused', async (t) => {
  const be = names[0]!;
  await t.rejects(cluster({ backends: [be, be], criterion: () => new ClassNLLCriterion() }), /averages over the batch.*SUM/, 'ClassNLLCriterion() (mean) refused');
});
