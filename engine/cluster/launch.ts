// Starting the processes of a cluster job (DESIGN.md §7):
//
// - launchLocal: `squall train --workers native:2,wasm:1`: this process is the driver; it
//   listens on 127.0.0.1 (ephemeral port), forks one `bin/squall.mjs worker` per worker with
//   the job secret in its environment (SQUALL_SECRET, never on a command line), brings the
//   mesh up (rendezvous.ts; TCP, or WebRTC data channels with the driver relaying the
//   signalling) and runs the job. A worker process that exits is reported to the
//   driver at once (workerExited), and every worker is waited for (and killed after a grace
//   period if it has not exited) before launchLocal settles, so nothing is left behind.
// - driverMain / workerMain: `squall driver --port P --workers N ...` and
//   `squall worker --driver HOST:PORT --backend native|wasm` on the machines of a cluster.
// - clusterMain: `squall cluster ...` under srun or torchrun: every process runs the same
//   command; rank and world size come from the environment (env.ts), rank 0's process also
//   runs the driver.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { BackendName } from '../backends/backend.js';
import { isBackendName } from '../backends/registry.js';
import { Driver, type DriverOptions, type DriverResult } from './driver.js';
import { clusterEnv, type ClusterEnv } from './env.js';
import type { WebRtcImplementationChoice } from '../../transport/webrtc/implementation.js';
import {
  formatHostPort, joinJob, parseHostPort, RendezvousServer, type Gathered, type HostPort, type JoinedWorker, type MeshTransport,
} from './rendezvous.js';
import type { SignalStats } from './rendezvous-signalling.js';
import { runWorker } from './worker.js';

export const SECRET_ENV = 'SQUALL_SECRET';

/** The squall command, for child processes. */
export const SQUALL_BIN = fileURLToPath(new URL('../../../bin/squall.mjs', import.meta.url));

/** "native:2,wasm:1" -> [native, native, wasm]; "3" -> 3 x defaultBackend; "native,wasm" -> one each. */
export function parseWorkerList(spec: string, defaultBackend: string = 'native'): BackendName[] {
  const s = spec.trim();
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n < 1) throw new RangeError(`--workers must be at least 1, got ${n}`);
    if (!isBackendName(defaultBackend)) throw new RangeError(`unknown backend '${defaultBackend}' (native | wasm)`);
    return new Array<BackendName>(n).fill(defaultBackend);
  }
  const out: BackendName[] = [];
  for (const part of s.split(',')) {
    const m = /^\s*(\w+)\s*(?::\s*(\d+)\s*)?$/.exec(part);
    if (!m || !isBackendName(m[1]!)) throw new RangeError(`--workers: '${part}' is not BACKEND[:COUNT] with BACKEND native or wasm (e.g. native:2,wasm:1)`);
    const n = m[2] === undefined ? 1 : Number(m[2]);
    if (n < 1) throw new RangeError(`--workers: '${part}' asks for no worker`);
    for (let i = 0; i < n; i++) out.push(m[1] as BackendName);
  }
  return out;
}

/** "2,2,1" -> [2, 2, 1] for N workers. */
export function parseShares(spec: string, workers: number): number[] {
  const w = spec.split(',').map((x) => Number(x.trim()));
  if (w.length !== workers || w.some((x) => !Number.isFinite(x) || x < 0) || w.every((x) => x === 0)) {
    throw new RangeError(`--shares must be ${workers} non-negative numbers (one per worker, not all 0), got '${spec}'`);
  }
  return w;
}

/** The job secret: $SQUALL_SECRET, or the contents of a file. */
export function readSecret(secretFile?: string, env: Record<string, string | undefined> = process.env): string | undefined {
  if (secretFile) {
    const s = readFileSync(secretFile, 'utf8').trim();
    if (!s) throw new Error(`${secretFile}: the secret file is empty`);
    return s;
  }
  const s = env[SECRET_ENV];
  return s && s.length > 0 ? s : undefined;
}

/**
 * A transport log without its "peer rank r lost" lines: those also come at every normal
 * shutdown (ranks close one after the other), and a loss that matters is reported by the
 * worker or the driver itself, naming the rank.
 */
export function withoutLossLines(log: (line: string) => void): (line: string) => void {
  return (line) => {
    if (!/peer rank \d+ lost/.test(line)) log(line);
  };
}

export function newSecret(): string {
  return randomBytes(24).toString('hex');
}

export type JobOptions = Omit<DriverOptions, 'transport' | 'workers' | 'threads'>;

/** The mesh a driver sets up (it sends the choice to every worker in `assign`). */
export interface MeshChoice {
  /** Default 'tcp'. */
  transport?: MeshTransport;
  /** With transport 'webrtc' (default 'auto'). */
  webrtc?: WebRtcImplementationChoice;
}

