// Mini-batches of an in-memory Dataset for one epoch: the epoch's order (seeded shuffle or
// data set order) cut into consecutive runs of batchSize indices, each gathered into an
// NCHW tensor. A data-parallel worker takes a share of each such global batch (shard.ts),
// so both are defined through the same globalBatch() function.
import { Tensor } from '../tensor/tensor.js';
import { imageSize, type Dataset } from './dataset.js';
import { epochPermutation, identityOrder } from './shuffle.js';

export interface Batch {
  /** [b, C, H, W] images. */
  readonly input: Tensor;
  /** b labels. */
  readonly target: Int32Array;
  /** Data set index of each of the b images, in batch order. */
  readonly indices: Int32Array;
}

export interface EpochOptions {
  /**
   * Visit the data in a seeded random order (default: true when `seed` is given, else the
   * data set's order). Shuffling without a seed is an error, so no order is ever unrepeatable.
   */
  shuffle?: boolean;
  /** Seed of the shuffle; the same seed and epoch give the same order in every process. */
  seed?: number;
  /** Epoch number (default 0): each epoch has its own order under one seed. */
  epoch?: number;
  /**
   * An explicit order: a permutation of 0 .. length-1 visited as given, instead of the seeded
   * shuffle or the data set's order (e.g. to replay another framework's order exactly).
   */
  order?: Int32Array;
}

export interface BatchOptions extends EpochOptions {
  batchSize: number;
  /** Skip the last batch when it is smaller than batchSize (default false). */
  dropLast?: boolean;
  /**
   * Reuse one input buffer and one target buffer per batch size for the whole epoch
   * (default false: every batch gets fresh arrays). When true, a yielded batch is
   * overwritten when the next one is requested: copy what must outlive the step.
   */
  reuseBuffers?: boolean;
}

/** The order in which an epoch visits the indices 0 .. length-1. */
export function epochOrder(length: number, options: EpochOptions = {}): Int32Array {
  if (options.order !== undefined) return checkPermutation(options.order, length);
  const shuffle = options.shuffle ?? options.seed !== undefined;
  if (!shuffle) return identityOrder(length);
  if (options.seed === undefined) throw new RangeError('shuffle: true needs a seed (options.seed) so that the order can be reproduced');
  return epochPermutation(length, options.seed, options.epoch ?? 0);
}

/** `order` when it is a permutation of 0 .. length-1; a RangeError naming the first fault otherwise. */
export function checkPermutation(order: Int32Array, length: number): Int32Array {
  if (!(order instanceof Int32Array)) throw new TypeError('order must be an Int32Array');
  if (order.length !== length) throw new RangeError(`order has ${order.length} indices, the data set has ${length} samples`);
  const seen = new Uint8Array(length);
  for (let k = 0; k < length; k++) {
    const i = order[k]!;
    if (i < 0 || i >= length) throw new RangeError(`order[${k}] is ${i}, outside the data set's [0, ${length})`);
    if (seen[i]) throw new RangeError(`order[${k}] repeats index ${i}: the order must be a permutation`);
    seen[i] = 1;
  }
  return order;
}

/** Number of batches in an epoch of `length` images. */
export function batchCount(length: number, batchSize: number, dropLast = false): number {
  checkBatchSize(batchSize);
  return dropLast ? Math.floor(length / batchSize) : Math.ceil(length / batchSize);
}

/**
 * Indices of global batch k of an epoch whose order is `order` (a view into `order`, not a
 * copy). The last batch is shorter when batchSize does not divide the length.
 */
export function globalBatch(order: Int32Array, batchSize: number, k: number): Int32Array {
  checkBatchSize(batchSize);
  const count = Math.ceil(order.length / batchSize);
  if (!Number.isInteger(k) || k < 0 || k >= count) throw new RangeError(`batch ${k} out of range: the epoch has ${count} batches of up to ${batchSize}`);
  return order.subarray(k * batchSize, Math.min(order.length, (k + 1) * batchSize));
}

/**
 * Gathers the images and labels at `indices` into a Batch. `out` (input values, then
 * targets) is written instead of allocating when given; it must have the exact sizes.
 */
export function gatherBatch(ds: Dataset, indices: Int32Array, out?: { input: Float32Array; target: Int32Array }): Batch {
  const per = imageSize(ds.shape);
  const b = indices.length;
  const input = out?.input ?? new Float32Array(b * per);
  const target = out?.target ?? new Int32Array(b);
  if (input.length !== b * per || target.length !== b) {
    throw new RangeError(`gatherBatch: buffers hold ${input.length} values and ${target.length} targets, a batch of ${b} needs ${b * per} and ${b}`);
  }
  for (let k = 0; k < b; k++) {
    const i = indices[k]!;
    if (i < 0 || i >= ds.length) throw new RangeError(`gatherBatch: index ${k} is ${i}, outside the data set's [0, ${ds.length})`);
    input.set(ds.images.subarray(i * per, (i + 1) * per), k * per);
    target[k] = ds.labels[i]!;
  }
  return { input: new Tensor([b, ...ds.shape], input), target, indices };
}

/** The mini-batches of one epoch, in order. */
export function* batches(ds: Dataset, options: BatchOptions): Generator<Batch, void, undefined> {
  checkBatchSize(options.batchSize);
  const order = epochOrder(ds.length, options);
  const n = batchCount(ds.length, options.batchSize, options.dropLast ?? false);
  const buffers = options.reuseBuffers ? new BufferCache(imageSize(ds.shape)) : undefined;
  for (let k = 0; k < n; k++) {
    const indices = globalBatch(order, options.batchSize, k);
    yield gatherBatch(ds, indices, buffers?.get(indices.length));
  }
}

/** One input and one target buffer per batch size, for reuseBuffers. */
export class BufferCache {
  private readonly byBatch = new Map<number, { input: Float32Array; target: Int32Array }>();
  constructor(private readonly imageSize: number) {}
  get(batchSize: number): { input: Float32Array; target: Int32Array } {
    let b = this.byBatch.get(batchSize);
    if (!b) {
      b = { input: new Float32Array(batchSize * this.imageSize), target: new Int32Array(batchSize) };
      this.byBatch.set(batchSize, b);
    }
    return b;
  }
}

export function checkBatchSize(batchSize: number): void {
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
}
