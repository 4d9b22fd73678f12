// The driver of a cluster job (DESIGN.md §5, §7): the last rank D = N of a mesh of N workers
// plus itself. It sends every worker the job, waits until all are ready, then schedules the
// iterations (scheduler.ts): in `group` mode one launch per group of G iterations, the next
// one already queued on the workers (pre-scheduling), completions only at group ends; in
// `bsp` mode one launch and one completion per worker per iteration. It never touches a
// gradient or a weight during an iteration: the workers all-reduce peer to peer.
//
// At group boundaries chosen by the plan, the workers send what they own (master weight
// slice, optimiser state of the slice, model state); the driver assembles the full vector
// and the full-length optimiser state and writes a checkpoint with engine/io/checkpoint
// (atomic: the previous file stays intact until the new one is complete). The file is the
// same kind `squall train` writes (optimiser "main", meta.training = { epoch, step,
// iteration, batchSize, seed }), so either can resume from the other's checkpoint; a resumed
// cluster job sends each worker the weights and its slice of the optimiser state.
//
// Failure: a worker that reports an error, is lost (its connection closes, or it is silent
// for longer than the transport's timeout), or exits (workerExited(), from a launcher that
// watches its processes) fails the job with a ClusterJobError naming it; the driver then
// sends Abort to the others and closes the mesh, so every rank stops within the timeout.
import { existsSync } from 'node:fs';
import { batchCount, splitBatch } from '../data/index.js';
import { loadCheckpoint, optimizerState, restoreModel, saveCheckpoint } from '../io/checkpoint/index.js';
import { modelSpec } from '../models/index.js';
import type { Module } from '../nn/index.js';
import type { OptimizerName, OptimizerState } from '../optim/optimizer.js';
import { ProgressBar } from '../train/progress.js';
import { FrameKind, PeerLostError, type Transport } from '../../transport/transport.js';
import { firstAvailableBackend } from '../backends/registry.js';
import { isAggregationMode, isCentralMode, type AggregationMode } from './aggregation.js';
import { CentralUpdater } from './central-driver.js';
import { buildJobModel, jobModelSpec, readParameters, sliceOptimizer, stateLength, writeParameters, writeStates, type JobModel } from './job.js';
import { DEFAULT_CHUNK_ELEMENTS } from './parameter-manager.js';
import {
  ControlProtocolError, ControlSlice, PROTOCOL_NAME, parseJson, receiveFloats, receiveJson, sendFloats, sendJson,
  type AbortMessage, type DataSpec, type DoneMessage, type ErrorMessage, type JobSpec, type LaunchMessage, type ReadyMessage, type ResumeHeader,
  type SnapshotHeader,
} from './protocol.js';
import { LaunchScheduler, planLaunches, type PlannedLaunch, type ScheduleMode } from './scheduler.js';
import { sliceRanges } from './slices.js';
import type { WireFormat } from './wire-codec.js';

export interface DriverJob {
  /** One of engine/models by name, or an imported module tree (then give its starting weights). */
  model: JobModel;
  /** Starting weights (flat, parameters() order) and model state instead of the seeded initialisation: an imported model's. */
  initialWeights?: { parameters: Float32Array; states?: Float32Array };
  /** Seeds the initialisation, the batch order and the workers' dropout streams. */
  seed: number;
  data: DataSpec;
  /** Global batch B. */
  batchSize: number;
  optimizer: { name: OptimizerName; hyper: Record<string, number | boolean> };
  gradientWire?: WireFormat;
  weightWire?: WireFormat;
  /** How gradients are combined: peer-to-peer all-reduce (default), or through the driver (Spark's reduce / treeAggregate). */
  aggregate?: AggregationMode;
  chunkElements?: number;
  overlap?: boolean;
  schedule: ScheduleMode;
  /** G. */
  groupSize: number;
  /** Kernel threads per rank (null: the worker's own choice). */
  threads?: (number | null)[];
}

/** What the driver knows about a worker before it says Ready (from the launcher or the rendezvous). */
export interface WorkerDescription {
  backend?: string;
  pid?: number;
  host?: string;
}

