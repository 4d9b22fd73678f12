// Sharding across workers: contiguous shards tile the data set; splitBatch gives
// largest-remainder counts that sum exactly to the batch; and the concatenation, in rank
// order, of every worker's share of global batch k is exactly global batch k as a single
// process sees it with the same seed and epoch (indices, images and labels).
import t from 'tap';
import { Random } from '../../engine/tensor/random.js';
import { batches } from '../../engine/data/batches.js';
import { createDataset, type Dataset } from '../../engine/data/dataset.js';
import { shardDataset, shardRange, shareRange, splitBatch, workerBatches } from '../../engine/data/shard.js';
import { syntheticDataset } from '../../engine/data/synthetic.js';

/** The subtest object tap passes to a test callback. */
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

t.test('shardRange tiles [0, length) with sizes differing by at most one', async (t) => {
  let bad = 0;
  for (let length = 0; length <= 50; length++) {
    for (let world = 1; world <= 9; world++) {
      const hits = new Uint8Array(length);
      let next = 0;
      let min = Infinity;
      let max = -Infinity;
      for (let r = 0; r < world; r++) {
        const { start, end } = shardRange(length, r, world);
        if (start !== next || end < start) bad++;
        next = end;
        min = Math.min(min, end - start);
        max = Math.max(max, end - start);
        for (let i = start; i < end; i++) hits[i]!++;
      }
      if (next !== length || max - min > 1 || hits.some((h) => h !== 1)) bad++;
    }
  }
  t.equal(bad, 0, 'every index in exactly one shard, in rank order, sizes within one');
  t.same(shardRange(10, 0, 3), { start: 0, end: 4 });
  t.same(shardRange(10, 1, 3), { start: 4, end: 7 });
  t.same(shardRange(10, 2, 3), { start: 7, end: 10 });
  t.throws(() => shardRange(10, 3, 3), /rank must be an integer in \[0, 3\), got 3/);
  t.throws(() => shardRange(10, 0, 0), /worldSize must be a positive integer, got 0/);
  t.throws(() => shardRange(-1, 0, 1), /length must be a non-negative integer, got -1/);

  const ds = syntheticDataset({ length: 10, shape: [1, 2, 2], classes: 3, seed: 1 });
  const s = shardDataset(ds, 1, 3);
  t.equal(s.length, 3);
  t.equal(s.images.buffer, ds.images.buffer, 'a shard shares storage');
  t.same(Array.from(s.images), Array.from(ds.images.subarray(16, 28)));
  t.same(Array.from(s.labels), Array.from(ds.labels.subarray(4, 7)));
});

t.test('splitBatch by hand', async (t) => {
  t.same(splitBatch(10, [1, 1, 1]), [4, 3, 3], 'ties go to the lower rank');
  t.same(splitBatch(100, [3, 1]), [75, 25]);
  // quotas 3.5, 1.75, 1.75 -> floors 3, 1, 1; the 2 left go to the .75 remainders.
  t.same(splitBatch(7, [0.5, 0.25, 0.25]), [3, 2, 2]);
  t.same(splitBatch(5, [0, 1]), [0, 5]);
  t.same(splitBatch(0, [1, 2]), [0, 0]);
  t.same(splitBatch(3, [1, 1, 1, 1, 1]), [1, 1, 1, 0, 0]);
  t.same(splitBatch(10, [Number.MAX_VALUE, Number.MAX_VALUE]), [5, 5], 'no overflow of the total');
  t.same(splitBatch(1, [Number.MIN_VALUE, 0]), [1, 0]);
  t.throws(() => splitBatch(10, [1, -1]), /weight of rank 1 is -1, must be finite and non-negative/);
  t.throws(() => splitBatch(10, [NaN, 1]), /weight of rank 0 is NaN/);
  t.throws(() => splitBatch(10, [Infinity, 1]), /weight of rank 0 is Infinity/);
  t.throws(() => splitBatch(10, [0, 0]), /all 2 weights are zero/);
  t.throws(() => splitBatch(10, []), /weights is empty/);
  t.throws(() => splitBatch(2.5, [1]), /batch size must be a non-negative integer, got 2.5/);
});

