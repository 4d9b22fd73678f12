// CRC-32 (IEEE 802.3, as zlib, PNG and gzip: reflected polynomial 0xEDB88320, initial value
// and final XOR 0xFFFFFFFF), the checksum of the checkpoint format (format.ts) and of every
// wire frame (transport/frame.ts).
//
// crc32 uses, in order of preference:
// - 'native vpclmul' / 'native pclmul': the native module's crc32 (crates/squall-native/
//   src/crc32.rs: carry-less-multiply folding on 256-bit VPCLMULQDQ or 128-bit PCLMULQDQ
//   registers, about 20 / 8 GB/s on data in cache) when the module is built and loads;
//   loading it starts no threads and chooses no BLAS provider ('native slicing-by-16' on
//   CPUs with neither);
// - 'zlib': Node's built-in zlib.crc32 (Node >= 20.15 / 22.2; about 2-3 GB/s);
// - 'typescript': crc32TS below, a plain slicing-by-8 implementation (about 1 GB/s) that
//   needs nothing from the platform.
// SQUALL_CRC32=zlib or SQUALL_CRC32=typescript skips the earlier choices (for comparisons).
// All give the same value (test/io/checkpoint-crc.test.ts and crc32-native.test.ts check
// it) and continue a running checksum: crc32(b, crc32(a)) === crc32(concat(a, b)).
import * as zlib from 'node:zlib';
import { nativeModule, type NativeCrcKernel } from '../../backends/native.js';

const TABLES: Int32Array = (() => {
  const t = new Int32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!;
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff]! ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
})();

/** CRC-32 of `data`, continuing from `crc` (the CRC-32 of what came before; 0 to start). */
export function crc32TS(data: Uint8Array, crc = 0): number {
  const t = TABLES;
  let c = ~crc | 0;
  let i = 0;
  const n = data.length;
  const end8 = n - (n % 8);
  while (i < end8) {
    const lo = c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
    c = t[1792 + (lo & 0xff)]! ^ t[1536 + ((lo >>> 8) & 0xff)]! ^ t[1280 + ((lo >>> 16) & 0xff)]! ^ t[1024 + (lo >>> 24)]! ^
      t[768 + data[i + 4]!]! ^ t[512 + data[i + 5]!]! ^ t[256 + data[i + 6]!]! ^ t[data[i + 7]!]!;
    i += 8;
  }
  while (i < n) c = t[(c ^ data[i++]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** Which implementation crc32 uses (for reports: `squall info`). */
export type Crc32Implementation = 'native vpclmul' | 'native pclmul' | 'native slicing-by-16' | 'zlib' | 'typescript';

type Crc = (data: ArrayBufferView, crc: number) => number;

const bytesOf = (v: ArrayBufferView): Uint8Array =>
  v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

/** A pattern that takes the native folding path (>= 128 bytes) and its table tail (not a multiple of 16). */
function selfTestData(): Uint8Array {
  const b = new Uint8Array(333);
  for (let i = 0; i < b.length; i++) b[i] = (i * 167 + 13) & 0xff;
  return b;
}

/**
 * The native module's crc32 when the module is built, loads, has the export (an older build
 * may not) and agrees with crc32TS on a test pattern; undefined otherwise, silently.
 */
function loadNative(): { fn: Crc; kernel: NativeCrcKernel } | undefined {
  try {
    const m = nativeModule();
    if (typeof m.crc32 !== 'function' || typeof m.crc32Kernel !== 'function') return undefined;
    const kernel = m.crc32Kernel();
    const probe = selfTestData();
    if (m.crc32(probe, 0) !== crc32TS(probe) || m.crc32(probe.subarray(5), 0x12345678) !== crc32TS(probe.subarray(5), 0x12345678)) {
      return undefined;
    }
    return { fn: m.crc32, kernel };
  } catch {
    return undefined;
  }
}

type ZlibCrc = (data: Uint8Array, value?: number) => number;

function choose(): { name: Crc32Implementation; fn: Crc } {
  const only = process.env.SQUALL_CRC32;
  if (only !== 'zlib' && only !== 'typescript') {
    const n = loadNative();
    if (n) return { name: `native ${n.kernel}`, fn: n.fn };
  }
  const z = (zlib as unknown as { crc32?: ZlibCrc }).crc32;
  if (z && only !== 'typescript') return { name: 'zlib', fn: (data, crc) => z(bytesOf(data), crc) };
  return { name: 'typescript', fn: (data, crc) => crc32TS(bytesOf(data), crc) };
}

const chosen = choose();
const impl = chosen.fn;

/** Which implementation crc32 uses: 'native vpclmul', 'native pclmul', 'native slicing-by-16', 'zlib' or 'typescript'. */
export const crc32Implementation: Crc32Implementation = chosen.name;

/**
 * CRC-32 of the bytes of `data` (any typed array, Buffer or DataView) continuing from `crc`
 * (the CRC-32 of what came before; 0 to start), by crc32Implementation.
 */
export function crc32(data: ArrayBufferView, crc = 0): number {
  // Node 20's zlib.crc32 returns 0 for an empty array without backing memory, dropping the
  // running value; the CRC of nothing is the running value itself.
  if (data.byteLength === 0) return crc >>> 0;
  return impl(data, crc >>> 0) >>> 0;
}

/** Whether crc32 uses a platform implementation (native module or zlib), not crc32TS. */
export const crc32IsNative: boolean = chosen.name !== 'typescript';
