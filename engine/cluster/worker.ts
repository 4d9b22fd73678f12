// A worker of a cluster job (DESIGN.md §4, §5, §7): one rank r < N of a mesh whose last rank
// N is the driver. It receives the job, builds the model on its own backend (native or
// wasm), loads the data, tells the driver it is ready, then runs the launches it is sent,
// back to back: each iteration takes this worker's share of the global batch (splitBatch
// of the launch's weights), runs forward/backward and the parameter manager's all-reduce
// with the other workers, peer to peer. At the end of a launch it sends one Done message
// (per-iteration loss sums, images, times), and, when the launch asks for it, a snapshot of
// what it owns (master weight slice, optimiser state of the slice, model state) for the
// driver's checkpoint. The snapshot is copied between two iterations and sent while the
// next launch runs.
//
// Failure: anything that goes wrong here is sent to the driver (Error) and the worker stops;
// an Abort from the driver stops it too; a driver or peer that is lost (the transport fails
// receives pending on it: see protocol.ts) stops it with an error naming that rank. In every
// case the transport is closed, so nothing stays blocked on it.
//
// Each worker derives its own dropout streams from (seed, rank): seedDropout().
import { hostname } from 'node:os';
import type { Backend, BackendName } from '../backends/backend.js';
import { loadBackend } from '../backends/registry.js';
import { batchCount, epochOrder, gatherBatch, globalBatch, shardDataset, shareRange, splitBatch, type Batch, type Dataset } from '../data/index.js';
import { BufferCache } from '../data/batches.js';
import { ClassNLLCriterion } from '../nn/index.js';
import type { OptimizerState } from '../optim/optimizer.js';
import { evaluate } from '../train/evaluate.js';
import { FrameKind, PeerLostError, type Transport } from '../../transport/transport.js';
import { isAggregationMode, isCentralMode } from './aggregation.js';
import { CentralAggregator } from './central-worker.js';
import { Replica } from './local-cluster.js';
import { DEFAULT_CHUNK_ELEMENTS } from './parameter-manager.js';
import { buildJobModel, jobModelSpec, loadJobData, readStates, seedDropout, sliceOptimizer, stateLength, writeStates, type JobData } from './job.js';
import {
  ControlProtocolError, ControlSlice, PROTOCOL_NAME, receiveFloats, receiveJson, sendFloats, sendJson, workerView,
  type AbortMessage, type DoneMessage, type ErrorMessage, type JobSpec, type LaunchMessage, type ReadyMessage, type SnapshotHeader,
} from './protocol.js';
import { isWireFormat } from './wire-codec.js';

export interface WorkerOptions {
  /** The job's mesh, connected: this worker's rank r < N; the driver is the last rank N. */
  transport: Transport;
  /** This worker's backend. */
  backend: BackendName | Backend;
  /** Kernel threads (the job's setting for this rank wins). */
  threads?: number;
  /** Replaces loadJobData (tests: share one in-memory data set between in-process workers). */
  loadData?: (job: JobSpec) => JobData;
  log?: (line: string) => void;
  /** Test hook: runs before each iteration (may throw, or close the transport to play a crash). */
  beforeIteration?: (info: { rank: number; iteration: number }) => void | Promise<void>;
  /** How long to wait for the driver to take the Error message before closing (default 1000 ms). */
  errorGraceMs?: number;
}

export interface WorkerResult {
  rank: number;
  /** Iterations this worker ran. */
  iterations: number;
  launches: number;
  /** Control frames (sent, received) exchanged with the driver. */
  controlSent: number;
  controlReceived: number;
}

/** The worker stopped because the driver told it to (another worker failed, or the driver did). */
export class JobAbortedError extends Error {
  constructor(message: string, readonly rank?: number) {
    super(message);
    this.name = 'JobAbortedError';
  }
}

/** The worker lost the driver or a peer. */
export class RankLostError extends Error {
  constructor(readonly rank: number, readonly role: 'driver' | 'worker', readonly reason: Error) {
    super(`${role === 'driver' ? 'the driver' : `worker ${rank}`} (rank ${rank}) was lost: ${reason.message}`);
    this.name = 'RankLostError';
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<undefined>((res) => { timer = setTimeout(() => res(undefined), ms); })]).finally(() => clearTimeout(timer));
}

