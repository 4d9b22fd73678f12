// The wire format (DESIGN.md §6): every message between two ranks is one frame, a fixed
// 36-byte header followed by the payload. All integers are little-endian.
//
//   offset size field      check on decode
//   0      4    magic      the ASCII bytes "SQLF"
//   4      1    version    == PROTOCOL_VERSION (1)
//   5      1    kind       a FrameKind (1..5) that the connection's state allows
//   6      1    dtype      a WireDtype (0..3)
//   7      1    reserved   == 0
//   8      8    jobId      u64; == the job's id once the peer is authenticated
//   16     4    iteration  u32
//   20     4    sender     u32; == the authenticated peer's rank (< worldSize)
//   24     4    slice      u32
//   28     4    length     payload bytes, u32; <= maxPayloadBytes (checked before anything
//                          is allocated), a multiple of the dtype's size, 0 for Heartbeat
//   32     4    checksum   CRC-32 (IEEE, as zlib) of header bytes 0..31 then the payload
//   36     length payload
//
// FrameDecoder takes a byte stream cut at arbitrary points and yields complete frames. It
// checks each header field as soon as its last byte has arrived, so garbage is refused
// after at most 4 bytes and an oversized length before its payload is allocated; a failed
// check throws a FrameError naming the field and its byte offset in the stream, and the
// decoder stays failed (the connection is to be closed).
import { crc32 } from '../engine/io/checkpoint/crc32.js';
import { POOL_MIN_BYTES, releaser, takePayload } from './payload-pool.js';
import {
  DATA_KINDS, DEFAULT_MAX_PAYLOAD_BYTES, FrameKind, WireDtype, checkJobId, dtypeSize,
  type Frame, type FrameHeader, type OutgoingFrame,
} from './transport.js';

export const FRAME_MAGIC = new Uint8Array([0x53, 0x51, 0x4c, 0x46]); // "SQLF"
export const PROTOCOL_VERSION = 1;
export const HEADER_SIZE = 36;
/** Largest value of a u32 header field. */
export const U32_MAX = 0xffff_ffff;

export type FrameField =
  'magic' | 'version' | 'kind' | 'dtype' | 'reserved' | 'jobId' | 'iteration' | 'sender' | 'slice' | 'length' | 'checksum' | 'payload';

/** The header layout: name, offset and size of each field (the table above). */
export const HEADER_FIELDS: readonly { name: FrameField; offset: number; size: number }[] = [
  { name: 'magic', offset: 0, size: 4 },
  { name: 'version', offset: 4, size: 1 },
  { name: 'kind', offset: 5, size: 1 },
  { name: 'dtype', offset: 6, size: 1 },
  { name: 'reserved', offset: 7, size: 1 },
  { name: 'jobId', offset: 8, size: 8 },
  { name: 'iteration', offset: 16, size: 4 },
  { name: 'sender', offset: 20, size: 4 },
  { name: 'slice', offset: 24, size: 4 },
  { name: 'length', offset: 28, size: 4 },
  { name: 'checksum', offset: 32, size: 4 },
];

/** Offset of a header field in the frame. */
export function fieldOffset(name: FrameField): number {
  if (name === 'payload') return HEADER_SIZE;
  return HEADER_FIELDS.find((f) => f.name === name)!.offset;
}

/** A frame that failed a check. `offset` is the stream byte offset of the faulty field. */
export class FrameError extends Error {
  constructor(
    readonly field: FrameField,
    /** Byte offset in the stream (from the decoder's first byte) of the field at fault, or of the stream's end when truncated. */
    readonly offset: number,
    /** Byte offset in the stream where the faulty frame starts. */
    readonly frameOffset: number,
    detail: string,
    /** The stream ended inside this frame. */
    readonly truncated = false,
  ) {
    super(`bad frame: ${field} at byte ${offset} (frame at byte ${frameOffset}): ${detail}`);
    this.name = 'FrameError';
  }

  /** The stats().rejected key for this error. */
  get reason(): string {
    return this.truncated ? 'frame:truncated' : `frame:${this.field}`;
  }
}

const KIND_NAMES = new Map<number, string>([1, 2, 3, 4, 5].map((k) => [k, FrameKind[k]!]));

