// Squall's model and checkpoint file format, version 1 (reading and validation; writing is
// in write.ts, the model/optimiser API in checkpoint.ts).
//
// One container serves both kinds of file: a model file ("squall-model": the parameters and
// state buffers of a model) and a training checkpoint ("squall-checkpoint": the same plus
// optimiser state and training progress), told apart by the header's `kind`.
//
//   offset   bytes  field
//   0        8      magic, the ASCII bytes "SQUALLCK"
//   8        4      format version, u32 little-endian (this reader reads 1)
//   12       4      header length H in bytes, u32 little-endian
//   16       H      header: one UTF-8 JSON object (below)
//   16+H     pad    zero bytes up to P = 16 + H rounded up to a multiple of 64
//   P        B      payload, B = header.payloadBytes (a multiple of 64): tensor data
//   P+B      16     trailer: u32 LE CRC-32 (IEEE, as zlib; crc32.ts) of every byte in [0, P+B),
//                   i.e. magic, version, header, padding and payload; u32 0 (reserved);
//                   the ASCII end marker "SQCK-END"
//   The file is exactly P + B + 16 bytes long.
//
// Header (JSON; unknown top-level fields are ignored, so version 1 can grow compatibly):
//   kind         'squall-model' | 'squall-checkpoint'
//   created      ISO-8601 time of writing (absent in the deterministic mode unless SOURCE_DATE_EPOCH is set;
//                readers take an absent value as '')
//   model        { name, args } when the model is one of engine/models' MODELS (args are its
//                constructor arguments, e.g. { classes: 7 }), or null for any other model
//   payloadBytes B
//   tensors      [{ name, role, dtype, shape, offset, length }]: dtype 'f32' (the only one
//                in version 1); shape a list of non-negative integers whose product is
//                `length` (elements); offset in bytes from P, a multiple of 64; values are
//                little-endian float32, offset + 4 * length <= B; tensors do not overlap;
//                writers zero the bytes between tensors (readers ignore them; the checksum
//                covers them). Names: "model.<module path>.<name>" for
//                parameters (role 'parameter', e.g. "model.0.weight") and state buffers
//                (role 'state', e.g. "model.1.runningMean"); "optimizer.<key>.<buffer>"
//                (role 'optimizer', e.g. "optimizer.0.momentum"); "extra.<name>" (role
//                'extra') for anything else a caller stores.
//   optimizers   { <key>: { name, iteration, epoch, hyper, sliceLength, buffers } }: an
//                optimiser's OptimizerState without its arrays; `buffers` maps each buffer
//                name to the tensor that holds it ({ momentum: "optimizer.0.momentum" })
//   meta         free-form JSON object (training progress: epoch, iteration, global batch,
//                seed, data set, ...; whatever the caller passes)
//   architecture (optional, added compatibly within version 1) the model's module tree as
//                JSON, { type, args, children } (engine/io/architecture.ts), so a model that is
//                not in MODELS (an imported one) can be built again; absent or null otherwise.
//                Readers that predate it ignore it (unknown fields are ignored), and files
//                without it read as before. The reader checks it is an object; its contents
//                are checked when a model is built from it.
//   inputShape   (optional, likewise) the per-sample input shape the model was saved for,
//                e.g. [1, 28, 28]: a list of positive integers, or absent / null
//
// Reading checks, in this order, and stops at the first failure with a
// CheckpointFormatError naming the file and the byte offset of the fault: the magic; the
// version; that the header length fits in the file; the end marker; the checksum; the
// header's UTF-8 and JSON; every header field; every tensor's range, shape and dtype; that
// the payload ends exactly where the trailer starts. The checksum comes before the header is
// parsed, so a flipped or truncated byte anywhere is reported as what it is (a checksum
// mismatch, a missing end marker) rather than as whatever garbage it made of the JSON; the
// structural checks after it still hold against a hostile file whose checksum was fixed up.
// Nothing is allocated from a declared size: the reader allocates the file's real size (from
// fstat), after the magic, version, header length and end marker have been checked, and
// every declared offset and length is compared with that size first.
import { crc32 } from './crc32.js';

export const MAGIC = 'SQUALLCK';
export const END_MARKER = 'SQCK-END';
export const FORMAT_VERSION = 1;
export const PREFIX_BYTES = 16;
export const TRAILER_BYTES = 16;
export const ALIGN = 64;