export interface LocalLaunchOptions extends JobOptions, MeshChoice {
  backends: readonly BackendName[];
  /** Kernel threads per worker (default: the cores divided among the workers, at least 1). */
  threads?: number;
  /** A worker silent for this long is lost (default 30 000 ms). */
  timeoutMs?: number;
  /** Setup limit (default 120 000 ms). */
  joinTimeoutMs?: number;
  /** Each line a worker prints (default: to stderr, prefixed "worker r: "). */
  onWorkerOutput?: (rank: number, line: string) => void;
  /** Called once the driver exists, with the worker processes (tests kill them). */
  onDriver?: (driver: Driver, children: readonly ChildProcess[]) => void;
  /** How long to wait for the workers to exit after the job before killing them (default 5000 ms). */
  exitGraceMs?: number;
  log?: (line: string) => void;
}

export interface LocalLaunchResult {
  driver: DriverResult;
  exits: { code: number | null; signal: string | null }[];
  /** The workers as they joined (with the WebRTC implementation each loaded, in a WebRTC job). */
  workers: JoinedWorker[];
  /** The driver's signalling relay: messages relayed and refused. */
  signalling: SignalStats;
}

function lines(stream: NodeJS.ReadableStream | null, each: (line: string) => void): void {
  if (!stream) return;
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      each(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  stream.on('end', () => { if (buf) each(buf); });
}

/** The rendezvous options of a MeshChoice. */
function meshOptions(transport: MeshTransport | undefined, webrtc: WebRtcImplementationChoice | undefined): MeshChoice {
  return { ...(transport ? { transport } : {}), ...(webrtc ? { webrtc } : {}) };
}

/** Driver here, N worker processes on this machine over loopback (TCP, or WebRTC with 127.0.0.1 host candidates). */
export async function launchLocal(o: LocalLaunchOptions): Promise<LocalLaunchResult> {
  const N = o.backends.length;
  if (N < 1) throw new RangeError('launchLocal: no workers');
  const { backends, threads, timeoutMs, joinTimeoutMs, onWorkerOutput, onDriver, exitGraceMs, log, transport: mesh, webrtc, ...job } = o;
  const secret = newSecret();
  const server = await RendezvousServer.listen({
    host: '127.0.0.1', port: 0, secret, workers: N, peerTimeoutMs: timeoutMs ?? 30_000, joinTimeoutMs: joinTimeoutMs ?? 120_000,
    ...meshOptions(mesh, webrtc), log: withoutLossLines(log ?? (() => {})),
  });
  const perWorker = threads ?? Math.max(1, Math.floor(availableParallelism() / N));
  // By default worker lines go to stderr, except a worker repeating the reason the driver
  // aborted the job with (the driver reports it itself).
  const output = onWorkerOutput ?? ((r: number, l: string) => {
    if (!/^squall worker: job aborted by the driver:/.test(l)) process.stderr.write(`worker ${r}: ${l}\n`);
  });
  let driver: Driver | undefined;
  const exits: { code: number | null; signal: string | null }[] = [];
  const exited: Promise<void>[] = [];
  const children = backends.map((b, r) => {
    const child = fork(SQUALL_BIN, ['worker', '--driver', formatHostPort(server.address), '--backend', b, '--rank', String(r), '--threads', String(perWorker)], {
      env: { ...process.env, [SECRET_ENV]: secret }, execArgv: [], stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    lines(child.stdout, (l) => output(r, l));
    lines(child.stderr, (l) => output(r, l));
    exited.push(new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        exits[r] = { code, signal };
        if (driver) driver.workerExited(r, code, signal);
        else if (code !== 0) server.abort(new Error(`worker ${r} (${b}, pid ${child.pid}) ${signal ? `was killed by ${signal}` : `exited with code ${code}`} during setup`));
        resolve();
      });
    }));
    return child;
  });
  const reap = async (): Promise<void> => {
    const all = Promise.all(exited);
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([all.then(() => false), new Promise<boolean>((r) => { timer = setTimeout(() => r(true), exitGraceMs ?? 5000); })]);
    clearTimeout(timer);
    if (late) {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await all;
    }
  };
  let gathered: Gathered;
  try {
    gathered = await server.gather();
  } catch (err) {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await reap();
    throw err;
  }
  driver = new Driver({ ...job, transport: gathered.transport, workers: gathered.workers.map((w) => ({ backend: w.backend, pid: w.pid, host: w.host })) });
  // A worker that died between the rendezvous and now.
  for (const [r, e] of exits.entries()) if (e) driver.workerExited(r, e.code, e.signal);
  onDriver?.(driver, children);
  try {
    const result = await driver.run();
    await reap();
    return { driver: result, exits, workers: gathered.workers, signalling: server.signalStats() };
  } catch (err) {
    await reap();
    throw err;
  }
}

export interface WorkerMainOptions {
  /** HOST:PORT of the driver (default: from the environment). */
  driver?: string;
  backend: string;
  rank?: number;
  workers?: number;
  threads?: number;
  /** Where the mesh listens (default: 127.0.0.1 for a driver on loopback, else 0.0.0.0). */
  listen?: string;
  secret: string;
  connectTimeoutMs?: number;
  log?: (line: string) => void;
}

