// Fashion-MNIST loading: where the files are looked for (option, environment, Debian's
// directory), the errors for missing and corrupt files, and the real data set when Debian's
// dataset-fashion-mnist is installed, checked against the raw bytes read independently here
// with node:zlib (counts, every label, pixel scaling, and mean / std from exact integer sums).
import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { meanStd } from '../../engine/data/dataset.js';
import {
  DEBIAN_FASHION_MNIST_DIR,
  FASHION_MNIST_CLASSES,
  fashionMnistAvailable,
  fashionMnistDir,
  fashionMnistFiles,
  loadFashionMnist,
} from '../../engine/data/fashion-mnist.js';

const root = mkdtempSync(join(tmpdir(), 'squall-fmnist-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const savedEnv = process.env.SQUALL_FASHION_MNIST_DIR;
delete process.env.SQUALL_FASHION_MNIST_DIR;
t.teardown(() => {
  if (savedEnv === undefined) delete process.env.SQUALL_FASHION_MNIST_DIR;
  else process.env.SQUALL_FASHION_MNIST_DIR = savedEnv;
});

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error, none was thrown');
}

function be32(v: number): number[] {
  return [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
}

/** A fake split of n images of rows x cols with hand-assembled IDX bytes. */
function fakeSplit(dir: string, prefix: 'train' | 't10k', n: number, rows: number, cols: number, labels: number[], gz = true): Uint8Array {
  mkdirSync(dir, { recursive: true });
  const pixels = Uint8Array.from({ length: n * rows * cols }, (_, i) => (i * 13 + n) % 256);
  const img = Uint8Array.from([0, 0, 8, 3, ...be32(n), ...be32(rows), ...be32(cols), ...pixels]);
  const lab = Uint8Array.from([0, 0, 8, 1, ...be32(labels.length), ...labels]);
  const suffix = gz ? '.gz' : '';
  writeFileSync(join(dir, `${prefix}-images-idx3-ubyte${suffix}`), gz ? gzipSync(img) : img);
  writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte${suffix}`), gz ? gzipSync(lab) : lab);
  return pixels;
}

t.test('class names', async (t) => {
  t.equal(FASHION_MNIST_CLASSES.length, 10);
  t.equal(FASHION_MNIST_CLASSES[0], 'T-shirt/top');
  t.equal(FASHION_MNIST_CLASSES[9], 'Ankle boot');
  t.equal(new Set(FASHION_MNIST_CLASSES).size, 10);
});

t.test('directory: explicit option, then SQUALL_FASHION_MNIST_DIR, then Debian', async (t) => {
  t.equal(DEBIAN_FASHION_MNIST_DIR, '/usr/share/datasets/fashion-mnist');
  t.equal(fashionMnistDir(), DEBIAN_FASHION_MNIST_DIR);
  process.env.SQUALL_FASHION_MNIST_DIR = '/env/dir';
  t.teardown(() => void delete process.env.SQUALL_FASHION_MNIST_DIR);
  t.equal(fashionMnistDir(), '/env/dir');
  t.equal(fashionMnistDir('/opt/x'), '/opt/x');
  t.same(fashionMnistFiles('test', '/opt/x'), {
    images: '/opt/x/t10k-images-idx3-ubyte.gz',
    labels: '/opt/x/t10k-labels-idx1-ubyte.gz',
  });
  t.throws(() => fashionMnistFiles('valid' as 'train'), /'train' or 'test', got "valid"/);
});

t.test('a missing file names the path, the package and the variable', async (t) => {
  const empty = join(root, 'empty');
  mkdirSync(empty);
  t.notOk(fashionMnistAvailable('train', empty));
  const missing = errorOf(() => loadFashionMnist({ split: 'train', dir: empty }));
  t.match(missing.message, `Fashion-MNIST file not found: ${join(empty, 'train-images-idx3-ubyte.gz')}`);
  t.match(missing.message, /install Debian's dataset-fashion-mnist \(apt install dataset-fashion-mnist\) or set SQUALL_FASHION_MNIST_DIR/);
  // Images present, labels missing: the labels file is the one named.
  const half = join(root, 'half');
  fakeSplit(half, 't10k', 2, 3, 3, [1, 2]);
  rmSync(join(half, 't10k-labels-idx1-ubyte.gz'));
  const noLabels = errorOf(() => loadFashionMnist({ split: 'test', dir: half }));
  t.match(noLabels.message, `not found: ${join(half, 't10k-labels-idx1-ubyte.gz')}; install Debian's dataset-fashion-mnist`);
});

t.test('fake files through the option and the environment, gzipped or not', async (t) => {
  const a = join(root, 'a');
  const labels = [0, 9, 3, 3, 7];
  const pixels = fakeSplit(a, 'train', 5, 4, 6, labels);
  const ds = loadFashionMnist({ split: 'train', dir: a });
  t.same(ds.shape, [1, 4, 6]);
  t.equal(ds.length, 5);
  t.equal(ds.classes, 10);
  t.same(Array.from(ds.labels), labels);
  t.same(Array.from(ds.images), Array.from(pixels, (v) => Math.fround(v / 255)));

  const b = join(root, 'b');
  fakeSplit(b, 't10k', 3, 2, 2, [1, 1, 8], false);
  process.env.SQUALL_FASHION_MNIST_DIR = b;
  t.teardown(() => void delete process.env.SQUALL_FASHION_MNIST_DIR);
  t.ok(fashionMnistAvailable('test'));
  const test = loadFashionMnist({ split: 'test' });
  t.same(Array.from(test.labels), [1, 1, 8], 'env directory, uncompressed names');
  t.equal(loadFashionMnist({ split: 'train', dir: a }).length, 5, 'explicit dir beats the environment');
});

t.test('corrupt files name the file and the package', async (t) => {
  const c = join(root, 'c');
  fakeSplit(c, 'train', 4, 3, 3, [1, 2, 3, 4]);
  const p = join(c, 'train-images-idx3-ubyte.gz');
  const gz = readFileSync(p);
  writeFileSync(p, gz.subarray(0, gz.length - 3));
  const truncated = errorOf(() => loadFashionMnist({ split: 'train', dir: c }));
  t.match(truncated.message, `${p}: byte ${gz.length - 3}: gzip stream is truncated`);
  t.match(truncated.message, /apt install --reinstall dataset-fashion-mnist/);

  const d = join(root, 'd');
  fakeSplit(d, 'train', 4, 3, 3, [1, 2, 3]); // one label short
  t.throws(() => loadFashionMnist({ split: 'train', dir: d }), /holds 4 images, .*train-labels-idx1-ubyte.gz holds 3 labels/);

  const e = join(root, 'e');
  fakeSplit(e, 'train', 3, 3, 3, [1, 10, 3]);
  t.throws(() => loadFashionMnist({ split: 'train', dir: e }), /train-labels-idx1-ubyte.gz: byte 9 of the IDX data: label 1 is 10, Fashion-MNIST has 10 classes/);

  const f = join(root, 'f');
  fakeSplit(f, 'train', 2, 3, 3, [1, 2]);
  writeFileSync(join(f, 'train-labels-idx1-ubyte.gz'), gzipSync(Uint8Array.from([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 5])));
  t.throws(() => loadFashionMnist({ split: 'train', dir: f }), /train-labels-idx1-ubyte.gz: byte 3 of the decompressed data: IDX rank is 3.*expected 1.*dataset-fashion-mnist/);
});

const installed = fashionMnistAvailable('train', DEBIAN_FASHION_MNIST_DIR) && fashionMnistAvailable('test', DEBIAN_FASHION_MNIST_DIR);
const skip = installed ? false : `Debian's dataset-fashion-mnist is not installed (no files in ${DEBIAN_FASHION_MNIST_DIR})`;

for (const [split, prefix, n] of [['train', 'train', 60000], ['test', 't10k', 10000]] as const) {
  t.test(`the real ${split} split`, { skip }, async (t) => {
    const ds = loadFashionMnist({ split, dir: DEBIAN_FASHION_MNIST_DIR });
    t.equal(ds.length, n);
    t.same(ds.shape, [1, 28, 28]);
    t.equal(ds.classes, 10);
    t.equal(ds.images.length, n * 28 * 28);
    const counts = new Array<number>(10).fill(0);
    for (const l of ds.labels) counts[l]!++;
    t.same(counts, new Array<number>(10).fill(n / 10), `${n / 10} images per class`);

    // Independent reading of the same files.
    const rawLabels = gunzipSync(readFileSync(join(DEBIAN_FASHION_MNIST_DIR, `${prefix}-labels-idx1-ubyte.gz`)));
    t.same(Array.from(rawLabels.subarray(0, 8)), [0, 0, 8, 1, ...be32(n)], 'label header');
    t.ok(Buffer.from(Uint8Array.from(ds.labels)).equals(rawLabels.subarray(8)), 'every label equals the raw byte');
    const rawImages = gunzipSync(readFileSync(join(DEBIAN_FASHION_MNIST_DIR, `${prefix}-images-idx3-ubyte.gz`)));
    t.same(Array.from(rawImages.subarray(0, 16)), [0, 0, 8, 3, ...be32(n), 0, 0, 0, 28, 0, 0, 0, 28], 'image header');
    const px = new Uint8Array(rawImages.buffer, rawImages.byteOffset + 16, rawImages.length - 16);
    const scaled = Float32Array.from({ length: 256 }, (_, v) => v / 255);
    const hist = new Float64Array(256);
    let mismatches = 0;
    for (let i = 0; i < px.length; i++) {
      const v = px[i]!;
      hist[v]!++;
      if (ds.images[i] !== scaled[v]) mismatches++;
    }
    t.equal(mismatches, 0, 'every pixel equals fround(raw / 255)');
    // Exact integer sums from the histogram (far below 2^53).
    let s1 = 0;
    let s2 = 0;
    for (let v = 0; v < 256; v++) {
      s1 += hist[v]! * v;
      s2 += hist[v]! * v * v;
    }
    const count = px.length;
    const mean = s1 / count / 255;
    const std = Math.sqrt(s2 / count - (s1 / count) ** 2) / 255;
    const ms = meanStd(ds);
    t.ok(Math.abs(ms.mean[0]! - mean) < 1e-7, `mean ${ms.mean[0]} vs exact ${mean}`);
    t.ok(Math.abs(ms.std[0]! - std) < 1e-7, `std ${ms.std[0]} vs exact ${std}`);
    if (split === 'train') {
      // The values every Fashion-MNIST tutorial normalises with.
      t.ok(Math.abs(mean - 0.286) < 5e-4 && Math.abs(std - 0.353) < 5e-4, `train mean/std ${mean.toFixed(4)}/${std.toFixed(4)} ~ 0.2860/0.3530`);
    }
  });
}