export type CheckpointKind = 'squall-model' | 'squall-checkpoint';
export const KINDS: readonly CheckpointKind[] = ['squall-model', 'squall-checkpoint'];
export type TensorRole = 'parameter' | 'state' | 'optimizer' | 'extra';
export const ROLES: readonly TensorRole[] = ['parameter', 'state', 'optimizer', 'extra'];

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface TensorEntry {
  name: string;
  role: TensorRole;
  dtype: 'f32';
  shape: number[];
  /** Byte offset from the start of the payload (a multiple of 64). */
  offset: number;
  /** Number of elements (the product of shape). */
  length: number;
}

/** A model of engine/models' MODELS and its constructor arguments. */
export interface ModelDescription {
  name: string;
  args: { classes?: number } & Record<string, Json>;
}

export interface OptimizerEntry {
  name: string;
  iteration: number;
  epoch: number;
  hyper: Record<string, number | boolean>;
  /** Length of the slice the optimiser updates, when known. */
  sliceLength: number | null;
  /** Buffer name -> tensor name. */
  buffers: Record<string, string>;
}

export interface CheckpointHeader {
  kind: CheckpointKind;
  created: string;
  model: ModelDescription | null;
  payloadBytes: number;
  tensors: TensorEntry[];
  optimizers: Record<string, OptimizerEntry>;
  meta: Record<string, Json>;
  /** The module tree (engine/io/architecture.ts), when the writer stored it. */
  architecture?: Json | null;
  /** Per-sample input shape, when the writer stored it. */
  inputShape?: number[] | null;
}

/** A file that is not a valid Squall model/checkpoint file: names the file and the byte offset of the fault. */
export class CheckpointFormatError extends Error {
  constructor(readonly path: string, readonly offset: number, message: string) {
    super(`${path}: offset ${offset}: ${message}`);
    this.name = 'CheckpointFormatError';
  }
}

