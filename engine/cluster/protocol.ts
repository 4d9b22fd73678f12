// The driver <-> worker control protocol (DESIGN.md §5), carried as Control frames of the
// job's own transport: the driver is one more rank of the mesh, rank D = N for N workers
// (ranks 0..N-1), so a mesh of N + 1. The workers' parameter managers see a view of the
// mesh restricted to ranks 0..N-1 (workerView), so the driver takes no part in the
// gradient / weight exchange; it only exchanges these small messages with each worker.
//
// Every message is a Control frame whose `slice` names the message (ControlSlice, values
// from 0x4000_0001, below the parameter manager's status slices at 0x8000_0000) and whose
// `iteration` field is the message's sequence number where there are several (the launch
// number), else 0. JSON messages have dtype Bytes; bulk float data (weights, optimiser
// state) follows its JSON header as dtype F32 frames under a data slice, in order (frames
// between two ranks arrive in the order sent, and receives are matched per key).
//
//   from driver to worker r                     from worker r to the driver
//   Job       (0)     the job (JobSpec)          Ready     (0)     built, data loaded (ReadyMessage)
//   ResumeData(0)     F32: weights, own optimiser slices (when the job resumes)
//   Launch    (seq)   iterations to run           Done      (seq)   launch finished (DoneMessage)
//   Abort     (0)     stop now, with the reason   Snapshot  (seq)   header of the state at the end of launch seq
//   Bye       (0)     the job is over: exit       SnapshotData(seq) F32: master slice, optimiser buffers, model states
//                                                Error     (0)     this worker failed (message)
//
// A worker keeps a receive pending on Abort (and one on a never-sent Watch key per peer)
// for the whole job: the transport fails those receives with PeerLostError when the driver
// (or a peer) is lost, so loss is noticed whatever the worker is doing. The driver keeps one
// pending on each worker's Error for the same reason.
import {
  FrameKind, WireDtype, type Frame, type OutgoingFrame, type ReceiveOptions, type Transport, type TransportStats,
} from '../../transport/transport.js';
import type { OptimizerName } from '../optim/optimizer.js';
import type { AggregationMode } from './aggregation.js';
import type { JobModel } from './job.js';
import type { ScheduleMode } from './scheduler.js';
import type { WireFormat } from './wire-codec.js';

export const PROTOCOL_NAME = 'squall-cluster-1';

export enum ControlSlice {
  Job = 0x4000_0001,
  Ready = 0x4000_0002,
  Launch = 0x4000_0003,
  Done = 0x4000_0004,
  Snapshot = 0x4000_0005,
  SnapshotData = 0x4000_0006,
  Error = 0x4000_0007,
  Abort = 0x4000_0008,
  Bye = 0x4000_0009,
  ResumeData = 0x4000_000a,
  /** Never sent: a receive kept pending on it notices the loss of that peer. */
  Watch = 0x4000_000b,
}

/** Largest float32 data frame: 4 Mi values (16 MiB). */
export const DATA_CHUNK_VALUES = 1 << 22;

export interface DataSpec {
  dataset: 'fashion-mnist' | 'synthetic';
  /** Only the first N training samples (after normalisation with the full set's statistics). */
  limit?: number;
  /** Samples of the synthetic training set. */
  syntheticSize?: number;
  /** Seeds the synthetic data (default: the job's seed). */
  seed: number;
  /** Load the test split (for the final evaluation). */
  test: boolean;
}