/** Runs one worker until the driver says Bye (resolves) or the job fails (rejects). The transport is closed either way. */
export function runWorker(o: WorkerOptions): Promise<WorkerResult> {
  return new WorkerRun(o).run();
}

class WorkerRun {
  private readonly t: Transport;
  private readonly rank: number;
  private readonly workers: number;
  private readonly driver: number;
  private failure: Error | undefined;
  /** The last Done has been (or is being) sent: losses of peers no longer matter to this worker. */
  private finalDone = false;
  private closing: Promise<void> | undefined;
  private controlSent = 0;
  private controlReceived = 0;
  private readonly log: (line: string) => void;

  constructor(private readonly o: WorkerOptions) {
    this.t = o.transport;
    this.rank = this.t.rank;
    this.driver = this.t.worldSize - 1;
    this.workers = this.t.worldSize - 1;
    this.log = o.log ?? ((l) => console.error(l));
  }

  async run(): Promise<WorkerResult> {
    if (this.rank >= this.driver) throw new RangeError(`runWorker: rank ${this.rank} is the driver's rank of a mesh of ${this.t.worldSize}`);
    this.watch();
    let replica: Replica | undefined;
    try {
      const res = await this.body((r) => (replica = r));
      await this.close();
      return res;
    } catch (err) {
      const e = this.failure ?? (err as Error);
      if (!this.failure) await this.fail(e);
      await this.close();
      throw e;
    } finally {
      try {
        replica?.dispose();
      } catch {
        // an iteration cut short by the failure may still hold the manager; nothing to free then
      }
    }
  }

  /** Receives kept pending for the whole job, failing the worker when the driver or a peer is lost. */
  private watch(): void {
    const D = this.driver;
    this.t.receive(D, FrameKind.Control, 0, ControlSlice.Abort).then((f) => {
      this.controlReceived++;
      let m: AbortMessage = { message: 'the driver aborted the job' };
      try {
        m = JSON.parse(new TextDecoder().decode(f.payload)) as AbortMessage;
      } catch {
        // keep the generic reason
      }
      void this.fail(new JobAbortedError(`job aborted by the driver: ${m.message}`, m.rank), false);
    }, (err: unknown) => {
      // After the last Done, the Bye receive decides (a Bye that arrived before the loss is still delivered).
      if (err instanceof PeerLostError && !this.finalDone) void this.fail(new RankLostError(D, 'driver', err), false);
    });
    for (let j = 0; j < this.workers; j++) {
      if (j === this.rank) continue;
      this.t.receive(j, FrameKind.Control, 0, ControlSlice.Watch).catch((err: unknown) => {
        if (err instanceof PeerLostError && !this.finalDone) void this.fail(new RankLostError(j, 'worker', err));
      });
    }
  }

  /** Records the first failure, tells the driver (unless it is the one that stopped us), closes the transport. */
  private async fail(err: Error, tellDriver = true): Promise<void> {
    if (this.failure) return;
    this.failure = err;
    if (tellDriver && !(err instanceof RankLostError && err.role === 'driver')) {
      const msg: ErrorMessage & { lostRank?: number } = { rank: this.rank, message: err.message };
      // A lost peer: the driver names it itself; the message is then the transport's reason.
      if (err instanceof RankLostError) Object.assign(msg, { lostRank: err.rank, message: err.reason.message });
      else if (err instanceof PeerLostError) msg.lostRank = err.rank;
      const sent = sendJson(this.t, this.driver, ControlSlice.Error, 0, msg).then(() => { this.controlSent++; }, () => undefined);
      await withTimeout(sent, this.o.errorGraceMs ?? 1000);
    }
    await this.close();
  }

  private close(): Promise<void> {
    this.closing ??= this.t.close().catch(() => undefined);
    return this.closing;
  }

