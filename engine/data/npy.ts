// Reader for NumPy's .npy files of float32 arrays (numpy.save of an array cast with
// .astype(numpy.float32)): the magic "\x93NUMPY", a version (1.0, 2.0 or 3.0), the header
// length (u16 LE in version 1, u32 LE after), then a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (4, 1, 28, 28), }
// padded with spaces to a multiple of 64 bytes, then the row-major values.
//
// Every field is validated and the data's size (the product of the shape, in safe-integer
// arithmetic) must be exactly the bytes that follow the header before anything is
// allocated, so a header declaring a huge array in a small file is an error, not an
// allocation.
import { readFileSync } from 'node:fs';

export class NpyFormatError extends Error {
  constructor(readonly path: string, readonly offset: number, detail: string) {
    super(`${path}: byte ${offset}: ${detail}`);
    this.name = 'NpyFormatError';
  }
}

export interface NpyArray {
  shape: number[];
  data: Float32Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export function isNpy(bytes: Uint8Array): boolean {
  return MAGIC.every((b, i) => bytes[i] === b);
}

export function readNpyFile(path: string): NpyArray {
  return parseNpy(readFileSync(path), path);
}

export function parseNpy(bytes: Uint8Array, path = '<npy>'): NpyArray {
  const fail: (offset: number, detail: string) => never = (offset, detail) => {
    throw new NpyFormatError(path, offset, detail);
  };
  if (!isNpy(bytes)) fail(0, 'not a .npy file (it does not start with "\\x93NUMPY")');
  if (bytes.length < 10) fail(bytes.length, 'the file ends inside the .npy preamble');
  const major = bytes[6]!;
  if (major < 1 || major > 3) fail(6, `unsupported .npy version ${major}.${bytes[7]} (1.0 to 3.0 are read)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lengthBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lengthBytes) fail(bytes.length, 'the file ends inside the .npy preamble');
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = 8 + lengthBytes;
  if (headerLength > bytes.length - start) fail(8, `header length ${headerLength} runs past the end of the ${bytes.length}-byte file`);
  let header: string;
  try {
    header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1', { fatal: true }).decode(bytes.subarray(start, start + headerLength));
  } catch {
    return fail(start, 'the header is not valid text');
  }
  const dict = header.trim();
  if (!dict.startsWith('{') || !dict.endsWith('}')) fail(start, `the header is not a dict literal: ${JSON.stringify(header.slice(0, 80))}`);
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(dict)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(dict)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(dict)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    fail(start, `the header lacks descr, fortran_order or shape: ${dict.slice(0, 120)}`);
  }
  const littleEndian = descr === '<f4' || (descr === '=f4' && LITTLE_ENDIAN_HOST);
  if (!littleEndian && descr !== '>f4' && descr !== '=f4') {
    fail(start, `dtype '${descr}' is not float32 ('<f4'); save the array with .astype(numpy.float32)`);
  }
  if (fortran === 'True') fail(start, 'the array is in Fortran (column-major) order; save a C-ordered array (numpy.ascontiguousarray)');
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => {
    if (!/^\d+L?$/.test(s)) fail(start, `shape (${shapeText}) holds "${s}", not a size`);
    return Number(s.replace('L', ''));
  });
  let count = 1;
  for (const d of shape) {
    count *= d;
    if (!Number.isSafeInteger(count)) fail(start, `shape (${shapeText}) declares more than 2^53 values`);
  }
  const dataStart = start + headerLength;
  const available = bytes.length - dataStart;
  if (available !== count * 4) {
    fail(dataStart, `shape (${shape.join(', ')}) needs ${count * 4} bytes of float32 data, the file has ${available} after its header` +
      (available < count * 4 ? ' (truncated?)' : ''));
  }
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = view.getFloat32(dataStart + 4 * i, littleEndian);
  return { shape, data };
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** The bytes of a float32 .npy file (version 1.0), e.g. for tests and tools that hand data to Squall. */
export function encodeNpy(shape: readonly number[], data: Float32Array): Uint8Array {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const out = new Uint8Array(total + 4 * data.length);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  const view = new DataView(out.buffer);
  view.setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  for (let i = 0; i < data.length; i++) view.setFloat32(total + 4 * i, data[i]!, true);
  return out;
}
