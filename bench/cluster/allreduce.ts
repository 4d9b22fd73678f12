// All-reduce bus bandwidth: Squall's parameter manager over the TCP mesh (and WebRTC data
// channels) in N forked processes, beside torch.distributed's gloo all_reduce
// (../shared/peers/torch_allreduce_bench.py allreduce) in the same run.
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { median, repoRoot } from '../common.js';

export const peersDir = join(repoRoot, '..', 'shared', 'peers');
export const python = '/usr/bin/python3';

export interface AllreduceRow {
  impl: string;
  transport: string;
  world: number;
  mib: number;
  reps?: number;
  medianSeconds?: number;
  minSeconds?: number;
  algbwGBs?: number;
  busbwGBs?: number;
  /** Every element of every rank's result equals the sum. */
  correct?: boolean;
  /** Payload bytes one rank sent per all-reduce (Squall). */
  bytesSentPerRank?: number;
  error?: string;
  detail?: Record<string, unknown>;
}

function bw(world: number, mib: number, seconds: number): { algbwGBs: number; busbwGBs: number } {
  const b = mib * (1 << 20);
  return { algbwGBs: b / seconds / 1e9, busbwGBs: (2 * (world - 1) / world) * b / seconds / 1e9 };
}

type Msg = Record<string, unknown> & { type: string };

/** Node flags for the forked ranks: $BENCH_CHILD_EXEC_ARGV (e.g. "--cpu-prof --cpu-prof-dir=/tmp/p"), else none. */
export function childExecArgv(): string[] {
  return (process.env.BENCH_CHILD_EXEC_ARGV ?? '').split(' ').filter(Boolean);
}

/** Squall all-reduce in `world` processes; one row per size (or error rows). */
export async function squallAllreduce(o: {
  world: number; transport: 'tcp' | 'webrtc'; sizesMiB: number[]; chunkElements?: number; reps?: number[]; warmup?: number; timeoutMs?: number;
}): Promise<AllreduceRow[]> {
  const child = join(repoRoot, 'dist', 'bench', 'cluster', 'allreduce_child.js');
  const secret = randomBytes(24).toString('hex');
  const children: ChildProcess[] = [];
  const exits: Promise<void>[] = [];
  const stderr: string[] = [];
  const results = new Map<number, Msg[]>();
  const addresses: string[] = [];
  let implementation: string | undefined;
  let failure: string | undefined;
  let connected = 0;
  let done = 0;
  return new Promise<AllreduceRow[]>((resolve) => {
    let finished = false;
    const timer = setTimeout(() => finish(`timed out after ${(o.timeoutMs ?? 600_000) / 1000} s`), o.timeoutMs ?? 600_000);
    const finish = (err?: string): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      // Ranks exit by themselves after 'done' (a profile, if asked for, is written then); stragglers are killed.
      const stragglers = setTimeout(() => {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      }, err ? 0 : 5000);
      stragglers.unref();
      const impl = `squall${o.transport === 'webrtc' && implementation ? ` (${implementation})` : ''}`;
      const rows: AllreduceRow[] = [];
      for (const mib of o.sizesMiB) {
        const per = results.get(mib);
        if (!per || per.length < o.world) {
          rows.push({ impl, transport: o.transport, world: o.world, mib, error: err ?? failure ?? 'no result' });
          continue;
        }
        const reps = per[0]!.reps as number;
        const times: number[] = [];
        for (let k = 0; k < reps; k++) times.push(Math.max(...per.map((m) => (m.times as number[])[k]!)));
        const med = median(times);
        const correct = per.every((m) => (m.check as { ok: boolean }).ok);
        rows.push({
          impl, transport: o.transport, world: o.world, mib, reps, medianSeconds: med, minSeconds: Math.min(...times), ...bw(o.world, mib, med),
          correct, bytesSentPerRank: per[0]!.bytesSentPerRep as number,
          ...(correct ? {} : { error: `wrong result: ${JSON.stringify(per.map((m) => m.check))}` }),
        });
      }
      void Promise.all(exits).then(() => resolve(rows));
    };
    for (let r = 0; r < o.world; r++) {
      const c = fork(child, [], { stdio: ['ignore', 'inherit', 'pipe', 'ipc'], execArgv: childExecArgv() });
      children.push(c);
      exits.push(new Promise<void>((res) => c.once('exit', () => res())));
      c.stderr!.setEncoding('utf8');
      c.stderr!.on('data', (s: string) => {
        stderr.push(s);
        process.stderr.write(s);
      });
      c.on('message', (raw) => {
        const m = raw as Msg;
        switch (m.type) {
          case 'address':
            addresses[r] = m.address as string;
            if (addresses.filter(Boolean).length === o.world) for (const x of children) x.send({ type: 'book', addresses });
            break;
          case 'signal':
            children[m.to as number]?.send({ type: 'signal', from: r, message: m.message });
            break;
          case 'connected':
            connected++;
            implementation ??= m.implementation as string | undefined;
            break;
          case 'result': {
            const list = results.get(m.mib as number) ?? [];
            list.push(m);
            results.set(m.mib as number, list);
            break;
          }
          case 'error':
            failure ??= `rank ${r}: ${m.message as string}`;
            break;
          case 'done':
            if (++done === o.world) finish();
            break;
        }
      });
      c.on('exit', (code, signal) => {
        if (code !== 0 && !finished) finish(`rank ${r} ${signal ? `killed by ${signal}` : `exited with code ${code}`}${failure ? `: ${failure}` : ''}` +
          `${connected < o.world ? ' (before the mesh was up)' : ''}: ${stderr.join('').trim().split('\n').slice(-2).join(' | ')}`);
      });
      c.send({
        type: 'config', rank: r, world: o.world, transport: o.transport, secret, sizesMiB: o.sizesMiB,
        ...(o.chunkElements ? { chunkElements: o.chunkElements } : {}), ...(o.reps ? { reps: o.reps } : {}), ...(o.warmup !== undefined ? { warmup: o.warmup } : {}),
      });
    }
  });
}

