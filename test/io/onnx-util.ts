// Shared by the ONNX and model-loading tests: the PyTorch-written fixtures (test/io/fixtures,
// export_onnx.py), Inception-v1's fixture generated once into a cache directory, and the
// PyTorch runner of Squall-written ONNX files (run_onnx_torch.py).
//
// LeNet-5's fixture is committed (it needs no Python). Inception-v1's (28 MB) is written by
// export_onnx.py into $TMPDIR/squall-onnx-fixtures-<hash of the script and models.py>, so a
// changed script or model definition regenerates it and an unchanged one is reused; without
// /usr/bin/python3, torch or models.py the tests that need it are skipped with the reason.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor } from '../../engine/tensor/tensor.js';
import { PEERS, PYTHON, ROOT } from '../models/oracle.js';

export const FIXTURES = join(ROOT, 'test', 'io', 'fixtures');
const EXPORT_SCRIPT = join(FIXTURES, 'export_onnx.py');
const RUN_SCRIPT = join(FIXTURES, 'run_onnx_torch.py');

export interface OnnxFixture {
  onnx: string;
  input: Tensor;
  /** PyTorch's output in float64. */
  ref: Float64Array;
  meta: { model: string; torch: string; opset: number; input: number[]; output: number[]; lrn_effect: number };
}

function floats<T extends Float32Array | Float64Array>(file: string, make: (b: ArrayBuffer) => T, bytes: number, read: (b: Buffer, at: number) => number): T {
  const raw = readFileSync(file);
  const out = make(new ArrayBuffer(raw.length));
  if (endianness() === 'LE') new Uint8Array(out.buffer).set(raw);
  else for (let i = 0; i < out.length; i++) out[i] = read(raw, i * bytes);
  return out;
}

export function readFixture(dir: string, model: string): OnnxFixture {
  const base = join(dir, model);
  const meta = JSON.parse(readFileSync(`${base}.json`, 'utf8')) as OnnxFixture['meta'];
  const input = floats(`${base}.input.f32`, (b) => new Float32Array(b), 4, (r, at) => r.readFloatLE(at));
  const ref = floats(`${base}.output.f64`, (b) => new Float64Array(b), 8, (r, at) => r.readDoubleLE(at));
  return { onnx: `${base}.onnx`, input: new Tensor(meta.input, input), ref, meta };
}

/** Why Python-side work cannot run here, or null. */
export function pythonMissing(): string | null {
  if (!existsSync(PYTHON)) return `no ${PYTHON} (set SQUALL_TORCH_PYTHON to a Python with torch)`;
  if (!existsSync(join(PEERS, 'models.py'))) return `no models.py in ${PEERS} (set SQUALL_PEERS_DIR)`;
  return null;
}

/** Inception-v1's fixture from the cache (generated on first use), or { skip }. */
export function inceptionFixture(): OnnxFixture | { skip: string } {
  const missing = pythonMissing();
  if (missing) return { skip: missing };
  const hash = createHash('sha256').update(readFileSync(EXPORT_SCRIPT)).update(readFileSync(join(PEERS, 'models.py'))).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `squall-onnx-fixtures-${hash}`);
  if (!existsSync(join(dir, 'inception_v1.onnx'))) {
    // Written beside the cache and renamed into place, so a concurrent or interrupted run never sees half a set.
    const work = mkdtempSync(join(tmpdir(), `squall-onnx-fixtures-${hash}-tmp-`));
    try {
      const r = spawnSync(PYTHON, [EXPORT_SCRIPT, '--peers', PEERS, '--model', 'inception_v1', '--out', work], { encoding: 'utf8', timeout: 300_000 });
      if (r.status === 3) return { skip: r.stderr.trim() };
      if (r.status !== 0) throw new Error(`${EXPORT_SCRIPT} exited with ${r.status ?? r.signal}:\n${r.stderr}`);
      try {
        renameSync(work, dir);
      } catch (err) {
        if (!existsSync(join(dir, 'inception_v1.onnx'))) throw err; // else another run won the race
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  return readFixture(dir, 'inception_v1');
}

/** Runs a Squall-written ONNX file with PyTorch (run_onnx_torch.py): its output (float64) and summary, or { skip }. */
export function runWithTorch(onnx: string, input: Tensor): { output: Float64Array; summary: Record<string, unknown> } | { skip: string } {
  const missing = pythonMissing();
  if (missing) return { skip: missing };
  const dir = mkdtempSync(join(tmpdir(), 'squall-onnx-torch-'));
  try {
    const inPath = join(dir, 'in.f32');
    const outPath = join(dir, 'out.f64');
    const bytes = Buffer.alloc(input.size * 4);
    for (let i = 0; i < input.size; i++) bytes.writeFloatLE(input.data[i]!, 4 * i);
    writeFileSync(inPath, bytes);
    const r = spawnSync(PYTHON, [RUN_SCRIPT, onnx, inPath, input.shape.join(','), outPath], { encoding: 'utf8', timeout: 300_000, maxBuffer: 16 << 20 });
    if (r.status === 3) return { skip: r.stderr.trim() };
    if (r.status !== 0) throw new Error(`${RUN_SCRIPT} exited with ${r.status ?? r.signal}:\n${r.stderr}`);
    const output = floats(outPath, (b) => new Float64Array(b), 8, (raw, at) => raw.readDoubleLE(at));
    return { output, summary: JSON.parse(r.stdout) as Record<string, unknown> };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
