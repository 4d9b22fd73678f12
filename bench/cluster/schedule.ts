// Scheduling overhead per iteration: Drizzle's group scheduling (G = 1, 10, 100) against
// Spark-style bsp (one launch and one completion per worker per iteration), with N = 2..32
// lightweight workers in this process.
//
// Method. The driver is the real one (engine/cluster Driver: its LaunchScheduler plan,
// pre-scheduling, Job / Ready / Launch / Done / Bye messages as JSON Control frames),
// on a real in-process mesh of N + 1 ranks (transport/inproc: per-pair ordered mailboxes,
// frames checked and copied as on the wire). The workers are minimal implementations of the
// worker side of the same control protocol (protocol.ts) whose iteration is a fixed tiny
// compute step and no all-reduce, so that everything that is not compute is scheduling:
// wall = the driver's training time (first launch to last completion, DriverResult.seconds),
// compute = the sum over workers of their measured compute (they share this one thread,
// so their compute is serialised), overhead per iteration = (wall - compute) / iterations.
// This is the analogue of Drizzle's single-stage micro-benchmark. On one thread the
// overhead is the CPU cost of the control protocol (driver + workers); the latency that
// pre-scheduling hides on a real network does not appear, which only favours bsp.
//
// A second, smaller measurement uses the real workers (runInProcessJob: LeNet-5 replicas,
// parameter manager all-reduce, synthetic data) and reports the time a worker waits for
// its next launch after finishing one (DoneMessage.waitSeconds), per iteration.
import { hostname } from 'node:os';
import {
  ControlSlice, Driver, PROTOCOL_NAME, runInProcessJob, type DoneMessage, type JobSpec, type LaunchMessage, type ReadyMessage,
} from '../../engine/cluster/index.js';
import { receiveJson, sendJson } from '../../engine/cluster/protocol.js';
import { modelSpec } from '../../engine/models/index.js';
import { InProcessHub } from '../../transport/inproc/index.js';
import type { Transport } from '../../transport/transport.js';
import { median } from '../common.js';

export type Mode = { schedule: 'group'; groupSize: number } | { schedule: 'bsp' };
export const modeName = (m: Mode): string => (m.schedule === 'bsp' ? 'bsp' : `group G=${m.groupSize}`);

