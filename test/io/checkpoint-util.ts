// Helpers of the checkpoint tests: scratch directories, a tiny trained model, and a way to
// rewrite a file's header with a valid checksum (to reach the checks behind the checksum).
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointFormatError, crc32 } from '../../engine/io/checkpoint/index.js';
import { ClassNLLCriterion, type Module } from '../../engine/nn/index.js';
import type { Optimizer } from '../../engine/optim/index.js';
import { Tensor } from '../../engine/tensor/tensor.js';
import { Rng, type Tap } from '../conformance/util.js';

/** A fresh directory under the OS temp dir, removed when the test ends. */
export function scratchDir(t: Tap, tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), `squall-${tag}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function listDir(dir: string): string[] {
  return readdirSync(dir).sort();
}

/** A seeded batch of inputs of shape [n, ...sample] with labels in 0..classes-1. */
export function batch(seed: number, n: number, sample: readonly number[], classes: number): { x: Tensor; y: Int32Array } {
  const rng = new Rng(seed);
  const x = new Tensor([n, ...sample]);
  for (let i = 0; i < x.size; i++) x.data[i] = rng.uniform(-1, 1);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) y[i] = rng.int(0, classes - 1);
  return { x, y };
}

/** One training step on the whole flat parameter buffer: forward, NLL loss, backward, opt.step. */
export async function trainStep(model: Module, opt: Optimizer, x: Tensor, y: Int32Array): Promise<number> {
  const crit = new ClassNLLCriterion();
  model.zeroGradParameters();
  const out = await model.forward(x);
  const loss = crit.forward(out, y);
  await model.backwardParameters(x, crit.backward(out, y));
  const flat = model.flatParameters();
  opt.step(flat.values, flat.grads);
  return loss;
}

/** A copy of the model's output for x (outputs are reused by the next forward). */
export async function outputOf(model: Module, x: Tensor): Promise<Float32Array> {
  return (await model.forward(x)).data.slice();
}

// ---- byte surgery ---------------------------------------------------------------------------

const u32 = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset).getUint32(at, true);

export function setU32(b: Uint8Array, at: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint32(at, v >>> 0, true);
}

export interface Layout {
  headerLength: number;
  payloadStart: number;
  trailerAt: number;
  header: Record<string, unknown>;
}

export function layoutOf(b: Uint8Array): Layout {
  const headerLength = u32(b, 12);
  const header = JSON.parse(Buffer.from(b.subarray(16, 16 + headerLength)).toString('utf8')) as Record<string, unknown>;
  return { headerLength, payloadStart: Math.ceil((16 + headerLength) / 64) * 64, trailerAt: b.length - 16, header };
}

/** Recomputes the trailer's CRC-32 after an edit (so the checks after the checksum are reached). */
export function fixChecksum(b: Uint8Array): Uint8Array {
  setU32(b, b.length - 16, crc32(b.subarray(0, b.length - 16)));
  return b;
}

/**
 * The file with its header replaced by `mutate(header)` (re-encoded, padding and payload
 * kept) and a valid checksum: a hostile file that only the structural checks can catch.
 */
export function withHeader(b: Uint8Array, mutate: (h: Record<string, any>) => void, raw?: string | Uint8Array): Uint8Array {
  const l = layoutOf(b);
  const h = structuredClone(l.header);
  mutate(h);
  const json = raw instanceof Uint8Array ? raw : Buffer.from(raw ?? JSON.stringify(h), 'utf8');
  const start = Math.ceil((16 + json.length) / 64) * 64;
  const payload = b.subarray(l.payloadStart, l.trailerAt);
  const out = new Uint8Array(start + payload.length + 16);
  out.set(b.subarray(0, 16), 0);
  setU32(out, 12, json.length);
  out.set(json, 16);
  out.set(payload, start);
  out.set(b.subarray(l.trailerAt), start + payload.length);
  return fixChecksum(out);
}

/** Asserts a CheckpointFormatError naming `file`, an offset (the given one when `offset` is set) and the words in `mentions`. */
export function isFormatError(t: Tap, err: unknown, file: string, what: string, mentions: readonly (string | RegExp)[] = [],
  offset?: number): void {
  if (!(err instanceof CheckpointFormatError)) {
    t.fail(`${what}: expected CheckpointFormatError, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    return;
  }
  const ok = err.path === file && err.message.startsWith(`${file}: offset ${err.offset}:`) && Number.isSafeInteger(err.offset) &&
    err.offset >= 0 && (offset === undefined || err.offset === offset) &&
    mentions.every((m) => (typeof m === 'string' ? err.message.includes(m) : m.test(err.message)));
  t.ok(ok, `${what}: ${err.message}`, ok ? {} : { offset: err.offset, expectedOffset: offset, mentions: mentions.map(String) });
}

/** The error a promise rejects with (fails the test when it resolves). */
export async function rejection(t: Tap, p: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  t.fail(`${what}: expected an error, but it succeeded`);
  return undefined;
}
