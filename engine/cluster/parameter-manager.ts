// BigDL's parameter manager: one iteration of synchronous data-parallel training on worker
// r of N (DESIGN.md §4), peer to peer, with no driver involved.
//
// The flat parameter vector of P values is cut into N contiguous slices (slices.ts); rank
// i owns slice i: it alone sums its gradients, runs the optimiser on it (optimiser state
// exists only for the owned slice) and broadcasts the result. Per iteration, on rank r:
//
//   (a) reduce-scatter. For every slice i != r, rank r sends its local gradient g_r[slice i]
//       to rank i: frames (GradientSlice, iteration, slice = i), one per chunk of the slice
//       (chunks of at most `chunkElements` values, sent in DECREASING offset order, which
//       is the order a backward pass finishes them; the receiver knows the chunk of each
//       frame from that order, since frames between two ranks arrive in the order sent). gradientsReady(offset, length) marks
//       part of g_r final; every chunk it completes leaves at once, so communication
//       overlaps the rest of the backward pass. finish() sends whatever is left.
//   (b) owner sum. Rank r receives the N-1 contributions to slice r, decodes them into one
//       buffer per rank, and sums the N of them with backend.sumSlices in rank order
//       0..N-1 (so the sum does not depend on the order in which frames arrived), then
//       scales by 1 / globalBatch (workers back-propagate the SUM of the loss over their
//       share, so the result is the gradient of the mean loss over the global batch).
//   (c) status. Rank r checks the reduced slice for NaN/Inf and sends every peer a tiny
//       status frame (Control, iteration, slice = STATUS_SLICE_BASE + r, dtype Bytes, JSON
//       payload): ok, or
//       the first bad index (as a flat index), its value and the first rank whose
//       contribution was not finite there; a worker can also veto the iteration (e.g. a
//       protocol error it met while receiving). It then waits for the N-1 other statuses.
//       If any status is bad, EVERY worker rejects finish() with the same
//       IterationAbortedError (naming the iteration and the lowest bad flat index) before
//       any optimiser has run: no weight and no optimiser state changes anywhere. Every
//       frame of that iteration has then been consumed, so the transport is clean and the
//       next iteration may run (e.g. on the next batch).
//       Why a status round rather than a "poison" weight frame: with poison, owners whose
//       slices were fine would already have stepped their optimisers and peers would
//       already have written some weight slices, so every worker would have to keep a
//       copy of its weights and its optimiser state to roll back. The status round costs
//       one small all-to-all message (latency only, no bandwidth) and keeps "no change
//       anywhere" trivially true.
//   (d) all-gather. Rank r runs its optimiser on values[slice r] with the reduced
//       gradient, encodes the updated slice and sends it to every peer (WeightSlice,
//       iteration, slice = r); it decodes the N-1 slices it receives into its own values.
//       finish() resolves when every slice has arrived and every send has been taken by
//       the transport: the only barrier of the iteration.
//
// Bytes per iteration and worker: 2 (N-1)/N P values (plus N-1 status frames of a few
// dozen bytes); bf16 or fp16 halves it.
//
// Wire precision. Gradients and weights each travel as f32, bf16 or fp16 (wire-codec.ts).
// With bf16/fp16 weights the owner keeps float32 MASTER weights: values[slice r] on rank r
// is the exact float32 result of the update, and only the copy sent to the peers is
// rounded. So on every worker the owned slice holds master weights and every other slice
// holds the rounded (bf16/fp16) values of its owner's master weights; the replicas differ
// by that rounding, and a checkpoint should collect each slice from its owner
// (masterSlice()). With bf16/fp16 gradients each contribution is rounded once before the
// owner sums in float32. fp16 overflows to infinity above 65504: since contributions are
// the SUM over a worker's share (scaled only after the owner's sum), large gradients trip
// the finiteness check rather than being clipped silently.
//
// Batch normalisation: each worker normalises with the statistics of its own share (as
// BigDL and PyTorch DDP without SyncBatchNorm do) and keeps its own running statistics; only
// learned parameters (the flat vector) are synchronised. Dropout masks come from each
// worker's own stream. Models with either are therefore not equivalent to one process
// training on the global batch; models without them are (up to float32 rounding).
import type { Backend } from '../backends/backend.js';
import type { Optimizer } from '../optim/optimizer.js';
import { FrameKind, PeerLostError, WireDtype, type Frame, type OutgoingFrame, type Transport } from '../../transport/transport.js';
import { sliceChunks, sliceRanges, type FlatRange, type SliceRange } from './slices.js';
import { decodeSlice, f32PayloadView, isWireFormat, wireDtype, wireFormats, wirePayload, type WireFormat } from './wire-codec.js';

