// One BlobProto of a caffemodel, from its encoded bytes straight into a float32 array: the
// packed float (or double) payload is read in place, so a blob costs its values once, not
// a JavaScript array of numbers twice over. Field numbers come from the schema's BlobProto
// and BlobShape. Both encodings of a repeated number are accepted (packed, as Caffe writes
// them, and one value per field), as protobuf requires; Caffe's rule picks double_data when
// a blob has any, else data. Faults are ModelFormatErrors at the file's byte offset.
import protobuf from 'protobufjs';
import { ModelFormatError } from '../errors.js';
import { caffeType } from './schema.js';

export interface DecodedBlob {
  /** BlobShape's dims, or the legacy [num, channels, height, width] of files written before BlobShape. */
  dims: number[];
  values: Float32Array;
  /** Which field held the values. */
  kind: 'float' | 'double';
}

/** Caffe's limit on a blob's axes (kMaxBlobAxes). */
const MAX_AXES = 32;
const WIRE = { VARINT: 0, FIXED64: 1, DELIMITED: 2, FIXED32: 5 } as const;

let ids: { shape: number; data: number; doubleData: number; legacy: number[]; dim: number } | null = null;

function fieldIds(): NonNullable<typeof ids> {
  if (!ids) {
    const b = caffeType('BlobProto').fields;
    ids = {
      shape: b['shape']!.id, data: b['data']!.id, doubleData: b['double_data']!.id,
      legacy: [b['num']!.id, b['channels']!.id, b['height']!.id, b['width']!.id],
      dim: caffeType('BlobShape').fields['dim']!.id,
    };
  }
  return ids;
}

/** `bytes` is the blob's encoded message, which starts at byte `fileOffset` of `file`. */
export function decodeBlob(bytes: Uint8Array, fileOffset: number, file: string): DecodedBlob {
  const r = protobuf.Reader.create(bytes);
  try {
    return readBlob(r);
  } catch (err) {
    throw new ModelFormatError(file, `byte offset ${fileOffset + Math.min(r.pos, bytes.length)}`, `not a valid BlobProto: ${(err as Error).message}`);
  }
}

function readBlob(r: protobuf.Reader): DecodedBlob {
  const f = fieldIds();
  let dims: number[] | null = null;
  const legacy = [0, 0, 0, 0];
  const floats: Float32Array[] = [];
  const doubles: Float32Array[] = [];
  while (r.pos < r.len) {
    const tag = r.uint32();
    const id = tag >>> 3;
    const wire = tag & 7;
    if (id === f.data && wire === WIRE.DELIMITED) floats.push(packed(r, 4, (v, o) => v.getFloat32(o, true)));
    else if (id === f.data && wire === WIRE.FIXED32) floats.push(Float32Array.of(r.float()));
    else if (id === f.doubleData && wire === WIRE.DELIMITED) doubles.push(packed(r, 8, (v, o) => v.getFloat64(o, true)));
    else if (id === f.doubleData && wire === WIRE.FIXED64) doubles.push(Float32Array.of(r.double()));
    else if (id === f.shape && wire === WIRE.DELIMITED) dims = readShape(r, f.dim);
    else if (f.legacy.includes(id) && wire === WIRE.VARINT) legacy[f.legacy.indexOf(id)] = r.int32();
    else r.skipType(wire);
  }
  const chunks = doubles.length > 0 ? doubles : floats;
  return { dims: dims ?? legacy, values: concat(chunks), kind: doubles.length > 0 ? 'double' : 'float' };
}

/** A packed run of fixed-size numbers, as float32. */
function packed(r: protobuf.Reader, size: number, read: (v: DataView, offset: number) => number): Float32Array {
  const length = r.uint32();
  if (r.pos + length > r.len) throw new RangeError(`packed values of ${length} bytes run past the end of the blob`);
  if (length % size !== 0) throw new RangeError(`packed values of ${length} bytes are not a whole number of ${size}-byte values`);
  const view = new DataView(r.buf.buffer, r.buf.byteOffset + r.pos, length);
  const out = new Float32Array(length / size);
  for (let i = 0; i < out.length; i++) out[i] = read(view, i * size);
  r.pos += length;
  return out;
}

/** BlobShape: its dims, packed or not. */
function readShape(r: protobuf.Reader, dimId: number): number[] {
  const end = r.uint32() + r.pos;
  if (end > r.len) throw new RangeError('the blob shape runs past the end of the blob');
  const dims: number[] = [];
  const add = (): void => {
    if (dims.length >= MAX_AXES) throw new RangeError(`the blob shape has more than ${MAX_AXES} axes`);
    dims.push(protobuf.util.LongBits.from(r.int64()).toNumber());
  };
  while (r.pos < end) {
    const tag = r.uint32();
    if (tag >>> 3 === dimId && (tag & 7) === WIRE.DELIMITED) {
      const stop = r.uint32() + r.pos;
      if (stop > end) throw new RangeError('packed dims run past the end of the blob shape');
      while (r.pos < stop) add();
    } else if (tag >>> 3 === dimId && (tag & 7) === WIRE.VARINT) {
      add();
    } else {
      r.skipType(tag & 7);
    }
  }
  if (r.pos !== end) throw new RangeError('the blob shape ends inside a value');
  return dims;
}

function concat(chunks: Float32Array[]): Float32Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