  private async recv<T>(slice: ControlSlice, seq: number, what: string): Promise<T> {
    const v = await receiveJson<T>(this.t, this.driver, slice, seq, what);
    this.controlReceived++;
    return v;
  }

  private async send(slice: ControlSlice, seq: number, body: unknown): Promise<void> {
    await sendJson(this.t, this.driver, slice, seq, body);
    this.controlSent++;
  }

  private async body(keep: (r: Replica) => void): Promise<WorkerResult> {
    const o = this.o;
    const rank = this.rank;
    const job = await this.recv<JobSpec>(ControlSlice.Job, 0, 'the job');
    checkJob(job, this.workers);
    const backend = typeof o.backend === 'string' ? loadBackend(o.backend) : o.backend;
    const threads = job.threads?.[rank] ?? o.threads;
    if (threads !== undefined && threads !== null) backend.setThreads(threads);
    const spec = jobModelSpec(job.model);
    const data = o.loadData ? o.loadData(job) : loadJobData(job.data, spec, job.batchSize);
    const model = buildJobModel(job.model, job.seed).to(backend);
    seedDropout(model, job.seed, rank);
    model.train();
    let replica: Replica;
    try {
      const mode = job.aggregate ?? 'allreduce';
      const central = isCentralMode(mode)
        ? (values: Float32Array, grads: Float32Array) => new CentralAggregator({
          mode, transport: this.t, backend, values, grads, optimizer: sliceOptimizer(job.optimizer.name, backend, 0, job.optimizer.hyper),
          gradientWire: job.gradientWire, weightWire: job.weightWire, chunkElements: job.chunkElements ?? DEFAULT_CHUNK_ELEMENTS,
        })
        : undefined;
      replica = new Replica(model, backend, new ClassNLLCriterion(false), workerView(this.t, this.workers),
        (be, n) => sliceOptimizer(job.optimizer.name, be, n, job.optimizer.hyper),
        { gradientWire: job.gradientWire, weightWire: job.weightWire, chunkElements: job.chunkElements, overlap: job.overlap, ...(central ? { aggregator: central } : {}) });
    } catch (err) {
      model.dispose();
      throw err;
    }
    keep(replica);
    const pm = replica.pm;
    const flat = model.flatParameters();
    if (job.initial && !job.resume) {
      const init = job.initial;
      if (init.parameters !== flat.length) throw new ControlProtocolError(`the job's starting weights have ${init.parameters} values, this model ${flat.length}`);
      await receiveFloats(this.t, this.driver, ControlSlice.ResumeData, 0, flat.values, 'starting weights');
      if (init.states > 0) writeStates(model, await receiveFloats(this.t, this.driver, ControlSlice.ResumeData, 0, new Float32Array(init.states), 'starting model state'));
      this.controlReceived++;
    }
    if (job.resume) {
      const r = job.resume;
      if (r.parameters !== flat.length) throw new ControlProtocolError(`resume: the checkpoint has ${r.parameters} parameters, this model ${flat.length}`);
      await receiveFloats(this.t, this.driver, ControlSlice.ResumeData, 0, flat.values, 'resume weights');
      const buffers: Record<string, Float32Array> = {};
      for (const name of r.optimizer.buffers) {
        buffers[name] = await receiveFloats(this.t, this.driver, ControlSlice.ResumeData, 0, new Float32Array(pm.owned.length), `resume optimiser buffer ${name}`);
      }
      pm.optimizer.loadState({ name: r.optimizer.name, iteration: r.optimizer.iteration, epoch: r.optimizer.epoch, hyper: r.optimizer.hyper, buffers });
      if (r.states > 0) {
        const states = await receiveFloats(this.t, this.driver, ControlSlice.ResumeData, 0, new Float32Array(r.states), 'resume model state');
        writeStates(model, states);
      }
      this.controlReceived++;
    }
    const info = backend.info();
    const ready: ReadyMessage = {
      rank, backend: backend.name, blas: info.blas, threads: info.threads, pid: process.pid, host: hostname(),
      parameters: flat.length, trainSamples: data.train.length, testSamples: data.test?.length ?? 0, slice: [pm.owned.start, pm.owned.end],
    };
    await this.send(ControlSlice.Ready, 0, ready);

    const perEpoch = batchCount(data.train.length, job.batchSize, false);
    const shares = new ShareMaker(data.train, job.batchSize, job.seed, rank, perEpoch);
    const background: Promise<void>[] = [];
    let iterations = 0;
    let launches = 0;
    let next = -1;
    let idleSince = performance.now();
    for (let seq = 0; ; seq++) {
      const launch = await this.recv<LaunchMessage>(ControlSlice.Launch, seq, `launch ${seq}`);
      // Time spent waiting for this launch after the previous one was done (group mode: ~0,
      // the launch was already queued; bsp: a round trip through the driver).
      const waited = seq === 0 ? 0 : (performance.now() - idleSince) / 1000;
      checkLaunch(launch, seq, this.workers, next);
      this.applyHyper(pm.optimizer, launch.hyper);
      const t0 = performance.now();
      const lossSums: number[] = [];
      let samples = 0;
      let compute = 0;
      let bytesSent = 0;
      let bytesReceived = 0;
      for (let it = launch.first; it < launch.first + launch.count; it++) {
        await o.beforeIteration?.({ rank, iteration: it });
        if (this.failure) throw this.failure;
        const { batch, global } = shares.share(it, launch.weights);
        const c0 = performance.now();
        let c1 = c0;
        const { loss, report } = await replica.iteration(it, batch, global, () => { c1 = performance.now(); });
        compute += c1 - c0;
        lossSums.push(loss);
        samples += batch.target.length;
        bytesSent += report.bytesSent;
        bytesReceived += report.bytesReceived;
        iterations++;
      }
      next = launch.first + launch.count;
      launches++;
      const wallSeconds = (performance.now() - t0) / 1000;
      let evaluation: DoneMessage['evaluation'];
      if (launch.evaluate && data.test) {
        const e0 = performance.now();
        const shard = shardDataset(data.test, rank, this.workers);
        if (shard.length > 0) {
          const e = await evaluate(model, shard, new ClassNLLCriterion());
          evaluation = { correct: Math.round(e.accuracy * e.samples), lossSum: e.loss * e.samples, samples: e.samples, seconds: 0 };
        } else {
          evaluation = { correct: 0, lossSum: 0, samples: 0, seconds: 0 };
        }
        evaluation.seconds = (performance.now() - e0) / 1000;
      }
      if (launch.last) this.finalDone = true;
      const done: DoneMessage = {
        seq, rank, lossSums, samples, computeSeconds: compute / 1000, wallSeconds, waitSeconds: waited, bytesSent, bytesReceived,
        ...(evaluation ? { evaluation } : {}),
      };
      await this.send(ControlSlice.Done, seq, done);
      if (launch.snapshot) {
        // Copied now, between two iterations; sent while the next launch runs.
        const snap = this.takeSnapshot(replica, seq, next);
        const p = this.sendSnapshot(snap);
        p.catch((err: unknown) => void this.fail(err as Error));
        background.push(p);
      }
      if (launch.last) break;
      idleSince = performance.now();
    }
    await Promise.all(background);
    await this.recv<unknown>(ControlSlice.Bye, 0, 'bye');
    return { rank, iterations, launches, controlSent: this.controlSent, controlReceived: this.controlReceived };
  }