/** The bytes of any typed-array view (no copy). */
export function payloadBytes(view: ArrayBufferView): Uint8Array {
  if (view instanceof Uint8Array) return view;
  if (!ArrayBuffer.isView(view)) throw new TypeError('payload must be a typed array or DataView');
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

function isU32(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= U32_MAX;
}

/**
 * Checks a frame a user is about to send and returns its payload bytes; throws RangeError or
 * TypeError naming the field. `jobId` is the transport's job (the frame's, if given, must match).
 */
export function checkOutgoing(frame: OutgoingFrame, jobId: string, maxPayloadBytes: number): Uint8Array {
  if (frame === null || typeof frame !== 'object') throw new TypeError('frame must be an object');
  if (!DATA_KINDS.includes(frame.kind)) {
    throw new RangeError(`frame kind must be GradientSlice, WeightSlice or Control, got ${String(frame.kind)} (${KIND_NAMES.get(frame.kind) ?? 'unknown'})`);
  }
  if (!isU32(frame.iteration)) throw new RangeError(`frame iteration must be a u32, got ${String(frame.iteration)}`);
  if (!isU32(frame.slice)) throw new RangeError(`frame slice must be a u32, got ${String(frame.slice)}`);
  if (!(frame.dtype in WireDtype) || typeof frame.dtype !== 'number') throw new RangeError(`frame dtype must be a WireDtype, got ${String(frame.dtype)}`);
  if (frame.jobId !== undefined && frame.jobId !== jobId && checkJobId(frame.jobId) !== jobId) {
    throw new RangeError(`frame job id ${frame.jobId} is not this transport's job ${jobId}`);
  }
  const payload = payloadBytes(frame.payload);
  if (payload.byteLength > maxPayloadBytes) {
    throw new RangeError(`frame payload of ${payload.byteLength} bytes exceeds the maximum of ${maxPayloadBytes}`);
  }
  const es = dtypeSize(frame.dtype);
  if (payload.byteLength % es !== 0) {
    throw new RangeError(`frame payload of ${payload.byteLength} bytes is not a multiple of ${es} (dtype ${WireDtype[frame.dtype]})`);
  }
  return payload;
}

/**
 * CRC-32 of the first 32 header bytes then the payload. An empty payload is skipped: Node
 * 20's zlib.crc32 returns 0, ignoring the running value, for a view of a zero-length
 * ArrayBuffer with no backing store (as Buffer.allocUnsafeSlow(0) makes).
 */
export function frameChecksum(header: Uint8Array, payload: Uint8Array): number {
  const c = crc32(header.subarray(0, 32));
  return payload.byteLength === 0 ? c : crc32(payload, c);
}

/** The 8 little-endian bytes of a decimal u64 job id. */
export function jobIdBytes(jobId: string): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(jobId), true);
  return b;
}

/**
 * Encodes the 36-byte header of a frame carrying `payload` (its checksum covers the
 * payload). Fields are checked for range, not for meaning (that is checkOutgoing's job).
 */
export function encodeHeader(h: FrameHeader, payload: Uint8Array, jobIdLE?: Uint8Array): Uint8Array {
  if (!isU32(h.iteration) || !isU32(h.sender) || !isU32(h.slice) || payload.byteLength > U32_MAX) {
    throw new RangeError('frame iteration, sender, slice and payload length must be u32');
  }
  const b = new Uint8Array(HEADER_SIZE);
  const v = new DataView(b.buffer);
  b.set(FRAME_MAGIC, 0);
  b[4] = PROTOCOL_VERSION;
  b[5] = h.kind;
  b[6] = h.dtype;
  b[7] = 0;
  b.set(jobIdLE ?? jobIdBytes(h.jobId), 8);
  v.setUint32(16, h.iteration, true);
  v.setUint32(20, h.sender, true);
  v.setUint32(24, h.slice, true);
  v.setUint32(28, payload.byteLength, true);
  v.setUint32(32, frameChecksum(b, payload), true);
  return b;
}

/** A frame as [header, payload] with the payload not copied (for writev-style output). */
export function encodeFrame(frame: Frame, jobIdLE?: Uint8Array): [Uint8Array, Uint8Array] {
  return [encodeHeader(frame, frame.payload, jobIdLE), frame.payload];
}

/** A frame as one contiguous buffer (copies the payload; for small frames and tests). */
export function encodeFrameBytes(frame: Frame, jobIdLE?: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + frame.payload.byteLength);
  out.set(encodeHeader(frame, frame.payload, jobIdLE), 0);
  out.set(frame.payload, HEADER_SIZE);
  return out;
}

export interface FrameDecoderOptions {
  /** Largest payload accepted; default 256 MiB. */
  maxPayloadBytes?: number;
  /** When set, a frame of another job is refused (field jobId). */
  expectJobId?: string;
  /** When set, a frame whose sender differs is refused (field sender). */
  expectSender?: number;
  /** When set, a sender >= worldSize is refused (field sender). */
  worldSize?: number;
  /** Kinds accepted (field kind); default every FrameKind. */
  kinds?: Iterable<FrameKind>;
}


