// Slices of the flat parameter and gradient vectors on the wire. A payload is the slice's
// values, one after another, little-endian, in one of three encodings:
//   f32   4 bytes per value, the float32 bits as they are (lossless);
//   bf16  2 bytes per value: the top half of the float32, rounded to nearest even (NaN stays
//         NaN) by the backend's f32ToBf16 kernel (BigDL's truncated gradients);
//   fp16  2 bytes per value: IEEE half precision, rounded to nearest even, values beyond
//         65504 become infinities (and so trip the parameter manager's finiteness check).
// Decoding always produces float32. Master weights stay float32 on their owner: the wire
// format only decides what the other workers receive.
//
// An encoded payload is always a fresh buffer (the caller's array may change right after
// encoding, e.g. the gradient buffer at the next iteration), and decoding checks that the
// payload holds exactly the expected number of values before writing anything.
import type { Backend } from '../backends/backend.js';
import { WireDtype } from '../../transport/transport.js';

/** Names of the encodings, as options and the command line spell them. */
export type WireFormat = 'f32' | 'bf16' | 'fp16';

export const wireFormats: readonly WireFormat[] = ['f32', 'bf16', 'fp16'];

export class WireFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireFormatError';
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function isWireFormat(v: unknown): v is WireFormat {
  return typeof v === 'string' && (wireFormats as readonly string[]).includes(v);
}

/** The frame dtype of a wire format. */
export function wireDtype(format: WireFormat): WireDtype {
  switch (format) {
    case 'f32':
      return WireDtype.F32;
    case 'bf16':
      return WireDtype.BF16;
    case 'fp16':
      return WireDtype.F16;
    default:
      throw new WireFormatError(`unknown wire format ${JSON.stringify(format)} (known: ${wireFormats.join(', ')})`);
  }
}

/** The wire format of a frame dtype (Bytes and unknown codes are errors: they carry no float slice). */
export function wireFormatOf(dtype: WireDtype): WireFormat {
  switch (dtype) {
    case WireDtype.F32:
      return 'f32';
    case WireDtype.BF16:
      return 'bf16';
    case WireDtype.F16:
      return 'fp16';
    default:
      throw new WireFormatError(`frame dtype ${String(dtype)} does not encode a float slice (expected F32, BF16 or F16)`);
  }
}

/** Bytes per value of a wire format. */
export function bytesPerValue(format: WireFormat): number {
  return format === 'f32' ? 4 : 2;
}

/** Bytes of a payload of `length` values. */
export function payloadBytes(format: WireFormat, length: number): number {
  return bytesPerValue(format) * length;
}

/** Encodes `src` into a new payload of payloadBytes(format, src.length) bytes. */
export function encodeSlice(backend: Backend, src: Float32Array, format: WireFormat): Uint8Array {
  const n = src.length;
  switch (format) {
    case 'f32': {
      const out = new Uint8Array(4 * n);
      if (LITTLE_ENDIAN) new Float32Array(out.buffer).set(src);
      else {
        const dv = new DataView(out.buffer);
        for (let i = 0; i < n; i++) dv.setFloat32(4 * i, src[i]!, true);
      }
      return out;
    }
    case 'bf16':
    case 'fp16': {
      const half = new Uint16Array(n);
      if (n > 0) {
        if (format === 'bf16') backend.f32ToBf16(src, half);
        else backend.f32ToF16(src, half);
      }
      return u16ToBytes(half);
    }
    default:
      throw new WireFormatError(`encodeSlice: unknown wire format ${JSON.stringify(format)} (known: ${wireFormats.join(', ')})`);
  }
}

/**
 * The payload that carries `src`: for f32 on a little-endian host the bytes of `src` itself
 * (no copy: the caller must leave `src` unchanged until the transport has taken the frame,
 * i.e. until send() resolves), otherwise a new encoded buffer as encodeSlice. Views of a
 * shared wasm memory are copied: a data channel's send() need not accept shared buffers.
 */
export function wirePayload(backend: Backend, src: Float32Array, format: WireFormat): Uint8Array {
  if (format === 'f32' && LITTLE_ENDIAN && !(src.buffer instanceof SharedArrayBuffer)) return new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
  return encodeSlice(backend, src, format);
}

/**
 * A float32 view of an f32 payload of `n` values when one can be made without copying (a
 * little-endian host, a 4-byte aligned payload), else null; a payload of another size is a
 * WireFormatError.
 */
export function f32PayloadView(payload: Uint8Array, n: number): Float32Array | null {
  if (payload.byteLength !== 4 * n) throw new WireFormatError(`an f32 payload of ${n} values has ${4 * n} bytes, got ${payload.byteLength}`);
  if (!LITTLE_ENDIAN || payload.byteOffset % 4 !== 0) return null;
  return new Float32Array(payload.buffer, payload.byteOffset, n);
}

/**
 * Decodes `payload` (format `format`) into `dst`, which fixes the number of values; a
 * payload of any other size is a WireFormatError and `dst` is left alone.
 */
export function decodeSlice(backend: Backend, payload: Uint8Array, format: WireFormat, dst: Float32Array): void {
  const n = dst.length;
  const want = payloadBytes(format, n);
  if (payload.byteLength !== want) {
    throw new WireFormatError(`decodeSlice: a ${format} payload of ${n} values has ${want} bytes, got ${payload.byteLength}`);
  }
  if (n === 0) return;
  switch (format) {
    case 'f32': {
      if (LITTLE_ENDIAN) {
        const aligned = payload.byteOffset % 4 === 0 ? payload : payload.slice();
        dst.set(new Float32Array(aligned.buffer, aligned.byteOffset, n));
      } else {
        const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
        for (let i = 0; i < n; i++) dst[i] = dv.getFloat32(4 * i, true);
      }
      return;
    }
    case 'bf16':
      backend.bf16ToF32(bytesToU16(payload, n), dst);
      return;
    case 'fp16':
      backend.f16ToF32(bytesToU16(payload, n), dst);
      return;
    default:
      throw new WireFormatError(`decodeSlice: unknown wire format ${JSON.stringify(format)} (known: ${wireFormats.join(', ')})`);
  }
}

/** What a receiver gets for `src`: encode then decode (a copy; `src` is left alone). */
export function roundTrip(backend: Backend, src: Float32Array, format: WireFormat): Float32Array {
  const out = new Float32Array(src.length);
  decodeSlice(backend, encodeSlice(backend, src, format), format, out);
  return out;
}

function u16ToBytes(half: Uint16Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(half.buffer, half.byteOffset, half.byteLength);
  const out = new Uint8Array(2 * half.length);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < half.length; i++) dv.setUint16(2 * i, half[i]!, true);
  return out;
}

function bytesToU16(payload: Uint8Array, n: number): Uint16Array {
  if (LITTLE_ENDIAN) {
    const aligned = payload.byteOffset % 2 === 0 ? payload : payload.slice();
    return new Uint16Array(aligned.buffer, aligned.byteOffset, n);
  }
  const out = new Uint16Array(n);
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  for (let i = 0; i < n; i++) out[i] = dv.getUint16(2 * i, true);
  return out;
}
