// The PyTorch oracle of the engine/models tests: runs test/models/torch_oracle.py with
// Debian's Python (python3-torch) against the reference definitions in
// ../shared/peers/models.py, exchanging tensors through a temporary directory (raw float32
// little-endian in, raw float64 little-endian out, JSON headers with offsets and shapes).
//
// SQUALL_TORCH_PYTHON overrides the interpreter (default /usr/bin/python3: the python3 on
// PATH may be a shim without torch), SQUALL_PEERS_DIR the directory of models.py. When the
// interpreter, torch, numpy or models.py is missing the oracle answers { skip: reason } and
// the tests report skipped subtests with that reason; any other failure throws.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { endianness, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BatchNormalization, Concat, Dropout, Linear, LogSoftMax, ReLU, Sequential, SpatialAveragePooling, SpatialBatchNormalization,
  SpatialConvolution, SpatialCrossMapLRN, SpatialMaxPooling, Tanh, View, type Module,
} from '../../engine/nn/index.js';

/** The repository root: the nearest ancestor of this file holding package.json (works from dist/test/models too). */
function findRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    d = up;
  }
  return d;
}

export const ROOT = findRoot();
export const PYTHON = process.env.SQUALL_TORCH_PYTHON ?? '/usr/bin/python3';
export const PEERS = process.env.SQUALL_PEERS_DIR ?? join(ROOT, '..', 'shared', 'peers');
export const SCRIPT = join(ROOT, 'test', 'models', 'torch_oracle.py');

export type OracleAnswer = { skip: string; stdout?: undefined } | { skip?: undefined; stdout: string };