t.test('splitBatch on random weights: exact sum, largest remainders', async (t) => {
  const rng = new Random(2024);
  let bad = 0;
  const failures: string[] = [];
  for (let trial = 0; trial < 3000; trial++) {
    const n = 1 + rng.int(8);
    const B = rng.int(300);
    const weights: number[] = Array.from({ length: n }, () => (rng.uniform() < 0.2 ? 0 : rng.uniform() * 10 ** (rng.int(6) - 3)));
    if (!weights.some((w) => w > 0)) weights[0] = 1;
    const counts = splitBatch(B, weights);
    const total = weights.reduce((a, b) => a + b, 0);
    const quotas = weights.map((w) => (B * w) / total);
    let ok = counts.length === n && counts.reduce((a, b) => a + b, 0) === B;
    for (let i = 0; i < n; i++) {
      const c = counts[i]!;
      if (!Number.isInteger(c) || c < 0 || Math.abs(c - quotas[i]!) >= 1 + 1e-9) ok = false;
      if (weights[i] === 0 && c !== 0) ok = false;
    }
    // Whoever was rounded up had a remainder at least as large as anyone rounded down.
    const up = [];
    const down = [];
    for (let i = 0; i < n; i++) {
      if (weights[i] === 0) continue;
      const r = quotas[i]! - Math.floor(quotas[i]!);
      if (counts[i]! > Math.floor(quotas[i]! + 1e-12)) up.push(r);
      else down.push(r);
    }
    if (up.length && down.length && Math.min(...up) < Math.max(...down) - 1e-9) ok = false;
    if (!ok) {
      bad++;
      if (failures.length < 3) failures.push(`B=${B} w=${weights.join(',')} -> ${counts.join(',')}`);
    }
  }
  t.equal(bad, 0, failures.join('; '));
  // Equal weights give the same sizes as shardRange.
  for (const [B, world] of [[10, 3], [128, 5], [7, 7], [3, 4]] as const) {
    const sizes = Array.from({ length: world }, (_, r) => {
      const { start, end } = shardRange(B, r, world);
      return end - start;
    });
    t.same(splitBatch(B, new Array<number>(world).fill(1)), sizes, `B=${B} over ${world} equal workers`);
  }
  t.same(shareRange([3, 0, 4], 2), { start: 3, end: 7 });
});

/** Concatenates batches' indices, images and labels. */
function concat(parts: { indices: Int32Array; input: { data: Float32Array }; target: Int32Array }[]) {
  const indices = parts.flatMap((p) => Array.from(p.indices));
  const images = parts.flatMap((p) => Array.from(p.input.data));
  const targets = parts.flatMap((p) => Array.from(p.target));
  return { indices, images, targets };
}

function checkShares(t: Tap, ds: Dataset, opts: { batchSize: number; seed?: number; epoch?: number; dropLast?: boolean; weights: number[] }, label: string): void {
  const single = [...batches(ds, opts)];
  const perWorker = opts.weights.map((_, rank) => [...workerBatches(ds, { ...opts, rank })]);
  t.ok(perWorker.every((w) => w.length === single.length), `${label}: every worker yields ${single.length} batches`);
  let mismatched = 0;
  const seen = new Uint8Array(ds.length);
  for (let k = 0; k < single.length; k++) {
    const shares = perWorker.map((w) => w[k]!);
    const joined = concat(shares);
    const whole = concat([single[k]!]);
    if (JSON.stringify(joined) !== JSON.stringify(whole)) mismatched++;
    // The shares' sizes are splitBatch of this global batch's size.
    const sizes = shares.map((s) => s.indices.length);
    if (JSON.stringify(sizes) !== JSON.stringify(splitBatch(single[k]!.indices.length, opts.weights))) mismatched++;
    for (const s of shares) {
      if (s.input.shape[0] !== s.indices.length || s.input.shape.length !== 4) mismatched++;
      for (const i of s.indices) seen[i]!++;
    }
  }
  t.equal(mismatched, 0, `${label}: worker shares concatenate to the global batches`);
  const expectSeen = opts.dropLast ? Math.floor(ds.length / opts.batchSize) * opts.batchSize : ds.length;
  t.equal(seen.reduce((a, b) => a + b, 0), expectSeen, `${label}: ${expectSeen} images visited`);
  t.ok(seen.every((v) => v <= 1), `${label}: no image visited twice`);
}