/** What the driver tells every worker at the start (the Job message). */
export interface JobSpec {
  protocol: typeof PROTOCOL_NAME;
  /** Number of workers N (the mesh has N + 1 ranks, the driver is rank N). */
  workers: number;
  model: JobModel & { classes: number };
  /**
   * Present for a model whose starting weights are not its seeded initialisation (an
   * imported model): that many float32 parameters (then `states` model-state values) follow
   * the Job as ResumeData frames, unless the job resumes (the resume data carries them).
   */
  initial?: { parameters: number; states: number };
  /** Seeds the model initialisation, the batch order and each worker's dropout stream. */
  seed: number;
  data: DataSpec;
  /** Global batch B. */
  batchSize: number;
  optimizer: { name: OptimizerName; hyper: Record<string, number | boolean> };
  gradientWire: WireFormat;
  weightWire: WireFormat;
  /** How gradients are combined (absent: allreduce). */
  aggregate?: AggregationMode;
  chunkElements?: number;
  overlap?: boolean;
  /** For information (the launches carry what to run). */
  schedule: ScheduleMode;
  groupSize: number;
  /** Kernel threads per rank (absent: the worker's own choice). */
  threads?: (number | null)[];
  /** Expected backend per rank (absent: any). */
  backends?: (string | null)[];
  /** Present when the job continues from a checkpoint: ResumeData frames follow the Job. */
  resume?: ResumeHeader;
}

export interface ResumeHeader {
  iteration: number;
  /** P: the weights follow as P float32 values. */
  parameters: number;
  /** The full-length optimiser state; each worker then receives its own slice of each buffer, in this order. */
  optimizer: { name: OptimizerName; iteration: number; epoch: number; hyper: Record<string, number | boolean>; buffers: string[] };
  /** Model state values for this rank (BatchNorm statistics, dropout streams), when stored: that many floats follow. */
  states: number;
}

/** One launch: run iterations [first, first + count). */
export interface LaunchMessage {
  seq: number;
  first: number;
  count: number;
  /** Relative share of the global batch per rank (splitBatch weights). */
  weights: number[];
  /** Images per rank of a full global batch under those weights (for checking). */
  shares: number[];
  /** Optimiser hyper-parameters in force for these iterations. */
  hyper: Record<string, number | boolean>;
  /** Send the state at the end of this launch (Snapshot + SnapshotData). */
  snapshot: boolean;
  /** Evaluate the test split after the last iteration and report it in Done. */
  evaluate: boolean;
  /** No launch follows. */
  last: boolean;
}

export interface ReadyMessage {
  rank: number;
  backend: string;
  blas: string;
  threads: number;
  pid: number;
  host: string;
  parameters: number;
  trainSamples: number;
  testSamples: number;
  /** Owned slice [start, end). */
  slice: [number, number];
}

export interface DoneMessage {
  seq: number;
  rank: number;
  /** Summed loss over this worker's share, per iteration of the launch. */
  lossSums: number[];
  /** Images this worker processed in the launch. */
  samples: number;
  /** Seconds spent in forward/backward (its own compute), and in the whole launch. */
  computeSeconds: number;
  wallSeconds: number;
  /** Seconds between the end of the previous launch and the arrival of this one (waiting on the driver). */
  waitSeconds: number;
  bytesSent: number;
  bytesReceived: number;
  /** After the launch's iterations (not counted in wallSeconds): its test shard's results and the time it took. */
  evaluation?: { correct: number; lossSum: number; samples: number; seconds: number };
}

export interface SnapshotHeader {
  seq: number;
  rank: number;
  /** The state is the one after this many iterations in total. */
  iteration: number;
  slice: [number, number];
  optimizer: { name: OptimizerName; iteration: number; epoch: number; hyper: Record<string, number | boolean>; buffers: string[] };
  /** Floats of model state that follow the optimiser buffers. */
  states: number;
}

export interface ErrorMessage {
  rank: number;
  message: string;
}

export interface AbortMessage {
  message: string;
  /** The worker at fault, when known. */
  rank?: number;
}

// ---- framing --------------------------------------------------------------------------------

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A message that breaks the control protocol. */
export class ControlProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ControlProtocolError';
  }
}

export function jsonFrame(slice: ControlSlice, seq: number, body: unknown): OutgoingFrame {
  return { kind: FrameKind.Control, iteration: seq, slice, dtype: WireDtype.Bytes, payload: encoder.encode(JSON.stringify(body)) };
}

export function sendJson(t: Transport, to: number, slice: ControlSlice, seq: number, body: unknown): Promise<void> {
  return t.send(to, jsonFrame(slice, seq, body));
}

