// The IDX reader against files whose bytes are written out by hand here (header fields as
// literal byte values, not through the reader's own constants), raw and gzipped with
// node:zlib; every malformed file must fail with an IdxFormatError naming the file and the
// byte where it went wrong, and a header declaring a huge size must fail without allocating it.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { IdxFormatError, isGzip, parseIdx, readIdxFile } from '../../engine/data/idx.js';

/** The subtest object tap passes to a test callback. */
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

const dir = mkdtempSync(join(tmpdir(), 'squall-idx-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, bytes: Uint8Array | number[]): string {
  const p = join(dir, name);
  writeFileSync(p, Uint8Array.from(bytes));
  return p;
}

// 2 images of 3 x 4: magic 00 00 08 03, dims 2, 3, 4 (big-endian), then 24 pixel bytes.
const pixels = Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % 256);
const imagesBytes = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, ...pixels];
// 5 labels: magic 00 00 08 01, dim 5.
const labelsBytes = [0, 0, 8, 1, 0, 0, 0, 5, 9, 0, 3, 255, 1];

/** Asserts that `fn` throws an IdxFormatError naming `path` at `offset`, matching `re`. */
function failsAt(tt: Tap, fn: () => unknown, path: string, offset: number | undefined, re: RegExp, msg: string): void {
  try {
    fn();
    tt.fail(`${msg}: no error`);
  } catch (err) {
    tt.type(err, IdxFormatError, `${msg}: IdxFormatError`);
    const e = err as IdxFormatError;
    tt.equal(e.path, path, `${msg}: error.path`);
    tt.ok(e.message.startsWith(`${path}: `), `${msg}: message starts with the path: ${e.message}`);
    tt.equal(e.offset, offset, `${msg}: offset`);
    if (offset !== undefined) tt.match(e.message, `byte ${offset}`, `${msg}: message names the byte`);
    tt.match(e.message, re, `${msg}: message`);
  }
}

t.test('raw images and labels parse to the hand-written values', async (t) => {
  const img = readIdxFile(file('img', imagesBytes));
  t.same(img.dims, [2, 3, 4]);
  t.equal(img.dtype, 'uint8');
  t.same(Array.from(img.data), pixels);
  const lab = readIdxFile(file('lab', labelsBytes), { rank: 1 });
  t.same(lab.dims, [5]);
  t.same(Array.from(lab.data), [9, 0, 3, 255, 1]);
});

t.test('gzip is detected by its magic, whatever the file name', async (t) => {
  const gz = gzipSync(Uint8Array.from(imagesBytes));
  t.ok(isGzip(gz));
  t.notOk(isGzip(Uint8Array.from(imagesBytes)));
  for (const name of ['img.gz', 'img-gzipped-without-suffix']) {
    const r = readIdxFile(file(name, gz), { rank: 3 });
    t.same(r.dims, [2, 3, 4], name);
    t.same(Array.from(r.data), pixels, name);
  }
  // A raw file named .gz is read as raw.
  t.same(Array.from(readIdxFile(file('raw-named.gz', labelsBytes)).data), [9, 0, 3, 255, 1]);
  // A bigger gzipped file (multi-block deflate) round-trips.
  const n = 50, rows = 28, cols = 28;
  const big = new Uint8Array(16 + n * rows * cols);
  big.set([0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, rows, 0, 0, 0, cols]);
  for (let i = 16; i < big.length; i++) big[i] = (i * 7919) % 251;
  const r = readIdxFile(file('big.gz', gzipSync(big)));
  t.same(r.dims, [n, rows, cols]);
  t.ok(Buffer.from(r.data).equals(Buffer.from(big.subarray(16))), 'every byte equal');
});

t.test('zero images are allowed', async (t) => {
  const r = parseIdx(Uint8Array.from([0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28]), 'empty.idx');
  t.same(r.dims, [0, 28, 28]);
  t.equal(r.data.length, 0);
});

t.test('bad headers name the file and the byte', async (t) => {
  failsAt(t, () => readIdxFile(file('empty', [])), join(dir, 'empty'), 0, /inside the 4-byte IDX magic/, 'empty file');
  failsAt(t, () => readIdxFile(file('zip', [0x50, 0x4b, 3, 4, 0, 0, 0, 1, 0])), join(dir, 'zip'), 0, /magic number 0x504b0304/, 'not IDX');
  failsAt(t, () => readIdxFile(file('m1', [0, 1, 8, 3, ...imagesBytes.slice(4)])), join(dir, 'm1'), 0, /magic/, 'second byte nonzero');
  failsAt(t, () => readIdxFile(file('f32', [0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0])), join(dir, 'f32'), 2, /float32.*not supported/, 'float32 dtype');
  failsAt(t, () => readIdxFile(file('d07', [0, 0, 0x07, 1, 0, 0, 0, 1, 0])), join(dir, 'd07'), 2, /unknown IDX data type code 0x07/, 'unknown dtype');
  failsAt(t, () => readIdxFile(file('r0', [0, 0, 8, 0])), join(dir, 'r0'), 3, /rank 0/, 'rank 0');
  failsAt(t, () => readIdxFile(file('img3', imagesBytes), { rank: 1 }), join(dir, 'img3'), 3, /rank is 3.*expected 1/, 'rank option');
  failsAt(t, () => readIdxFile(file('hdr', imagesBytes.slice(0, 10))), join(dir, 'hdr'), 10, /inside the header that declares 3 dimensions/, 'header cut');
  failsAt(t, () => readIdxFile(file('neg', [0, 0, 8, 1, 0x80, 0, 0, 0])), join(dir, 'neg'), 4, /dimension 0 is negative/, 'negative dim');
});