export function align64(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const MAGIC_BYTES = ascii(MAGIC);
const END_BYTES = ascii(END_MARKER);

/** A short printable rendering of some bytes for messages. */
export function showBytes(b: Uint8Array): string {
  const text = Array.from(b, (x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : '.')).join('');
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
  return `"${text}" (${hex || 'no bytes'})`;
}

// ---- prefix and trailer ---------------------------------------------------------------------

/** The 16 bytes at the start of a file. */
export function encodePrefix(headerLength: number): Uint8Array {
  const b = new Uint8Array(PREFIX_BYTES);
  b.set(MAGIC_BYTES, 0);
  const v = new DataView(b.buffer);
  v.setUint32(8, FORMAT_VERSION, true);
  v.setUint32(12, headerLength, true);
  return b;
}

/** The 16 bytes at the end of a file. */
export function encodeTrailer(crc: number): Uint8Array {
  const b = new Uint8Array(TRAILER_BYTES);
  const v = new DataView(b.buffer);
  v.setUint32(0, crc >>> 0, true);
  v.setUint32(4, 0, true);
  b.set(END_BYTES, 8);
  return b;
}

export interface Prefix {
  version: number;
  headerLength: number;
  /** P: where the payload starts. */
  payloadStart: number;
}

/**
 * Checks the first bytes of a file of `fileSize` bytes (`head` holds its first
 * min(16, fileSize) bytes): magic, version, and that the header and trailer fit.
 */
export function checkPrefix(path: string, head: Uint8Array, fileSize: number): Prefix {
  const n = Math.min(head.length, MAGIC_BYTES.length);
  for (let i = 0; i < n; i++) {
    if (head[i] !== MAGIC_BYTES[i]) {
      throw new CheckpointFormatError(path, 0, `not a Squall checkpoint (magic ${showBytes(head.subarray(0, 8))}, expected "${MAGIC}")`);
    }
  }
  if (fileSize < PREFIX_BYTES + TRAILER_BYTES) {
    throw new CheckpointFormatError(path, fileSize, `the file is truncated: it is ${fileSize} bytes long, ` +
      `shorter than the ${PREFIX_BYTES + TRAILER_BYTES} bytes of the smallest Squall checkpoint`);
  }
  const v = new DataView(head.buffer, head.byteOffset, PREFIX_BYTES);
  const version = v.getUint32(8, true);
  if (version !== FORMAT_VERSION) {
    throw new CheckpointFormatError(path, 8, `unsupported format version ${version} ` +
      `(this Squall reads version ${FORMAT_VERSION}${version > FORMAT_VERSION ? '; the file was written by a newer Squall' : ''})`);
  }
  const headerLength = v.getUint32(12, true);
  const payloadStart = align64(PREFIX_BYTES + headerLength);
  if (payloadStart + TRAILER_BYTES > fileSize) {
    throw new CheckpointFormatError(path, 12, `header length ${headerLength} runs past the end of the file ` +
      `(the header and trailer need ${payloadStart + TRAILER_BYTES} bytes, the file has ${fileSize}; truncated or corrupt)`);
  }
  return { version, headerLength, payloadStart };
}

/** Checks the last 16 bytes of a file and returns the stored CRC-32. */
export function checkTrailer(path: string, tail: Uint8Array, fileSize: number): number {
  const at = fileSize - TRAILER_BYTES;
  for (let i = 0; i < END_BYTES.length; i++) {
    if (tail[8 + i] !== END_BYTES[i]) {
      throw new CheckpointFormatError(path, at, `no end marker "${END_MARKER}" in the last 16 bytes ` +
        `(found ${showBytes(tail.subarray(8, 16))}): the file is truncated or was not completely written ` +
        `(it ends at byte ${fileSize})`);
    }
  }
  return new DataView(tail.buffer, tail.byteOffset, TRAILER_BYTES).getUint32(0, true);
}

// ---- header ---------------------------------------------------------------------------------

/** Validation of the parsed header; every failure names the field. */
class HeaderChecker {
  constructor(private readonly path: string, private readonly at: number) {}

  fail(field: string, message: string, offset = this.at): never {
    throw new CheckpointFormatError(this.path, offset, `header field ${field}: ${message}`);
  }

  object(field: string, v: unknown): Record<string, unknown> {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(field, `must be an object, got ${kindOf(v)}`);
    return v as Record<string, unknown>;
  }

  string(field: string, v: unknown): string {
    if (typeof v !== 'string') this.fail(field, `must be a string, got ${kindOf(v)}`);
    return v;
  }

  count(field: string, v: unknown): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.fail(field, `must be a non-negative integer, got ${kindOf(v)}`);
    return v;
  }
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  return typeof v;
}