/** The tiny model's compute step: forward and backward of a 32x32 linear layer on one sample (plain JS, ~2k multiply-adds each way). */
const W = new Float32Array(32 * 32).map((_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5);
const GW = new Float32Array(32 * 32);
const X = new Float32Array(32).fill(0.25);
const Y = new Float32Array(32);
function computeStep(): number {
  for (let o = 0; o < 32; o++) {
    let s = 0;
    for (let i = 0; i < 32; i++) s += W[o * 32 + i]! * X[i]!;
    Y[o] = s;
  }
  for (let o = 0; o < 32; o++) for (let i = 0; i < 32; i++) GW[o * 32 + i] = Y[o]! * X[i]!;
  return Y[0]!;
}

/** A minimal worker: speaks the worker side of the control protocol, iterations are computeStep(). */
async function simWorker(t: Transport, parameters: number, trainSamples: number): Promise<{ compute: number; iterations: number }> {
  const D = t.worldSize - 1;
  const job = await receiveJson<JobSpec>(t, D, ControlSlice.Job, 0, 'job');
  if (job.protocol !== PROTOCOL_NAME) throw new Error(`protocol ${job.protocol}`);
  const ready: ReadyMessage = {
    rank: t.rank, backend: 'sim', blas: 'none', threads: 1, pid: process.pid, host: hostname(), parameters, trainSamples, testSamples: 0, slice: [0, 0],
  };
  await sendJson(t, D, ControlSlice.Ready, 0, ready);
  let compute = 0;
  let iterations = 0;
  let idleSince = performance.now();
  let sink = 0;
  for (let seq = 0; ; seq++) {
    const launch = await receiveJson<LaunchMessage>(t, D, ControlSlice.Launch, seq, `launch ${seq}`);
    const waited = seq === 0 ? 0 : (performance.now() - idleSince) / 1000;
    const t0 = performance.now();
    let c = 0;
    const share = launch.shares[t.rank]!;
    for (let k = 0; k < launch.count; k++) {
      const c0 = performance.now();
      sink += computeStep();
      c += performance.now() - c0;
      iterations++;
    }
    compute += c;
    const done: DoneMessage = {
      seq, rank: t.rank, lossSums: new Array<number>(launch.count).fill(sink > Infinity ? 1 : 0), samples: share * launch.count,
      computeSeconds: c / 1000, wallSeconds: (performance.now() - t0) / 1000, waitSeconds: waited, bytesSent: 0, bytesReceived: 0,
    };
    await sendJson(t, D, ControlSlice.Done, seq, done);
    if (launch.last) break;
    idleSince = performance.now();
  }
  await receiveJson(t, D, ControlSlice.Bye, 0, 'bye');
  await t.close();
  return { compute: compute / 1000, iterations };
}

export interface ScheduleRow {
  method: 'simulated' | 'lenet5';
  workers: number;
  mode: string;
  iterations: number;
  /** Driver's training time. */
  wallSeconds?: number;
  /** Sum over workers of compute (simulated: serialised on one thread). */
  computeSeconds?: number;
  /** (wall - compute) / iterations. */
  overheadMsPerIteration?: number;
  /**
   * Mean over workers of the time waited for launches, per iteration (real workers only: a
   * simulated worker's wait also holds the other workers' compute, serialised on this thread).
   */
  waitMsPerIteration?: number;
  wallMsPerIteration?: number;
  launchMessages?: number;
  doneMessages?: number;
  /** Repeats of the measurement (the figures are medians over them). */
  repeats?: number;
  error?: string;
}

/** One simulated job: N workers, `iterations` iterations. */
async function simulatedOnce(N: number, mode: Mode, iterations: number): Promise<{ wall: number; compute: number; launch: number; done: number; wait: number }> {
  const spec = modelSpec('lenet5');
  const P = spec.build(spec.classes).parameterCount();
  const hub = new InProcessHub(N + 1, { log: () => {} });
  const driver = new Driver({
    transport: hub.endpoint(N), model: { name: 'lenet5' }, seed: 1, data: { dataset: 'synthetic', seed: 1, test: false },
    batchSize: N, optimizer: { name: 'sgd', hyper: { lr: 0.01 } }, schedule: mode.schedule, groupSize: mode.schedule === 'group' ? mode.groupSize : 1,
    epochs: 1, maxIterations: iterations, progress: null,
  });
  const waits: number[] = [];
  const workers = Array.from({ length: N }, (_, r) => simWorker(hub.endpoint(r), P, N * iterations));
  const [d, ...ws] = await Promise.all([driver.run(), ...workers]);
  for (const l of d!.launches) for (const w of l.workers) waits.push(w.waitSeconds);
  const compute = ws.reduce((a, w) => a + w.compute, 0);
  const wait = waits.reduce((a, b) => a + b, 0) / N;
  return { wall: d!.seconds, compute, launch: d!.control.launchMessages, done: d!.control.doneMessages, wait };
}

export async function simulatedOverhead(N: number, mode: Mode, iterations: number, repeats: number): Promise<ScheduleRow> {
  try {
    await simulatedOnce(N, mode, Math.min(iterations, 100)); // warm-up (JIT)
    const runs: Awaited<ReturnType<typeof simulatedOnce>>[] = [];
    for (let k = 0; k < repeats; k++) runs.push(await simulatedOnce(N, mode, iterations));
    const over = median(runs.map((r) => (r.wall - r.compute) / iterations));
    return {
      method: 'simulated', workers: N, mode: modeName(mode), iterations, repeats,
      wallSeconds: median(runs.map((r) => r.wall)), computeSeconds: median(runs.map((r) => r.compute)),
      overheadMsPerIteration: over * 1000,
      wallMsPerIteration: median(runs.map((r) => r.wall / iterations)) * 1000, launchMessages: runs[0]!.launch, doneMessages: runs[0]!.done,
    };
  } catch (err) {
    return { method: 'simulated', workers: N, mode: modeName(mode), iterations, error: (err as Error).message };
  }
}

/** Real in-process workers (LeNet-5, batch `perWorker` each): wait for launches per iteration, and wall - compute. */
export async function realOverhead(N: number, mode: Mode, iterations: number, perWorker: number): Promise<ScheduleRow> {
  try {
    const r = await runInProcessJob({
      backends: new Array(N).fill('native'), model: { name: 'lenet5' }, seed: 1, data: { dataset: 'synthetic', seed: 1, test: false, syntheticSize: N * perWorker * 4 },
      batchSize: N * perWorker, optimizer: { name: 'sgd', hyper: { lr: 0.01, momentum: 0.9 } }, schedule: mode.schedule,
      groupSize: mode.schedule === 'group' ? mode.groupSize : 1, epochs: 1_000_000, maxIterations: iterations, progress: null, threads: new Array(N).fill(1),
    });
    const d = r.driver;
    // Not wall - compute here: the replicas share one thread and await their kernels, so one
    // worker's measured forward/backward time includes the others' work.
    let wait = 0;
    for (const l of d.launches) for (const w of l.workers) wait += w.waitSeconds;
    return {
      method: 'lenet5', workers: N, mode: modeName(mode), iterations, repeats: 1, wallSeconds: d.seconds,
      waitMsPerIteration: (wait / N / iterations) * 1000,
      wallMsPerIteration: (d.seconds / iterations) * 1000, launchMessages: d.control.launchMessages, doneMessages: d.control.doneMessages,
    };
  } catch (err) {
    return { method: 'lenet5', workers: N, mode: modeName(mode), iterations, error: (err as Error).message };
  }
}
