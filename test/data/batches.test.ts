// Seeded shuffling and mini-batches: every epoch order is a permutation, reproducible from
// (seed, epoch), different across epochs and seeds, and uniform over permutations; batches
// cover the epoch order in runs of batchSize and carry exactly the images and labels at
// their indices (checked element by element against the data set).
import t from 'tap';
import { Random } from '../../engine/tensor/random.js';
import { batchCount, batches, checkPermutation, epochOrder, gatherBatch, globalBatch } from '../../engine/data/batches.js';
import { createDataset, type Dataset } from '../../engine/data/dataset.js';
import { epochPermutation, randomBelow } from '../../engine/data/shuffle.js';

function isPermutation(order: Int32Array, n: number): boolean {
  if (order.length !== n) return false;
  const seen = new Uint8Array(n);
  for (const i of order) {
    if (i < 0 || i >= n || seen[i]) return false;
    seen[i] = 1;
  }
  return true;
}

/** n images of [2, 3, 2] where value j of image i is i * 100 + j, label i % 7. */
function numbered(n: number): Dataset {
  const images = new Float32Array(n * 12);
  for (let i = 0; i < n; i++) for (let j = 0; j < 12; j++) images[i * 12 + j] = i * 100 + j;
  return createDataset(images, Int32Array.from({ length: n }, (_, i) => i % 7), [2, 3, 2], 7);
}

t.test('randomBelow is in range and unbiased', async (t) => {
  const rng = new Random(1);
  const counts = new Array<number>(6).fill(0);
  for (let i = 0; i < 60000; i++) counts[randomBelow(rng, 6)]!++;
  t.ok(counts.every((c) => Math.abs(c - 10000) < 600), `counts ${counts.join(' ')}`);
  t.equal(randomBelow(rng, 1), 0);
  const big = randomBelow(rng, 4294967296);
  t.ok(big >= 0 && big < 4294967296 && Number.isInteger(big));
  t.throws(() => randomBelow(rng, 0), /n must be an integer in \[1, 2\^32\], got 0/);
});

t.test('epoch permutations', async (t) => {
  for (const n of [0, 1, 2, 17, 1000]) {
    for (const seed of [0, 1, 42]) {
      t.ok(isPermutation(epochPermutation(n, seed, 3), n), `n=${n} seed=${seed} is a permutation`);
    }
  }
  const a = epochPermutation(1000, 42, 0);
  t.same(epochPermutation(1000, 42, 0), a, 'reproducible');
  t.notSame(epochPermutation(1000, 42, 1), a, 'epoch 1 differs from epoch 0');
  t.notSame(epochPermutation(1000, 43, 0), a, 'seed 43 differs from seed 42');
  const orders = new Set<string>();
  for (let e = 0; e < 20; e++) orders.add(epochPermutation(1000, 42, e).join(','));
  t.equal(orders.size, 20, '20 epochs, 20 different orders');
  t.throws(() => epochPermutation(10, 1.5, 0), /shuffle seed must be an integer, got 1.5/);
  t.throws(() => epochPermutation(10, 1, -1), /epoch must be non-negative, got -1/);
});

