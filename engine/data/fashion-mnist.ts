// Fashion-MNIST from Debian's dataset-fashion-mnist package, which installs the four
// gzipped IDX files of the upstream release in /usr/share/datasets/fashion-mnist (checked
// with `dpkg -L dataset-fashion-mnist`). The data is never downloaded: machines without the
// package get an error that says how to install it or where else to look.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createDataset, scaleUint8, type Dataset } from './dataset.js';
import { IdxFormatError, readIdxFile } from './idx.js';

/** Where dataset-fashion-mnist installs the files. */
export const DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Environment variable naming another directory holding the same four files. */
export const FASHION_MNIST_DIR_ENV = 'SQUALL_FASHION_MNIST_DIR';

/** Class names, indexed by label (upstream's order). */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
]);

export type FashionMnistSplit = 'train' | 'test';

const HINT = `install Debian's dataset-fashion-mnist (apt install dataset-fashion-mnist) or set ${FASHION_MNIST_DIR_ENV} to a directory holding the Fashion-MNIST IDX files`;

const BASENAMES: Record<FashionMnistSplit, { images: string; labels: string }> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
};

/** The directory used: the explicit `dir`, else $SQUALL_FASHION_MNIST_DIR, else Debian's. */
export function fashionMnistDir(dir?: string): string {
  if (dir !== undefined && dir !== '') return dir;
  const env = process.env[FASHION_MNIST_DIR_ENV];
  if (env !== undefined && env !== '') return env;
  return DEBIAN_FASHION_MNIST_DIR;
}

/**
 * Paths of a split's image and label files in `fashionMnistDir(dir)`: the gzipped name
 * (as Debian and upstream ship them) or, when only that is missing, the uncompressed name.
 * A file found under neither name is returned under its .gz name, for the error to name.
 */
export function fashionMnistFiles(split: FashionMnistSplit, dir?: string): { images: string; labels: string } {
  const names = BASENAMES[split];
  if (names === undefined) throw new RangeError(`Fashion-MNIST split must be 'train' or 'test', got ${JSON.stringify(split)}`);
  const root = fashionMnistDir(dir);
  const pick = (base: string): string => {
    const gz = join(root, `${base}.gz`);
    if (existsSync(gz)) return gz;
    const raw = join(root, base);
    return existsSync(raw) ? raw : gz;
  };
  return { images: pick(names.images), labels: pick(names.labels) };
}

/** True when both files of `split` exist (for tests and tools that can do without). */
export function fashionMnistAvailable(split: FashionMnistSplit = 'train', dir?: string): boolean {
  const f = fashionMnistFiles(split, dir);
  return existsSync(f.images) && existsSync(f.labels);
}

export interface FashionMnistOptions {
  split: FashionMnistSplit;
  /** Directory holding the files; overrides $SQUALL_FASHION_MNIST_DIR and Debian's. */
  dir?: string;
}

/**
 * Loads one split as a Dataset of shape [1, 28, 28], pixels scaled to [0, 1] (not
 * normalised: see meanStd and normalise), 10 classes. Errors name the file and how to get it.
 */
export function loadFashionMnist(options: FashionMnistOptions): Dataset {
  const files = fashionMnistFiles(options.split, options.dir);
  const images = readOne(files.images, 3);
  const labels = readOne(files.labels, 1);
  const [n, rows, cols] = images.dims as [number, number, number];
  if (labels.dims[0] !== n) {
    throw new Error(`Fashion-MNIST ${options.split} files disagree: ${files.images} holds ${n} images, ${files.labels} holds ${labels.dims[0]} labels (${HINT})`);
  }
  const classes = FASHION_MNIST_CLASSES.length;
  for (let i = 0; i < labels.data.length; i++) {
    if (labels.data[i]! >= classes) {
      // IDX label files have an 8-byte header (magic + one dimension).
      throw new Error(`${files.labels}: byte ${8 + i} of the IDX data: label ${i} is ${labels.data[i]}, Fashion-MNIST has ${classes} classes (file corrupt? reinstall dataset-fashion-mnist or check ${FASHION_MNIST_DIR_ENV})`);
    }
  }
  return createDataset(scaleUint8(images.data), Int32Array.from(labels.data), [1, rows, cols], classes);
}

function readOne(path: string, rank: number): ReturnType<typeof readIdxFile> {
  if (!existsSync(path)) {
    throw new Error(`Fashion-MNIST file not found: ${path}; ${HINT}`);
  }
  try {
    return readIdxFile(path, { rank });
  } catch (err) {
    if (err instanceof IdxFormatError) {
      throw new Error(`${err.message} (corrupt Fashion-MNIST file: reinstall Debian's dataset-fashion-mnist with apt install --reinstall dataset-fashion-mnist, or set ${FASHION_MNIST_DIR_ENV} to a directory with intact files)`, { cause: err });
    }
    throw new Error(`cannot read Fashion-MNIST file ${path}: ${(err as Error).message}; ${HINT}`, { cause: err });
  }
}
