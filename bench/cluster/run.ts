// bench/cluster: the cluster layer beside its peers, in one run (DESIGN.md §4-§8):
//   allreduce  all-reduce bus bandwidth (2(N-1)/N x size / time) of the parameter manager
//              over TCP (and WebRTC data channels when transport/webrtc loads), 2 and 3
//              worker processes, 1-256 MiB, beside torch.distributed gloo
//   schedule   scheduling overhead per iteration, group G = 1, 10, 100 vs bsp, 2-32
//              lightweight in-process workers (real driver and control protocol)
//   lenet      LeNet-5, 2 worker processes x 1 thread, batch 64 each, beside PyTorch DDP (gloo)
//   vgg        VGG-16 (32x32), 2 workers, global batch 64, f32 vs bf16 on the wire
//
//   node dist/bench/cluster/run.js [--sections allreduce,schedule,lenet,vgg] [--quick]
//        [--worlds 2,3] [--sizes 1,16,64,256] [--transports tcp,webrtc] [--chunk VALUES]
//        [--rounds R] [--lenet-rounds R] [--vgg-rounds R] [--schedule-workers 2,4,8,16,32]
//        [--no-torch-vgg] [--out NAME]
//
// Writes bench/results/NAME.json and NAME.md (NAME: cluster, or cluster-quick with --quick).
// Running some sections only keeps the other sections of an existing NAME.json, so the
// sections can be measured separately; each section records its own machine state.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { machineRecord, markdownTable, median, repoRoot, resultsDir, writeResults, type Cell } from '../common.js';
import { glooAllreduce, squallAllreduce, tcpCeiling, type AllreduceRow } from './allreduce.js';
import { squallJob, torchRun, type JobRun } from './jobs.js';
import { modeName, realOverhead, simulatedOverhead, type Mode, type ScheduleRow } from './schedule.js';

const argv = process.argv.slice(2);
function arg(name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
}
const flag = (name: string): boolean => argv.includes(`--${name}`);
const list = (s: string): number[] => s.split(',').filter(Boolean).map(Number);

const quick = flag('quick');
const allSections = ['allreduce', 'schedule', 'lenet', 'vgg', 'aggregate'] as const;
type Section = (typeof allSections)[number];
const sections = arg('sections', allSections.join(',')).split(',') as Section[];
for (const s of sections) if (!allSections.includes(s)) throw new RangeError(`unknown section '${s}' (${allSections.join(', ')})`);
const out = arg('out', quick ? 'cluster-quick' : 'cluster');
const worlds = list(arg('worlds', '2,3'));
const sizes = list(arg('sizes', quick ? '1,16,64' : '1,16,64,256'));
const transports = arg('transports', 'tcp,webrtc').split(',') as ('tcp' | 'webrtc')[];
const chunk = flag('chunk') ? Number(arg('chunk', '0')) : undefined;
/** Alternating rounds of Squall and its peer: all-reduce (TCP, gloo), LeNet-5 (Squall, DDP), VGG (f32, bf16). */
const rounds = Number(arg('rounds', quick ? '1' : '2'));
const lenetRounds = Number(arg('lenet-rounds', quick ? '1' : '3'));
const vggRounds = Number(arg('vgg-rounds', quick ? '1' : '2'));
const scheduleWorkers = list(arg('schedule-workers', '2,4,8,16,32'));
const torchVgg = !flag('no-torch-vgg') && !quick;
const aggregateRounds = Number(arg('aggregate-rounds', quick ? '1' : '2'));
const aggregateWorlds = list(arg('aggregate-worlds', '2,3'));

const log = (s: string): void => console.log(s);
const ratio = (a?: number, b?: number): number | null => (a !== undefined && b !== undefined && b > 0 && Number.isFinite(a) ? a / b : null);
const x = (r: number | null): string | null => (r === null ? null : `${r.toFixed(2)}x`);
const state = (): Record<string, unknown> => ({ date: new Date().toISOString(), loadAverage: loadavg() });

// ---- sections -------------------------------------------------------------------------------

interface AllreduceSection {
  state: Record<string, unknown>;
  rounds: number;
  chunkElements: number | null;
  /** Per round, every row measured. */
  rows: AllreduceRow[];
  webrtc: { available: boolean; implementation?: string; reason?: string };
}

async function webrtcAvailable(): Promise<{ available: boolean; implementation?: string; reason?: string }> {
  const path = join(repoRoot, 'dist', 'transport', 'webrtc', 'index.js');
  if (!existsSync(path)) return { available: false, reason: 'transport/webrtc does not exist in this build' };
  try {
    // A specifier tsc does not resolve: this file compiles whether transport/webrtc exists or not.
    const w = (await import(pathToFileURL(path).href)) as { loadWebRtcImplementation(c: string): Promise<{ name: string }> };
    const impl = await w.loadWebRtcImplementation('auto');
    return { available: true, implementation: impl.name };
  } catch (err) {
    return { available: false, reason: (err as Error).message };
  }
}