export interface DriverOptions extends DriverJob {
  /** The mesh, connected; the driver is its last rank. The driver closes it at the end. */
  transport: Transport;
  epochs: number;
  /** Stop after this many iterations in total (counted from 0, as engine/train). */
  maxIterations?: number;
  /** Relative shares of the global batch per worker (default equal). */
  weights?: number[];
  /** Write a checkpoint here every `checkpointEvery` groups and at the end. */
  checkpointPath?: string;
  checkpointEvery?: number;
  /** Continue from checkpointPath when it exists. */
  resume?: boolean;
  /** Collect the final weights even without a checkpoint path (DriverResult.weights). */
  collectWeights?: boolean;
  /** Evaluate the test split at the end (default: when the data spec loads it). */
  evaluate?: boolean;
  /** Group mode: launches kept queued beyond the running one (default 1; 0 turns pre-scheduling off). */
  ahead?: number;
  /** Progress output (default process.stderr); null for none. */
  progress?: NodeJS.WritableStream | null;
  workers?: (WorkerDescription | undefined)[];
  /**
   * A launch whose completions have not all arrived this long after the previous launch
   * completed (or the job started) fails the job, naming the workers still out. Default
   * none: a silent worker is caught by the transport's timeout; this also catches one that
   * still answers heartbeats but makes no progress.
   */
  launchTimeoutMs?: number;
  /** After a failure, how long Abort messages may take before the mesh is closed (default 1000 ms). */
  abortGraceMs?: number;
  /** Stored in the checkpoints' meta. */
  describe?: Record<string, unknown>;
  onLaunchDone?: (report: LaunchReport) => void;
  onCheckpoint?: (info: { path: string; iteration: number; seq: number }) => void;
}

export interface LaunchReport {
  seq: number;
  first: number;
  count: number;
  /** Mean loss over the global batch, per iteration. */
  losses: number[];
  samples: number;
  /** Per worker: compute (forward/backward) and launch wall time, time waiting for the launch, images. */
  workers: { rank: number; computeSeconds: number; wallSeconds: number; waitSeconds: number; samples: number }[];
}

export interface DriverResult {
  startIteration: number;
  endIteration: number;
  perEpoch: number;
  /** Mean loss over the global batch, per iteration run. */
  losses: number[];
  launches: LaunchReport[];
  /** The float32 master weights at the end (each slice from its owner), when collected. */
  weights?: Float32Array;
  /** The full-length optimiser state at the end, when collected. */
  optimizerState?: OptimizerState;
  evaluation?: { accuracy: number; loss: number; samples: number };
  checkpoints: number;
  /** Training time (from the first launch to the last completion, less the final evaluation; checkpoint writes overlap it). */
  seconds: number;
  imagesPerSecond: number;
  ready: ReadyMessage[];
  /** Control frames the driver sent and received (launches, completions, snapshots, ...). */
  control: { sent: number; received: number; launchMessages: number; doneMessages: number };
}

export type FailureKind = 'lost' | 'failed' | 'exited' | 'driver';

/** The job stopped: `rank` is the worker at fault when known. */
export class ClusterJobError extends Error {
  constructor(message: string, readonly rank: number | undefined, readonly kind: FailureKind, override readonly cause?: unknown) {
    super(message);
    this.name = 'ClusterJobError';
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<undefined>((res) => { timer = setTimeout(() => res(undefined), ms); })]).finally(() => clearTimeout(timer));
}

interface ResumeState {
  iteration: number;
  values: Float32Array;
  optimizer: OptimizerState;
  /** Per rank (when stored for that rank) or the model's (rank 0's) state values. */
  states: (rank: number) => Float32Array;
}

interface Snapshot {
  seq: number;
  iteration: number;
  values: Float32Array;
  optimizer: OptimizerState;
  states: Float32Array[];
}

export class Driver {
  readonly workers: number;
  private readonly t: Transport;
  private readonly rank: number;
  private readonly info: (WorkerDescription | undefined)[];
  private failure: ClusterJobError | undefined;
  private failing: Promise<void> | undefined;
  private finished = false;
  private sent = 0;
  private received = 0;
  private launchMessages = 0;
  private doneMessages = 0;
  private current: PlannedLaunch | undefined;
  private lastCheckpoint: { iteration: number; path: string } | undefined;
  private writes: Promise<void> = Promise.resolve();
  private model: Module | undefined;
  private perEpoch = 1;
  private bar: ProgressBar | undefined;
  private trainSamples = 0;
  private checkpoints = 0;
  /** The driver's update loop in the driver and tree aggregation modes. */
  private central: CentralUpdater | undefined;