export function parseJson<T>(f: Frame, what: string): T {
  if (f.dtype !== WireDtype.Bytes) throw new ControlProtocolError(`${what} from rank ${f.sender}: dtype ${WireDtype[f.dtype] ?? f.dtype}, expected Bytes (JSON)`);
  try {
    const v = JSON.parse(decoder.decode(f.payload)) as T;
    if (v === null || typeof v !== 'object') throw new Error('not a JSON object');
    return v;
  } catch (err) {
    throw new ControlProtocolError(`${what} from rank ${f.sender}: unreadable JSON (${(err as Error).message})`);
  }
}

export async function receiveJson<T>(t: Transport, from: number, slice: ControlSlice, seq: number, what: string, options?: ReceiveOptions): Promise<T> {
  return parseJson<T>(await t.receive(from, FrameKind.Control, seq, slice, options), what);
}

/** Sends `values` as float32 frames of at most DATA_CHUNK_VALUES (nothing for an empty array). */
export async function sendFloats(t: Transport, to: number, slice: ControlSlice, seq: number, values: Float32Array): Promise<void> {
  for (let s = 0; s < values.length; s += DATA_CHUNK_VALUES) {
    const part = values.subarray(s, Math.min(values.length, s + DATA_CHUNK_VALUES));
    await t.send(to, { kind: FrameKind.Control, iteration: seq, slice, dtype: WireDtype.F32, payload: part });
  }
}

/** Receives exactly out.length floats sent by sendFloats into `out`. */
export async function receiveFloats(t: Transport, from: number, slice: ControlSlice, seq: number, out: Float32Array, what: string): Promise<Float32Array> {
  for (let s = 0; s < out.length; s += DATA_CHUNK_VALUES) {
    const want = Math.min(DATA_CHUNK_VALUES, out.length - s);
    const f = await t.receive(from, FrameKind.Control, seq, slice);
    if (f.dtype !== WireDtype.F32 || f.payload.byteLength !== 4 * want) {
      throw new ControlProtocolError(`${what} from rank ${from}: expected ${want} float32 values at offset ${s}, got ${f.payload.byteLength} bytes of ${WireDtype[f.dtype] ?? f.dtype}`);
    }
    out.set(new Float32Array(f.payload.buffer, f.payload.byteOffset, want), s);
  }
  return out;
}

// ---- the workers' view of the mesh ----------------------------------------------------------

/**
 * Ranks 0..workers-1 of a mesh whose last rank is the driver, as a Transport of world size
 * `workers` (what the parameter manager must see). Sends and receives pass through; close()
 * closes the underlying mesh.
 */
export function workerView(mesh: Transport, workers: number): Transport {
  if (mesh.rank >= workers) throw new RangeError(`workerView: rank ${mesh.rank} is not a worker of ${workers}`);
  if (mesh.worldSize !== workers + 1) throw new RangeError(`workerView: the mesh has ${mesh.worldSize} ranks, expected ${workers} workers + the driver`);
  const check = (r: number, what: string): void => {
    if (!Number.isInteger(r) || r < 0 || r >= workers) throw new RangeError(`${what}: rank ${r} is not a worker (0..${workers - 1})`);
  };
  return {
    rank: mesh.rank,
    worldSize: workers,
    jobId: mesh.jobId,
    send(to: number, frame: OutgoingFrame): Promise<void> {
      try {
        check(to, 'send');
      } catch (err) {
        return Promise.reject(err);
      }
      return mesh.send(to, frame);
    },
    receive(from: number, kind: FrameKind, iteration: number, slice: number, options?: ReceiveOptions): Promise<Frame> {
      try {
        check(from, 'receive');
      } catch (err) {
        return Promise.reject(err);
      }
      return mesh.receive(from, kind, iteration, slice, options);
    },
    stats(): TransportStats {
      return mesh.stats();
    },
    close(): Promise<void> {
      return mesh.close();
    },
  };
}