/** `squall worker`: joins the job, runs it, resolves when the driver says Bye; rejects on failure. */
export async function workerMain(o: WorkerMainOptions): Promise<void> {
  if (!isBackendName(o.backend)) throw new RangeError(`--backend must be native or wasm, got '${o.backend}'`);
  const env = o.driver === undefined || o.rank === undefined ? clusterEnv() : null;
  const driver = o.driver ?? (env?.driver ? formatHostPort(env.driver) : undefined);
  if (!driver) throw new RangeError('squall worker: give --driver HOST:PORT (or run under srun / torchrun with MASTER_ADDR set)');
  const rank = o.rank ?? env?.rank;
  const workers = o.workers ?? env?.worldSize;
  const joined = await joinJob({
    driver, secret: o.secret, backend: o.backend, ...(rank !== undefined ? { rank } : {}), ...(workers !== undefined ? { workers } : {}),
    ...(o.listen ? { listenHost: o.listen } : {}), ...(o.connectTimeoutMs ? { connectTimeoutMs: o.connectTimeoutMs } : {}),
    log: withoutLossLines(o.log ?? (() => {})),
  });
  // Forked by a launcher: if it goes away, so does this worker.
  if (process.send) {
    (process.channel as { unref?: () => void } | undefined)?.unref?.();
    process.once('disconnect', () => void joined.transport.close());
  }
  await runWorker({ transport: joined.transport, backend: o.backend, ...(o.threads !== undefined ? { threads: o.threads } : {}), log: o.log ?? ((l) => console.error(l)) });
}

export interface DriverMainOptions extends JobOptions, MeshChoice {
  host: string;
  port: number;
  workers: number;
  secret: string;
  timeoutMs?: number;
  joinTimeoutMs?: number;
  /** Called when the driver listens (to print the address). */
  onListening?: (address: HostPort, jobId: string) => void;
  log?: (line: string) => void;
}

/** `squall driver`: waits for N workers, runs the job, returns the result. */
export async function driverMain(o: DriverMainOptions): Promise<DriverResult> {
  const { host, port, workers, secret, timeoutMs, joinTimeoutMs, onListening, log, transport: mesh, webrtc, ...job } = o;
  const server = await RendezvousServer.listen({
    host, port, secret, workers, ...(timeoutMs ? { peerTimeoutMs: timeoutMs } : {}), ...(joinTimeoutMs ? { joinTimeoutMs } : {}),
    ...meshOptions(mesh, webrtc), log: withoutLossLines(log ?? (() => {})),
  });
  onListening?.(server.address, server.jobId);
  const { transport, workers: joined } = await server.gather();
  const driver = new Driver({ ...job, transport, workers: joined.map((w) => ({ backend: w.backend, pid: w.pid, host: w.host })) });
  const stop = (): void => driver.abort('interrupted (SIGINT)');
  process.once('SIGINT', stop);
  try {
    return await driver.run();
  } finally {
    process.off('SIGINT', stop);
  }
}

/**
 * `squall cluster` under srun / torchrun: this process is worker `env.rank` of
 * `env.worldSize`; rank 0 also runs the driver, listening on `host` (default 0.0.0.0) at
 * the environment's port. Resolves with the driver's result on rank 0, undefined elsewhere.
 */
export async function clusterMain(o: JobOptions & MeshChoice & {
  env?: ClusterEnv | null; backend: string; threads?: number; secret: string; host?: string; driver?: string; timeoutMs?: number;
  joinTimeoutMs?: number; log?: (line: string) => void;
}): Promise<DriverResult | undefined> {
  const env = o.env === undefined ? clusterEnv() : o.env;
  if (!env) throw new RangeError('squall cluster: no cluster environment (run it under srun, or set RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)');
  const addr = o.driver ? parseHostPort(o.driver, '--driver') : env.driver;
  if (!addr) throw new RangeError(`squall cluster: the environment (${env.source}) names no driver host: set MASTER_ADDR (and MASTER_PORT) or give --driver HOST:PORT`);
  const { env: _e, backend, threads, secret, host, driver: _d, timeoutMs, joinTimeoutMs, log, transport: mesh, webrtc, ...job } = o;
  const worker = workerMain({
    driver: formatHostPort(addr), backend, rank: env.rank, workers: env.worldSize, secret, ...(threads !== undefined ? { threads } : {}),
    ...(joinTimeoutMs ? { connectTimeoutMs: joinTimeoutMs } : {}), ...(log ? { log } : {}),
  });
  if (env.rank !== 0) {
    await worker;
    return undefined;
  }
  const driver = driverMain({
    ...job, ...meshOptions(mesh, webrtc),
    host: host ?? '0.0.0.0', port: addr.port, workers: env.worldSize, secret, ...(timeoutMs ? { timeoutMs } : {}),
    ...(joinTimeoutMs ? { joinTimeoutMs } : {}), ...(log ? { log } : {}),
  });
  const [d, w] = await Promise.allSettled([driver, worker]);
  if (d.status === 'rejected') throw d.reason;
  if (w.status === 'rejected') throw w.reason;
  return d.value;
}
