// Reader for the IDX format of (Fashion-)MNIST: 2 zero bytes, a dtype byte, a rank byte,
// then `rank` big-endian int32 dimensions, then the row-major data. Only uint8 data is
// supported because that is all the MNIST family uses. Files may be gzip-compressed (as
// Debian ships them) or raw; gzip is recognised by its magic, not by the file name.
//
// Every size the header declares is checked against the bytes actually present before
// anything is allocated from it, so a corrupt or hostile header cannot make us allocate
// gigabytes. The data returned is a view into the (decompressed) file: no copy.
import { readFileSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

/** The IDX dtype codes; only uint8 is readable, the others are named in errors. */
const IDX_DTYPES: Record<number, string> = {
  0x08: 'uint8',
  0x09: 'int8',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};

/** IDX magic numbers of the two files kinds Fashion-MNIST uses. */
export const IDX_MAGIC_UINT8_IMAGES = 0x00000803;
export const IDX_MAGIC_UINT8_LABELS = 0x00000801;

/** Highest rank accepted; IDX allows 255 but nothing real goes past a handful. */
const MAX_RANK = 8;

/**
 * Default cap on a file's (decompressed) size: the largest Uint8Array Node can reliably
 * allocate everywhere. Fashion-MNIST's largest file is 47 MB.
 */
export const DEFAULT_MAX_IDX_BYTES = 2 ** 31 - 1;

export interface IdxArray {
  /** Always 'uint8' today: other dtypes are rejected with an error. */
  readonly dtype: 'uint8';
  readonly dims: readonly number[];
  /** Row-major values; a view into the decompressed file, length = product of dims. */
  readonly data: Uint8Array;
}

export interface IdxReadOptions {
  /** Required rank (3 for images, 1 for labels); another rank is an error. */
  rank?: number;
  /** Refuse files (after decompression) larger than this many bytes. */
  maxBytes?: number;
}

/**
 * A malformed IDX or gzip file. `path` names the file; `offset` is the bad byte when it is
 * known, counted in the decompressed data when `decompressed` is true.
 */
export class IdxFormatError extends Error {
  readonly path: string;
  readonly offset: number | undefined;
  readonly decompressed: boolean;
  constructor(path: string, offset: number | undefined, detail: string, decompressed = false) {
    const at = offset === undefined ? '' : `byte ${offset}${decompressed ? ' of the decompressed data' : ''}: `;
    super(`${path}: ${at}${detail}`);
    this.name = 'IdxFormatError';
    this.path = path;
    this.offset = offset;
    this.decompressed = decompressed;
  }
}

/** True when `bytes` starts with the gzip magic 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Reads and parses an IDX file, gunzipping it first when it is gzip-compressed. */
export function readIdxFile(path: string, options: IdxReadOptions = {}): IdxArray {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_IDX_BYTES;
  // Checked before reading so that a huge file is refused rather than loaded.
  const size = statSync(path).size;
  if (size > maxBytes) {
    throw new IdxFormatError(path, undefined, `file is ${size} bytes, more than the limit of ${maxBytes} bytes`);
  }
  return parseIdx(readFileSync(path), path, options);
}

/**
 * Parses IDX bytes (gzip-compressed or raw). `source` names the file in error messages.
 * The result's data is a view into `bytes` (or into the decompressed buffer).
 */
export function parseIdx(bytes: Uint8Array, source: string, options: IdxReadOptions = {}): IdxArray {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_IDX_BYTES;
  let raw = bytes;
  const compressed = isGzip(bytes);
  if (compressed) {
    raw = gunzip(bytes, source, maxBytes);
  } else if (bytes.length > maxBytes) {
    throw new IdxFormatError(source, undefined, `file is ${bytes.length} bytes, more than the limit of ${maxBytes} bytes`);
  }
  // Offsets after decompression are not file offsets; the error says which they are.
  const fail: (offset: number, detail: string) => never = (offset, detail) => {
    throw new IdxFormatError(source, offset, detail, compressed);
  };

  if (raw.length < 4) fail(raw.length, `file ends after ${raw.length} bytes, inside the 4-byte IDX magic number`);
  if (raw[0] !== 0 || raw[1] !== 0) {
    fail(0, `bad IDX magic number 0x${hex32(raw, 0)}: the first two bytes must be zero (expected 0x${IDX_MAGIC_UINT8_IMAGES.toString(16).padStart(8, '0')} for images or 0x${IDX_MAGIC_UINT8_LABELS.toString(16).padStart(8, '0')} for labels; is this an IDX file?)`);
  }
  const dtypeCode = raw[2]!;
  const dtype = IDX_DTYPES[dtypeCode];
  if (dtype === undefined) fail(2, `unknown IDX data type code 0x${hex8(dtypeCode)} (magic 0x${hex32(raw, 0)})`);
  if (dtype !== 'uint8') fail(2, `IDX data type ${dtype} (code 0x${hex8(dtypeCode)}) is not supported; only uint8 (0x08) is`);
  const rank = raw[3]!;
  if (rank === 0 || rank > MAX_RANK) fail(3, `IDX rank ${rank} is not supported (1..${MAX_RANK})`);
  if (options.rank !== undefined && rank !== options.rank) {
    fail(3, `IDX rank is ${rank} (magic 0x${hex32(raw, 0)}), expected ${options.rank} (magic 0x${(0x800 + options.rank).toString(16).padStart(8, '0')})`);
  }

  const headerBytes = 4 + 4 * rank;
  if (raw.length < headerBytes) {
    fail(raw.length, `file ends after ${raw.length} bytes, inside the header that declares ${rank} dimensions (needs ${headerBytes} bytes)`);
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const available = raw.length - headerBytes;
  const dims: number[] = [];
  // The running product is compared with the bytes present at every step, so it never
  // grows past what the file holds plus one dimension (well inside float64's exact range).
  let count = 1;
  for (let d = 0; d < rank; d++) {
    const offset = 4 + 4 * d;
    const dim = view.getInt32(offset, false);
    if (dim < 0) fail(offset, `dimension ${d} is negative (${dim})`);
    dims.push(dim);
    count *= dim;
    if (count > available) {
      fail(offset, `dimension ${d} = ${dim} makes the declared data [${dims.join(' x ')}${d + 1 < rank ? ' x ...' : ''}] at least ${count} bytes, but only ${available} bytes follow the ${headerBytes}-byte header (file truncated or header corrupt)`);
    }
  }
  if (count < available) {
    fail(headerBytes + count, `${available - count} unexpected bytes after the declared data [${dims.join(' x ')}] (${count} bytes from byte ${headerBytes}); file corrupt or not this IDX file`);
  }
  // A plain Uint8Array view: a Buffer's slice() would share memory where Uint8Array's copies.
  return { dtype: 'uint8', dims, data: new Uint8Array(raw.buffer, raw.byteOffset + headerBytes, count) };
}

function gunzip(bytes: Uint8Array, source: string, maxBytes: number): Uint8Array {
  try {
    return gunzipSync(bytes, { maxOutputLength: maxBytes });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const zmsg = e.message;
    if (e.code === 'Z_BUF_ERROR') {
      throw new IdxFormatError(source, bytes.length, `gzip stream is truncated: the file ends before the compressed data does (zlib: ${zmsg})`);
    }
    if (e.code === 'ERR_BUFFER_TOO_LARGE') {
      throw new IdxFormatError(source, undefined, `gzip data decompresses to more than the limit of ${maxBytes} bytes`);
    }
    // zlib does not report where in the stream the damage is, only that it exists.
    throw new IdxFormatError(source, undefined, `gzip data is corrupt somewhere in bytes 0..${bytes.length - 1} (zlib ${e.code ?? 'error'}: ${zmsg})`);
  }
}

function hex8(v: number): string {
  return v.toString(16).padStart(2, '0');
}

function hex32(b: Uint8Array, at: number): string {
  let s = '';
  for (let i = at; i < at + 4; i++) s += b[i] === undefined ? '??' : hex8(b[i]!);
  return s;
}
