// Synthetic images: any shape, reproducible from the seed, each sample independent of how
// many are generated (so a worker can generate its own shard), the noise and label
// distributions they claim, and class-dependent means that a nearest-mean classifier
// separates (while pure noise stays at chance).
import t from 'tap';
import { SyntheticImages, syntheticBatch, syntheticDataset } from '../../engine/data/synthetic.js';

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

t.test('any shape, labels in range, reproducible, seed-dependent', async (t) => {
  const opts = { length: 5, shape: [3, 7, 11] as const, classes: 4, seed: 123 };
  const a = syntheticDataset(opts);
  t.equal(a.length, 5);
  t.same(a.shape, [3, 7, 11]);
  t.equal(a.images.length, 5 * 3 * 7 * 11);
  t.ok(a.labels.every((l) => l >= 0 && l < 4));
  t.ok(a.images.every(Number.isFinite));
  t.ok(bitsEqual(a.images, syntheticDataset(opts).images), 'same seed, same images');
  t.same(a.labels, syntheticDataset(opts).labels);
  t.notOk(bitsEqual(a.images, syntheticDataset({ ...opts, seed: 124 }).images), 'another seed, other images');
  const b = syntheticBatch({ batchSize: 5, shape: [3, 7, 11], classes: 4, seed: 123 });
  t.same(b.input.shape, [5, 3, 7, 11]);
  t.ok(bitsEqual(b.input.data, a.images), 'a batch is the data set of its length');
  t.same(b.target, a.labels);
  t.same(Array.from(b.indices), [0, 1, 2, 3, 4]);
});

t.test('sample i does not depend on where generation starts', async (t) => {
  const base = { shape: [2, 5, 3] as const, classes: 10, seed: 9, separation: 1.5 };
  const all = syntheticDataset({ ...base, length: 12 });
  const part = syntheticDataset({ ...base, length: 4, first: 7 });
  const per = 2 * 5 * 3;
  t.ok(bitsEqual(part.images, all.images.subarray(7 * per, 11 * per)), 'images 7..10');
  t.same(Array.from(part.labels), Array.from(all.labels.subarray(7, 11)), 'labels 7..10');
  const batch = syntheticBatch({ ...base, batchSize: 3, first: 2 });
  t.same(Array.from(batch.indices), [2, 3, 4]);
  t.ok(bitsEqual(batch.input.data, all.images.subarray(2 * per, 5 * per)));
});

t.test('pure noise: mean 0, std = noise, uniform labels', async (t) => {
  const ds = syntheticDataset({ length: 200, shape: [3, 8, 8], classes: 10, seed: 5, noise: 2 });
  const n = ds.images.length;
  let s = 0;
  for (const v of ds.images) s += v;
  const mean = s / n;
  let q = 0;
  for (const v of ds.images) q += (v - mean) ** 2;
  const std = Math.sqrt(q / n);
  t.ok(Math.abs(mean) < 5 * (2 / Math.sqrt(n)), `mean ${mean} within 5 standard errors of 0`);
  t.ok(Math.abs(std - 2) < 0.05, `std ${std} ~ 2`);

  const labels = syntheticDataset({ length: 20000, shape: [1, 1, 1], classes: 10, seed: 6 }).labels;
  const counts = new Array<number>(10).fill(0);
  for (const l of labels) counts[l]!++;
  // Binomial(20000, 0.1): sd ~ 42; 6 sd either way.
  t.ok(counts.every((c) => Math.abs(c - 2000) < 255), `label counts ${counts.join(' ')}`);
});