async function runAllreduce(): Promise<AllreduceSection> {
  const st = state();
  const rtc = transports.includes('webrtc') ? await webrtcAvailable() : { available: false, reason: 'not asked for (--transports)' };
  const rows: AllreduceRow[] = [];
  const show = (r: AllreduceRow): void => log(`allreduce ${r.impl.padEnd(24)} ${r.transport.padEnd(6)} N=${r.world} ${String(r.mib).padStart(4)} MiB: ` +
    (r.busbwGBs !== undefined ? `median ${(r.medianSeconds! * 1e3).toFixed(2)} ms, busbw ${r.busbwGBs.toFixed(3)} GB/s${r.correct === false ? ' WRONG' : ''}` : `error: ${r.error}`));
  for (const world of worlds) {
    for (let round = 0; round < rounds; round++) {
      // Side by side: Squall TCP then gloo, alternating when there are several rounds.
      const tcp = transports.includes('tcp')
        ? await squallAllreduce({ world, transport: 'tcp', sizesMiB: sizes, ...(chunk ? { chunkElements: chunk } : {}) }) : [];
      tcp.forEach((r) => { r.detail = { ...r.detail, round }; show(r); });
      rows.push(...tcp);
      const gloo = glooAllreduce(world, sizes);
      gloo.forEach((r) => { r.detail = { ...r.detail, round }; show(r); });
      rows.push(...gloo);
      const ceiling = tcpCeiling(world, sizes);
      ceiling.forEach((r) => { r.detail = { ...r.detail, round }; show(r); });
      rows.push(...ceiling);
    }
    if (rtc.available) {
      // ~20-80 MB/s: fewer reps than the torch script's (1 warm-up; 10 / 3 / 3 / 2 reps).
      const reps = sizes.map((m) => (m <= 1 ? 10 : m <= 64 ? 3 : 2));
      const w = await squallAllreduce({ world, transport: 'webrtc', sizesMiB: sizes, reps, warmup: 1, timeoutMs: 900_000, ...(chunk ? { chunkElements: chunk } : {}) });
      w.forEach((r) => { r.detail = { ...r.detail, round: 0 }; show(r); });
      rows.push(...w);
    }
  }
  return { state: st, rounds, chunkElements: chunk ?? null, rows, webrtc: rtc };
}

interface ScheduleSection {
  state: Record<string, unknown>;
  /** Simulated: iterations per run and runs per figure; real workers: iterations per run. */
  iterations: number;
  repeats: number;
  realIterations: number;
  rows: ScheduleRow[];
}

async function runSchedule(): Promise<ScheduleSection> {
  const st = state();
  const modes: Mode[] = [{ schedule: 'group', groupSize: 1 }, { schedule: 'group', groupSize: 10 }, { schedule: 'group', groupSize: 100 }, { schedule: 'bsp' }];
  const rows: ScheduleRow[] = [];
  const iterations = quick ? 300 : 1000;
  const repeats = quick ? 1 : 3;
  for (const N of scheduleWorkers) {
    for (const m of modes) {
      const r = await simulatedOverhead(N, m, iterations, repeats);
      log(`schedule simulated N=${String(N).padStart(2)} ${r.mode.padEnd(12)}: ${r.error ?? `overhead ${r.overheadMsPerIteration!.toFixed(4)} ms/iteration, wall ${r.wallMsPerIteration!.toFixed(4)} ms/iteration`}`);
      rows.push(r);
    }
  }
  const realIterations = quick ? 100 : 300;
  const realN = quick ? [2, 8] : [2, 8, 32];
  const realModes: Mode[] = [{ schedule: 'group', groupSize: 10 }, { schedule: 'group', groupSize: 100 }, { schedule: 'bsp' }];
  for (const N of realN.filter((n) => scheduleWorkers.includes(n))) {
    for (const m of realModes) {
      const r = await realOverhead(N, m, realIterations, 1);
      log(`schedule lenet5    N=${String(N).padStart(2)} ${r.mode.padEnd(12)}: ${r.error ?? `wait ${r.waitMsPerIteration!.toFixed(4)} ms/iteration, wall ${r.wallMsPerIteration!.toFixed(3)} ms/iteration`}`);
      rows.push(r);
    }
  }
  return { state: st, iterations, repeats, realIterations, rows };
}

interface LenetSection {
  state: Record<string, unknown>;
  /** Timed iterations per run (after 20 warm-up ones), both implementations. */
  iterations: number;
  squall: JobRun[];
  ddp: Record<string, unknown>[];
  single?: Record<string, unknown>;
}

