// bench/train: training and inference images/s of the four benchmark models, Squall native
// and wasm at 1 and 2 threads, beside PyTorch CPU (../shared/peers/torch_train_bench.py)
// in the same run. Each measurement is its own process; per model and thread count the
// implementations run back to back, so they see the same machine.
//   node dist/bench/train/run.js [--models lenet5,vgg_cifar] [--threads 1,2] [--backends native,wasm] [--budget S]
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MODELS } from '../../engine/models/index.js';
import { machineRecord, markdownTable, repoRoot, writeResults, type Cell } from '../common.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
}
const models = arg('models', 'lenet5,vgg_cifar,inception_v1,vgg16').split(',');
const threadCounts = arg('threads', '1,2').split(',').map(Number);
const backends = arg('backends', 'native,wasm').split(',');
const budget = Number(arg('budget', '20'));
const peersDir = join(repoRoot, '..', 'shared', 'peers');
const python = '/usr/bin/python3';

interface Row { impl: string; model: string; threads: number; mode: string; imgPerSec?: number; error?: string; detail?: Record<string, unknown> }

function lastJson(stdout: string): Record<string, unknown>[] {
  return stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

function torch(model: string, threads: number): Row[] {
  const script = join(peersDir, 'torch_train_bench.py');
  if (!existsSync(script)) return ['train', 'infer'].map((mode) => ({ impl: 'pytorch', model, threads, mode, error: `${script} not found` }));
  const json = join(repoRoot, 'build', `torch-bench-${process.pid}.jsonl`);
  const r = spawnSync(python, [script, '--model', model, '--threads', String(threads), '--mode', 'both', '--budget', String(budget), '--json', json],
    { encoding: 'utf8', timeout: 30 * 60_000 });
  let lines: Record<string, unknown>[] = [];
  try {
    lines = lastJson(readFileSync(json, 'utf8'));
    rmSync(json);
  } catch {
    // fall through: reported as an error below
  }
  return ['train', 'infer'].map((mode) => {
    const l = lines.find((x) => x.mode === mode);
    return l ? { impl: 'pytorch', model, threads, mode, imgPerSec: l.img_s as number, detail: l }
      : { impl: 'pytorch', model, threads, mode, error: (r.stderr || r.error?.message || 'no result').trim().split('\n').slice(-2).join(' | ') };
  });
}

function squall(backend: string, model: string, threads: number, mode: 'train' | 'infer'): Row {
  const child = join(repoRoot, 'dist', 'bench', 'train', 'squall_child.js');
  const r = spawnSync(process.execPath, [child, JSON.stringify({ model, backend, threads, mode, budget })],
    { encoding: 'utf8', timeout: 30 * 60_000, maxBuffer: 1 << 20 });
  const l = lastJson(r.stdout ?? '')[0];
  if (!l) return { impl: `squall ${backend}`, model, threads, mode, error: (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-2).join(' | ') };
  return { impl: `squall ${backend}`, model, threads, mode, imgPerSec: l.imgPerSec as number, detail: l };
}

const rows: Row[] = [];
for (const model of models) {
  if (!MODELS[model]) throw new Error(`unknown model ${model}`);
  for (const threads of threadCounts) {
    const found = [...torch(model, threads)];
    for (const backend of backends) for (const mode of ['train', 'infer'] as const) found.push(squall(backend, model, threads, mode));
    for (const f of found) console.log(`${f.model.padEnd(13)} ${f.mode.padEnd(5)} ${f.threads}t ${f.impl.padEnd(14)} ${f.imgPerSec !== undefined ? `${f.imgPerSec.toFixed(1)} img/s` : `error: ${f.error}`}`);
    rows.push(...found);
  }
}

const get = (impl: string, model: string, threads: number, mode: string): number | undefined =>
  rows.find((r) => r.impl === impl && r.model === model && r.threads === threads && r.mode === mode)?.imgPerSec;
const ratio = (a?: number, b?: number): string | null => (a !== undefined && b !== undefined ? `${(a / b).toFixed(2)}x` : null);
const table: Cell[][] = [];
for (const model of models) {
  for (const mode of ['train', 'infer']) {
    for (const threads of threadCounts) {
      const t = get('pytorch', model, threads, mode);
      const n = get('squall native', model, threads, mode);
      const w = get('squall wasm', model, threads, mode);
      table.push([model, mode, threads, MODELS[model]!.batch, t ?? null, n ?? null, w ?? null, ratio(n, t), ratio(w, t)]);
    }
  }
}
const errors = rows.filter((r) => r.error).map((r) => `- ${r.impl} ${r.model} ${r.mode} ${r.threads}t: ${r.error}`);
const md = [
  '# bench/train', '',
  `Command: \`node dist/bench/train/run.js ${process.argv.slice(2).join(' ')}\`. ${JSON.stringify(machineRecord())}`, '',
  'Images/s, median over timed iterations after warm-up (synthetic data; train = forward + NLL + backward + SGD momentum; ' +
    'infer = evaluation-mode forward). PyTorch 1.13 CPU (Debian python3-torch) via ../shared/peers/torch_train_bench.py, run back to back with Squall.', '',
  markdownTable(['model', 'mode', 'threads', 'batch', 'PyTorch', 'squall native', 'squall wasm', 'native / PyTorch', 'wasm / PyTorch'], table),
  ...(errors.length ? ['', 'Errors:', ...errors] : []),
].join('\n');
writeResults('train', { machine: machineRecord(), rows }, md);