/**
 * Status frames are Control frames with slice = STATUS_SLICE_BASE + rank of the sender (and
 * the iteration's number): Control frames in [STATUS_SLICE_BASE, STATUS_SLICE_BASE + N)
 * are reserved for the parameter manager; the scheduler and the driver use other slices.
 */
export const STATUS_SLICE_BASE = 0x8000_0000;

/** Default chunk (bucket) size: 64 Ki values, 256 KiB as f32, 128 KiB as bf16. */
export const DEFAULT_CHUNK_ELEMENTS = 1 << 16;

export interface ParameterManagerOptions {
  transport: Transport;
  /** The backend of this worker (sums, scaling, wire encodings, the optimiser's kernels). */
  backend: Backend;
  /** The model's flat parameters and gradients (model.flatParameters()), of equal length P. */
  values: Float32Array;
  grads: Float32Array;
  /**
   * The optimiser of the owned slice: an instance whose sliceLength is the owned slice's
   * length, or a factory called with that length (the manager then disposes it).
   */
  optimizer: Optimizer | ((sliceLength: number, slice: SliceRange) => Optimizer);
  /** Encoding of gradient slices on the wire (default f32). */
  gradientWire?: WireFormat;
  /** Encoding of weight slices on the wire (default f32). */
  weightWire?: WireFormat;
  /** Largest gradient chunk (bucket) in values (default DEFAULT_CHUNK_ELEMENTS). */
  chunkElements?: number;
}

export interface FinishOptions {
  /**
   * The number of samples of the global batch: the owner scales the summed gradient by
   * 1 / globalBatch. Pass 1 when the workers' gradients are already scaled.
   */
  globalBatch: number;
  /** Stop this iteration on every worker, with this reason (no weight changes anywhere). */
  veto?: string;
}

export interface IterationReport {
  iteration: number;
  /** Gradient frames this worker sent (chunks of the slices it does not own). */
  gradientFrames: number;
  /** Of those, the ones sent before finish() was called (overlapped with the backward pass). */
  earlyGradientFrames: number;
  weightFrames: number;
  /** Payload bytes sent and received by this worker in this iteration (status frames included). */
  bytesSent: number;
  bytesReceived: number;
  /** The learning rate the owned slice's optimiser used. */
  learningRate: number;
}

/** One worker's status for an iteration (what the status frame carries). */
export interface IterationStatus {
  rank: number;
  ok: boolean;
  /** First non-finite element of the reduced owned slice, as a flat index (or absent). */
  index?: number;
  value?: number;
  /** First rank whose contribution was not finite at `index` (-1: only the sum overflowed). */
  contributor?: number;
  veto?: string;
  /** Who reduced the gradient where `index` was found, when not the slice's owner (driver and tree modes: 'the driver'). */
  reducer?: string;
}

