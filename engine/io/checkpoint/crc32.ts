// CRC-32 (IEEE 802.3, as zlib, PNG and gzip: reflected polynomial 0xEDB88320, initial value
// and final XOR 0xFFFFFFFF), the checksum of the checkpoint format (format.ts).
//
// crc32TS is a plain TypeScript slicing-by-8 implementation (about 1 GB/s on a current
// core), which needs nothing from the platform. crc32 uses Node's built-in zlib.crc32
// when this Node has it (Node >= 20.15 / 22.2; several GB/s) and crc32TS otherwise; both
// give the same value (test/io/checkpoint-crc.test.ts checks it). Both continue a running
// checksum: crc32(b, crc32(a)) === crc32(concat(a, b)).
import * as zlib from 'node:zlib';

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

type NativeCrc = (data: Uint8Array, value?: number) => number;
const native = (zlib as unknown as { crc32?: NativeCrc }).crc32;

/** CRC-32 of `data` continuing from `crc`: zlib's when this Node has it, else crc32TS. */
export function crc32(data: Uint8Array, crc = 0): number {
  // Node 20's zlib.crc32 returns 0 for an empty array without backing memory, dropping the
  // running value; the CRC of nothing is the running value itself.
  if (data.byteLength === 0) return crc >>> 0;
  return native ? native(data, crc) >>> 0 : crc32TS(data, crc);
}

/** Whether crc32 uses Node's built-in zlib.crc32 (for reports). */
export const crc32IsNative: boolean = native !== undefined;