/** Runs torch_oracle.py with the arguments; { skip } when torch / numpy / models.py is not there. */
export function runOracle(args: string[], timeoutMs = 120_000): OracleAnswer {
  if (!existsSync(PYTHON)) return { skip: `no ${PYTHON} (set SQUALL_TORCH_PYTHON to a Python with torch)` };
  if (!existsSync(join(PEERS, 'models.py'))) return { skip: `no models.py in ${PEERS} (set SQUALL_PEERS_DIR)` };
  const r = spawnSync(PYTHON, [SCRIPT, '--peers', PEERS, ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${PYTHON} ${SCRIPT} ${args.join(' ')}: ${r.error.message}`);
  if (r.status === 3) return { skip: r.stderr.trim() || `${PYTHON} cannot import torch` };
  if (r.status !== 0) throw new Error(`${PYTHON} ${SCRIPT} ${args.join(' ')} exited with ${r.status ?? r.signal}:\n${r.stderr}`);
  return { stdout: r.stdout };
}

// ---------------------------------------------------------------------------------------
// Jobs of `torch_oracle.py run DIR`

export interface Span {
  offset: number;
  shape: number[];
}

export interface Task {
  name: string;
  model: 'lenet5' | 'vgg_cifar' | 'inception_block' | 'inception_stem';
  args?: number[];
  params: Span[];
  buffers?: Span[];
  input: Span;
  mode: 'eval' | 'train_nll';
  target?: number[];
  layers?: boolean;
}

export interface TaskResult {
  error?: string;
  output: Float64Array;
  outputShape: number[];
  layers: { data: Float64Array; shape: number[] }[];
  loss?: number;
  grads?: Float64Array;
  gradInput?: Float64Array;
}

/** Collects the float32 inputs of every task into one file. */
export class Job {
  readonly tasks: Task[] = [];
  private readonly chunks: Float32Array[] = [];
  private length = 0;

  /** Appends a copy of `data` to the input file; returns its span. */
  add(data: Float32Array, shape: readonly number[]): Span {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new Error(`Job.add: ${data.length} values for shape [${shape.join(', ')}]`);
    const span = { offset: this.length, shape: [...shape] };
    this.chunks.push(data.slice());
    this.length += data.length;
    return span;
  }

  /** Runs every task in one Python process; { skip } when the oracle is unavailable. */
  run(timeoutMs = 120_000): { skip: string } | { results: Map<string, TaskResult>; torch: string } {
    const dir = mkdtempSync(join(tmpdir(), 'squall-torch-oracle-'));
    try {
      const all = new Float32Array(this.length);
      let off = 0;
      for (const c of this.chunks) {
        all.set(c, off);
        off += c.length;
      }
      writeFileSync(join(dir, 'in.f32'), littleEndian(all));
      writeFileSync(join(dir, 'job.json'), JSON.stringify({ tasks: this.tasks }));
      const r = runOracle(['run', dir], timeoutMs);
      if (r.skip !== undefined) return { skip: r.skip };
      const head = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as { torch: string; results: Record<string, RawResult> };
      const raw = readFileSync(join(dir, 'out.f64'));
      const out = new Float64Array(raw.length / 8);
      if (endianness() === 'LE') new Uint8Array(out.buffer).set(raw);
      else for (let i = 0; i < out.length; i++) out[i] = raw.readDoubleLE(i * 8);
      const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);
      const slice = (offset: number, n: number): Float64Array => out.slice(offset, offset + n);
      const results = new Map<string, TaskResult>();
      for (const task of this.tasks) {
        const r = head.results[task.name];
        if (!r) throw new Error(`torch_oracle.py gave no result for ${task.name}`);
        if (r.error) {
          results.set(task.name, { error: r.error, output: new Float64Array(0), outputShape: [], layers: [] });
          continue;
        }
        results.set(task.name, {
          output: slice(r.output!.offset, size(r.output!.shape)),
          outputShape: r.output!.shape,
          layers: (r.layers ?? []).map((l) => ({ data: slice(l.offset, size(l.shape)), shape: l.shape })),
          ...(r.loss !== undefined ? { loss: r.loss } : {}),
          ...(r.grads ? { grads: slice(r.grads.offset, r.grads.size) } : {}),
          ...(r.gradInput ? { gradInput: slice(r.gradInput.offset, size(r.gradInput.shape)) } : {}),
        });
      }
      return { results, torch: head.torch };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

interface RawResult {
  error?: string;
  output?: Span;
  layers?: Span[];
  loss?: number;
  grads?: { offset: number; size: number };
  gradInput?: Span;
}

function littleEndian(a: Float32Array): Buffer {
  if (endianness() === 'LE') return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const b = Buffer.alloc(a.length * 4);
  for (let i = 0; i < a.length; i++) b.writeFloatLE(a[i]!, i * 4);
  return b;
}

// ---------------------------------------------------------------------------------------
// Canonical layouts (torch_oracle.py's layout())

export type Layout = (string | number | boolean | Layout[])[];

/** The canonical description of a Squall module tree that torch_oracle.py gives for the PyTorch twin. */
export function layoutOf(m: Module): Layout {
  if (m instanceof Sequential) return ['Sequential', m.children().map(layoutOf)];
  if (m instanceof Concat) return ['Concat', m.dim, m.children().map(layoutOf)];
  if (m instanceof SpatialConvolution) {
    return ['Conv', m.inC, m.outC, m.kH, m.kW, m.strideH, m.strideW, m.padH, m.padW, m.dilationH, m.dilationW, m.groups, m.bias !== null];
  }
  if (m instanceof Linear) return ['Linear', m.inFeatures, m.outFeatures, m.bias !== null];
  // SpatialBatchNormalization extends BatchNormalization: test it first
  if (m instanceof SpatialBatchNormalization) return ['BN2d', m.features, m.eps, m.momentum, m.weight !== null];
  if (m instanceof BatchNormalization) return ['BN1d', m.features, m.eps, m.momentum, m.weight !== null];
  if (m instanceof SpatialMaxPooling) return ['MaxPool', m.kH, m.kW, m.strideH, m.strideW, m.padH, m.padW, m.ceilMode];
  if (m instanceof SpatialAveragePooling) return ['AvgPool', m.kH, m.kW, m.strideH, m.strideW, m.padH, m.padW, m.ceilMode, m.countIncludePad];
  if (m instanceof SpatialCrossMapLRN) return ['LRN', m.size, m.alpha, m.beta, m.k];
  if (m instanceof Dropout) return ['Dropout', m.p];
  // View(n) keeps the batch dimension and flattens the rest (outputShape checks the count)
  if (m instanceof View && m.sizes.length === 1) return ['Flatten'];
  if (m instanceof LogSoftMax) return ['LogSoftMax', 1];
  if (m instanceof ReLU) return ['ReLU'];
  if (m instanceof Tanh) return ['Tanh'];
  return [`unknown: ${m.describe()}`];
}
