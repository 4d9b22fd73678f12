// How a job combines the workers' gradients: the three modes of issue 5, behind one
// worker-side interface so the replica and the worker loop do not care which runs.
//
//   allreduce  BigDL's parameter manager (parameter-manager.ts): peer to peer, every worker
//              owns a slice, reduce-scatter + owner update + all-gather. The default.
//   driver     Spark's reduce: every worker sends its whole gradient to the driver, which
//              sums in rank order, updates the whole vector (its optimiser holds all the
//              state) and sends the whole new weight vector back to every worker.
//   tree       Spark's treeAggregate: workers form a binary tree (rank r's children are
//              2r+1 and 2r+2); each adds its children's partial sums to its own gradient
//              and passes one partial sum up; rank 0 sends the total to the driver, which
//              updates and sends the weights to every worker.
// driver and tree exist to show what the peer-to-peer all-reduce saves (bench/cluster):
// the driver's link carries N gradients (driver) or one (tree) and N weight vectors per
// iteration, however large the cluster.
import type { Optimizer } from '../optim/optimizer.js';
import type { FinishOptions, IterationReport } from './parameter-manager.js';
import type { SliceRange } from './slices.js';

export type AggregationMode = 'allreduce' | 'driver' | 'tree';
export const aggregationModes: readonly AggregationMode[] = ['allreduce', 'driver', 'tree'];

export function isAggregationMode(v: unknown): v is AggregationMode {
  return typeof v === 'string' && (aggregationModes as readonly string[]).includes(v);
}

/** The driver takes part in every iteration (it holds the optimiser) in these modes. */
export function isCentralMode(mode: AggregationMode): mode is 'driver' | 'tree' {
  return mode !== 'allreduce';
}

/** What a worker's replica needs of the gradient exchange, whatever the mode. */
export interface Aggregator {
  readonly rank: number;
  /** P: length of the flat vectors. */
  readonly length: number;
  /** The slice this worker owns and updates (empty in driver and tree modes: the driver owns everything). */
  readonly owned: SliceRange;
  /** The optimiser of the owned slice (of length 0 when the worker owns nothing). */
  readonly optimizer: Optimizer;
  begin(iteration: number): void;
  /** g[offset, offset + length) is final (a layer's backward is done). */
  gradientsReady(offset: number, length: number): void;
  /** Exchanges gradients and weights; rejects with IterationAbortedError (no weight changed anywhere) on a NaN/Inf or a veto. */
  finish(options: FinishOptions): Promise<IterationReport>;
  /** The float32 master weights of the owned slice. */
  masterSlice(): Float32Array;
  dispose(): void;
}

/** Tree mode: the children of worker r among n workers (in rank order). */
export function treeChildren(rank: number, workers: number): number[] {
  return [2 * rank + 1, 2 * rank + 2].filter((c) => c < workers);
}

/** Tree mode: where worker r sends its partial sum (-1: to the driver). */
export function treeParent(rank: number): number {
  return rank === 0 ? -1 : (rank - 1) >> 1;
}

/**
 * Control-frame slices of the central modes (below the parameter manager's status slices
 * at 0x8000_0000, above the driver protocol's at 0x4000_0000): a status travels up with
 * every gradient, the driver's verdict down before the weights.
 */
export const CENTRAL_STATUS_UP = 0x6000_0001;
export const CENTRAL_VERDICT = 0x6000_0002;