/** An iteration stopped on every worker before any weight changed (a NaN/Inf gradient or a veto). */
export class IterationAbortedError extends Error {
  /** Lowest non-finite flat index found by any owner, or -1 when only vetoes stopped it. */
  readonly index: number;
  readonly value: number;
  /** Owner (slice) of `index`, or -1. */
  readonly owner: number;
  /** First rank whose contribution was not finite at `index`, or -1. */
  readonly contributor: number;
  constructor(readonly iteration: number, readonly statuses: readonly IterationStatus[]) {
    const bad = statuses.filter((s) => s.index !== undefined).sort((a, b) => a.index! - b.index!)[0];
    const vetoes = statuses.filter((s) => s.veto !== undefined);
    const parts: string[] = [];
    if (bad) {
      const who = bad.contributor !== undefined && bad.contributor >= 0
        ? `rank ${bad.contributor}'s contribution is ${fmt(bad.value)} there`
        : bad.contributor === undefined
          ? 'the partial sums it received do not tell which rank contributed it'
          : 'every contribution was finite there: the sum overflowed';
      parts.push(`the reduced gradient is ${fmt(bad.value)} at flat index ${bad.index} (${bad.reducer ?? `slice ${bad.rank}`}; ${who})`);
    }
    for (const v of vetoes) parts.push(`rank ${v.rank} vetoed it: ${v.veto}`);
    super(`iteration ${iteration} stopped on every worker: ${parts.join('; ')}; no weights or optimiser state changed`);
    this.name = 'IterationAbortedError';
    this.index = bad?.index ?? -1;
    this.value = bad?.value ?? NaN;
    this.owner = bad ? bad.rank : -1;
    this.contributor = bad?.contributor ?? -1;
  }
}

/** A frame that breaks the protocol (wrong dtype, size or content). */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

function fmt(v: number | undefined): string {
  return v === undefined ? 'not finite' : String(v);
}

/** Index of the first NaN or infinity, or -1. */
export function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    if (x - x !== 0) return i;
  }
  return -1;
}

interface Iteration {
  readonly iteration: number;
  /** Sorted, disjoint, non-adjacent [start, end) ranges of g_r that are final. */
  readonly ready: [number, number][];
  /** Per slice: index of the next chunk to send (decreasing), -1 when all are sent. */
  readonly next: number[];
  /** Settles when every contribution to the owned slice has been received and decoded. */
  readonly received: Promise<void>;
  /** Last send queued per destination (frames to one peer are handed over in order). */
  readonly sends: Promise<void>[];
  gradientFrames: number;
  earlyGradientFrames: number;
  finishing: boolean;
  bytesSent: number;
  bytesReceived: number;
}

export class ParameterManager {
  readonly rank: number;
  readonly worldSize: number;
  /** P: length of the flat vectors. */
  readonly length: number;
  /** The partition, in rank order. */
  readonly slices: readonly SliceRange[];
  /** The slice this worker owns. */
  readonly owned: SliceRange;
  readonly optimizer: Optimizer;
  readonly gradientWire: WireFormat;
  readonly weightWire: WireFormat;
  readonly chunkElements: number;
  private readonly transport: Transport;
  private readonly backend: Backend;
  private readonly values: Float32Array;
  private readonly grads: Float32Array;
  private readonly ownsOptimizer: boolean;
  /** Chunks of every slice, in increasing offset order. */
  private readonly chunks: readonly (readonly FlatRange[])[];
  /** Per rank: the decoded contribution to the owned slice (own rank: unused). */
  private readonly contributions: Float32Array[];
  /**
   * Per rank, per chunk of the owned slice: the received contribution. An f32 payload is
   * used in place (a view of the frame's own buffer: one copy fewer than decoding); other
   * wire formats are decoded into contributions[rank].
   */
  private readonly parts: Float32Array[][];
  /** The received frames' release functions, called once the owned slice is reduced. */
  private releases: (() => void)[] = [];
  private readonly reduced: Float32Array;
  private current: Iteration | null = null;
  private disposed = false;
  private lastIteration = -1;