/**
 * Incremental decoder of a frame stream. `push(chunk)` yields every frame the chunk
 * completes (iterate it to the end); it throws a FrameError at the first fault, after
 * yielding the good frames before it, and every later call throws the same error.
 * The decoder never keeps a reference to a pushed chunk.
 */
export class FrameDecoder {
  private maxPayload = DEFAULT_MAX_PAYLOAD_BYTES;
  private jobLE: Uint8Array | undefined;
  private jobStr: string | undefined;
  /** Expected sender, or -1. */
  sender = -1;
  /** Senders must be < worldSize, or -1 for no check. */
  worldSize = -1;
  private kindSet = new Set<number>([1, 2, 3, 4, 5]);

  private readonly hdr = new Uint8Array(HEADER_SIZE);
  private readonly hv = new DataView(this.hdr.buffer);
  private hdrHave = 0;
  /** Index into HEADER_FIELDS of the next field to check. */
  private nextField = 0;
  private payload: Uint8Array | null = null;
  private payHave = 0;
  private frameStart = 0;
  private pos = 0;
  private err: FrameError | Error | null = null;

  constructor(options: FrameDecoderOptions = {}) {
    if (options.maxPayloadBytes !== undefined) this.maxPayloadBytes = options.maxPayloadBytes;
    if (options.expectJobId !== undefined) this.expectJobId = options.expectJobId;
    if (options.expectSender !== undefined) this.sender = options.expectSender;
    if (options.worldSize !== undefined) this.worldSize = options.worldSize;
    if (options.kinds !== undefined) this.kinds = options.kinds;
  }

  get maxPayloadBytes(): number {
    return this.maxPayload;
  }
  set maxPayloadBytes(n: number) {
    if (!Number.isInteger(n) || n < 0 || n > U32_MAX) throw new RangeError(`maxPayloadBytes must be an integer in [0, 2^32), got ${n}`);
    this.maxPayload = n;
  }
  get expectJobId(): string | undefined {
    return this.jobStr;
  }
  set expectJobId(id: string | undefined) {
    this.jobStr = id === undefined ? undefined : checkJobId(id);
    this.jobLE = this.jobStr === undefined ? undefined : jobIdBytes(this.jobStr);
  }
  set kinds(kinds: Iterable<FrameKind>) {
    this.kindSet = new Set(kinds);
  }

  /** Stream offset of the next byte the decoder will read (bytes consumed so far). */
  get offset(): number {
    return this.pos;
  }
  /** Bytes of an incomplete frame held (0 between frames). */
  get pending(): number {
    return this.payload === null ? this.hdrHave : HEADER_SIZE + this.payHave;
  }
  get failed(): boolean {
    return this.err !== null;
  }

  private fail(field: FrameField, detail: string, atEnd = false): never {
    const off = atEnd ? this.pos : this.frameStart + fieldOffset(field);
    this.err = new FrameError(field, off, this.frameStart, detail, atEnd);
    throw this.err;
  }

  /** Checks every header field whose bytes have all arrived and that was not checked yet. */
  private checkFields(): void {
    const h = this.hdr;
    while (this.nextField < HEADER_FIELDS.length) {
      const f = HEADER_FIELDS[this.nextField]!;
      if (f.offset + f.size > this.hdrHave) return;
      switch (f.name) {
        case 'magic':
          if (h[0] !== FRAME_MAGIC[0] || h[1] !== FRAME_MAGIC[1] || h[2] !== FRAME_MAGIC[2] || h[3] !== FRAME_MAGIC[3]) {
            this.fail('magic', `expected "SQLF" (53 51 4c 46), got ${hex(h.subarray(0, 4))}`);
          }
          break;
        case 'version':
          if (h[4] !== PROTOCOL_VERSION) this.fail('version', `protocol version ${h[4]} is not supported (this side speaks ${PROTOCOL_VERSION})`);
          break;
        case 'kind': {
          const k = h[5]!;
          if (!KIND_NAMES.has(k)) this.fail('kind', `unknown frame kind ${k}`);
          if (!this.kindSet.has(k)) this.fail('kind', `frame kind ${k} (${KIND_NAMES.get(k)}) is not allowed here`);
          break;
        }
        case 'dtype':
          if (h[6]! > WireDtype.Bytes) this.fail('dtype', `unknown dtype ${h[6]}`);
          break;
        case 'reserved':
          if (h[7] !== 0) this.fail('reserved', `reserved byte must be 0, got ${h[7]}`);
          break;
        case 'jobId':
          if (this.jobLE) {
            for (let i = 0; i < 8; i++) {
              if (h[8 + i] !== this.jobLE[i]) this.fail('jobId', `job id ${this.hv.getBigUint64(8, true)} is not this job's ${this.jobStr}`);
            }
          }
          break;
        case 'sender': {
          const s = this.hv.getUint32(20, true);
          if (this.sender >= 0 && s !== this.sender) this.fail('sender', `sender ${s} is not the connection's authenticated rank ${this.sender}`);
          if (this.worldSize >= 0 && s >= this.worldSize) this.fail('sender', `sender ${s} is outside the world of ${this.worldSize}`);
          break;
        }
        case 'length': {
          const n = this.hv.getUint32(28, true);
          if (n > this.maxPayload) this.fail('length', `payload length ${n} exceeds the maximum of ${this.maxPayload}`);
          const dt = h[6]! as WireDtype;
          const es = dtypeSize(dt);
          if (n % es !== 0) this.fail('length', `payload length ${n} is not a multiple of ${es} (dtype ${WireDtype[dt]})`);
          if (h[5] === FrameKind.Heartbeat && n !== 0) this.fail('length', `a Heartbeat frame carries no payload, got length ${n}`);
          break;
        }
        default: // iteration, slice: any u32; checksum: after the payload
          break;
      }
      this.nextField++;
    }
  }

