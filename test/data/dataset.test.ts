// The in-memory Dataset: validation, uint8 scaling, slicing and gathering, per-channel mean
// and std (against values worked out by hand and a case where float32 accumulation would
// be visibly wrong) and in-place normalisation against the formula evaluated here.
import t from 'tap';
import {
  cloneDataset,
  createDataset,
  fromUint8,
  gatherDataset,
  meanStd,
  normalise,
  scaleUint8,
  sliceDataset,
} from '../../engine/data/dataset.js';

t.test('createDataset checks sizes, shapes and labels', async (t) => {
  const ds = createDataset(new Float32Array(2 * 3 * 2 * 2), Int32Array.from([0, 4]), [3, 2, 2], 5);
  t.equal(ds.length, 2);
  t.same(ds.shape, [3, 2, 2]);
  t.ok(Object.isFrozen(ds.shape));
  t.throws(() => createDataset(new Float32Array(23), Int32Array.from([0, 1]), [3, 2, 2], 5), /23 values, but 2 labels of shape \[3, 2, 2\] need 24/);
  t.throws(() => createDataset(new Float32Array(24), Int32Array.from([0, 5]), [3, 2, 2], 5), /label 1 is 5, outside \[0, 5\)/);
  t.throws(() => createDataset(new Float32Array(24), Int32Array.from([-1, 0]), [3, 2, 2], 5), /label 0 is -1/);
  t.throws(() => createDataset(new Float32Array(0), new Int32Array(0), [3, 0, 2], 5), /\[C, H, W\] with positive integers, got \[3, 0, 2\]/);
  t.throws(() => createDataset(new Float32Array(0), new Int32Array(0), [1, 1, 1], 0), /classes must be a positive integer, got 0/);
});

t.test('scaleUint8 maps v to fround(v / 255)', async (t) => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const f = scaleUint8(all);
  let bad = 0;
  for (let v = 0; v < 256; v++) if (f[v] !== Math.fround(v / 255)) bad++;
  t.equal(bad, 0);
  t.equal(f[0], 0);
  t.equal(f[255], 1);
  const out = new Float32Array(3);
  t.equal(scaleUint8(Uint8Array.from([0, 51, 255]), out), out, 'writes into out');
  t.throws(() => scaleUint8(all, new Float32Array(3)), /out has 3 elements, pixels have 256/);
  const ds = fromUint8(Uint8Array.from([0, 255, 51, 102]), [1, 0], [1, 1, 2], 2);
  t.same(Array.from(ds.images), [0, 1, Math.fround(0.2), Math.fround(0.4)]);
  t.same(Array.from(ds.labels), [1, 0]);
});

t.test('slice shares storage, gather and clone copy', async (t) => {
  const images = Float32Array.from({ length: 5 * 2 }, (_, i) => i);
  const ds = createDataset(images, Int32Array.from([0, 1, 2, 0, 1]), [2, 1, 1], 3);
  const s = sliceDataset(ds, 1, 4);
  t.equal(s.length, 3);
  t.same(Array.from(s.images), [2, 3, 4, 5, 6, 7]);
  t.same(Array.from(s.labels), [1, 2, 0]);
  s.images[0] = -1;
  t.equal(ds.images[2], -1, 'a slice is a view');
  t.throws(() => sliceDataset(ds, 3, 6), /sliceDataset\(3, 6\) out of range for a data set of 5 images/);
  const g = gatherDataset(ds, [4, 0, 4]);
  t.same(Array.from(g.images), [8, 9, 0, 1, 8, 9]);
  t.same(Array.from(g.labels), [1, 0, 1]);
  g.images[0] = 100;
  t.equal(ds.images[8], 8, 'a gather is a copy');
  t.throws(() => gatherDataset(ds, [0, 5]), /index 1 is 5, outside the data set's \[0, 5\)/);
  const c = cloneDataset(ds);
  c.images[1] = 42;
  t.equal(ds.images[1], 1, 'a clone is a copy');
});

t.test('meanStd per channel, in float64', async (t) => {
  // 2 images, 2 channels of 2 x 1: channel 0 holds 1, 2, 3, 4; channel 1 is constant 7.
  const ds = createDataset(Float32Array.from([1, 2, 7, 7, 3, 4, 7, 7]), Int32Array.from([0, 0]), [2, 2, 1], 1);
  const ms = meanStd(ds);
  t.same(ms.mean, [2.5, 7]);
  t.equal(ms.std[0], Math.sqrt(1.25), 'population std of 1..4');
  t.equal(ms.std[1], 0);

  // 10^6 values 10000 +- 0.5 (exact in float32): mean 10000, std 0.5. A float32 running
  // sum would stall at 2^24 * ulp and be off by percent.
  const n = 1_000_000;
  const big = new Float32Array(n);
  for (let i = 0; i < n; i++) big[i] = i % 2 === 0 ? 10000.5 : 9999.5;
  const r = meanStd(createDataset(big, new Int32Array(n), [1, 1, 1], 1));
  t.ok(Math.abs(r.mean[0]! - 10000) < 1e-9, `mean ${r.mean[0]}`);
  t.ok(Math.abs(r.std[0]! - 0.5) < 1e-9, `std ${r.std[0]}`);
  t.throws(() => meanStd(createDataset(new Float32Array(0), new Int32Array(0), [1, 2, 2], 1)), /empty/);
});

t.test('normalise works in place, per channel', async (t) => {
  const values = [0.1, 0.9, 0.3, -2, 5, 1.5, 0.7, 0.2, 8, 3, 2, 1];
  // 2 images of 2 channels x 3 values.
  const ds = createDataset(Float32Array.from(values), Int32Array.from([0, 1]), [2, 3, 1], 2);
  const mean = [0.5, 2];
  const std = [0.25, 4];
  const out = normalise(ds, mean, std);
  t.equal(out, ds, 'returns the same data set');
  const expected = values.map((v, i) => {
    const ch = Math.floor(i / 3) % 2;
    return Math.fround((Math.fround(v) - mean[ch]!) / std[ch]!);
  });
  t.same(Array.from(ds.images), expected);

  const one = createDataset(Float32Array.from([1, 3]), Int32Array.from([0]), [1, 2, 1], 1);
  normalise(one, 2, 1);
  t.same(Array.from(one.images), [-1, 1], 'a scalar mean and std apply to every channel');

  const again = createDataset(Float32Array.from(values), Int32Array.from([0, 1]), [2, 3, 1], 2);
  const ms = meanStd(again);
  normalise(again, ms.mean, ms.std);
  const after = meanStd(again);
  for (let ch = 0; ch < 2; ch++) {
    t.ok(Math.abs(after.mean[ch]!) < 1e-6 && Math.abs(after.std[ch]! - 1) < 1e-6, `channel ${ch} ~ N(0, 1) after normalising with its own statistics`);
  }
  t.throws(() => normalise(again, [0, 0], [1, 0]), /std of channel 1 is 0, must be positive and finite/);
  t.throws(() => normalise(again, [0, NaN], 1), /mean of channel 1 is NaN/);
  t.throws(() => normalise(again, [0, 0, 0], 1), /mean has 3 values, the images have 2 channels/);
});
