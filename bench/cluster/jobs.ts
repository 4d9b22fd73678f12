// Training throughput of a cluster job (LeNet-5, VGG-16 for 32x32) with worker processes,
// beside PyTorch DDP (gloo) through ../shared/peers/torch_allreduce_bench.py ddp.
//
// The Squall job is launched as launchLocal does (engine/cluster/launch.ts): this process is
// the driver (RendezvousServer on 127.0.0.1, then the real Driver), N forked worker
// processes join with the job secret and run runWorker over the TCP mesh. The worker
// script (job_child.ts) is `squall worker` plus a report of its transport counters at
// the end, so bytes on the wire per iteration are measured, not computed.
import { fork, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Driver, formatHostPort, RendezvousServer, SECRET_ENV, type DriverResult } from '../../engine/cluster/index.js';
import type { WireFormat } from '../../engine/cluster/index.js';
import type { AggregationMode } from '../../engine/cluster/aggregation.js';
import { modelSpec } from '../../engine/models/index.js';
import type { TransportStats } from '../../transport/transport.js';
import { median, repoRoot } from '../common.js';
import { childExecArgv, peersDir, python } from './allreduce.js';

export interface JobRun {
  impl: string;
  model: string;
  workers: number;
  threadsPerWorker: number;
  batchPerWorker: number;
  schedule: string;
  groupSize: number;
  wire: WireFormat;
  aggregate: AggregationMode;
  iterations: number;
  warmupIterations: number;
  /** Global batch / median over timed launches of (launch time / its iterations). */
  imgPerSec?: number;
  /** Images of all iterations (warm-up included) / the driver's training time. */
  wallImgPerSec?: number;
  medianIterationSeconds?: number;
  /** Wire bytes (frame headers included) one worker sent per iteration: mean over workers of stats.bytesSent / iterations. */
  bytesSentPerWorkerPerIteration?: number;
  /** 2 (N-1)/N x P x bytes per value: the parameter manager's payload per worker and iteration. */
  expectedPayloadBytes?: number;
  parameters?: number;
  finalLoss?: number;
  error?: string;
}

