// A worker's side of the driver and tree aggregation modes (aggregation.ts): it owns no
// slice and keeps no optimiser state; per iteration it sends a status and its gradient (in
// tree mode: its gradient plus its children's partial sums, added in the order own, then
// children by rank) up, then waits for the driver's verdict and, when the iteration stands,
// the whole new weight vector.
//
// The same no-partial-update rule as the all-reduce holds: the driver decides from every
// status and the reduced gradient before it updates anything, and a rejected iteration
// changes nothing anywhere (IterationAbortedError on every worker).
import type { Backend } from '../backends/backend.js';
import type { Optimizer } from '../optim/optimizer.js';
import { FrameKind, type Transport } from '../../transport/transport.js';
import { CENTRAL_STATUS_UP, CENTRAL_VERDICT, treeChildren, treeParent, type Aggregator } from './aggregation.js';
import { receiveStatuses, receiveVector, sendStatuses, sendVector, type VectorCodec } from './central-wire.js';
import { IterationAbortedError, type FinishOptions, type IterationReport, type IterationStatus } from './parameter-manager.js';
import { sliceChunks, type SliceRange } from './slices.js';
import type { WireFormat } from './wire-codec.js';

export interface CentralAggregatorOptions {
  mode: 'driver' | 'tree';
  /** The job's whole mesh: workers 0..N-1 and the driver, rank N. */
  transport: Transport;
  backend: Backend;
  values: Float32Array;
  grads: Float32Array;
  /** A zero-length optimiser of the job's kind (the driver runs the real one); kept for the worker's snapshot and hyper-parameter plumbing. */
  optimizer: Optimizer;
  gradientWire: WireFormat;
  weightWire: WireFormat;
  chunkElements: number;
}

export class CentralAggregator implements Aggregator {
  readonly rank: number;
  readonly length: number;
  readonly owned: SliceRange;
  readonly optimizer: Optimizer;
  private readonly t: Transport;
  private readonly driver: number;
  private readonly children: number[];
  private readonly parent: number;
  private readonly up: VectorCodec;
  private readonly down: VectorCodec;
  /** Tree mode: the children's partial sums, then the sum sent up. */
  private readonly partials: Float32Array[];
  private readonly sum: Float32Array | null;
  private iteration = -1;
  private disposed = false;

  constructor(private readonly o: CentralAggregatorOptions) {
    this.t = o.transport;
    this.rank = this.t.rank;
    this.driver = this.t.worldSize - 1;
    const workers = this.driver;
    if (this.rank >= workers) throw new RangeError(`CentralAggregator: rank ${this.rank} is the driver's rank`);
    if (o.values.length !== o.grads.length) throw new RangeError(`CentralAggregator: values (${o.values.length}) and grads (${o.grads.length}) differ in length`);
    if (o.optimizer.sliceLength !== 0) throw new RangeError(`CentralAggregator: in ${o.mode} mode the driver updates the weights; the worker's optimiser must have length 0`);
    this.length = o.values.length;
    this.owned = { index: this.rank, start: 0, end: 0, length: 0 };
    this.optimizer = o.optimizer;
    this.children = o.mode === 'tree' ? treeChildren(this.rank, workers) : [];
    this.parent = o.mode === 'tree' ? treeParent(this.rank) : -1;
    const chunks = sliceChunks({ start: 0, end: this.length }, o.chunkElements);
    this.up = { backend: o.backend, wire: o.gradientWire, chunks };
    this.down = { backend: o.backend, wire: o.weightWire, chunks };
    this.partials = this.children.map(() => o.backend.allocFloat32(this.length));
    this.sum = this.children.length ? o.backend.allocFloat32(this.length) : null;
  }

  begin(iteration: number): void {
    if (this.disposed) throw new Error('CentralAggregator.begin: disposed');
    if (!Number.isSafeInteger(iteration) || iteration <= this.iteration) {
      throw new RangeError(`CentralAggregator.begin: iteration must be an integer greater than the last one (${this.iteration}), got ${iteration}`);
    }
    this.iteration = iteration;
  }

  /** Spark's reduce starts when the task's gradient is complete: nothing leaves early. */
  gradientsReady(): void {}

  async finish(options: FinishOptions): Promise<IterationReport> {
    const it = this.iteration;
    const mine: IterationStatus = options.veto === undefined ? { rank: this.rank, ok: true } : { rank: this.rank, ok: false, veto: options.veto };
    let bytesSent = 0;
    let bytesReceived = 0;
    // Tree: the children's statuses and partial sums first (their frames may already be here).
    const statuses: IterationStatus[] = [mine];
    let total = this.o.grads;
    if (this.children.length) {
      const got = await Promise.all(this.children.map(async (c, i) => {
        const st = await receiveStatuses(this.t, c, CENTRAL_STATUS_UP, it, this.driver);
        bytesReceived += await receiveVector(this.t, c, FrameKind.GradientSlice, it, this.partials[i]!, this.up, 'partial gradient sum');
        return st;
      }));
      for (const st of got) statuses.push(...st);
      this.o.backend.sumSlices([this.o.grads, ...this.partials], this.sum!);
      total = this.sum!;
    }
    const to = this.parent >= 0 ? this.parent : this.driver;
    await sendStatuses(this.t, to, CENTRAL_STATUS_UP, it, statuses);
    bytesSent += await sendVector(this.t, to, FrameKind.GradientSlice, it, total, this.up);
    const verdict = await receiveStatuses(this.t, this.driver, CENTRAL_VERDICT, it, this.driver);
    if (verdict.some((s) => !s.ok)) throw new IterationAbortedError(it, verdict);
    bytesReceived += await receiveVector(this.t, this.driver, FrameKind.WeightSlice, it, this.o.values, this.down, 'weights');
    return {
      iteration: it, gradientFrames: this.up.chunks.length, earlyGradientFrames: 0, weightFrames: 0, bytesSent, bytesReceived,
      learningRate: NaN,
    };
  }

  masterSlice(): Float32Array {
    return this.o.values.subarray(0, 0);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const p of this.partials) this.o.backend.free(p);
    if (this.sum) this.o.backend.free(this.sum);
    this.optimizer.dispose();
  }
}