  /** The hyper-parameters last applied (launches usually repeat them: nothing to do then). */
  private hyperKey = '';

  private applyHyper(opt: Replica['pm']['optimizer'], hyper: Record<string, number | boolean>): void {
    const key = JSON.stringify(hyper);
    if (key === this.hyperKey) return;
    this.hyperKey = key;
    const st = opt.state();
    const merged = { ...st.hyper, ...hyper };
    if (Object.keys(merged).every((k) => merged[k] === st.hyper[k])) return;
    opt.loadState({ ...st, hyper: merged });
  }

  private takeSnapshot(replica: Replica, seq: number, iteration: number): { header: SnapshotHeader; data: Float32Array[] } {
    const pm = replica.pm;
    const st: OptimizerState = pm.optimizer.state(); // copies
    const names = Object.keys(st.buffers).sort();
    const states = stateLength(replica.model) > 0 ? readStates(replica.model) : new Float32Array(0);
    const header: SnapshotHeader = {
      seq, rank: this.rank, iteration, slice: [pm.owned.start, pm.owned.end],
      optimizer: { name: st.name, iteration: st.iteration, epoch: st.epoch, hyper: st.hyper, buffers: names },
      states: states.length,
    };
    return { header, data: [pm.masterSlice().slice(), ...names.map((n) => st.buffers[n]!), states] };
  }