  constructor(o: ParameterManagerOptions) {
    const t = o.transport;
    if (!t || typeof t.send !== 'function' || typeof t.receive !== 'function') throw new TypeError('ParameterManager: option transport must be a Transport');
    if (!o.backend || typeof o.backend.sumSlices !== 'function') throw new TypeError('ParameterManager: option backend must be a Backend');
    if (!(o.values instanceof Float32Array) || !(o.grads instanceof Float32Array)) {
      throw new TypeError('ParameterManager: options values and grads must be Float32Arrays (model.flatParameters())');
    }
    if (o.values.length !== o.grads.length) {
      throw new RangeError(`ParameterManager: values has ${o.values.length} elements and grads ${o.grads.length}; they must match`);
    }
    if (!Number.isSafeInteger(t.worldSize) || t.worldSize < 1 || !Number.isSafeInteger(t.rank) || t.rank < 0 || t.rank >= t.worldSize) {
      throw new RangeError(`ParameterManager: the transport's rank ${t.rank} / world size ${t.worldSize} are not valid`);
    }
    const gw = o.gradientWire ?? 'f32';
    const ww = o.weightWire ?? 'f32';
    for (const [name, v] of [['gradientWire', gw], ['weightWire', ww]] as const) {
      if (!isWireFormat(v)) throw new RangeError(`ParameterManager: option ${name} must be one of ${wireFormats.join(', ')}, got ${JSON.stringify(v)}`);
    }
    const chunk = o.chunkElements ?? DEFAULT_CHUNK_ELEMENTS;
    if (!Number.isSafeInteger(chunk) || chunk < 1) throw new RangeError(`ParameterManager: option chunkElements must be a positive integer, got ${chunk}`);
    this.transport = t;
    this.backend = o.backend;
    this.values = o.values;
    this.grads = o.grads;
    this.rank = t.rank;
    this.worldSize = t.worldSize;
    this.length = o.values.length;
    this.gradientWire = gw;
    this.weightWire = ww;
    this.chunkElements = chunk;
    this.slices = sliceRanges(this.length, this.worldSize);
    this.owned = this.slices[this.rank]!;
    this.chunks = this.slices.map((s) => sliceChunks(s, chunk));
    if (typeof o.optimizer === 'function') {
      this.optimizer = o.optimizer(this.owned.length, this.owned);
      this.ownsOptimizer = true;
    } else {
      this.optimizer = o.optimizer;
      this.ownsOptimizer = false;
    }
    if (!this.optimizer || typeof this.optimizer.step !== 'function' || this.optimizer.sliceLength !== this.owned.length) {
      throw new RangeError(`ParameterManager: rank ${this.rank} owns ${this.owned.length} values [${this.owned.start}, ${this.owned.end}); ` +
        `the optimiser must update exactly that many (got sliceLength ${this.optimizer?.sliceLength})`);
    }
    const n = this.owned.length;
    const alloc = (): Float32Array => (n > 0 ? this.backend.allocFloat32(n) : new Float32Array(0));
    this.contributions = [];
    for (let i = 0; i < this.worldSize; i++) this.contributions.push(i === this.rank ? new Float32Array(0) : alloc());
    this.reduced = alloc();
    this.parts = Array.from({ length: this.worldSize }, () => []);
  }

  /** The owned slice of the values: float32 master weights, also under bf16/fp16 weight wires. */
  masterSlice(): Float32Array {
    return this.values.subarray(this.owned.start, this.owned.end);
  }

  /** True between begin() and the settling of finish(). */
  get inIteration(): boolean {
    return this.current !== null;
  }

  /**
   * Starts iteration `iteration` (greater than every earlier one): receiving of the owned
   * slice's contributions starts now. The gradient buffer must be zeroed before the
   * backward pass, as usual; nothing is sent until gradientsReady() or finish().
   */
  begin(iteration: number): void {
    this.live('begin');
    if (this.current) throw new Error(`ParameterManager.begin(${iteration}): iteration ${this.current.iteration} has not finished`);
    if (!Number.isSafeInteger(iteration) || iteration < 0 || iteration <= this.lastIteration) {
      throw new RangeError(`ParameterManager.begin: iteration must be an integer greater than the last one (${this.lastIteration}), got ${iteration}`);
    }
    this.lastIteration = iteration;
    const sends: Promise<void>[] = [];
    for (let i = 0; i < this.worldSize; i++) sends.push(Promise.resolve());
    const state: Iteration = {
      iteration,
      ready: [],
      next: this.chunks.map((c) => c.length - 1),
      received: Promise.resolve(),
      sends,
      gradientFrames: 0,
      earlyGradientFrames: 0,
      finishing: false,
      bytesSent: 0,
      bytesReceived: 0,
    };
    const loops: Promise<void>[] = [];
    for (let j = 0; j < this.worldSize; j++) if (j !== this.rank) loops.push(this.receiveContribution(state, j));
    const received = Promise.all(loops).then(() => undefined);
    received.catch(() => undefined); // awaited in finish(); never an unhandled rejection
    (state as { received: Promise<void> }).received = received;
    this.current = state;
  }

