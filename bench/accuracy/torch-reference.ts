// The PyTorch side of the controlled comparison: runs bench/accuracy/torch_controlled.py
// (fashion_lenet_train.py's run for one seed, with its random draws written out) and reads
// back its initial weights, epoch permutations, per-iteration losses, first-iteration
// gradients and step, final weights and per-epoch test accuracy. With `normalisation`, the
// images are normalised as Squall does ((x - mean) / std in float64, one rounding) instead of
// with numpy's float32 statistics and arithmetic.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../common.js';

export const TORCH_PYTHON = process.env.SQUALL_TORCH_PYTHON ?? '/usr/bin/python3';
export const PEERS_DIR = process.env.SQUALL_PEERS_DIR ?? join(repoRoot, '..', 'shared', 'peers');
const SCRIPT = join(repoRoot, 'bench', 'accuracy', 'torch_controlled.py');

export interface TorchRun {
  torch: string;
  seed: number;
  /** numpy's float32 xtr.mean() and xtr.std() of the [0, 1] training pixels. */
  mean: number;
  std: number;
  paramNames: string[];
  paramShapes: number[][];
  init: Float32Array;
  /** One permutation of the training indices per epoch. */
  perms: Int32Array[];
  losses: Float64Array;
  grad1: Float32Array;
  step1: Float32Array;
  final: Float32Array;
  accuracy: number[];
  seconds: number;
}

interface Meta {
  torch: string;
  train: number;
  iterations: number;
  mean: number;
  std: number;
  paramNames: string[];
  paramShapes: number[][];
  hist: { epoch: number; test_acc: number }[];
  seconds: number;
}

/** Raw little-endian file as a typed array (the machines this runs on are little-endian). */
function f32(path: string): Float32Array {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
function i32(path: string): Int32Array {
  const b = readFileSync(path);
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
function f64(path: string): Float64Array {
  const b = readFileSync(path);
  return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function torchReference(seed: number, epochs: number, threads: number, normalisation?: { mean: number; std: number }): TorchRun {
  for (const [what, path] of [['interpreter', TORCH_PYTHON], ['models.py', join(PEERS_DIR, 'models.py')], ['fashion_lenet_train.py', join(PEERS_DIR, 'fashion_lenet_train.py')]]) {
    if (!existsSync(path!)) throw new Error(`${what} not found at ${path} (set SQUALL_TORCH_PYTHON / SQUALL_PEERS_DIR)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'squall-acc-controlled-'));
  try {
    const args = [SCRIPT, '--peers', PEERS_DIR, '--seed', String(seed), '--epochs', String(epochs), '--threads', String(threads), '--out', dir];
    // String(x) is the shortest decimal that reads back as the same float64 (Python's float() included).
    if (normalisation) args.push('--mean', String(normalisation.mean), '--std', String(normalisation.std));
    const r = spawnSync(TORCH_PYTHON, args, { encoding: 'utf8', maxBuffer: 16 << 20 });
    if (r.status !== 0) throw new Error(`${TORCH_PYTHON} ${args.join(' ')} exited with ${r.status ?? r.signal}:\n${r.stderr}`);
    const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Meta;
    const perm = i32(join(dir, 'perm.i32'));
    if (perm.length !== epochs * meta.train) throw new Error(`perm.i32 holds ${perm.length} indices, expected ${epochs} x ${meta.train}`);
    const losses = f64(join(dir, 'loss.f64'));
    if (losses.length !== meta.iterations) throw new Error(`loss.f64 holds ${losses.length} losses, meta.json says ${meta.iterations} iterations`);
    return {
      torch: meta.torch, seed, mean: meta.mean, std: meta.std, paramNames: meta.paramNames, paramShapes: meta.paramShapes,
      init: f32(join(dir, 'init.f32')),
      perms: Array.from({ length: epochs }, (_, e) => perm.slice(e * meta.train, (e + 1) * meta.train)),
      losses, grad1: f32(join(dir, 'grad1.f32')), step1: f32(join(dir, 'step1.f32')), final: f32(join(dir, 'final.f32')),
      accuracy: meta.hist.map((h) => h.test_acc), seconds: meta.seconds,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
