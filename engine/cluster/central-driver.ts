// The driver's side of the driver and tree aggregation modes (aggregation.ts): it holds the
// whole weight vector and the optimiser over all of it, and runs once per iteration,
// concurrently with the scheduling loop: receive every status and the gradient(s) (driver:
// one per worker, summed in rank order as the all-reduce's owners do; tree: the one total
// from worker 0), scale by 1 / global batch, check for NaN/Inf, then either send every
// worker the rejection (nothing changes) or update and send every worker the new weights.
// The checkpoint states the scheduler asks for are copied right after their iteration.
import type { Backend } from '../backends/backend.js';
import type { Optimizer, OptimizerState } from '../optim/optimizer.js';
import { FrameKind, type Transport } from '../../transport/transport.js';
import { CENTRAL_STATUS_UP, CENTRAL_VERDICT, type AggregationMode } from './aggregation.js';
import { receiveStatuses, receiveVector, sendStatuses, sendVector, type VectorCodec } from './central-wire.js';
import { firstNonFinite, type IterationStatus } from './parameter-manager.js';
import { sliceChunks } from './slices.js';
import type { WireFormat } from './wire-codec.js';

export interface CentralUpdaterOptions {
  mode: 'driver' | 'tree';
  /** The whole mesh; the driver is its last rank. */
  transport: Transport;
  backend: Backend;
  /** The whole weight vector (float32 master weights); updated in place. */
  values: Float32Array;
  /** The optimiser over all of `values`. */
  optimizer: Optimizer;
  gradientWire: WireFormat;
  weightWire: WireFormat;
  chunkElements: number;
  /** Samples in the global batch of an iteration. */
  globalBatch: (iteration: number) => number;
  /** Iterations after which a copy of the state is kept for a checkpoint (the iteration count after it). */
  snapshotAfter: ReadonlySet<number>;
}

export interface CentralSnapshot {
  values: Float32Array;
  optimizer: OptimizerState;
}

export class CentralUpdater {
  private readonly t: Transport;
  private readonly workers: number;
  private readonly codec: { up: VectorCodec; down: VectorCodec };
  private readonly contributions: Float32Array[];
  private readonly reduced: Float32Array;
  private readonly snapshots = new Map<number, { promise: Promise<CentralSnapshot>; resolve: (s: CentralSnapshot) => void }>();

  constructor(private readonly o: CentralUpdaterOptions) {
    this.t = o.transport;
    this.workers = this.t.worldSize - 1;
    if (o.optimizer.sliceLength !== o.values.length) {
      throw new RangeError(`CentralUpdater: the optimiser updates ${o.optimizer.sliceLength} values, the model has ${o.values.length}`);
    }
    const chunks = sliceChunks({ start: 0, end: o.values.length }, o.chunkElements);
    this.codec = { up: { backend: o.backend, wire: o.gradientWire, chunks }, down: { backend: o.backend, wire: o.weightWire, chunks } };
    const sources = o.mode === 'driver' ? this.workers : 1;
    this.contributions = Array.from({ length: sources }, () => o.backend.allocFloat32(o.values.length));
    this.reduced = o.backend.allocFloat32(o.values.length);
    for (const k of o.snapshotAfter) {
      let resolve!: (s: CentralSnapshot) => void;
      const promise = new Promise<CentralSnapshot>((r) => { resolve = r; });
      this.snapshots.set(k, { promise, resolve });
    }
  }

  /** The state after `iterations` iterations (one of snapshotAfter); resolves once that iteration is done. */
  snapshot(iterations: number): Promise<CentralSnapshot> {
    const s = this.snapshots.get(iterations);
    if (!s) throw new RangeError(`CentralUpdater: no snapshot was planned after iteration ${iterations}`);
    return s.promise;
  }

  /** Runs iterations [start, end); rejects when an iteration is rejected or the mesh fails. */
  async run(start: number, end: number): Promise<void> {
    for (let it = start; it < end; it++) {
      await this.iterate(it);
      const s = this.snapshots.get(it + 1);
      if (s) s.resolve({ values: this.o.values.slice(), optimizer: this.o.optimizer.state() });
    }
  }

  private async iterate(it: number): Promise<void> {
    const o = this.o;
    const sources = o.mode === 'driver' ? Array.from({ length: this.workers }, (_, r) => r) : [0];
    const got = await Promise.all(sources.map(async (r, i) => {
      const st = await receiveStatuses(this.t, r, CENTRAL_STATUS_UP, it, this.workers);
      await receiveVector(this.t, r, FrameKind.GradientSlice, it, this.contributions[i]!, this.codec.up, 'gradient');
      return st;
    }));
    const statuses = got.flat().sort((a, b) => a.rank - b.rank);
    let mine: IterationStatus = { rank: this.workers, ok: true };
    if (statuses.every((s) => s.ok)) {
      o.backend.sumSlices(this.contributions, this.reduced);
      o.backend.scale(this.reduced, 1 / o.globalBatch(it), this.reduced);
      const bad = firstNonFinite(this.reduced);
      if (bad >= 0) {
        // In driver mode the first worker whose gradient is not finite there is known; a tree's partial sums hide it.
        mine = { rank: this.workers, ok: false, index: bad, value: this.reduced[bad]!, reducer: 'reduced by the driver' };
        if (o.mode === 'driver') mine.contributor = this.contributions.findIndex((c) => c[bad]! - c[bad]! !== 0);
      }
    }
    const verdict = mine.ok ? statuses : [...statuses, mine];
    if (verdict.every((s) => s.ok)) o.optimizer.step(o.values, this.reduced);
    await Promise.all(Array.from({ length: this.workers }, async (_, r) => {
      await sendStatuses(this.t, r, CENTRAL_VERDICT, it, verdict);
      if (verdict.every((s) => s.ok)) await sendVector(this.t, r, FrameKind.WeightSlice, it, o.values, this.codec.down);
    }));
    if (!verdict.every((s) => s.ok)) throw new Error(`iteration ${it} was rejected (${verdict.filter((s) => !s.ok).map((s) => s.veto ?? `non-finite gradient at ${s.index}`).join('; ')})`);
  }

  dispose(): void {
    for (const c of this.contributions) this.o.backend.free(c);
    this.o.backend.free(this.reduced);
    this.o.optimizer.dispose();
  }
}