  /**
   * Marks g_r[offset, offset + length) as final for this iteration (a layer's backward has
   * finished) and sends every chunk of another worker's slice that is now complete. Meant
   * to be called in reverse layer order (decreasing offsets); other orders work, chunks of
   * one slice then leave once every chunk above them is complete. Calls may overlap.
   */
  gradientsReady(offset: number, length: number): void {
    this.live('gradientsReady');
    const s = this.current;
    if (!s) throw new Error('ParameterManager.gradientsReady: no iteration in progress (call begin() first)');
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.length) {
      throw new RangeError(`ParameterManager.gradientsReady: [${offset}, ${offset}+${length}) is not inside the ${this.length} parameters`);
    }
    if (length === 0) return;
    addRange(s.ready, offset, offset + length);
    for (const sl of this.slices) {
      if (sl.index === this.rank || sl.end <= offset || sl.start >= offset + length) continue;
      this.pump(s, sl.index);
    }
  }

  /**
   * Completes the iteration: sends the remaining gradient chunks, reduces and checks the
   * owned slice, exchanges statuses, updates the owned slice and all-gathers the weights.
   * Resolves once every slice has arrived; rejects with IterationAbortedError (on every
   * worker alike, nothing changed) when a reduced gradient is not finite or a worker vetoed.
   */
  async finish(options: FinishOptions): Promise<IterationReport> {
    this.live('finish');
    const s = this.current;
    if (!s) throw new Error('ParameterManager.finish: no iteration in progress (call begin() first)');
    if (s.finishing) throw new Error(`ParameterManager.finish: iteration ${s.iteration} is already finishing`);
    const B = options?.globalBatch;
    const veto = options?.veto;
    try {
      if (typeof B !== 'number' || !(B > 0) || !Number.isFinite(B)) {
        throw new RangeError(`ParameterManager.finish: globalBatch must be a positive number, got ${B}`);
      }
      if (veto !== undefined && typeof veto !== 'string') throw new TypeError('ParameterManager.finish: veto must be a string');
    } catch (err) {
      // A bad call must still not leave the peers waiting: this worker vetoes the iteration.
      s.finishing = true;
      await this.finishBad(s, { rank: this.rank, ok: false, veto: `rank ${this.rank}: ${(err as Error).message}` }).catch(() => undefined);
      throw err;
    }
    s.finishing = true;
    try {
      this.gradientsReady(0, this.length);
      let status: IterationStatus;
      let learningRate = NaN;
      try {
        await s.received;
        status = this.reduce(B);
        // Anything that could still fail before the update is asked now, so that a failure
        // becomes a veto rather than a worker that never sends its weights.
        learningRate = this.optimizer.learningRate();
      } catch (err) {
        if (err instanceof PeerLostError) throw err;
        status = { rank: this.rank, ok: false, veto: `${(err as Error).message}` };
      }
      if (veto !== undefined) status = { ...status, ok: false, veto: status.veto ? `${status.veto}; ${veto}` : veto };
      const statuses = await this.exchangeStatus(s, status);
      if (statuses.some((x) => !x.ok)) throw new IterationAbortedError(s.iteration, statuses);
      this.optimizer.step(this.masterSlice(), this.reduced);
      const weightFrames = await this.allGather(s);
      await Promise.all(s.sends);
      return {
        iteration: s.iteration,
        gradientFrames: s.gradientFrames,
        earlyGradientFrames: s.earlyGradientFrames,
        weightFrames,
        bytesSent: s.bytesSent,
        bytesReceived: s.bytesReceived,
        learningRate,
      };
    } catch (err) {
      await Promise.allSettled([s.received, ...s.sends]);
      throw err;
    } finally {
      this.dropParts(); // an iteration that stopped before its reduce leaves received payloads behind
      this.current = null;
    }
  }

  /** begin(iteration), every gradient final, finish(options): an iteration without overlap. */
  async step(iteration: number, options: FinishOptions): Promise<IterationReport> {
    this.begin(iteration);
    return this.finish(options);
  }

  /** Frees the receive buffers (and the optimiser when the manager created it). */
  dispose(): void {
    if (this.disposed) return;
    if (this.current) throw new Error(`ParameterManager.dispose: iteration ${this.current.iteration} is in progress`);
    this.disposed = true;
    for (const a of [...this.contributions, this.reduced]) if (a.length > 0) this.backend.free(a);
    if (this.ownsOptimizer) this.optimizer.dispose();
  }

  // ---- internals ----------------------------------------------------------------------------

  private live(what: string): void {
    if (this.disposed) throw new Error(`ParameterManager.${what}: the manager was disposed`);
  }

  /** Sends the complete chunks of slice `i`, highest first, stopping at the first incomplete one. */
  private pump(s: Iteration, i: number): void {
    const chunks = this.chunks[i]!;
    while (s.next[i]! >= 0) {
      const c = chunks[s.next[i]!]!;
      if (!covers(s.ready, c.start, c.end)) return;
      s.next[i]!--;
      // f32: the gradient buffer itself goes out; finish() waits for every send before the iteration ends.
      const payload = wirePayload(this.backend, this.grads.subarray(c.start, c.end), this.gradientWire);
      s.gradientFrames++;
      if (!s.finishing) s.earlyGradientFrames++;
      this.send(s, i, { kind: FrameKind.GradientSlice, iteration: s.iteration, slice: i, dtype: wireDtype(this.gradientWire), payload });
    }
  }

  /**
   * Hands a frame for `to` to the transport now: frames to one peer leave in the order of
   * the send() calls even when calls overlap (the Transport contract), so many can be in
   * flight and the socket never idles between chunks. s.sends[to] settles when all have
   * been taken (finish() waits for it before the buffers change again).
   */
  private send(s: Iteration, to: number, frame: OutgoingFrame): void {
    s.bytesSent += frame.payload.byteLength;
    const sent = this.transport.send(to, frame);
    sent.catch(() => undefined);
    const all = s.sends[to]!.then(() => sent);
    all.catch(() => undefined);
    s.sends[to] = all;
  }

  /** Receives rank j's chunks of the owned slice (highest chunk first) into parts[j]. */
  private async receiveContribution(s: Iteration, j: number): Promise<void> {
    const chunks = this.chunks[this.rank]!;
    const dst = this.contributions[j]!;
    const dtype = wireDtype(this.gradientWire);
    for (let k = chunks.length - 1; k >= 0; k--) {
      const f = await this.transport.receive(j, FrameKind.GradientSlice, s.iteration, this.rank);
      const c = chunks[k]!;
      if (f.dtype !== dtype) {
        throw new ProtocolError(`iteration ${s.iteration}: rank ${j} sent its gradient for slice ${this.rank} as dtype ${WireDtype[f.dtype] ?? f.dtype}; ` +
          `this job uses ${this.gradientWire} (${WireDtype[dtype]})`);
      }
      s.bytesReceived += f.payload.byteLength;
      try {
        const view = this.gradientWire === 'f32' ? f32PayloadView(f.payload, c.end - c.start) : null;
        if (view) {
          this.parts[j]![k] = view;
          if (f.release) this.releases.push(f.release);
        } else {
          const d = dst.subarray(c.start - this.owned.start, c.end - this.owned.start);
          decodeSlice(this.backend, f.payload, this.gradientWire, d);
          this.parts[j]![k] = d;
          f.release?.();
        }
      } catch (err) {
        throw new ProtocolError(`iteration ${s.iteration}: gradient chunk ${k} of slice ${this.rank} from rank ${j}: ${(err as Error).message}`);
      }
    }
  }

  /** Sums the N contributions in rank order, scales, checks; returns this worker's status. */
  private reduce(globalBatch: number): IterationStatus {
    const own = this.owned;
    if (own.length === 0) return { rank: this.rank, ok: true };
    const chunks = this.chunks[this.rank]!;
    const partsOf = (k: number): Float32Array[] => this.parts.map((p, j) => (j === this.rank ? this.grads.subarray(chunks[k]!.start, chunks[k]!.end) : p[k]!));
    for (let k = 0; k < chunks.length; k++) {
      this.backend.sumSlices(partsOf(k), this.reduced.subarray(chunks[k]!.start - own.start, chunks[k]!.end - own.start));
    }
    if (globalBatch !== 1) this.backend.scale(this.reduced, 1 / globalBatch, this.reduced);
    const bad = firstNonFinite(this.reduced);
    let contributor = -1;
    if (bad >= 0) {
      // Chunks are chunkElements long from the slice's start (the last one shorter).
      const k = Math.floor(bad / this.chunkElements);
      const parts = partsOf(k);
      const at = bad - (chunks[k]!.start - own.start);
      for (let j = 0; j < parts.length && contributor < 0; j++) {
        const v = parts[j]![at]!;
        if (v - v !== 0) contributor = j;
      }
    }
    this.dropParts();
    if (bad < 0) return { rank: this.rank, ok: true };
    return { rank: this.rank, ok: false, index: own.start + bad, value: this.reduced[bad]!, contributor };
  }

  /** Forgets the received contributions and hands their payload buffers back for the next frames. */
  private dropParts(): void {
    for (const p of this.parts) p.length = 0;
    for (const r of this.releases) r();
    this.releases = [];
  }

  /** Sends this worker's status to every peer and collects theirs; all N, in rank order. */
  private async exchangeStatus(s: Iteration, mine: IterationStatus): Promise<IterationStatus[]> {
    const payload = new TextEncoder().encode(JSON.stringify(encodeStatus(mine)));
    for (let j = 0; j < this.worldSize; j++) {
      if (j !== this.rank) this.send(s, j, { kind: FrameKind.Control, iteration: s.iteration, slice: STATUS_SLICE_BASE + this.rank, dtype: WireDtype.Bytes, payload });
    }
    const out: Promise<IterationStatus>[] = [];
    for (let j = 0; j < this.worldSize; j++) {
      if (j === this.rank) out.push(Promise.resolve(mine));
      else {
        out.push(this.transport.receive(j, FrameKind.Control, s.iteration, STATUS_SLICE_BASE + j).then((f) => {
          s.bytesReceived += f.payload.byteLength;
          return decodeStatus(f, j, s.iteration);
        }));
      }
    }
    return Promise.all(out);
  }

  /** After a bad finish() call: stop the iteration everywhere (drain contributions, bad status). */
  private async finishBad(s: Iteration, status: IterationStatus): Promise<void> {
    try {
      this.gradientsReady(0, this.length);
      await s.received.catch(() => undefined);
      await this.exchangeStatus(s, status);
      await Promise.all(s.sends);
    } finally {
      this.current = null;
    }
  }

  /** Sends the owned slice to every peer and decodes theirs into the values; returns frames sent. */
  private async allGather(s: Iteration): Promise<number> {
    const dtype = wireDtype(this.weightWire);
    // f32: the master slice itself goes out; it does not change before finish() has seen every send taken.
    const payload = wirePayload(this.backend, this.masterSlice(), this.weightWire);
    let frames = 0;
    for (let j = 0; j < this.worldSize; j++) {
      if (j === this.rank) continue;
      this.send(s, j, { kind: FrameKind.WeightSlice, iteration: s.iteration, slice: this.rank, dtype, payload });
      frames++;
    }
    const receives: Promise<void>[] = [];
    for (let j = 0; j < this.worldSize; j++) {
      if (j === this.rank) continue;
      const sl = this.slices[j]!;
      receives.push(this.transport.receive(j, FrameKind.WeightSlice, s.iteration, j).then((f) => {
        if (f.dtype !== dtype) {
          throw new ProtocolError(`iteration ${s.iteration}: rank ${j} sent its weights as dtype ${WireDtype[f.dtype] ?? f.dtype}; this job uses ${this.weightWire}`);
        }
        s.bytesReceived += f.payload.byteLength;
        decodeSlice(this.backend, f.payload, this.weightWire, this.values.subarray(sl.start, sl.end));
        f.release?.();
      }));
    }
    await Promise.all(receives);
    return frames;
  }
}