const own = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** Parses and validates the header bytes; `payloadStart`/`payloadEnd` are file offsets (P and where the trailer starts). */
export function parseHeader(path: string, bytes: Uint8Array, payloadStart: number, payloadEnd: number): CheckpointHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new CheckpointFormatError(path, PREFIX_BYTES, 'the header is not valid UTF-8');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    const msg = (err as Error).message;
    const pos = /position (\d+)/.exec(msg);
    const at = pos ? PREFIX_BYTES + Buffer.byteLength(text.slice(0, Number(pos[1]))) :
      /end of JSON/i.test(msg) ? PREFIX_BYTES + bytes.length : PREFIX_BYTES;
    throw new CheckpointFormatError(path, at, `the header is not valid JSON (${msg})`);
  }
  const c = new HeaderChecker(path, PREFIX_BYTES);
  const h = c.object('(the header)', raw);

  const kind = h.kind;
  if (!KINDS.includes(kind as CheckpointKind)) c.fail('kind', `must be one of ${KINDS.join(', ')}, got ${kindOf(kind)}`);
  const created = h.created === undefined ? '' : c.string('created', h.created);

  let model: ModelDescription | null = null;
  if (h.model !== null && h.model !== undefined) {
    const m = c.object('model', h.model);
    const args = m.args === undefined ? {} : c.object('model.args', m.args);
    if (args.classes !== undefined && (typeof args.classes !== 'number' || !Number.isSafeInteger(args.classes) || args.classes < 1)) {
      c.fail('model.args.classes', `must be a positive integer, got ${kindOf(args.classes)}`);
    }
    model = { name: c.string('model.name', m.name), args: args as ModelDescription['args'] };
  }

  const payloadBytes = c.count('payloadBytes', h.payloadBytes);
  if (payloadBytes % ALIGN !== 0) c.fail('payloadBytes', `${payloadBytes} is not a multiple of ${ALIGN}`);
  if (payloadStart + payloadBytes !== payloadEnd) {
    const declaredEnd = payloadStart + payloadBytes;
    c.fail('payloadBytes', declaredEnd > payloadEnd
      ? `the payload of ${payloadBytes} bytes at offset ${payloadStart} runs past the trailer at offset ${payloadEnd} (truncated or corrupt)`
      : `the payload of ${payloadBytes} bytes at offset ${payloadStart} ends at ${declaredEnd}, ` +
        `${payloadEnd - declaredEnd} bytes before the trailer at offset ${payloadEnd}`, Math.min(declaredEnd, payloadEnd));
  }

  if (!Array.isArray(h.tensors)) c.fail('tensors', `must be an array, got ${kindOf(h.tensors)}`);
  const tensors: TensorEntry[] = [];
  const names = new Set<string>();
  for (const [i, rawT] of (h.tensors as unknown[]).entries()) {
    const f = `tensors[${i}]`;
    const t = c.object(f, rawT);
    const name = c.string(`${f}.name`, t.name);
    const g = `${f} ("${name}")`;
    if (name === '') c.fail(`${f}.name`, 'must not be empty');
    if (names.has(name)) c.fail(`${g}.name`, 'appears twice');
    names.add(name);
    const role = t.role;
    if (!ROLES.includes(role as TensorRole)) c.fail(`${g}.role`, `must be one of ${ROLES.join(', ')}, got ${kindOf(role)}`);
    if (t.dtype !== 'f32') c.fail(`${g}.dtype`, `must be "f32" (the only dtype of format version ${FORMAT_VERSION}), got ${kindOf(t.dtype)}`);
    if (!Array.isArray(t.shape)) c.fail(`${g}.shape`, `must be an array, got ${kindOf(t.shape)}`);
    if ((t.shape as unknown[]).length > 32) c.fail(`${g}.shape`, `has ${(t.shape as unknown[]).length} dimensions (at most 32)`);
    const shape: number[] = [];
    let product = 1;
    for (const [d, v] of (t.shape as unknown[]).entries()) {
      shape.push(c.count(`${g}.shape[${d}]`, v));
      product *= v as number; // exact while it stays below 2^53; checked against length below
    }
    const length = c.count(`${g}.length`, t.length);
    const offset = c.count(`${g}.offset`, t.offset);
    const fileAt = payloadStart + offset;
    if (!Number.isSafeInteger(product) || product !== length) {
      c.fail(`${g}.shape`, `[${shape.join(', ')}] has ${Number.isSafeInteger(product) ? product : 'too many'} elements, ` +
        `but the tensor's length is ${length}`);
    }
    if (offset % ALIGN !== 0) c.fail(`${g}.offset`, `${offset} is not a multiple of ${ALIGN}`, Math.min(fileAt, payloadEnd));
    if (offset > payloadBytes || length > (payloadBytes - offset) / 4) {
      c.fail(`${g}.offset`, `the tensor's ${length} float32 values at payload offset ${offset} (file offset ${fileAt}) ` +
        `run past the end of the ${payloadBytes}-byte payload (file offset ${payloadEnd})`, Math.min(fileAt, payloadEnd));
    }
    tensors.push({ name, role: role as TensorRole, dtype: 'f32', shape, offset, length });
  }
  const byOffset = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const a = byOffset[i - 1]!;
    const b = byOffset[i]!;
    if (a.length > 0 && b.length > 0 && a.offset + 4 * a.length > b.offset) {
      c.fail('tensors', `"${a.name}" (payload bytes ${a.offset}..${a.offset + 4 * a.length}) overlaps "${b.name}" ` +
        `(from ${b.offset})`, payloadStart + b.offset);
    }
  }

  const optimizers: Record<string, OptimizerEntry> = Object.create(null);
  if (h.optimizers !== undefined) {
    const all = c.object('optimizers', h.optimizers);
    for (const [key, rawO] of Object.entries(all)) {
      const f = `optimizers["${key}"]`;
      const o = c.object(f, rawO);
      const hyperIn = c.object(`${f}.hyper`, o.hyper ?? {});
      const hyper: Record<string, number | boolean> = {};
      for (const [k, v] of Object.entries(hyperIn)) {
        if (typeof v !== 'boolean' && (typeof v !== 'number' || !Number.isFinite(v))) {
          c.fail(`${f}.hyper.${k}`, `must be a finite number or a boolean, got ${kindOf(v)}`);
        }
        hyper[k] = v as number | boolean;
      }
      const buffersIn = c.object(`${f}.buffers`, o.buffers ?? {});
      const buffers: Record<string, string> = {};
      for (const [k, v] of Object.entries(buffersIn)) {
        const tn = c.string(`${f}.buffers.${k}`, v);
        if (!names.has(tn)) c.fail(`${f}.buffers.${k}`, `names tensor "${tn}", which is not in the file`);
        buffers[k] = tn;
      }
      optimizers[key] = {
        name: c.string(`${f}.name`, o.name),
        iteration: c.count(`${f}.iteration`, o.iteration),
        epoch: o.epoch === undefined ? 0 : c.count(`${f}.epoch`, o.epoch),
        hyper,
        sliceLength: o.sliceLength === undefined || o.sliceLength === null ? null : c.count(`${f}.sliceLength`, o.sliceLength),
        buffers,
      };
    }
  }

  const meta = (h.meta === undefined ? {} : c.object('meta', h.meta)) as Record<string, Json>;
  const architecture = h.architecture === undefined || h.architecture === null ? null : c.object('architecture', h.architecture) as Json;
  let inputShape: number[] | null = null;
  if (h.inputShape !== undefined && h.inputShape !== null) {
    if (!Array.isArray(h.inputShape) || h.inputShape.length === 0 || h.inputShape.length > 32) {
      c.fail('inputShape', `must be a list of 1 to 32 sizes, got ${kindOf(h.inputShape)}`);
    }
    inputShape = (h.inputShape as unknown[]).map((d, i) => {
      const n = c.count(`inputShape[${i}]`, d);
      if (n < 1) c.fail(`inputShape[${i}]`, 'must be at least 1');
      return n;
    });
  }
  return { kind: kind as CheckpointKind, created, model, payloadBytes, tensors, optimizers, meta, architecture, inputShape };
}