  private async sendSnapshot(s: { header: SnapshotHeader; data: Float32Array[] }): Promise<void> {
    await this.send(ControlSlice.Snapshot, s.header.seq, s.header);
    for (const a of s.data) await sendFloats(this.t, this.driver, ControlSlice.SnapshotData, s.header.seq, a);
  }
}

/** This worker's share of global batch `iteration` (epoch order cached per epoch). */
class ShareMaker {
  private epoch = -1;
  private order: Int32Array = new Int32Array(0);
  private readonly buffers: BufferCache;
  private readonly splits = new Map<string, number[]>();

  constructor(private readonly ds: Dataset, private readonly batchSize: number, private readonly seed: number,
    private readonly rank: number, private readonly perEpoch: number) {
    this.buffers = new BufferCache(ds.shape.reduce((a, b) => a * b, 1));
  }

  share(iteration: number, weights: readonly number[]): { batch: Batch; global: number } {
    const epoch = Math.floor(iteration / this.perEpoch);
    if (epoch !== this.epoch) {
      this.order = epochOrder(this.ds.length, { seed: this.seed, epoch });
      this.epoch = epoch;
    }
    const global = globalBatch(this.order, this.batchSize, iteration % this.perEpoch);
    const key = `${global.length}:${weights.join(',')}`;
    let counts = this.splits.get(key);
    if (!counts) {
      counts = splitBatch(global.length, weights);
      this.splits.set(key, counts);
    }
    const { start, end } = shareRange(counts, this.rank);
    const indices = global.subarray(start, end);
    return { batch: gatherBatch(this.ds, indices, this.buffers.get(indices.length)), global: global.length };
  }
}

function checkJob(job: JobSpec, workers: number): void {
  if (job.protocol !== PROTOCOL_NAME) throw new ControlProtocolError(`the driver speaks ${JSON.stringify(job.protocol)}, this worker ${PROTOCOL_NAME}`);
  if (job.workers !== workers) throw new ControlProtocolError(`the job has ${job.workers} workers but the mesh ${workers} (+ the driver)`);
  if (!Number.isSafeInteger(job.batchSize) || job.batchSize < 1) throw new ControlProtocolError(`job batch size ${job.batchSize} is not a positive integer`);
  if (!isWireFormat(job.gradientWire) || !isWireFormat(job.weightWire)) throw new ControlProtocolError(`job wire formats ${job.gradientWire}/${job.weightWire} unknown`);
  if (job.aggregate !== undefined && !isAggregationMode(job.aggregate)) throw new ControlProtocolError(`job aggregation mode ${JSON.stringify(job.aggregate)} unknown`);
}

function checkLaunch(l: LaunchMessage, seq: number, workers: number, next: number): void {
  if (l.seq !== seq) throw new ControlProtocolError(`launch ${seq} carries sequence number ${l.seq}`);
  if (!Number.isSafeInteger(l.first) || !Number.isSafeInteger(l.count) || l.first < 0 || l.count < 0) {
    throw new ControlProtocolError(`launch ${seq}: bad iteration range ${l.first} + ${l.count}`);
  }
  if (next >= 0 && l.first !== next) throw new ControlProtocolError(`launch ${seq} starts at iteration ${l.first}; the previous launch ended at ${next}`);
  if (!Array.isArray(l.weights) || l.weights.length !== workers) throw new ControlProtocolError(`launch ${seq}: ${l.weights?.length} weights for ${workers} workers`);
}