export interface StatusJson {
  ok: boolean;
  reducer?: string;
  index?: number;
  /** Non-finite values as strings ("NaN", "Infinity", "-Infinity"); JSON has no such numbers. */
  value?: string;
  contributor?: number;
  veto?: string;
}

/** The JSON form of a status (non-finite values as strings). */
export function encodeStatus(s: IterationStatus): StatusJson {
  const j: StatusJson = { ok: s.ok };
  if (s.index !== undefined) j.index = s.index;
  if (s.value !== undefined) j.value = String(s.value);
  if (s.contributor !== undefined) j.contributor = s.contributor;
  if (s.veto !== undefined) j.veto = s.veto;
  if (s.reducer !== undefined) j.reducer = s.reducer;
  return j;
}

function decodeStatus(f: Frame, rank: number, iteration: number): IterationStatus {
  try {
    if (f.dtype !== WireDtype.Bytes) throw new Error(`dtype ${f.dtype}, expected Bytes`);
    return statusFromJson(JSON.parse(new TextDecoder().decode(f.payload)) as unknown, rank, iteration);
  } catch (err) {
    return unreadableStatus(rank, iteration, err);
  }
}

/** An unreadable status stops the iteration: it cannot be taken as a yes. */
export function unreadableStatus(rank: number, iteration: number, err: unknown): IterationStatus {
  return { rank, ok: false, veto: `its status frame for iteration ${iteration} is unreadable (${(err as Error).message})` };
}

