// bench/train: training and inference images/s of the four benchmark models, Squall native
// and wasm at 1 and 2 threads, beside PyTorch CPU in the same run.
//
// Paired measurement: for one model, thread count and mode, PyTorch (torch_stepper.py: the
// step of ../shared/peers/torch_train_bench.py) and each Squall backend (squall_stepper.js)
// are started once, warmed up, and then take turns on the machine: in every round each runs
// about a second of steps, in a rotating order. The ratio to PyTorch is taken per round, so
// a slow minute of this shared machine (another tenant on the same core halves the speed for
// seconds at a time) falls on both sides of it; images/s are the medians over all steps.
//   node dist/bench/train/run.js [--models lenet5,vgg_cifar] [--threads 1,2] [--backends native,wasm] [--budget S] [--out NAME]
// --budget: seconds of timed steps per implementation and mode (default 20).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MODELS } from '../../engine/models/index.js';
import { machineRecord, markdownTable, median, repoRoot, writeResults, type Cell } from '../common.js';
import { Stepper } from './stepper.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
}
const models = arg('models', 'lenet5,vgg_cifar,inception_v1,vgg16').split(',');
const threadCounts = arg('threads', '1,2').split(',').map(Number);
const backends = arg('backends', 'native,wasm').split(',');
const budget = Number(arg('budget', '20'));
const outName = arg('out', 'train');
const peersDir = join(repoRoot, '..', 'shared', 'peers');
const python = '/usr/bin/python3';
/** Seconds of steps each implementation runs per turn (at least one step). */
const turnSeconds = 1;
const minRounds = 3;
const maxRounds = 40;
const modes = ['train', 'infer'] as const;
type Mode = typeof modes[number];

const PYTORCH = 'pytorch';
/** The wasm backend runs its relaxed-SIMD build (as the squall command does on Node 20). */
const implName = (backend: string): string => `squall ${backend}`;

interface Row {
  impl: string; model: string; threads: number; mode: Mode;
  imgPerSec?: number; steps?: number; rounds?: number;
  /** Median over rounds of PyTorch's round median over this implementation's (Squall rows only). */
  pairedRatio?: number;
  error?: string; detail?: Record<string, unknown>;
}