async function runLenet(): Promise<LenetSection> {
  const st = state();
  const squall: JobRun[] = [];
  const ddp: Record<string, unknown>[] = [];
  const iters = quick ? 100 : 200;
  for (let round = 0; round < lenetRounds; round++) {
    const s = await squallJob({ model: 'lenet5', workers: 2, threads: 1, batchPerWorker: 64, groupSize: 10, iterations: iters + 20, warmupIterations: 20, wire: 'f32' });
    log(`lenet5 squall round ${round}: ${s.error ?? `${s.imgPerSec!.toFixed(0)} img/s (median launch), ${s.wallImgPerSec!.toFixed(0)} img/s wall incl. warm-up`}`);
    squall.push(s);
    const d = torchRun(['ddp', '--world', '2', '--batch', '64', '--iters', String(iters)]);
    log(`lenet5 DDP round ${round}: ${d.error ?? `${(d.img_s_total as number).toFixed(0)} img/s (median iteration), ${(d.wall_img_s as number).toFixed(0)} img/s wall incl. warm-up`}`);
    ddp.push(d);
  }
  // One rank's compute alone (1 thread, batch 64, no communication): 2x this is the ideal for 2 workers.
  const single = quick ? undefined : torchRun(['single', '--threads', '1', '--batch', '64', '--iters', String(iters)]);
  if (single) log(`lenet5 PyTorch single process 1 thread batch 64: ${single.error ?? `${(single.img_s as number).toFixed(0)} img/s`}`);
  return { state: st, iterations: iters, squall, ddp, ...(single ? { single } : {}) };
}

interface VggSection {
  state: Record<string, unknown>;
  squall: JobRun[];
  ddp?: Record<string, unknown>;
}

async function runVgg(): Promise<VggSection> {
  const st = state();
  const squall: JobRun[] = [];
  const iterations = quick ? 4 : 8;
  for (let round = 0; round < vggRounds; round++) {
    for (const wire of ['f32', 'bf16'] as const) {
      const s = await squallJob({ model: 'vgg_cifar', workers: 2, threads: 1, batchPerWorker: 32, groupSize: 2, iterations, warmupIterations: 2, wire });
      log(`vgg_cifar squall ${wire} round ${round}: ${s.error ?? `${s.imgPerSec!.toFixed(1)} img/s, ${(s.bytesSentPerWorkerPerIteration! / 1e6).toFixed(1)} MB sent per worker per iteration`}`);
      squall.push(s);
    }
  }
  const ddp = torchVgg ? torchRun(['ddp', '--world', '2', '--batch', '32', '--model', 'vgg_cifar', '--iters', '5']) : undefined;
  if (ddp) log(`vgg_cifar DDP: ${ddp.error ?? `${(ddp.img_s_total as number).toFixed(1)} img/s`}`);
  return { state: st, squall, ...(ddp ? { ddp } : {}) };
}

interface AggregateSection {
  state: Record<string, unknown>;
  model: string;
  rows: JobRun[];
}

/** The three aggregation modes on the same job, alternating, so their ratio is not the machine's mood. */
async function runAggregate(): Promise<AggregateSection> {
  const st = state();
  const rows: JobRun[] = [];
  const model = 'vgg_cifar';
  const iterations = quick ? 4 : 8;
  for (let round = 0; round < aggregateRounds; round++) {
    for (const workers of aggregateWorlds) {
      for (const aggregate of ['allreduce', 'driver', 'tree'] as const) {
        const s = await squallJob({ model, workers, threads: 1, batchPerWorker: 8, groupSize: 2, iterations, warmupIterations: 2, wire: 'f32', aggregate });
        log(`aggregate ${aggregate} N=${workers} round ${round}: ${s.error ?? `${s.imgPerSec!.toFixed(1)} img/s, ${(s.bytesSentPerWorkerPerIteration! / 1e6).toFixed(1)} MB sent per worker per iteration`}`);
        rows.push(s);
      }
    }
  }
  return { state: st, model, rows };
}

// ---- report ---------------------------------------------------------------------------------

interface Results {
  machine: Record<string, unknown>;
  command: string;
  allreduce?: AllreduceSection;
  schedule?: ScheduleSection;
  lenet?: LenetSection;
  vgg?: VggSection;
  aggregate?: AggregateSection;
  targets?: Record<string, unknown>;
}

/** Median over rounds of a row's figure, for impl/transport/world/size. */
function arFigure(rows: AllreduceRow[], impl: (s: string) => boolean, transport: string, world: number, mib: number, key: 'busbwGBs' | 'medianSeconds'): number | undefined {
  const v = rows.filter((r) => impl(r.impl) && r.transport === transport && r.world === world && r.mib === mib && r[key] !== undefined).map((r) => r[key]!);
  return v.length ? median(v) : undefined;
}