t.test('class means on a coarse grid; separable with separation, chance without', async (t) => {
  const shape = [2, 8, 8] as const;
  const gen = new SyntheticImages({ shape, classes: 5, seed: 77, separation: 1 });
  const m = gen.classMean(3);
  // Grid of 4 x 4 over 8 x 8: each 2 x 2 block is constant.
  let blocksConstant = true;
  for (let ch = 0; ch < 2; ch++) {
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 8; x++) {
        const v = m[ch * 64 + y * 8 + x]!;
        const corner = m[ch * 64 + (y - (y % 2)) * 8 + (x - (x % 2))]!;
        if (v !== corner) blocksConstant = false;
      }
    }
  }
  t.ok(blocksConstant, '2 x 2 blocks share one value');
  t.ok(new Set(m).size > 4, 'the pattern varies across blocks');
  t.notSame(Array.from(gen.classMean(3)), Array.from(gen.classMean(4)), 'classes differ');

  // Residual image - mean(label) is the noise: std ~ 1.
  const img = new Float32Array(128);
  let q = 0;
  let count = 0;
  for (let i = 0; i < 100; i++) {
    const label = gen.sample(i, img);
    const mu = gen.classMean(label);
    for (let j = 0; j < img.length; j++) q += (img[j]! - mu[j]!) ** 2;
    count += img.length;
  }
  t.ok(Math.abs(Math.sqrt(q / count) - 1) < 0.05, 'residual std ~ noise');

  const accuracy = (separation: number): number => {
    const g = new SyntheticImages({ shape, classes: 5, seed: 78, separation });
    const means = Array.from({ length: 5 }, (_, c) => new SyntheticImages({ shape, classes: 5, seed: 78, separation: 1 }).classMean(c));
    const ds = syntheticDataset({ length: 500, shape, classes: 5, seed: 78, separation });
    let right = 0;
    for (let i = 0; i < ds.length; i++) {
      const x = ds.images.subarray(i * 128, (i + 1) * 128);
      let best = -1;
      let bestScore = Infinity;
      for (let c = 0; c < 5; c++) {
        let d = 0;
        for (let j = 0; j < 128; j++) d += (x[j]! - separation * means[c]![j]!) ** 2;
        if (d < bestScore) { bestScore = d; best = c; }
      }
      if (best === ds.labels[i]) right++;
    }
    t.equal(g.classes, 5);
    return right / ds.length;
  };
  const sep = accuracy(1);
  t.ok(sep > 0.9, `nearest class mean accuracy ${sep} with separation 1`);
  const noise = accuracy(0);
  t.ok(noise < 0.35, `accuracy ${noise} near chance (0.2) with separation 0`);
});

t.test('VGG-sized batch', async (t) => {
  const b = syntheticBatch({ batchSize: 2, shape: [3, 224, 224], classes: 1000, seed: 1 });
  t.same(b.input.shape, [2, 3, 224, 224]);
  t.equal(b.input.data.length, 2 * 3 * 224 * 224);
  t.equal(b.target.length, 2);
  t.ok(b.target.every((l) => l >= 0 && l < 1000));
});

t.test('bad options are named', async (t) => {
  t.throws(() => syntheticDataset({ length: 2, shape: [3, 0, 4], classes: 2, seed: 1 }), /synthetic image shape must be \[C, H, W\].*\[3, 0, 4\]/);
  t.throws(() => syntheticDataset({ length: 2, shape: [1, 2, 2], classes: 0, seed: 1 }), /synthetic classes must be a positive integer, got 0/);
  t.throws(() => syntheticDataset({ length: 2, shape: [1, 2, 2], classes: 2, seed: 1.5 }), /synthetic seed must be an integer, got 1.5/);
  t.throws(() => syntheticDataset({ length: -1, shape: [1, 2, 2], classes: 2, seed: 1 }), /synthetic length must be a non-negative integer, got -1/);
  t.throws(() => syntheticDataset({ length: 1, shape: [1, 2, 2], classes: 2, seed: 1, noise: -1 }), /noise must be finite and non-negative, got -1/);
  t.throws(() => new SyntheticImages({ shape: [1, 2, 2], classes: 2, seed: 1 }).sample(0, new Float32Array(3)), /out has 3 values/);
});
