// Synthetic image classification data of any shape, for benchmarks (VGG-16 at 224x224,
// Inception-v1) and tests that must not depend on a data set being installed.
//
// Sample i is a pure function of (seed, i): its own Random stream draws its label, then its
// pixels. So a worker can generate just its shard (options.first) and get exactly the
// images a single process generating everything would have at those indices, and the data
// does not change when the number of samples or workers does.
//
// image = separation * mean[label] + noise * N(0, 1) per value. mean[c] is a per-class
// pattern of N(0, 1) values on a coarse grid (up to 4 x 4 per channel) stretched over the
// image, so classes differ in large smooth regions that both a linear model and a small
// convnet can pick up; a full-resolution pattern per class would cost classes x C x H x W
// values (150 million for 1000 classes at 224x224). separation 0 (the default) gives pure
// noise with random labels, which is all a throughput benchmark needs.
import { Random } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import type { Batch } from './batches.js';
import { checkImageShape, imageSize, type Dataset, type ImageShape } from './dataset.js';
import { checkSeed, deriveSeed } from './seed.js';
import { randomBelow } from './shuffle.js';

export interface SyntheticOptions {
  /** [C, H, W] of each image. */
  shape: ImageShape;
  classes: number;
  seed: number;
  /** Scale of the class-dependent mean pattern (default 0: labels carry no signal). */
  separation?: number;
  /** Standard deviation of the per-value noise (default 1). */
  noise?: number;
}

// Separate key spaces for per-class patterns and per-sample streams under one seed.
const PATTERN_KEY = 0x70617474;
const SAMPLE_KEY = 0x73616d70;
const GRID = 4;

/** Generates samples [first, first + length) of the stream defined by `options`. */
export class SyntheticImages {
  readonly shape: ImageShape;
  readonly classes: number;
  private readonly seed: number;
  private readonly separation: number;
  private readonly noise: number;
  private readonly gridH: number;
  private readonly gridW: number;
  /** classes x C x gridH x gridW mean values; empty when separation is 0. */
  private readonly patterns: Float64Array;

  constructor(options: SyntheticOptions) {
    checkImageShape(options.shape, 'synthetic image shape');
    if (!Number.isSafeInteger(options.classes) || options.classes < 1 || options.classes > 4294967296) {
      throw new RangeError(`synthetic classes must be a positive integer, got ${options.classes}`);
    }
    checkSeed(options.seed, 'synthetic seed');
    const separation = options.separation ?? 0;
    const noise = options.noise ?? 1;
    if (!Number.isFinite(separation)) throw new RangeError(`synthetic separation must be finite, got ${separation}`);
    if (!(Number.isFinite(noise) && noise >= 0)) throw new RangeError(`synthetic noise must be finite and non-negative, got ${noise}`);
    this.shape = Object.freeze([...options.shape]) as unknown as ImageShape;
    this.classes = options.classes;
    this.seed = options.seed;
    this.separation = separation;
    this.noise = noise;
    const [c, h, w] = options.shape;
    this.gridH = Math.min(GRID, h);
    this.gridW = Math.min(GRID, w);
    const cell = c * this.gridH * this.gridW;
    this.patterns = new Float64Array(separation === 0 ? 0 : options.classes * cell);
    for (let k = 0; k < this.patterns.length / cell; k++) {
      const rng = new Random(deriveSeed(options.seed, PATTERN_KEY, k));
      for (let j = 0; j < cell; j++) this.patterns[k * cell + j] = rng.normal();
    }
  }

  /** Writes sample `index`'s image into `out` (length C*H*W) and returns its label. */
  sample(index: number, out: Float32Array): number {
    const [c, h, w] = this.shape;
    if (out.length !== c * h * w) throw new RangeError(`synthetic sample: out has ${out.length} values, an image of [${this.shape.join(', ')}] has ${c * h * w}`);
    if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`synthetic sample index must be a non-negative integer, got ${index}`);
    const rng = new Random(deriveSeed(this.seed, SAMPLE_KEY, index));
    const label = randomBelow(rng, this.classes);
    const noise = this.noise;
    if (this.separation === 0) {
      for (let i = 0; i < out.length; i++) out[i] = noise * rng.normal();
      return label;
    }
    const gh = this.gridH;
    const gw = this.gridW;
    const base = label * c * gh * gw;
    let i = 0;
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < h; y++) {
        const row = base + (ch * gh + Math.floor((y * gh) / h)) * gw;
        for (let x = 0; x < w; x++) {
          out[i++] = this.separation * this.patterns[row + Math.floor((x * gw) / w)]! + noise * rng.normal();
        }
      }
    }
    return label;
  }

  /** The class-mean pattern of `label` expanded to a full [C, H, W] image (for tests and plots). */
  classMean(label: number): Float32Array {
    const [c, h, w] = this.shape;
    if (!Number.isInteger(label) || label < 0 || label >= this.classes) throw new RangeError(`label ${label} outside [0, ${this.classes})`);
    const out = new Float32Array(c * h * w);
    if (this.separation === 0) return out;
    const gh = this.gridH;
    const gw = this.gridW;
    let i = 0;
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          out[i++] = this.separation * this.patterns[label * c * gh * gw + (ch * gh + Math.floor((y * gh) / h)) * gw + Math.floor((x * gw) / w)]!;
        }
      }
    }
    return out;
  }

  /** Samples [first, first + length) into `images` and `labels`. */
  fill(first: number, images: Float32Array, labels: Int32Array): void {
    const per = imageSize(this.shape);
    if (images.length !== labels.length * per) throw new RangeError(`synthetic fill: ${images.length} values for ${labels.length} images of ${per}`);
    for (let k = 0; k < labels.length; k++) labels[k] = this.sample(first + k, images.subarray(k * per, (k + 1) * per));
  }
}

/** An in-memory Dataset of samples [first, first + length) (first defaults to 0). */
export function syntheticDataset(options: SyntheticOptions & { length: number; first?: number }): Dataset {
  const { length, first = 0 } = options;
  checkCount(length, 'synthetic length');
  checkCount(first, 'synthetic first');
  const gen = new SyntheticImages(options);
  const images = new Float32Array(length * imageSize(gen.shape));
  const labels = new Int32Array(length);
  gen.fill(first, images, labels);
  return { images, labels, shape: gen.shape, classes: gen.classes, length };
}

/**
 * One batch [batchSize, C, H, W] of samples [first, first + batchSize), as the benchmarks
 * feed a model without real data. `indices` are the sample numbers.
 */
export function syntheticBatch(options: SyntheticOptions & { batchSize: number; first?: number }): Batch {
  const ds = syntheticDataset({ ...options, length: options.batchSize });
  const first = options.first ?? 0;
  const indices = new Int32Array(options.batchSize);
  for (let k = 0; k < indices.length; k++) indices[k] = first + k;
  return { input: new Tensor([options.batchSize, ...ds.shape], ds.images), target: ds.labels, indices };
}

function checkCount(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what} must be a non-negative integer, got ${v}`);
}