function render(res: Results): { md: string; targets: Record<string, unknown> } {
  const lines: string[] = ['# bench/cluster', ''];
  lines.push(`Command: \`${res.command}\`. ${JSON.stringify(res.machine)}`, '');
  lines.push('The machine is shared and noisy (2 cores): every figure is a median, peers run in the same benchmark run, and the claims are ratios. ' +
    'Each section records its own start time and load average.', '');
  const targets: Record<string, unknown> = {};
  const verdict = (ok: boolean | null): string => (ok === null ? 'not measured' : ok ? 'met' : 'NOT met');

  const ar = res.allreduce;
  if (ar) {
    const isSquall = (s: string): boolean => s.startsWith('squall');
    const ws = [...new Set(ar.rows.map((r) => r.world))].sort();
    const ms = [...new Set(ar.rows.map((r) => r.mib))].sort((a, b) => a - b);
    const rtc = ar.rows.some((r) => r.transport === 'webrtc');
    const rtcImpl = ar.rows.find((r) => r.transport === 'webrtc')?.impl.replace(/^squall \(?|\)$/g, '');
    lines.push('## All-reduce bus bandwidth', '', `Section state: ${JSON.stringify(ar.state)}.`, '');
    lines.push('N processes on 127.0.0.1, each holding a float32 buffer of the size. Squall: one all-reduce = one iteration of the parameter manager ' +
      `(engine/cluster ParameterManager: reduce-scatter of ${ar.chunkElements ?? 65536}-value chunks to the slice owners, ` + 'owner sum in rank order with the finiteness check and status round, ' +
      'the owner\'s update (here a copy: weights := reduced gradient), all-gather of the owned slices) over the TCP mesh' +
      `${rtc ? ` and over WebRTC data channels (${rtcImpl}; signalling relayed by the parent process)` : ''}, f32 on the wire. ` +
      'gloo: `torch_allreduce_bench.py allreduce` (torch.distributed all_reduce SUM). Both: 2 warm-up all-reduces, then R reps (30 / 10 / 5 / 3 for 1 / 16 / 64 / 256 MiB) ' +
      'each after a barrier (Squall: a Control-frame all-to-all; gloo: dist.barrier); time of a rep = max over ranks (Squall: each rank reports its times to the parent), ' +
      'figure = median over reps; busbw = 2(N-1)/N x bytes / time, shown in MB/s (10^6 bytes/s). ' +
      `Squall's result is checked once per size on every rank, every element (= sum over ranks). TCP and gloo ran ${ar.rounds} round(s) each, alternating; the table gives the median over rounds` +
      `${rtc ? '; WebRTC ran once with 1 warm-up and 10 / 3 / 3 / 2 reps' : ''}.`, '');
    const head = ['N', 'MiB', 'ceiling ms', 'gloo ms', 'Squall TCP ms', 'ceiling busbw MB/s', 'gloo busbw MB/s', 'Squall TCP busbw MB/s', 'gloo / ceiling', 'TCP / ceiling', 'TCP / gloo'];
    if (rtc) head.push('Squall WebRTC busbw MB/s', 'WebRTC / gloo');
    const mbs = (v: number | undefined): number | null => (v === undefined ? null : v * 1000);
    const table: Cell[][] = [];
    const tgt: Record<string, unknown>[] = [];
    for (const w of ws) {
      for (const mib of ms) {
        const g = arFigure(ar.rows, (s) => s === 'gloo', 'tcp', w, mib, 'busbwGBs');
        const t = arFigure(ar.rows, isSquall, 'tcp', w, mib, 'busbwGBs');
        const gt = arFigure(ar.rows, (s) => s === 'gloo', 'tcp', w, mib, 'medianSeconds');
        const tt = arFigure(ar.rows, isSquall, 'tcp', w, mib, 'medianSeconds');
        const c = arFigure(ar.rows, (s) => s === 'ceiling', 'tcp', w, mib, 'busbwGBs');
        const ct = arFigure(ar.rows, (s) => s === 'ceiling', 'tcp', w, mib, 'medianSeconds');
        const ms = (v: number | undefined): number | null => (v !== undefined ? v * 1e3 : null);
        const row: Cell[] = [w, mib, ms(ct), ms(gt), ms(tt), mbs(c), mbs(g), mbs(t), x(ratio(g, c)), x(ratio(t, c)), x(ratio(t, g))];
        if (rtc) {
          const r = arFigure(ar.rows, isSquall, 'webrtc', w, mib, 'busbwGBs');
          row.push(mbs(r), x(ratio(r, g)));
        }
        table.push(row);
        if (mib === 64 || mib === 256) {
          const rt = ratio(t, g);
          tgt.push({ world: w, mib, squallBusbwGBs: t ?? null, glooBusbwGBs: g ?? null, ceilingBusbwGBs: c ?? null, ratio: rt, glooOfCeiling: ratio(g, c), met: rt === null ? null : rt >= 1.5 });
        }
      }
    }
    lines.push(markdownTable(head, table), '');
    if (!ar.webrtc.available) lines.push(`WebRTC: not available (${ar.webrtc.reason}).`, '');
    const bad = ar.rows.filter((r) => r.correct === false);
    const errs = ar.rows.filter((r) => r.error);
    lines.push(`Correctness: ${ar.rows.filter((r) => isSquall(r.impl) && r.correct).length} Squall measurements checked, ${bad.length} wrong.`, '');
    if (errs.length) lines.push('Errors:', ...errs.map((r) => `- ${r.impl} ${r.transport} N=${r.world} ${r.mib} MiB: ${r.error}`), '');
    const met = tgt.length ? tgt.every((t) => t.met === true) : null;
    targets.allreduce = { target: 'TCP busbw >= 1.5x gloo at 64 and 256 MiB', met, cases: tgt };
    lines.push(`Target "TCP all-reduce bus bandwidth >= 1.5x gloo at 64 and 256 MiB": **${verdict(met)}** (${tgt.map((t) => `N=${t.world} ${t.mib} MiB ${x(t.ratio as number | null) ?? '—'}`).join(', ')}).`, '');
    lines.push('The ceiling (`bench/cluster/tcp_ceiling.py`, run in the same rounds) moves exactly the bytes of a reduce-scatter + all-gather between the same processes over ' +
      'plain blocking sockets with no checksum, no summation and no copies of its own: the kernel\'s loopback copy alone. gloo runs at ' +
      `${tgt.map((t) => `${x(t.glooOfCeiling as number | null) ?? '—'}`).join(', ')} of it at 64/256 MiB, so "1.5x gloo" would need ` +
      'an all-reduce faster than moving its bytes through the kernel: not reachable over loopback TCP on this machine by any implementation.', '');
  }

  const sc = res.schedule;
  if (sc) {
    lines.push('## Scheduling overhead per iteration', '', `Section state: ${JSON.stringify(sc.state)}.`, '');
    lines.push('Method (simulated workers): the real Driver (engine/cluster: LaunchScheduler plan, pre-scheduling, JSON Control frames Job / Ready / Launch / Done / Bye) on a real ' +
      'in-process mesh of N + 1 ranks (transport/inproc); the N workers are minimal implementations of the worker side of the same control protocol whose iteration is a tiny ' +
      'fixed compute step (forward and backward of a 32x32 linear layer on one sample in plain JS) and no all-reduce, so everything that is not compute is scheduling ' +
      '(the analogue of Drizzle\'s single-stage micro-benchmark). wall = the driver\'s training time (first launch to last completion); compute = sum over the workers of their ' +
      'measured compute (all ranks share this one thread, so compute is serialised); overhead = (wall - compute) / iterations, ' +
      `median of ${sc.repeats} run(s) of ${sc.iterations} iterations after a warm-up run. ` +
      'On one thread this is the CPU cost of the control protocol (driver and workers together); the network latency that pre-scheduling hides in a real cluster does not appear, ' +
      'which can only favour bsp. The last two columns give the wall time per iteration (compute of all N workers included).', '');
    const sim = sc.rows.filter((r) => r.method === 'simulated');
    const Ns = [...new Set(sim.map((r) => r.workers))].sort((a, b) => a - b);
    const modes = ['group G=1', 'group G=10', 'group G=100', 'bsp'];
    const get = (N: number, m: string, rows = sim): ScheduleRow | undefined => rows.find((r) => r.workers === N && r.mode === m);
    const us = (v: number | undefined): number | null => (v === undefined ? null : v * 1000);
    const t1: Cell[][] = Ns.map((N) => {
      const bsp = get(N, 'bsp')?.overheadMsPerIteration;
      return [N, ...modes.map((m) => us(get(N, m)?.overheadMsPerIteration)),
        x(ratio(bsp, get(N, 'group G=100')?.overheadMsPerIteration)), ...['group G=100', 'bsp'].map((m) => us(get(N, m)?.wallMsPerIteration))];
    });
    lines.push('Overhead per iteration, microseconds:', '');
    lines.push(markdownTable(['workers', 'G=1 µs/it', 'G=10 µs/it', 'G=100 µs/it', 'bsp µs/it', 'bsp / G=100', 'wall G=100 µs/it', 'wall bsp µs/it'], t1), '');
    const msgs: Cell[][] = Ns.map((N) => [N, ...modes.map((m) => { const r = get(N, m); return r?.launchMessages !== undefined ? `${r.launchMessages} / ${r.doneMessages}` : null; })]);
    lines.push(`Launch / Done messages per run of ${sc.iterations} iterations (all workers):`, '', markdownTable(['workers', ...modes], msgs), '');
    const real = sc.rows.filter((r) => r.method === 'lenet5');
    if (real.length) {
      lines.push('Real workers (runInProcessJob: LeNet-5 replicas on the native backend, 1 image per worker, the parameter manager\'s all-reduce on the in-process mesh): ' +
        `${sc.realIterations} iterations per run; ` +
        'time a worker waits for its next launch, per iteration, and wall time per iteration (dominated by the in-process all-reduce of N replicas on one thread; ' +
        'wall - compute is not meaningful here because the replicas interleave on one thread).', '');
      const rN = [...new Set(real.map((r) => r.workers))].sort((a, b) => a - b);
      const rm = ['group G=10', 'group G=100', 'bsp'];
      lines.push(markdownTable(['workers', ...rm.map((m) => `wait ${m} µs/it`), ...rm.map((m) => `wall ${m} ms/it`)],
        rN.map((N) => [N, ...rm.map((m) => us(get(N, m, real)?.waitMsPerIteration)), ...rm.map((m) => get(N, m, real)?.wallMsPerIteration ?? null)])), '');
    }
    const errs = sc.rows.filter((r) => r.error);
    if (errs.length) lines.push('Errors:', ...errs.map((r) => `- ${r.method} N=${r.workers} ${r.mode}: ${r.error}`), '');
    const g = get(32, 'group G=100')?.overheadMsPerIteration;
    const b = get(32, 'bsp')?.overheadMsPerIteration;
    const met = g !== undefined && b !== undefined ? g <= b / 10 : null;
    targets.schedule = { target: 'at 32 workers, G=100 overhead per iteration <= 1/10 of bsp', met, groupMs: g ?? null, bspMs: b ?? null, ratio: ratio(b, g) };
    lines.push(`Target "at 32 workers group scheduling (G=100) overhead per iteration <= 1/10 of bsp's": **${verdict(met)}** ` +
      `(${g !== undefined ? (g * 1000).toFixed(1) : '—'} vs ${b !== undefined ? (b * 1000).toFixed(1) : '—'} µs/iteration, bsp / G=100 = ${x(ratio(b, g)) ?? '—'}).`, '');
  }

  const le = res.lenet;
  if (le) {
    lines.push('## LeNet-5, 2 workers x 1 thread, batch 64 each', '', `Section state: ${JSON.stringify(le.state)}.`, '');
    lines.push('Squall: a cluster job as `squall train --workers native:2 --threads 1` runs it (this process is the driver: rendezvous on 127.0.0.1 and the real Driver; ' +
      'two forked worker processes run runWorker over the TCP mesh), synthetic data, global batch 128, SGD lr 0.05 momentum 0.9, group scheduling G=10, f32 wire; ' +
      `20 warm-up iterations then ${le.iterations}; img/s = 128 / median over the timed launches of (launch time / 10), launch time measured at the driver between ` +
      'consecutive completions. PyTorch: `torch_allreduce_bench.py ddp --world 2 --batch 64` (DistributedDataParallel, gloo, 1 thread per rank, 20 warm-up iterations, the same number timed, ' +
      'img/s = 128 / median iteration time). "wall" = all iterations including warm-up over the whole run, for both. ' +
      `${le.squall.length} round(s), Squall and DDP alternating; the table shows each round and the median.`, '');
    const rows: Cell[][] = [];
    le.squall.forEach((s, i) => {
      const d = le.ddp[i];
      rows.push([`round ${i + 1}`, s.imgPerSec ?? null, (d?.img_s_total as number) ?? null, x(ratio(s.imgPerSec, d?.img_s_total as number)),
        s.wallImgPerSec ?? null, (d?.wall_img_s as number) ?? null, x(ratio(s.wallImgPerSec, d?.wall_img_s as number))]);
    });
    const sq = le.squall.filter((s) => s.imgPerSec !== undefined);
    const dd = le.ddp.filter((d) => d.img_s_total !== undefined);
    const sMed = sq.length ? median(sq.map((s) => s.imgPerSec!)) : undefined;
    const dMed = dd.length ? median(dd.map((d) => d.img_s_total as number)) : undefined;
    const sWall = sq.length ? median(sq.map((s) => s.wallImgPerSec!)) : undefined;
    const dWall = dd.length ? median(dd.map((d) => d.wall_img_s as number)) : undefined;
    rows.push(['median', sMed ?? null, dMed ?? null, x(ratio(sMed, dMed)), sWall ?? null, dWall ?? null, x(ratio(sWall, dWall))]);
    lines.push(markdownTable(['', 'Squall img/s', 'DDP img/s', 'Squall / DDP', 'Squall wall img/s', 'DDP wall img/s', 'wall ratio'], rows), '');
    if (le.single) {
      const one = le.single.img_s as number | undefined;
      lines.push(`Reference: PyTorch in one process, 1 thread, batch 64 (one rank's compute, no communication): ${le.single.error ?? `${one!.toFixed(0)} img/s`}` +
        `${one !== undefined ? `; twice that, ${(2 * one).toFixed(0)} img/s, is the ideal for 2 workers (Squall ${x(ratio(sMed, 2 * one)) ?? '—'} of it, DDP ${x(ratio(dMed, 2 * one)) ?? '—'})` : ''}. ` +
        '(1 thread rather than the 2-thread setting of DESIGN.md §8: with other load on the 2 cores, 2 OpenMP threads were erratic.)', '');
    }
    const s0 = sq[0];
    if (s0?.bytesSentPerWorkerPerIteration !== undefined) {
      lines.push(`Bytes one Squall worker sent per iteration: ${s0.bytesSentPerWorkerPerIteration.toFixed(0)} on the wire (parameter manager payload 2(N-1)/N x P x 4 = ${s0.expectedPayloadBytes!.toFixed(0)}, P = ${s0.parameters}).`, '');
    }
    const errs = [...le.squall.filter((s) => s.error).map((s) => `squall: ${s.error}`), ...le.ddp.filter((d) => d.error).map((d) => `DDP: ${d.error}`)];
    if (errs.length) lines.push('Errors:', ...errs.map((e) => `- ${e}`), '');
    const r = ratio(sMed, dMed);
    const met = r === null ? null : r >= 1;
    targets.lenet = { target: 'LeNet-5 2-worker throughput >= PyTorch DDP', met, squallImgPerSec: sMed ?? null, ddpImgPerSec: dMed ?? null, ratio: r, wallRatio: ratio(sWall, dWall) };
    lines.push(`Target "LeNet-5 2-worker throughput >= PyTorch DDP's": **${verdict(met)}** (${x(r) ?? '—'} median-iteration basis, ${x(ratio(sWall, dWall)) ?? '—'} whole-run wall basis).`, '');
  }

  const vg = res.vgg;
  if (vg) {
    lines.push('## VGG-16 (32x32), 2 workers, global batch 64', '', `Section state: ${JSON.stringify(vg.state)}.`, '');
    lines.push('Same launch as LeNet-5: 2 worker processes x 1 thread, 32 images each, synthetic data, group scheduling G=2, ' +
      'gradients and weights both f32 or both bf16 on the wire (bf16: float32 master weights on the owners); 2 warm-up iterations, then the median over the timed launches. ' +
      'Bytes = what one worker\'s transport sent per iteration (frame headers and control messages included).' +
      `${vg.ddp ? ' PyTorch DDP (gloo, 1 thread per rank, 32 per rank, f32, 3 warm-up and 5 timed iterations) for reference.' : ''}`, '');
    // Rounds alternate f32, bf16, f32, bf16, ...: one line per run, then the median per wire.
    const wires = ['f32', 'bf16'] as const;
    const nRounds = Math.max(...wires.map((w) => vg.squall.filter((s) => s.wire === w).length));
    const rows: Cell[][] = [];
    const mb = (v: number | undefined): number | null => (v === undefined ? null : v / 1e6);
    vg.squall.forEach((s, i) => {
      rows.push([`Squall ${s.wire}${nRounds > 1 ? ` (round ${Math.floor(i / 2) + 1})` : ''}`, s.imgPerSec ?? null, s.medianIterationSeconds ?? null,
        mb(s.bytesSentPerWorkerPerIteration), mb(s.expectedPayloadBytes), s.iterations - s.warmupIterations]);
    });
    const med = (w: string, k: 'imgPerSec' | 'medianIterationSeconds' | 'bytesSentPerWorkerPerIteration'): number | undefined => {
      const v = vg.squall.filter((s) => s.wire === w && s[k] !== undefined).map((s) => s[k]!);
      return v.length ? median(v) : undefined;
    };
    if (nRounds > 1) {
      for (const w of wires) rows.push([`Squall ${w}, median`, med(w, 'imgPerSec') ?? null, med(w, 'medianIterationSeconds') ?? null, mb(med(w, 'bytesSentPerWorkerPerIteration')), null, null]);
    }
    if (vg.ddp) {
      rows.push(['PyTorch DDP f32', (vg.ddp.img_s_total as number) ?? null, (vg.ddp.median_s as number) ?? null,
        null, null, (vg.ddp.iters as number) ?? null]);
    }
    lines.push(markdownTable(['', 'img/s', 's/iteration', 'MB sent per worker per iteration', 'payload 2(N-1)/N x P x bytes, MB', 'timed iterations'], rows), '');
    const fi = med('f32', 'imgPerSec');
    const hi = med('bf16', 'imgPerSec');
    if (fi !== undefined && hi !== undefined) {
      lines.push(`bf16 / f32: ${x(ratio(hi, fi)) ?? '—'} img/s, ${x(ratio(med('bf16', 'bytesSentPerWorkerPerIteration'), med('f32', 'bytesSentPerWorkerPerIteration'))) ?? '—'} bytes` +
        `${vg.ddp?.img_s_total !== undefined ? `; Squall f32 / PyTorch DDP: ${x(ratio(fi, vg.ddp.img_s_total as number)) ?? '—'}` : ''}.`, '');
    }
    const errs = [...vg.squall.filter((s) => s.error).map((s) => `squall ${s.wire}: ${s.error}`), ...(vg.ddp?.error ? [`DDP: ${vg.ddp.error}`] : [])];
    if (errs.length) lines.push('Errors:', ...errs.map((e) => `- ${e}`), '');
  }

  const ag = res.aggregate;
  if (ag) {
    lines.push(`## Aggregation modes: ${ag.model}, global batch 8 per worker`, '', `Section state: ${JSON.stringify(ag.state)}.`, '');
    lines.push('The same job (worker processes x 1 thread, synthetic data, group scheduling G=2, f32 on the wire, 2 warm-up iterations, median over the timed launches) ' +
      'with the gradients combined three ways: `allreduce` (the parameter manager, peer to peer: each worker sends 2(N-1)/N x P values), ' +
      '`driver` (Spark\'s reduce: every worker sends P values to the driver, which updates and sends P values back to every worker) and ' +
      '`tree` (treeAggregate: partial sums up a binary tree of workers, the total to the driver, the weights back to every worker). ' +
      'Rounds alternate the modes; the table gives the median over rounds. MB = what one worker\'s transport sent per iteration, averaged over the workers.', '');
    const worlds = [...new Set(ag.rows.map((r) => r.workers))].sort();
    const med = (w: number, a: string, k: 'imgPerSec' | 'bytesSentPerWorkerPerIteration'): number | undefined => {
      const v = ag.rows.filter((r) => r.workers === w && r.aggregate === a && r[k] !== undefined).map((r) => r[k]!);
      return v.length ? median(v) : undefined;
    };
    const rows: Cell[][] = [];
    for (const w of worlds) {
      const base = med(w, 'allreduce', 'imgPerSec');
      for (const a of ['allreduce', 'driver', 'tree']) {
        const v = med(w, a, 'imgPerSec');
        const b = med(w, a, 'bytesSentPerWorkerPerIteration');
        rows.push([w, a, v ?? null, b === undefined ? null : b / 1e6, x(ratio(base, v))]);
      }
    }
    lines.push(markdownTable(['N', 'mode', 'img/s', 'MB sent per worker per iteration', 'allreduce / mode'], rows), '');
    const errs = ag.rows.filter((r) => r.error).map((r) => `${r.aggregate} N=${r.workers}: ${r.error}`);
    if (errs.length) lines.push('Errors:', ...errs.map((e) => `- ${e}`), '');
  }

  lines.push('## Targets', '');
  const tl = (k: string, name: string): void => {
    const t = targets[k] as { met: boolean | null } | undefined;
    lines.push(`- ${name}: ${t ? `**${verdict(t.met)}**` : 'not measured in this run'}`);
  };
  tl('allreduce', 'TCP all-reduce bus bandwidth >= 1.5x gloo at 64 and 256 MiB');
  tl('schedule', 'at 32 workers, group scheduling (G=100) overhead per iteration <= 1/10 of bsp\'s');
  tl('lenet', 'LeNet-5 2-worker throughput >= PyTorch DDP\'s');
  return { md: lines.join('\n'), targets };
}

// ---- main -----------------------------------------------------------------------------------

const t0 = performance.now();
const jsonPath = join(resultsDir, `${out}.json`);
let res: Results = { machine: machineRecord(), command: `node dist/bench/cluster/run.js ${argv.join(' ')}`.trim() };
if (sections.length < allSections.length && existsSync(jsonPath)) {
  // Keep the sections not run now.
  try {
    const old = JSON.parse(readFileSync(jsonPath, 'utf8')) as Results;
    res = { ...old, ...res, command: `${old.command} ; ${res.command}` };
  } catch {
    // unreadable: start afresh
  }
}
if (sections.includes('allreduce')) res.allreduce = await runAllreduce();
if (sections.includes('schedule')) res.schedule = await runSchedule();
if (sections.includes('lenet')) res.lenet = await runLenet();
if (sections.includes('vgg')) res.vgg = await runVgg();
if (sections.includes('aggregate')) res.aggregate = await runAggregate();
const { md, targets } = render(res);
res.targets = targets;
writeResults(out, res, md);
log(`bench/cluster: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
for (const [k, v] of Object.entries(targets)) log(`target ${k}: ${JSON.stringify(v)}`);