/**
 * Runs a Python measurement that appends one JSON line per size to a file, and turns each
 * line into a row (or the script's error into one error row per size).
 */
function pythonRows(impl: string, world: number, sizesMiB: number[], args: (json: string) => string[], timeoutMs: number,
  row: (l: Record<string, unknown>, mib: number) => AllreduceRow): AllreduceRow[] {
  const json = join(repoRoot, 'build', `${impl}-allreduce-${process.pid}-${world}.jsonl`);
  rmSync(json, { force: true });
  const r = spawnSync(python, args(json), { encoding: 'utf8', timeout: timeoutMs });
  process.stderr.write(r.stdout ?? '');
  let lines: Record<string, unknown>[];
  try {
    lines = readFileSync(json, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    rmSync(json);
  } catch {
    const error = (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-2).join(' | ');
    return sizesMiB.map((mib) => ({ impl, transport: 'tcp', world, mib, error }));
  }
  return sizesMiB.map((mib) => {
    const l = lines.find((x) => x.mib === mib);
    return l ? row(l, mib) : { impl, transport: 'tcp', world, mib, error: 'no result for this size' };
  });
}

/** gloo all_reduce through the peer script; one row per size. */
export function glooAllreduce(world: number, sizesMiB: number[]): AllreduceRow[] {
  const script = join(peersDir, 'torch_allreduce_bench.py');
  if (!existsSync(script)) return sizesMiB.map((mib) => ({ impl: 'gloo', transport: 'tcp', world, mib, error: `${script} not found` }));
  return pythonRows('gloo', world, sizesMiB, (json) => [script, 'allreduce', '--world', String(world), '--sizes-mib', sizesMiB.join(','), '--json', json],
    15 * 60_000, (l, mib) => ({
      impl: 'gloo', transport: 'tcp', world, mib, reps: l.reps as number, medianSeconds: l.median_s as number, minSeconds: l.min_s as number,
      algbwGBs: l.algbw_GBs as number, busbwGBs: l.busbw_GBs as number, correct: true, detail: { torch: l.torch },
    }));
}

/**
 * The loopback TCP ceiling (tcp_ceiling.py beside this file): the bytes of a reduce-scatter +
 * all-gather pumped through plain sockets with no processing; one row per size, impl 'ceiling'.
 */
export function tcpCeiling(world: number, sizesMiB: number[]): AllreduceRow[] {
  const script = join(repoRoot, 'bench', 'cluster', 'tcp_ceiling.py');
  const reps = sizesMiB.map((m) => (m <= 1 ? 30 : m <= 16 ? 10 : m <= 64 ? 5 : 3));
  return pythonRows('ceiling', world, sizesMiB, (json) => [script, '--world', String(world), '--mib', sizesMiB.join(','), '--reps', reps.join(','), '--json', json],
    10 * 60_000, (l, mib) => {
      const sec = l.median_s as number;
      return { impl: 'ceiling', transport: 'tcp', world, mib, reps: l.reps as number, medianSeconds: sec, ...bw(world, mib, sec) };
    });
}