  constructor(private readonly o: DriverOptions) {
    this.t = o.transport;
    this.rank = this.t.rank;
    this.workers = this.t.worldSize - 1;
    if (this.workers < 1 || this.rank !== this.workers) {
      throw new RangeError(`Driver: the driver must be the last rank of the mesh (rank ${this.workers} of ${this.t.worldSize}), got rank ${this.rank}`);
    }
    if (!Number.isSafeInteger(o.epochs) || o.epochs < 1) throw new RangeError(`Driver: epochs must be a positive integer, got ${o.epochs}`);
    if (o.weights !== undefined && o.weights.length !== this.workers) throw new RangeError(`Driver: ${o.weights.length} weights for ${this.workers} workers`);
    if (o.aggregate !== undefined && !isAggregationMode(o.aggregate)) throw new RangeError(`Driver: aggregate must be allreduce, driver or tree, got ${JSON.stringify(o.aggregate)}`);
    this.info = Array.from({ length: this.workers }, (_, r) => o.workers?.[r]);
  }

  /** "worker 1 (wasm, pid 4242 on host)". */
  describeWorker(rank: number): string {
    const i = this.info[rank];
    const parts = [i?.backend, i?.pid !== undefined ? `pid ${i.pid}${i.host ? ` on ${i.host}` : ''}` : undefined].filter(Boolean);
    return `worker ${rank}${parts.length ? ` (${parts.join(', ')})` : ''}`;
  }

  /** A launcher saw worker `rank`'s process exit. */
  workerExited(rank: number, code: number | null, signal: string | null): void {
    if (this.finished) return;
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    void this.fail(new ClusterJobError(`${this.describeWorker(rank)} ${how}`, rank, 'exited'));
  }

  /** Stops the job from outside (e.g. SIGINT): the workers are told and the mesh is closed. */
  abort(reason: string): void {
    void this.fail(new ClusterJobError(`the driver stopped the job: ${reason}`, undefined, 'driver'));
  }

  async run(): Promise<DriverResult> {
    try {
      return await this.body();
    } catch (err) {
      if (!this.failure) {
        const e = err instanceof ClusterJobError ? err
          : err instanceof PeerLostError && err.rank < this.workers ? this.lostError(err.rank, err)
          : new ClusterJobError(`driver: ${(err as Error).message}`, undefined, 'driver', err);
        await this.fail(e);
      }
      await this.failing;
      await this.writes.catch(() => undefined);
      throw this.failure!;
    } finally {
      this.model?.dispose();
      this.central?.dispose();
    }
  }

  private lostError(rank: number, err: Error, seenBy?: number): ClusterJobError {
    const by = seenBy !== undefined ? ` (seen by worker ${seenBy})` : '';
    return new ClusterJobError(`${this.describeWorker(rank)} was lost${by}: ${err.message}`, rank, 'lost', err);
  }

  private fail(e: ClusterJobError): Promise<void> {
    if (this.failing) return this.failing;
    const where = this.current
      ? `; the job stopped in launch ${this.current.seq} (iterations ${this.current.first}-${this.current.first + this.current.count - 1})`
      : '';
    const ck = this.o.checkpointPath
      ? this.lastCheckpoint ? `; last complete checkpoint: iteration ${this.lastCheckpoint.iteration} in ${this.lastCheckpoint.path}` : '; no checkpoint was written'
      : '';
    this.failure = new ClusterJobError(`${e.message}${where}${ck}`, e.rank, e.kind, e.cause ?? e);
    if (this.bar) {
      // A progress line redrawn in place on a terminal: end it before the error is printed.
      const out = (this.o.progress ?? process.stderr) as NodeJS.WritableStream & { isTTY?: boolean };
      if (out.isTTY) out.write('\n');
      this.bar = undefined;
    }
    const abort: AbortMessage = { message: this.failure.message, ...(e.rank !== undefined ? { rank: e.rank } : {}) };
    this.failing = (async () => {
      const sends = Array.from({ length: this.workers }, (_, r) => (r === e.rank ? Promise.resolve() : sendJson(this.t, r, ControlSlice.Abort, 0, abort)));
      await withTimeout(Promise.allSettled(sends), this.o.abortGraceMs ?? 1000);
      await this.t.close().catch(() => undefined);
    })();
    return this.failing;
  }