t.test('worker shares concatenate to the single-process global batch', async (t) => {
  const ds = syntheticDataset({ length: 100, shape: [2, 3, 3], classes: 5, seed: 11 });
  checkShares(t, ds, { batchSize: 16, seed: 7, epoch: 2, weights: [2, 1, 0.5] }, 'weighted, shuffled');
  checkShares(t, ds, { batchSize: 16, seed: 7, epoch: 3, weights: [2, 1, 0.5], dropLast: true }, 'dropLast');
  checkShares(t, ds, { batchSize: 10, weights: [1, 1, 1, 1] }, 'equal, unshuffled');
  checkShares(t, ds, { batchSize: 32, seed: 1, weights: [1, 0] }, 'a worker of weight 0');
  checkShares(t, ds, { batchSize: 3, seed: 5, weights: [1, 1, 1, 1, 1] }, 'more workers than images per batch');

  const empty = [...workerBatches(ds, { batchSize: 32, seed: 1, weights: [1, 0], rank: 1 })];
  t.same(empty[0]!.input.shape, [0, 2, 3, 3], 'an empty share is a [0, C, H, W] batch');
  const byWorld = [...workerBatches(ds, { batchSize: 16, seed: 7, worldSize: 3, rank: 1 })];
  const byWeights = [...workerBatches(ds, { batchSize: 16, seed: 7, weights: [1, 1, 1], rank: 1 })];
  t.same(byWorld.map((b) => Array.from(b.indices)), byWeights.map((b) => Array.from(b.indices)), 'worldSize = equal weights');
  t.throws(() => [...workerBatches(ds, { batchSize: 16, rank: 0 })], /give weights \(one per worker\) or worldSize/);
  t.throws(() => [...workerBatches(ds, { batchSize: 16, rank: 3, worldSize: 3 })], /rank must be an integer in \[0, 3\), got 3/);
  t.throws(() => [...workerBatches(ds, { batchSize: 16, rank: 0, worldSize: 2, weights: [1, 1, 1] })], /worldSize 2 but 3 weights/);
});

t.test('a data set built by hand, two workers, reuseBuffers', async (t) => {
  const ds = createDataset(Float32Array.from({ length: 6 }, (_, i) => i * 10), Int32Array.from([0, 1, 0, 1, 0, 1]), [1, 1, 1], 2);
  const w0 = [...workerBatches(ds, { batchSize: 4, weights: [3, 1], rank: 0 })];
  const w1 = [...workerBatches(ds, { batchSize: 4, weights: [3, 1], rank: 1 })];
  t.same(w0.map((b) => Array.from(b.input.data)), [[0, 10, 20], [40, 50]], 'rank 0: 3 of 4, then 2 of the last 2 (quota 1.5 rounds up)');
  t.same(w1.map((b) => Array.from(b.input.data)), [[30], []], 'rank 1: 1 of 4, then 0 of 2');
  const it = workerBatches(ds, { batchSize: 2, weights: [1, 1], rank: 0, reuseBuffers: true });
  const a = it.next().value!;
  const b = it.next().value!;
  t.equal(a.input.data, b.input.data, 'reuseBuffers shares the buffer between steps');
  t.same(Array.from(b.input.data), [20]);
});