/** A status from its JSON form (throws when it has no boolean "ok"). */
export function statusFromJson(json: unknown, rank: number, iteration: number): IterationStatus {
  const j = json as StatusJson;
  if (typeof j !== 'object' || j === null || typeof j.ok !== 'boolean') throw new Error(`no boolean "ok" in the status of rank ${rank} for iteration ${iteration}`);
  const s: IterationStatus = { rank, ok: j.ok };
  if (typeof j.index === 'number') s.index = j.index;
  if (typeof j.value === 'string') s.value = Number(j.value);
  if (typeof j.contributor === 'number') s.contributor = j.contributor;
  if (typeof j.veto === 'string') s.veto = j.veto;
  if (typeof j.reducer === 'string') s.reducer = j.reducer.slice(0, 200);
  if (!s.ok && s.index === undefined && s.veto === undefined) s.veto = 'status not ok (no reason given)';
  return s;
}

/** Adds [a, b) to a sorted list of disjoint, non-adjacent ranges (merging). */
function addRange(list: [number, number][], a: number, b: number): void {
  let i = 0;
  while (i < list.length && list[i]![1] < a) i++;
  let start = a;
  let end = b;
  let j = i;
  while (j < list.length && list[j]![0] <= end) {
    start = Math.min(start, list[j]![0]);
    end = Math.max(end, list[j]![1]);
    j++;
  }
  list.splice(i, j - i, [start, end]);
}

/** True when [a, b) lies inside one range of the list. */
function covers(list: readonly [number, number][], a: number, b: number): boolean {
  for (const [s, e] of list) {
    if (s > a) return false;
    if (e >= b) return true;
  }
  return false;
}