t.test('data shorter or longer than declared', async (t) => {
  // One pixel short: the last dimension (bytes 12..15) is where the size passes the data.
  failsAt(t, () => readIdxFile(file('short', imagesBytes.slice(0, -1))), join(dir, 'short'), 12, /at least 24 bytes, but only 23 bytes follow the 16-byte header/, 'one byte short');
  failsAt(t, () => readIdxFile(file('long', [...imagesBytes, 1, 2])), join(dir, 'long'), 40, /2 unexpected bytes after the declared data/, 'two bytes extra');
  failsAt(t, () => readIdxFile(file('lshort', labelsBytes.slice(0, 9))), join(dir, 'lshort'), 4, /dimension 0 = 5/, 'labels short');
});

t.test('a huge declared size fails at the first dimension that exceeds the file, without allocating', async (t) => {
  const huge = [0, 0, 8, 3, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3];
  const before = process.memoryUsage().arrayBuffers;
  const t0 = performance.now();
  failsAt(t, () => readIdxFile(file('huge', huge)), join(dir, 'huge'), 4, /2147483647.*only 3 bytes follow/, 'huge first dim');
  // 2^93 bytes could not be allocated anyway; a fast failure with no growth shows none was tried.
  t.ok(performance.now() - t0 < 1000, 'fails fast');
  t.ok(process.memoryUsage().arrayBuffers - before < 1 << 20, 'no large allocation');
  // Small first dims, huge last one: the failure names that last dimension's bytes.
  failsAt(t, () => readIdxFile(file('huge3', [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0])), join(dir, 'huge3'), 12, /dimension 2 = 2147483647/, 'huge last dim');
});

t.test('gzip errors: truncated, corrupt, trailing garbage, oversize', async (t) => {
  const gz = gzipSync(Uint8Array.from(imagesBytes));
  for (const cut of [2, 10, gz.length - 8, gz.length - 1]) {
    const p = file(`trunc${cut}.gz`, gz.subarray(0, cut));
    failsAt(t, () => readIdxFile(p), p, cut, /gzip stream is truncated/, `gzip cut to ${cut} bytes`);
  }
  const bad = Uint8Array.from(gz);
  bad[bad.length - 6]! ^= 0xff; // inside the CRC32 trailer
  const pc = file('crc.gz', bad);
  failsAt(t, () => readIdxFile(pc), pc, undefined, /gzip data is corrupt/, 'CRC mismatch');
  const pg = file('garbage.gz', [...gz, 0x41, 0x42, 0x43, 0x44]);
  failsAt(t, () => readIdxFile(pg), pg, undefined, /gzip data is corrupt/, 'trailing garbage');
  // A valid gzip of a bad IDX: the offset is inside the decompressed data and says so.
  const pd = file('short.gz', gzipSync(Uint8Array.from(imagesBytes.slice(0, -1))));
  failsAt(t, () => readIdxFile(pd), pd, 12, /decompressed data/, 'gzip of a short file');
  const err = (() => { try { readIdxFile(pd); } catch (e) { return e as IdxFormatError; } return undefined; })();
  t.equal(err?.decompressed, true);
  // Size limit before decompression completes (a gzip bomb) and on raw files.
  const bomb = gzipSync(new Uint8Array(1 << 20));
  const pb = file('bomb.gz', bomb);
  failsAt(t, () => readIdxFile(pb, { maxBytes: 5000 }), pb, undefined, /decompresses to more than the limit of 5000 bytes/, 'gzip over maxBytes');
  const pr = file('rawbig', imagesBytes);
  failsAt(t, () => readIdxFile(pr, { maxBytes: 20 }), pr, undefined, /40 bytes, more than the limit of 20/, 'raw over maxBytes');
});

t.test('parseIdx names its source and returns a view, not a copy', async (t) => {
  const bytes = Uint8Array.from(imagesBytes);
  const r = parseIdx(bytes, 'in-memory');
  t.equal(r.data.buffer, bytes.buffer);
  t.equal(r.data.byteOffset, 16);
  failsAt(t, () => parseIdx(Uint8Array.from([1, 2, 3, 4]), 'buffer://x'), 'buffer://x', 0, /magic/, 'named source');
});