/** One Squall cluster job; the figures of the launches after the warm-up ones. */
export async function squallJob(o: {
  model: string; workers: number; threads: number; batchPerWorker: number; groupSize: number; iterations: number; warmupIterations: number;
  wire: WireFormat; backend?: 'native' | 'wasm'; aggregate?: AggregationMode;
}): Promise<JobRun> {
  const aggregate = o.aggregate ?? 'allreduce';
  const spec = modelSpec(o.model);
  const base: JobRun = {
    impl: 'squall', model: o.model, workers: o.workers, threadsPerWorker: o.threads, batchPerWorker: o.batchPerWorker, schedule: 'group', groupSize: o.groupSize,
    wire: o.wire, aggregate, iterations: o.iterations, warmupIterations: o.warmupIterations,
  };
  const secret = randomBytes(24).toString('hex');
  const server = await RendezvousServer.listen({ host: '127.0.0.1', port: 0, secret, workers: o.workers, peerTimeoutMs: 120_000, log: () => {} });
  const child = join(repoRoot, 'dist', 'bench', 'cluster', 'job_child.js');
  const stats: (TransportStats | undefined)[] = [];
  const stderr: string[] = [];
  const exits: Promise<void>[] = [];
  let driver: Driver | undefined;
  const children = Array.from({ length: o.workers }, (_, r) => {
    const c = fork(child, [JSON.stringify({ driver: formatHostPort(server.address), backend: o.backend ?? 'native', rank: r, threads: o.threads })], {
      env: { ...process.env, [SECRET_ENV]: secret }, execArgv: childExecArgv(), stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    c.stderr!.setEncoding('utf8');
    c.stderr!.on('data', (s: string) => {
      stderr.push(s);
      process.stderr.write(`worker ${r}: ${s}`);
    });
    c.on('message', (m) => {
      const x = m as { type: string; rank: number; stats: TransportStats };
      if (x.type === 'stats') stats[x.rank] = x.stats;
    });
    exits.push(new Promise<void>((res) => c.once('exit', (code, signal) => {
      // As launchLocal: a worker that dies fails the rendezvous, or the job once it runs.
      if (driver) driver.workerExited(r, code, signal);
      else if (code !== 0) server.abort(new Error(`worker ${r} ${signal ? `was killed by ${signal}` : `exited with code ${code}`} during setup`));
      res();
    })));
    return c;
  });
  const kill = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  try {
    const { transport, workers } = await server.gather();
    const doneAt: number[] = [];
    const counts: number[] = [];
    driver = new Driver({
      transport, workers: workers.map((w) => ({ backend: w.backend, pid: w.pid, host: w.host })),
      model: { name: o.model }, seed: 1, data: { dataset: 'synthetic', seed: 1, test: false, syntheticSize: o.batchPerWorker * o.workers * 8 },
      batchSize: o.batchPerWorker * o.workers, optimizer: { name: 'sgd', hyper: { lr: 0.05, momentum: 0.9 } },
      gradientWire: o.wire, weightWire: o.wire, aggregate, schedule: 'group', groupSize: o.groupSize, threads: new Array(o.workers).fill(o.threads),
      epochs: 1_000_000, maxIterations: o.iterations, progress: null,
      onLaunchDone: (rep) => {
        doneAt.push(performance.now());
        counts.push(rep.count);
      },
    });
    const t0 = performance.now();
    const result: DriverResult = await driver.run();
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 10_000))]);
    kill();
    // Launch k's time: from the completion of launch k-1 (pre-scheduling: k was already queued) to its own.
    const per: number[] = [];
    let covered = 0;
    for (let k = 0; k < doneAt.length; k++) {
      const start = k === 0 ? t0 : doneAt[k - 1]!;
      if (covered >= o.warmupIterations) per.push((doneAt[k]! - start) / 1000 / counts[k]!);
      covered += counts[k]!;
    }
    const B = o.batchPerWorker * o.workers;
    const P = spec.build(spec.classes).parameterCount();
    const bytesPerValue = o.wire === 'f32' ? 4 : 2;
    const sent = stats.filter((s): s is TransportStats => s !== undefined).map((s) => s.bytesSent / o.iterations);
    const med = per.length ? median(per) : NaN;
    return {
      ...base, imgPerSec: B / med, wallImgPerSec: result.imagesPerSecond, medianIterationSeconds: med,
      ...(sent.length === o.workers ? { bytesSentPerWorkerPerIteration: sent.reduce((a, b) => a + b, 0) / sent.length } : {}),
      expectedPayloadBytes: (2 * (o.workers - 1) / o.workers) * P * bytesPerValue, parameters: P, finalLoss: result.losses.at(-1),
    };
  } catch (err) {
    kill();
    await Promise.all(exits);
    return { ...base, error: `${(err as Error).message} ${stderr.join('').trim().split('\n').slice(-2).join(' | ')}`.trim() };
  } finally {
    await server.close();
  }
}

/** torch_allreduce_bench.py ddp (or single): one JSON record, or an error. */
export function torchRun(args: string[]): Record<string, unknown> & { error?: string } {
  const script = join(peersDir, 'torch_allreduce_bench.py');
  if (!existsSync(script)) return { error: `${script} not found` };
  const json = join(repoRoot, 'build', `torch-cluster-${process.pid}.jsonl`);
  rmSync(json, { force: true });
  const r = spawnSync(python, [script, ...args, '--json', json], { encoding: 'utf8', timeout: 20 * 60_000 });
  process.stderr.write(r.stdout ?? '');
  try {
    const l = readFileSync(json, 'utf8').split('\n').filter((x) => x.startsWith('{')).map((x) => JSON.parse(x) as Record<string, unknown>);
    rmSync(json);
    if (!l.length) throw new Error('no record');
    return l.at(-1)!;
  } catch {
    return { error: (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-2).join(' | ') };
  }
}