// ---- whole file -----------------------------------------------------------------------------

/** A tensor read from a file: its header entry and its values. */
export interface StoredTensor extends TensorEntry {
  data: Float32Array;
}

export interface ParsedFile {
  version: number;
  header: CheckpointHeader;
  tensors: Map<string, StoredTensor>;
  /** The stored (and verified) CRC-32. */
  crc: number;
}

/**
 * Validates and decodes a whole file held in memory. The tensors' data are views into
 * `bytes` on a little-endian host (copies on a big-endian one), so keep `bytes` unchanged.
 */
export function parseCheckpoint(bytes: Uint8Array, path = '<buffer>'): ParsedFile {
  const size = bytes.length;
  const prefix = checkPrefix(path, bytes.subarray(0, PREFIX_BYTES), size);
  const trailerAt = size - TRAILER_BYTES;
  const stored = checkTrailer(path, bytes.subarray(trailerAt), size);
  const computed = crc32(bytes.subarray(0, trailerAt));
  if (computed !== stored) {
    throw new CheckpointFormatError(path, trailerAt, `checksum mismatch: the trailer holds CRC-32 ${hex32(stored)}, ` +
      `the file's bytes 0..${trailerAt} give ${hex32(computed)} (the file is corrupt)`);
  }
  const header = parseHeader(path, bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + prefix.headerLength), prefix.payloadStart, trailerAt);
  const tensors = new Map<string, StoredTensor>();
  for (const e of header.tensors) {
    const at = bytes.byteOffset + prefix.payloadStart + e.offset;
    let data: Float32Array;
    if (LITTLE_ENDIAN_HOST && at % 4 === 0) {
      data = new Float32Array(bytes.buffer, at, e.length);
    } else {
      data = new Float32Array(e.length);
      const v = new DataView(bytes.buffer, at, 4 * e.length);
      for (let i = 0; i < e.length; i++) data[i] = v.getFloat32(4 * i, true);
    }
    tensors.set(e.name, { ...e, data });
  }
  return { version: prefix.version, header, tensors, crc: stored };
}

export function hex32(x: number): string {
  return `0x${(x >>> 0).toString(16).padStart(8, '0')}`;
}