  /** A receive kept pending per worker on Error: resolves when it reports a failure, rejects when it is lost. */
  private watch(): void {
    for (let r = 0; r < this.workers; r++) {
      this.t.receive(r, FrameKind.Control, 0, ControlSlice.Error).then((f) => {
        this.received++;
        let m: ErrorMessage & { lostRank?: number };
        try {
          m = parseJson(f, 'error');
        } catch (err) {
          m = { rank: r, message: (err as Error).message };
        }
        if (typeof m.lostRank === 'number' && m.lostRank >= 0 && m.lostRank < this.workers && m.lostRank !== r) {
          void this.fail(this.lostError(m.lostRank, new Error(m.message), r));
        } else if (m.lostRank === this.rank) {
          void this.fail(new ClusterJobError(`${this.describeWorker(r)} lost the driver: ${m.message}`, r, 'failed'));
        } else {
          void this.fail(new ClusterJobError(`${this.describeWorker(r)} failed: ${m.message}`, r, 'failed'));
        }
      }, (err: unknown) => {
        if (err instanceof PeerLostError && !this.finished) void this.fail(this.lostError(r, err));
      });
    }
  }

  private async recv<T>(from: number, slice: ControlSlice, seq: number, what: string): Promise<T> {
    const v = await receiveJson<T>(this.t, from, slice, seq, what);
    this.received++;
    return v;
  }

  private async send(to: number, slice: ControlSlice, seq: number, body: unknown): Promise<void> {
    await sendJson(this.t, to, slice, seq, body);
    this.sent++;
  }

  private all<T>(f: (rank: number) => Promise<T>): Promise<T[]> {
    return Promise.all(Array.from({ length: this.workers }, (_, r) => f(r)));
  }