  private finish(): Frame {
    const h = this.hdr;
    const v = this.hv;
    const payload = this.payload!;
    const want = v.getUint32(32, true);
    const got = frameChecksum(h, payload);
    if (got !== want) {
      this.fail('checksum', `CRC-32 ${want.toString(16).padStart(8, '0')} in the header, ${got.toString(16).padStart(8, '0')} computed over header and ${payload.byteLength}-byte payload`);
    }
    const frame: Frame = {
      kind: h[5]! as FrameKind,
      jobId: this.jobStr ?? v.getBigUint64(8, true).toString(),
      iteration: v.getUint32(16, true),
      sender: v.getUint32(20, true),
      slice: v.getUint32(24, true),
      dtype: h[6]! as WireDtype,
      payload,
    };
    if (payload.byteLength >= POOL_MIN_BYTES) frame.release = releaser(payload);
    this.hdrHave = 0;
    this.nextField = 0;
    this.payload = null;
    this.payHave = 0;
    this.frameStart = this.pos;
    return frame;
  }

  /** Feeds bytes; yields each frame they complete. */
  *push(chunk: Uint8Array): Generator<Frame, void, undefined> {
    if (this.err) throw this.err;
    let i = 0;
    const n = chunk.byteLength;
    try {
      while (i < n) {
        if (this.payload === null) {
          const take = Math.min(HEADER_SIZE - this.hdrHave, n - i);
          this.hdr.set(chunk.subarray(i, i + take), this.hdrHave);
          this.hdrHave += take;
          i += take;
          this.pos += take;
          this.checkFields();
          if (this.hdrHave < HEADER_SIZE) continue;
          // The length passed its check above; only now is the payload allocated.
          this.payload = takePayload(this.hv.getUint32(28, true));
          this.payHave = 0;
          if (this.payload.byteLength === 0) yield this.finish();
        } else {
          const take = Math.min(this.payload.byteLength - this.payHave, n - i);
          this.payload.set(chunk.subarray(i, i + take), this.payHave);
          this.payHave += take;
          i += take;
          this.pos += take;
          if (this.payHave === this.payload.byteLength) yield this.finish();
        }
      }
    } finally {
      // A consumer that stopped iterating early left bytes unread: the stream is out of step.
      if (i < n && !this.err) this.err = new Error('FrameDecoder.push was not iterated to the end; the decoder is out of step with the stream');
    }
  }

  /** Declares the end of the stream: throws a truncation FrameError if a frame was cut off. */
  end(): void {
    if (this.err) throw this.err;
    if (this.payload !== null) {
      this.fail('payload', `stream truncated: ${this.payHave} of ${this.payload.byteLength} payload bytes arrived`, true);
    }
    if (this.hdrHave > 0) {
      const f = HEADER_FIELDS.find((x) => x.offset + x.size > this.hdrHave)!;
      this.fail(f.name, `stream truncated inside the header: ${this.hdrHave} of ${HEADER_SIZE} bytes arrived`, true);
    }
  }
}

/** Decodes a whole buffer of frames (all of them must be complete). */
export function decodeFrames(bytes: Uint8Array, options: FrameDecoderOptions = {}): Frame[] {
  const d = new FrameDecoder(options);
  const out = [...d.push(bytes)];
  d.end();
  return out;
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}
