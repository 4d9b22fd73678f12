// Dividing data among N workers, two ways:
//  - a data set into contiguous near-equal shards (BigDL-style partitions: each worker
//    holds and reads only its own part);
//  - each global batch of B images into per-worker shares proportional to weights (e.g.
//    measured throughput, so a slower worker gets fewer images). The shares are consecutive
//    runs of the global batch in rank order, so concatenating every worker's share of global
//    batch k gives exactly the batch a single process sees with the same seed and epoch:
//    synchronous data-parallel SGD then computes the same gradient as one process would.
import { batchCount, BufferCache, checkBatchSize, epochOrder, gatherBatch, globalBatch, type Batch, type EpochOptions } from './batches.js';
import { imageSize, sliceDataset, type Dataset } from './dataset.js';

export interface Range {
  /** First index (inclusive). */
  readonly start: number;
  /** End index (exclusive). */
  readonly end: number;
}

/**
 * Rank's contiguous part of [0, length): sizes differ by at most one, the first
 * (length mod worldSize) ranks taking the larger size; the ranges tile [0, length) in rank order.
 */
export function shardRange(length: number, rank: number, worldSize: number): Range {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`shardRange: length must be a non-negative integer, got ${length}`);
  checkRank(rank, worldSize);
  const q = Math.floor(length / worldSize);
  const r = length % worldSize;
  const start = rank * q + Math.min(rank, r);
  return { start, end: start + q + (rank < r ? 1 : 0) };
}

/** Rank's shard of `ds` (shardRange) as a Dataset sharing storage with `ds`. */
export function shardDataset(ds: Dataset, rank: number, worldSize: number): Dataset {
  const { start, end } = shardRange(ds.length, rank, worldSize);
  return sliceDataset(ds, start, end);
}

/**
 * Splits a global batch of `batchSize` images over workers in proportion to `weights`
 * (one per rank, any positive scale) with the largest-remainder method: each worker gets
 * the floor of its exact quota, and the images left over go one each to the largest
 * fractional remainders (ties to the lower rank). The counts are non-negative integers
 * summing exactly to batchSize; a worker of weight 0 gets 0. A negative, NaN or infinite
 * weight, or all weights zero, is an error.
 */
export function splitBatch(batchSize: number, weights: readonly number[]): number[] {
  if (!Number.isSafeInteger(batchSize) || batchSize < 0) throw new RangeError(`splitBatch: batch size must be a non-negative integer, got ${batchSize}`);
  if (weights.length === 0) throw new RangeError('splitBatch: weights is empty (need one weight per worker)');
  let max = 0;
  for (const [i, w] of weights.entries()) {
    if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) throw new RangeError(`splitBatch: weight of rank ${i} is ${w}, must be finite and non-negative`);
    max = Math.max(max, w);
  }
  if (max === 0) throw new RangeError(`splitBatch: all ${weights.length} weights are zero; at least one worker must take images`);
  // Dividing by the largest weight first keeps the total finite for weights near MAX_VALUE.
  let total = 0;
  for (const w of weights) total += w / max;
  const counts: number[] = [];
  const remainders: number[] = [];
  let assigned = 0;
  for (const w of weights) {
    const quota = (batchSize * (w / max)) / total;
    const c = Math.min(batchSize, Math.floor(quota));
    counts.push(c);
    remainders.push(quota - c);
    assigned += c;
  }
  // Largest remainders first; only workers with a positive weight may receive extra images.
  const byRemainder = weights
    .map((_, i) => i)
    .filter((i) => weights[i]! > 0)
    .sort((a, b) => remainders[b]! - remainders[a]! || a - b);
  // In exact arithmetic the leftover is below the number of positive weights; rounding of
  // the quotas can move it by one either way, so both directions are corrected.
  for (let k = 0; assigned < batchSize; k = (k + 1) % byRemainder.length) {
    counts[byRemainder[k]!]!++;
    assigned++;
  }
  for (let k = byRemainder.length - 1; assigned > batchSize; k = (k - 1 + byRemainder.length) % byRemainder.length) {
    const i = byRemainder[k]!;
    if (counts[i]! > 0) {
      counts[i]!--;
      assigned--;
    }
  }
  return counts;
}

/** Rank's run [start, end) of a global batch split into `counts` (prefix sums). */
export function shareRange(counts: readonly number[], rank: number): Range {
  checkRank(rank, counts.length);
  let start = 0;
  for (let i = 0; i < rank; i++) start += counts[i]!;
  return { start, end: start + counts[rank]! };
}

export interface WorkerBatchOptions extends EpochOptions {
  /** Global batch size B: the number of images all workers together process per step. */
  batchSize: number;
  rank: number;
  /** Relative speeds, one per worker; world size = weights.length. Default: equal. */
  weights?: readonly number[];
  /** Number of workers when weights are not given. */
  worldSize?: number;
  /** Skip the last global batch when it is smaller than batchSize (default false). */
  dropLast?: boolean;
  /** As in BatchOptions: reuse one buffer per share size; a batch is overwritten by the next. */
  reuseBuffers?: boolean;
}

/**
 * Rank's share of every global batch of one epoch. Every worker yields the same number of
 * batches (one per global batch, in order), even when its share of one is empty (a
 * [0, C, H, W] input), so that synchronous workers stay in step.
 */
export function* workerBatches(ds: Dataset, options: WorkerBatchOptions): Generator<Batch, void, undefined> {
  checkBatchSize(options.batchSize);
  const weights = options.weights ?? equalWeights(options.worldSize);
  if (options.weights !== undefined && options.worldSize !== undefined && options.worldSize !== options.weights.length) {
    throw new RangeError(`workerBatches: worldSize ${options.worldSize} but ${options.weights.length} weights`);
  }
  checkRank(options.rank, weights.length);
  const order = epochOrder(ds.length, options);
  const n = batchCount(ds.length, options.batchSize, options.dropLast ?? false);
  const buffers = options.reuseBuffers ? new BufferCache(imageSize(ds.shape)) : undefined;
  // Only two global batch sizes occur (full and last); their splits are computed once.
  const splits = new Map<number, number[]>();
  for (let k = 0; k < n; k++) {
    const global = globalBatch(order, options.batchSize, k);
    let counts = splits.get(global.length);
    if (!counts) {
      counts = splitBatch(global.length, weights);
      splits.set(global.length, counts);
    }
    const { start, end } = shareRange(counts, options.rank);
    const share = global.subarray(start, end);
    yield gatherBatch(ds, share, buffers?.get(share.length));
  }
}

function equalWeights(worldSize: number | undefined): number[] {
  if (worldSize === undefined) throw new RangeError('workerBatches: give weights (one per worker) or worldSize');
  if (!Number.isSafeInteger(worldSize) || worldSize < 1) throw new RangeError(`worldSize must be a positive integer, got ${worldSize}`);
  return new Array<number>(worldSize).fill(1);
}

function checkRank(rank: number, worldSize: number): void {
  if (!Number.isSafeInteger(worldSize) || worldSize < 1) throw new RangeError(`worldSize must be a positive integer, got ${worldSize}`);
  if (!Number.isSafeInteger(rank) || rank < 0 || rank >= worldSize) throw new RangeError(`rank must be an integer in [0, ${worldSize}), got ${rank}`);
}