  private async body(): Promise<DriverResult> {
    const o = this.o;
    const N = this.workers;
    this.watch();
    const spec = jobModelSpec(o.model);
    const classes = spec.classes;
    const model = (this.model = buildJobModel(o.model, o.seed));
    const P = model.parameterCount();
    const initial = o.initialWeights;
    if (o.model.architecture && !initial) throw new RangeError(`Driver: the imported model ${o.model.name} needs its starting weights (initialWeights)`);
    if (initial) {
      if (initial.parameters.length !== P) throw new RangeError(`Driver: ${initial.parameters.length} starting weights for ${P} parameters of ${o.model.name}`);
      const S = stateLength(model);
      if (initial.states && initial.states.length !== S) throw new RangeError(`Driver: ${initial.states.length} starting state values for ${S} of ${o.model.name}`);
      writeParameters(model, initial.parameters);
      if (initial.states && S > 0) writeStates(model, initial.states);
    }
    const initialStates = initial?.states && initial.states.length > 0 ? initial.states : null;
    const slices = sliceRanges(P, N);
    const resume = o.resume && o.checkpointPath && existsSync(o.checkpointPath) ? await this.loadResume(o.checkpointPath) : undefined;
    const hyper = resume ? resume.optimizer.hyper : o.optimizer.hyper;
    const central = isCentralMode(o.aggregate ?? 'allreduce');
    const evaluate = o.evaluate ?? o.data.test;
    const job: JobSpec = {
      protocol: PROTOCOL_NAME, workers: N, model: { ...o.model, name: spec.name, classes }, seed: o.seed, data: { ...o.data, test: o.data.test && evaluate },
      ...(initial && !resume ? { initial: { parameters: P, states: initialStates?.length ?? 0 } } : {}),
      batchSize: o.batchSize, optimizer: o.optimizer, gradientWire: o.gradientWire ?? 'f32', weightWire: o.weightWire ?? 'f32',
      schedule: o.schedule, groupSize: o.groupSize, ...(o.aggregate && o.aggregate !== 'allreduce' ? { aggregate: o.aggregate } : {}),
      ...(o.chunkElements !== undefined ? { chunkElements: o.chunkElements } : {}),
      ...(o.overlap !== undefined ? { overlap: o.overlap } : {}),
      ...(o.threads ? { threads: o.threads } : {}),
    };
    await this.all(async (r) => {
      if (!resume) {
        await this.send(r, ControlSlice.Job, 0, job);
        if (initial) {
          await sendFloats(this.t, r, ControlSlice.ResumeData, 0, initial.parameters);
          if (initialStates) await sendFloats(this.t, r, ControlSlice.ResumeData, 0, initialStates);
        }
        return;
      }
      const names = Object.keys(resume.optimizer.buffers).sort();
      const states = resume.states(r);
      const header: ResumeHeader = {
        iteration: resume.iteration, parameters: P,
        optimizer: { name: resume.optimizer.name, iteration: resume.optimizer.iteration, epoch: resume.optimizer.epoch, hyper: resume.optimizer.hyper, buffers: names },
        states: states.length,
      };
      await this.send(r, ControlSlice.Job, 0, { ...job, resume: header });
      await sendFloats(this.t, r, ControlSlice.ResumeData, 0, resume.values);
      // In the driver and tree modes the driver keeps the whole optimiser state: workers own empty slices.
      const own = central ? { start: 0, end: 0 } : slices[r]!;
      for (const n of names) await sendFloats(this.t, r, ControlSlice.ResumeData, 0, resume.optimizer.buffers[n]!.subarray(own.start, own.end));
      if (states.length) await sendFloats(this.t, r, ControlSlice.ResumeData, 0, states);
    });
    const ready = await this.all((r) => this.recv<ReadyMessage>(r, ControlSlice.Ready, 0, 'ready'));
    for (const m of ready) {
      this.info[m.rank] = { backend: m.backend, pid: m.pid, host: m.host };
      if (m.parameters !== P) throw new ControlProtocolError(`${this.describeWorker(m.rank)} built ${m.parameters} parameters, the driver's ${spec.name} has ${P}`);
      if (m.trainSamples !== ready[0]!.trainSamples) {
        throw new ControlProtocolError(`the workers loaded different training sets: ${this.describeWorker(0)} ${ready[0]!.trainSamples} samples, ${this.describeWorker(m.rank)} ${m.trainSamples}`);
      }
    }
    const trainSamples = (this.trainSamples = ready[0]!.trainSamples);
    const perEpoch = (this.perEpoch = batchCount(trainSamples, o.batchSize, false));
    if (perEpoch === 0) throw new ControlProtocolError(`${trainSamples} training samples make no batch of ${o.batchSize}`);
    const end = Math.min(o.epochs * perEpoch, o.maxIterations ?? Infinity);
    const start = Math.min(resume?.iteration ?? 0, end);
    const collect = Boolean(o.checkpointPath) || (o.collectWeights ?? false);
    const plan = planLaunches({
      mode: o.schedule, groupSize: o.groupSize, start, end,
      snapshotEvery: o.checkpointPath ? o.checkpointEvery ?? 1 : 0, finalSnapshot: collect, evaluate,
    });
    const weights = o.weights ?? new Array<number>(N).fill(1);
    const shares = splitBatch(o.batchSize, weights);
    const scheduler = new LaunchScheduler(plan, o.schedule, o.ahead);
    let updating: Promise<void> = Promise.resolve();
    if (central) {
      const u = this.startCentral(model, resume, hyper, new Set(plan.filter((p) => p.snapshot).map((p) => p.first + p.count)));
      updating = u.run(start, end);
      // A rejected iteration or a lost mesh also reaches the driver through the workers' errors; this only makes sure it is not lost.
      updating.catch((err: unknown) => void this.fail(err instanceof PeerLostError && err.rank < this.workers ? this.lostError(err.rank, err)
        : new ClusterJobError(`driver update loop: ${(err as Error).message}`, undefined, 'driver', err)));
    }
    const launchOf = (p: PlannedLaunch): LaunchMessage => ({
      seq: p.seq, first: p.first, count: p.count, weights, shares, hyper, snapshot: p.snapshot, evaluate: p.evaluate, last: p.last,
    });
    const sendLaunches = (ps: PlannedLaunch[]): Promise<unknown> => Promise.all(ps.map((p) => {
      const m = launchOf(p);
      return this.all((r) => this.send(r, ControlSlice.Launch, p.seq, m).then(() => { this.launchMessages++; }));
    }));

    if (o.progress !== null) {
      const backends = ready.map((m) => m.backend).join(',');
      const label = `${o.schedule}${o.schedule === 'group' ? ` G=${o.groupSize}` : ''} ${N} workers (${backends})`;
      this.bar = new ProgressBar(label, end - start, (o.progress ?? process.stderr) as never);
    }
    const t0 = performance.now();
    const losses: number[] = [];
    const reports: LaunchReport[] = [];
    const snapshots: Promise<Snapshot>[] = [];
    let finalSnapshot: Snapshot | undefined;
    let samples = 0;
    let evalSeconds = 0;
    let evaluation: DriverResult['evaluation'];
    await sendLaunches(scheduler.start());
    for (const p of plan) {
      this.current = p;
      const dones = await this.launchDone(p);
      this.doneMessages += dones.length;
      // Pre-scheduling: the next launch leaves before anything else is done with this group.
      const next = sendLaunches(scheduler.complete(p.seq));
      if (p.snapshot) {
        const s = this.collectSnapshot(p, P);
        s.catch(() => undefined);
        snapshots.push(s);
        // One write at a time, in launch order (they share the driver's model as a staging area).
        const write = this.writes.then(async () => {
          const snap = await s;
          if (p.last) finalSnapshot = snap;
          if (o.checkpointPath) await this.writeCheckpoint(o.checkpointPath, snap, ready);
        });
        this.writes = write;
        write.catch((err: unknown) => void this.fail(new ClusterJobError(`checkpoint at iteration ${p.first + p.count}: ${(err as Error).message}`, undefined, 'driver', err)));
      }
      const report = this.report(p, dones);
      reports.push(report);
      losses.push(...report.losses);
      samples += report.samples;
      if (p.evaluate) {
        const c = dones.reduce((a, d) => a + (d.evaluation?.correct ?? 0), 0);
        const l = dones.reduce((a, d) => a + (d.evaluation?.lossSum ?? 0), 0);
        const n = dones.reduce((a, d) => a + (d.evaluation?.samples ?? 0), 0);
        if (n > 0) evaluation = { accuracy: c / n, loss: l / n, samples: n };
      }
      // The test-set evaluation after the last launch is not training time.
      evalSeconds += Math.max(0, ...dones.map((d) => d.evaluation?.seconds ?? 0));
      const seconds = (performance.now() - t0) / 1000 - evalSeconds;
      const recent = report.losses.length ? report.losses.reduce((a, b) => a + b, 0) / report.losses.length : NaN;
      this.bar?.update(p.first + p.count - start, { loss: recent, imagesPerSecond: samples / seconds });
      o.onLaunchDone?.(report);
      await next;
    }
    this.current = undefined;
    await updating;
    await Promise.all(snapshots);
    await this.writes;
    if (this.failure) throw this.failure;
    const seconds = (performance.now() - t0) / 1000 - evalSeconds;
    this.finished = true;
    await this.all((r) => this.send(r, ControlSlice.Bye, 0, {}));
    await this.t.close();
    return {
      startIteration: start, endIteration: end, perEpoch, losses, launches: reports,
      ...(finalSnapshot ? { weights: finalSnapshot.values, optimizerState: finalSnapshot.optimizer } : {}),
      ...(evaluation ? { evaluation } : {}),
      checkpoints: this.checkpoints, seconds, imagesPerSecond: samples / seconds, ready,
      control: { sent: this.sent, received: this.received, launchMessages: this.launchMessages, doneMessages: this.doneMessages },
    };
  }