function startSteppers(model: string, threads: number, mode: Mode): Stepper[] {
  const steppers: Stepper[] = [];
  const torchScript = join(repoRoot, 'bench', 'train', 'torch_stepper.py');
  if (existsSync(join(peersDir, 'models.py'))) {
    steppers.push(new Stepper(PYTORCH, python, [torchScript, '--model', model, '--threads', String(threads), '--mode', mode], { SQUALL_PEERS_DIR: peersDir }));
  }
  for (const backend of backends) {
    steppers.push(new Stepper(implName(backend), process.execPath,
      [join(repoRoot, 'dist', 'bench', 'train', 'squall_stepper.js'), JSON.stringify({ model, backend, threads, mode })],
      backend === 'wasm' ? { SQUALL_WASM_SIMD: 'relaxed' } : {}));
  }
  return steppers;
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function measure(model: string, threads: number, mode: Mode): Promise<Row[]> {
  const all = startSteppers(model, threads, mode);
  const failed = new Map<string, string>();
  // Warm-up one at a time, so no warm-up competes with another.
  for (const s of all) {
    try {
      await s.ready();
    } catch (err) {
      failed.set(s.impl, (err as Error).message);
    }
  }
  const live = all.filter((s) => !failed.has(s.impl));
  const times = new Map<string, number[]>(live.map((s) => [s.impl, []]));
  const roundMedians = new Map<string, number[]>(live.map((s) => [s.impl, []]));
  const perTurn = new Map<string, number>();
  try {
    for (const s of live) {
      const [t] = await s.steps(1);
      perTurn.set(s.impl, Math.max(1, Math.round(turnSeconds / t!)));
    }
    const start = performance.now();
    for (let round = 0; round < maxRounds && (round < minRounds || performance.now() - start < budget * live.length * 1000); round++) {
      for (let j = 0; j < live.length; j++) {
        const s = live[(j + round) % live.length]!;
        // A moment between turns: the previous process's OpenMP threads spin briefly after
        // their last parallel region and should not run into the next one's turn.
        await pause(30);
        const ts = await s.steps(perTurn.get(s.impl)!);
        times.get(s.impl)!.push(...ts);
        roundMedians.get(s.impl)!.push(median(ts));
      }
    }
  } catch (err) {
    for (const s of live) if (!failed.has(s.impl)) failed.set(s.impl, (err as Error).message);
  } finally {
    for (const s of all) s.close();
  }
  const peer = roundMedians.get(PYTORCH);
  return all.map((s): Row => {
    const base = { impl: s.impl, model, threads, mode };
    const error = failed.get(s.impl);
    if (error) return { ...base, error };
    const ts = times.get(s.impl)!;
    const rm = roundMedians.get(s.impl)!;
    const batch = s.info.batch as number;
    const pairedRatio = peer && s.impl !== PYTORCH ? median(rm.map((t, i) => peer[i]! / t)) : undefined;
    return { ...base, imgPerSec: batch / median(ts), steps: ts.length, rounds: rm.length, ...(pairedRatio !== undefined ? { pairedRatio } : {}), detail: s.info };
  });
}

const rows: Row[] = [];
for (const model of models) {
  if (!MODELS[model]) throw new Error(`unknown model ${model}`);
  for (const threads of threadCounts) {
    for (const mode of modes) {
      const found = await measure(model, threads, mode);
      for (const f of found) {
        console.log(`${f.model.padEnd(13)} ${f.mode.padEnd(5)} ${f.threads}t ${f.impl.padEnd(14)} ` +
          (f.imgPerSec !== undefined ? `${f.imgPerSec.toFixed(1)} img/s` : `error: ${f.error}`) +
          (f.pairedRatio !== undefined ? `  ${f.pairedRatio.toFixed(2)}x PyTorch (paired, ${f.rounds} rounds)` : ''));
      }
      rows.push(...found);
    }
  }
}

const get = (impl: string, model: string, threads: number, mode: string): Row | undefined =>
  rows.find((r) => r.impl === impl && r.model === model && r.threads === threads && r.mode === mode);
const fmtRatio = (x?: number): string | null => (x !== undefined ? `${x.toFixed(2)}x` : null);
const table: Cell[][] = [];
for (const model of models) {
  for (const mode of modes) {
    for (const threads of threadCounts) {
      const t = get(PYTORCH, model, threads, mode);
      const n = get(implName('native'), model, threads, mode);
      const w = get(implName('wasm'), model, threads, mode);
      table.push([model, mode, threads, MODELS[model]!.batch, t?.imgPerSec ?? null, n?.imgPerSec ?? null, w?.imgPerSec ?? null,
        fmtRatio(n?.pairedRatio), fmtRatio(w?.pairedRatio)]);
    }
  }
}
const errors = rows.filter((r) => r.error).map((r) => `- ${r.impl} ${r.model} ${r.mode} ${r.threads}t: ${r.error}`);
const md = [
  '# bench/train', '',
  `Command: \`node dist/bench/train/run.js ${process.argv.slice(2).join(' ')}\`. ${JSON.stringify(machineRecord())}`, '',
  'Images/s, median over all timed steps after warm-up (synthetic data; train = forward + NLL + backward + SGD momentum; ' +
    'infer = evaluation-mode forward). PyTorch 1.13 CPU (Debian python3-torch) runs the step of ' +
    '../shared/peers/torch_train_bench.py (bench/train/torch_stepper.py). For each model, thread count and mode the ' +
    'implementations are started once and take turns, about a second of steps each per round in a rotating order; ' +
    'the ratios are paired: PyTorch\'s median step time over the implementation\'s within each round, then the median over ' +
    'rounds. The wasm backend runs its relaxed-SIMD build (SQUALL_WASM_SIMD=relaxed, as the squall command does).', '',
  markdownTable(['model', 'mode', 'threads', 'batch', 'PyTorch', 'squall native', 'squall wasm', 'native / PyTorch', 'wasm / PyTorch'], table),
  ...(errors.length ? ['', 'Errors:', ...errors] : []),
].join('\n');
writeResults(outName, { machine: machineRecord(), rows }, md);