t.test('shuffles are uniform over permutations', async (t) => {
  // The 24 orders of 4 items over 24000 (seed, epoch) pairs: 1000 each, sd ~ 31.
  const counts = new Map<string, number>();
  for (let seed = 0; seed < 240; seed++) {
    for (let e = 0; e < 100; e++) {
      const key = epochPermutation(4, seed, e).join('');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  t.equal(counts.size, 24);
  const values = [...counts.values()];
  t.ok(values.every((c) => Math.abs(c - 1000) < 160), `counts ${values.join(' ')}`);
});

t.test('unshuffled batches: data set order, last batch short or dropped', async (t) => {
  const ds = numbered(10);
  t.same(Array.from(epochOrder(10)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const got = [...batches(ds, { batchSize: 4 })];
  t.same(got.map((b) => Array.from(b.indices)), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
  t.same(got.map((b) => b.input.shape), [[4, 2, 3, 2], [4, 2, 3, 2], [2, 2, 3, 2]]);
  t.same(Array.from(got[2]!.input.data), [...Array.from({ length: 12 }, (_, j) => 800 + j), ...Array.from({ length: 12 }, (_, j) => 900 + j)]);
  t.same(Array.from(got[2]!.target), [1, 2]);
  const dropped = [...batches(ds, { batchSize: 4, dropLast: true })];
  t.same(dropped.map((b) => Array.from(b.indices)), [[0, 1, 2, 3], [4, 5, 6, 7]]);
  t.equal(batchCount(10, 4), 3);
  t.equal(batchCount(10, 4, true), 2);
  t.equal(batchCount(8, 4, false), 2);
  t.equal([...batches(numbered(0), { batchSize: 4 })].length, 0);
  t.throws(() => [...batches(ds, { batchSize: 0 })], /batchSize must be a positive integer, got 0/);
  t.throws(() => [...batches(ds, { batchSize: 2, shuffle: true })], /shuffle: true needs a seed/);
});

t.test('shuffled batches follow the epoch permutation and carry the right data', async (t) => {
  const n = 103;
  const ds = numbered(n);
  for (const epoch of [0, 1, 5]) {
    const order = epochPermutation(n, 7, epoch);
    const got = [...batches(ds, { batchSize: 16, seed: 7, epoch })];
    t.equal(got.length, 7);
    const concat = got.flatMap((b) => Array.from(b.indices));
    t.same(concat, Array.from(order), `epoch ${epoch}: batches concatenate to the epoch order`);
    let bad = 0;
    for (const b of got) {
      for (let k = 0; k < b.indices.length; k++) {
        const i = b.indices[k]!;
        if (b.target[k] !== i % 7) bad++;
        for (let j = 0; j < 12; j++) if (b.input.data[k * 12 + j] !== i * 100 + j) bad++;
      }
    }
    t.equal(bad, 0, `epoch ${epoch}: every value and label matches its index`);
  }
  const e0 = [...batches(ds, { batchSize: 16, seed: 7, epoch: 0 })].map((b) => Array.from(b.indices));
  const e0again = [...batches(ds, { batchSize: 16, seed: 7, epoch: 0 })].map((b) => Array.from(b.indices));
  const e1 = [...batches(ds, { batchSize: 16, seed: 7, epoch: 1 })].map((b) => Array.from(b.indices));
  t.same(e0again, e0, 'same seed and epoch, same batches');
  t.notSame(e1, e0, 'next epoch, other batches');
  t.same([...batches(ds, { batchSize: 16, seed: 7, shuffle: false })].flatMap((b) => Array.from(b.indices)), Array.from(epochOrder(n)), 'shuffle: false keeps the order');
});

t.test('reuseBuffers: one buffer per batch size, fresh arrays otherwise', async (t) => {
  const ds = numbered(10);
  const it = batches(ds, { batchSize: 4, seed: 3, reuseBuffers: true });
  const b0 = it.next().value!;
  const firstValues = Array.from(b0.input.data);
  const firstIdx = Array.from(b0.indices);
  t.equal(firstValues[0], firstIdx[0]! * 100, 'first batch correct when yielded');
  const b1 = it.next().value!;
  t.equal(b1.input.data, b0.input.data, 'same input buffer for the same batch size');
  t.equal(b1.target, b0.target, 'same target buffer');
  t.equal(b1.input.data[0], b1.indices[0]! * 100, 'second batch correct');
  const b2 = it.next().value!;
  t.not(b2.input.data, b0.input.data, 'the short last batch has its own buffer');
  t.equal(b2.input.data.length, 24);
  const fresh = [...batches(ds, { batchSize: 4, seed: 3 })];
  t.not(fresh[0]!.input.data, fresh[1]!.input.data, 'without reuse every batch has new arrays');
});

t.test('gatherBatch and globalBatch', async (t) => {
  const ds = numbered(5);
  const b = gatherBatch(ds, Int32Array.from([4, 4, 0]));
  t.same(b.input.shape, [3, 2, 3, 2]);
  t.same(Array.from(b.target), [4, 4, 0]);
  t.equal(b.input.data[12], 400);
  t.throws(() => gatherBatch(ds, Int32Array.from([5])), /index 0 is 5, outside the data set's \[0, 5\)/);
  t.throws(() => gatherBatch(ds, Int32Array.from([1]), { input: new Float32Array(11), target: new Int32Array(1) }), /a batch of 1 needs 12 and 1/);
  const order = Int32Array.from([5, 3, 1, 0, 2, 4, 6]);
  t.same(Array.from(globalBatch(order, 3, 2)), [6]);
  t.throws(() => globalBatch(order, 3, 3), /batch 3 out of range: the epoch has 3 batches of up to 3/);
});

t.test('an explicit order is visited as given and must be a permutation', async (t) => {
  const ds = numbered(7);
  const order = Int32Array.from([6, 0, 5, 1, 4, 2, 3]);
  t.equal(epochOrder(7, { order, seed: 9, epoch: 1 }), order, 'order wins over seed and epoch');
  const got = [...batches(ds, { batchSize: 3, order })];
  t.same(got.map((b) => Array.from(b.indices)), [[6, 0, 5], [1, 4, 2], [3]]);
  t.same(Array.from(got[2]!.target), [3 % 7]);
  t.equal(got[0]!.input.data[0], 600, 'images gathered by the given indices');
  t.throws(() => checkPermutation(Int32Array.from([0, 1]), 3), /order has 2 indices, the data set has 3 samples/);
  t.throws(() => checkPermutation(Int32Array.from([0, 3, 1]), 3), /order\[1\] is 3, outside the data set's \[0, 3\)/);
  t.throws(() => checkPermutation(Int32Array.from([0, 1, 1]), 3), /order\[2\] repeats index 1: the order must be a permutation/);
  t.throws(() => [...batches(ds, { batchSize: 3, order: Int32Array.from([0, 1]) })], /order has 2 indices/);
});