  /** Every worker's Done for launch p, within launchTimeoutMs when set. */
  private async launchDone(p: PlannedLaunch): Promise<DoneMessage[]> {
    const out = new Set<number>(Array.from({ length: this.workers }, (_, r) => r));
    const all = this.all((r) => this.recv<DoneMessage>(r, ControlSlice.Done, p.seq, `done ${p.seq}`).then((d) => {
      out.delete(r);
      return d;
    }));
    const ms = this.o.launchTimeoutMs;
    if (!ms) return all;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const ranks = [...out];
        reject(new ClusterJobError(`${ranks.map((r) => this.describeWorker(r)).join(', ')} did not finish launch ${p.seq} within ${ms / 1000} s (launch timeout)`,
          ranks.length === 1 ? ranks[0] : undefined, 'lost'));
      }, ms);
    });
    try {
      return await Promise.race([all, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private report(p: PlannedLaunch, dones: DoneMessage[]): LaunchReport {
    const losses: number[] = [];
    for (const d of dones) {
      if (d.lossSums.length !== p.count) throw new ControlProtocolError(`${this.describeWorker(d.rank)} reported ${d.lossSums.length} losses for launch ${p.seq} of ${p.count} iterations`);
    }
    for (let k = 0; k < p.count; k++) {
      const step = (p.first + k) % this.perEpoch;
      const sum = dones.reduce((a, d) => a + d.lossSums[k]!, 0);
      // The global batch is full except possibly an epoch's last one.
      losses.push(sum / Math.min(this.o.batchSize, this.trainSamples - step * this.o.batchSize));
    }
    return {
      seq: p.seq, first: p.first, count: p.count, losses, samples: dones.reduce((a, d) => a + d.samples, 0),
      workers: dones.map((d) => ({ rank: d.rank, computeSeconds: d.computeSeconds, wallSeconds: d.wallSeconds, waitSeconds: d.waitSeconds, samples: d.samples })),
    };
  }

  /** Receives every worker's snapshot of launch p and assembles the full state. */
  private async collectSnapshot(p: PlannedLaunch, P: number): Promise<Snapshot> {
    const parts = await this.all(async (r) => {
      const h = await this.recv<SnapshotHeader>(r, ControlSlice.Snapshot, p.seq, `snapshot ${p.seq}`);
      const [s, e] = h.slice;
      const master = await receiveFloats(this.t, r, ControlSlice.SnapshotData, p.seq, new Float32Array(e - s), 'snapshot weights');
      const buffers: Record<string, Float32Array> = {};
      for (const n of h.optimizer.buffers) buffers[n] = await receiveFloats(this.t, r, ControlSlice.SnapshotData, p.seq, new Float32Array(e - s), `snapshot optimiser buffer ${n}`);
      const states = h.states > 0 ? await receiveFloats(this.t, r, ControlSlice.SnapshotData, p.seq, new Float32Array(h.states), 'snapshot model state') : new Float32Array(0);
      this.received++;
      return { h, master, buffers, states };
    });
    const states = parts.map((x) => x.states);
    if (this.central) {
      // The driver holds the weights and the optimiser; the workers' parts carry their model states only.
      const c = await this.central.snapshot(p.first + p.count);
      return { seq: p.seq, iteration: p.first + p.count, values: c.values, optimizer: c.optimizer, states };
    }
    const values = new Float32Array(P);
    const h0 = parts[0]!.h;
    const names = h0.optimizer.buffers;
    const full: Record<string, Float32Array> = {};
    for (const n of names) full[n] = new Float32Array(P);
    for (const { h, master, buffers } of parts) {
      if (h.iteration !== p.first + p.count) throw new ControlProtocolError(`${this.describeWorker(h.rank)} sent the state after iteration ${h.iteration} for launch ${p.seq}, expected ${p.first + p.count}`);
      if (h.optimizer.iteration !== h0.optimizer.iteration || h.optimizer.buffers.join() !== names.join()) {
        throw new ControlProtocolError(`${this.describeWorker(h.rank)}'s optimiser state (step ${h.optimizer.iteration}, buffers ${h.optimizer.buffers.join(',')}) differs from worker 0's (step ${h0.optimizer.iteration}, ${names.join(',')})`);
      }
      values.set(master, h.slice[0]);
      for (const n of names) full[n]!.set(buffers[n]!, h.slice[0]);
    }
    return {
      seq: p.seq, iteration: p.first + p.count, values,
      optimizer: { name: h0.optimizer.name, iteration: h0.optimizer.iteration, epoch: h0.optimizer.epoch, hyper: h0.optimizer.hyper, buffers: full },
      states,
    };
  }

  /** Driver and tree modes: the driver's optimiser over the whole vector, from the start or the checkpoint. */
  private startCentral(model: Module, resume: ResumeState | undefined, hyper: Record<string, number | boolean>, snapshotAfter: Set<number>): CentralUpdater {
    const o = this.o;
    const backend = firstAvailableBackend();
    if (!backend) throw new ClusterJobError(`the driver has no backend to run the ${o.aggregate} aggregation's optimiser on (neither native nor wasm loads)`, undefined, 'driver');
    const values = resume ? resume.values.slice() : readParameters(model);
    const optimizer = sliceOptimizer(o.optimizer.name, backend, values.length, hyper);
    if (resume) optimizer.loadState(resume.optimizer);
    this.central = new CentralUpdater({
      mode: o.aggregate as 'driver' | 'tree', transport: this.t, backend, values, optimizer,
      gradientWire: o.gradientWire ?? 'f32', weightWire: o.weightWire ?? 'f32', chunkElements: o.chunkElements ?? DEFAULT_CHUNK_ELEMENTS,
      globalBatch: (it) => Math.min(o.batchSize, this.trainSamples - (it % this.perEpoch) * o.batchSize), snapshotAfter,
    });
    return this.central;
  }

  private async writeCheckpoint(path: string, s: Snapshot, ready: ReadyMessage[]): Promise<void> {
    const o = this.o;
    const model = this.model!;
    writeParameters(model, s.values);
    if (stateLength(model) > 0 && s.states[0]!.length === stateLength(model)) writeStates(model, s.states[0]!);
    const extra: Record<string, Float32Array> = {};
    if (stateLength(model) > 0) s.states.forEach((st, r) => { extra[`rank${r}.states`] = st; });
    const training = { epoch: Math.floor(s.iteration / this.perEpoch), step: s.iteration % this.perEpoch, iteration: s.iteration, epochs: o.epochs, batchSize: o.batchSize, seed: o.seed };
    await saveCheckpoint(path, {
      model, ...(o.model.architecture
        ? { architecture: true, inputShape: o.model.input! }
        : { modelSpec: { name: o.model.name, classes: o.model.classes ?? modelSpec(o.model.name).classes } }),
      optimizers: { main: s.optimizer }, extra,
      meta: {
        training,
        cluster: {
          workers: this.workers, backends: ready.map((m) => m.backend), schedule: o.schedule, groupSize: o.groupSize,
          gradientWire: o.gradientWire ?? 'f32', weightWire: o.weightWire ?? 'f32', aggregate: o.aggregate ?? 'allreduce', seq: s.seq,
        },
        dataset: o.data.dataset,
        ...(o.describe ?? {}),
      },
    });
    this.checkpoints++;
    this.lastCheckpoint = { iteration: s.iteration, path };
    o.onCheckpoint?.({ path, iteration: s.iteration, seq: s.seq });
  }

  private async loadResume(path: string): Promise<ResumeState> {
    const o = this.o;
    const model = this.model!;
    const ck = await loadCheckpoint(path);
    if (ck.model && ck.model.name !== o.model.name) throw new Error(`${path}: holds a ${ck.describeModel()}, the job trains ${o.model.name}`);
    const t = (ck.meta as { training?: { iteration?: number; batchSize?: number; seed?: number } }).training;
    if (!t || !Number.isSafeInteger(t.iteration)) throw new Error(`${path}: holds no training position: not a training checkpoint`);
    if (t.batchSize !== o.batchSize || t.seed !== o.seed) {
      throw new Error(`${path}: written with batch size ${t.batchSize} and seed ${t.seed}; resuming needs the same (got ${o.batchSize}, ${o.seed})`);
    }
    restoreModel(model, ck, { allowExtra: false });
    const values = readParameters(model);
    const st = optimizerState(ck, 'main');
    if (st.name !== o.optimizer.name) throw new Error(`${path}: its optimiser is ${st.name}, the job uses ${o.optimizer.name}`);
    const buffers: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(st.buffers)) {
      if (v.length !== values.length) throw new Error(`${path}: optimiser buffer ${k} has ${v.length} values for ${values.length} parameters`);
      buffers[k] = v.slice();
    }
    const modelStates = stateLength(model) > 0 ? new Float32Array(stateLength(model)) : new Float32Array(0);
    if (modelStates.length) {
      let off = 0;
      for (const s of model.states()) {
        modelStates.set(s.value.data, off);
        off += s.value.size;
      }
    }
    return {
      iteration: t.iteration!, values, optimizer: { ...st, buffers },
      states: (r) => (ck.has(`extra.rank${r}.states`) ? ck.tensor(`extra.rank${r}.states`).data.slice() : modelStates),
    };
  }
}
