// The native module's crc32 (crates/squall-native/src/crc32.rs, (V)PCLMULQDQ folding where
// the CPU has it): equal to crc32TS and to zlib.crc32 on random bytes of every length 0..300 at
// every offset 0..15 and on large odd-sized buffers, on Float32Array, DataView and Buffer
// views with a byteOffset (the bytes of the view, read in place), continuing a running value
// across many split points; clear TypeError/RangeError for bad arguments; crc32() picks it
// when the module is built; and calling it starts no threads and loads no BLAS provider
// (checked in a child process, which runs this file again).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as zlib from 'node:zlib';
import { nativeModule, type NativeModule } from '../../engine/backends/native.js';
import { crc32, crc32Implementation, crc32TS } from '../../engine/io/checkpoint/index.js';
import { Rng } from '../conformance/util.js';

type ZlibCrc = (data: ArrayBufferView, value?: number) => number;
const zcrc = (zlib as unknown as { crc32?: ZlibCrc }).crc32;

function randomBytes(rng: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(0, 255);
  return b;
}

const CHILD = 'SQUALL_CRC32_TEST_CHILD';

/** The child: the thread count and the mapped BLAS libraries before and after 1000 native crc32 calls. */
function child(): void {
  const threads = (): number => Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? -1);
  const blasMapped = (): boolean => /libopenblas|libmkl|libblas/.test(readFileSync('/proc/self/maps', 'utf8'));
  const m = nativeModule();
  const before = threads();
  const data = new Uint8Array(1 << 20).fill(7);
  let c = 0;
  for (let i = 0; i < 1000; i++) c = m.crc32(data, c);
  console.log(`CHILD ${JSON.stringify({ before, after: threads(), blas: blasMapped(), implementation: crc32Implementation, c })}`);
}

const isChild = process.env[CHILD] === '1';
if (isChild) child();

let m: NativeModule | undefined;
let why = '';
if (!isChild) {
  try {
    m = nativeModule();
    if (typeof m.crc32 !== 'function') {
      why = 'the native module has no crc32 export (an older build)';
      m = undefined;
    }
  } catch (err) {
    why = (err as Error).message;
  }
}

if (isChild) {
  // the child printed its result and runs no tests
} else if (!m) {
  t.pass(`skipped: the native module is not available (${why})`);
  t.equal(crc32Implementation === 'zlib' || crc32Implementation === 'typescript', true, `crc32 falls back (${crc32Implementation})`);
} else {
  const n = m;

  t.test('crc32() uses the native module', (t) => {
    const kernel = n.crc32Kernel();
    t.ok(['vpclmul', 'pclmul', 'slicing-by-16'].includes(kernel), `kernel ${kernel}`);
    const want = process.env.SQUALL_CRC32 === 'zlib' || process.env.SQUALL_CRC32 === 'typescript'
      ? process.env.SQUALL_CRC32 : `native ${kernel}`;
    t.equal(crc32Implementation, want);
    if (process.arch === 'x64' && kernel === 'slicing-by-16') t.comment('this x86-64 CPU has no PCLMULQDQ: the table path only');
    t.end();
  });

  t.test('check values', (t) => {
    const text = (s: string): Uint8Array => Buffer.from(s, 'latin1');
    t.equal(n.crc32(text(''), 0), 0, 'empty');
    t.equal(n.crc32(text(''), 0xdeadbeef), 0xdeadbeef, 'empty keeps the running value');
    t.equal(n.crc32(new Uint8Array(0), 0xffffffff), 0xffffffff, 'empty, running value 0xffffffff');
    t.equal(n.crc32(text('123456789'), 0), 0xcbf43926, '"123456789"');
    t.equal(n.crc32(new Uint8Array(32).fill(0xff), 0), 0xff6cab0b, '32 0xff bytes');
    t.equal(n.crc32(new Uint8Array(4096).fill(0xff), 0), crc32TS(new Uint8Array(4096).fill(0xff)), '4096 0xff bytes');
    t.end();
  });

  t.test('every length 0..300 at every offset 0..15, random and all-0xff, equals crc32TS and zlib.crc32', (t) => {
    const rng = new Rng(2024);
    const sources = { random: randomBytes(rng, 400), '0xff': new Uint8Array(400).fill(0xff) };
    for (const [what, src] of Object.entries(sources)) {
      let bad = 0, badZ = 0, badCont = 0, checked = 0;
      for (let off = 0; off < 16; off++) {
        for (let len = 0; len <= 300; len++) {
          const s = src.subarray(off, off + len);
          const want = crc32TS(s);
          if (n.crc32(s, 0) !== want) bad++;
          if (zcrc && len > 0 && zcrc(s, 0) >>> 0 !== want) badZ++;
          const seed = rng.int(0, 0xffffffff);
          if (n.crc32(s, seed) !== crc32TS(s, seed)) badCont++;
          checked++;
        }
      }
      t.equal(bad, 0, `${what}: ${checked} views from 0`);
      t.equal(badCont, 0, `${what}: ${checked} views from a random running value`);
      if (zcrc) t.equal(badZ, 0, `${what}: zlib.crc32 agrees with crc32TS`);
    }
    t.end();
  });

  t.test('large odd-sized buffers at odd offsets', (t) => {
    const rng = new Rng(77);
    const big = randomBytes(rng, (1 << 20) + 64);
    for (const off of [0, 1, 3, 8, 13]) {
      for (const len of [(1 << 20) + 13, (1 << 20) - 1, 65536 + 7, 4099]) {
        const s = big.subarray(off, off + len);
        const want = crc32TS(s);
        t.equal(n.crc32(s, 0), want, `offset ${off}, length ${len}`);
        if (zcrc) t.equal(zcrc(s, 0) >>> 0, want, `zlib: offset ${off}, length ${len}`);
      }
    }
    t.end();
  });

  t.test('continues across many split points', (t) => {
    const rng = new Rng(5);
    const data = randomBytes(rng, 9000);
    const whole = crc32TS(data);
    t.equal(n.crc32(data, 0), whole, 'whole');
    let bad = 0;
    const cuts = [...Array.from({ length: 301 }, (_, i) => i), 511, 512, 513, 1023, 1024, 1025, 4095, 4096, 4097, 8191, 8999, 9000];
    for (const cut of cuts) {
      const a = data.subarray(0, cut), b = data.subarray(cut);
      if (n.crc32(b, n.crc32(a, 0)) !== whole) bad++;
      if (crc32(b, crc32TS(a)) !== whole) bad++; // mixed implementations
      if (crc32TS(b, n.crc32(a, 0)) !== whole) bad++;
    }
    t.equal(bad, 0, `${cuts.length} cuts, native, mixed both ways`);
    // Many uneven pieces.
    let c = 0;
    for (let i = 0, step = 1; i < data.length; step = (step * 7) % 613 + 1) {
      c = n.crc32(data.subarray(i, i + step), c);
      i += step;
    }
    t.equal(c, whole, 'uneven pieces');
    t.end();
  });

  t.test('reads the bytes of any view in place: Float32Array, DataView, Buffer, Uint16Array with byteOffset', (t) => {
    const rng = new Rng(9);
    const bytes = randomBytes(rng, 4096 + 64);
    for (const off of [0, 4, 8, 12, 36]) {
      for (const count of [0, 1, 3, 31, 32, 100, 1000]) {
        const f = new Float32Array(bytes.buffer, off, count);
        const asBytes = new Uint8Array(bytes.buffer, off, count * 4);
        const want = crc32TS(asBytes);
        t.equal(n.crc32(f, 0), want, `Float32Array(${count}) at byteOffset ${off}`);
        t.equal(crc32(f), want, `crc32() of Float32Array(${count}) at byteOffset ${off}`);
        if (zcrc && count > 0) t.equal(zcrc(f, 0) >>> 0, want, `zlib of Float32Array(${count}) at byteOffset ${off}`);
      }
    }
    for (const [off, len] of [[1, 0], [3, 7], [5, 200], [7, 4000]] as const) {
      const want = crc32TS(new Uint8Array(bytes.buffer, off, len));
      t.equal(n.crc32(new DataView(bytes.buffer, off, len), 0), want, `DataView(${off}, ${len})`);
      t.equal(n.crc32(Buffer.from(bytes.buffer, off, len), 0), want, `Buffer(${off}, ${len})`);
      t.equal(crc32(new DataView(bytes.buffer, off, len)), want, `crc32() of DataView(${off}, ${len})`);
    }
    const u16 = new Uint16Array(bytes.buffer, 2, 999);
    t.equal(n.crc32(u16, 0), crc32TS(new Uint8Array(bytes.buffer, 2, 1998)), 'Uint16Array(999) at byteOffset 2');
    const f64 = new Float64Array(bytes.buffer, 8, 300);
    t.equal(n.crc32(f64, 0), crc32TS(new Uint8Array(bytes.buffer, 8, 2400)), 'Float64Array(300) at byteOffset 8');
    // In place: a change to the underlying bytes shows in the next checksum.
    const view = new Uint8Array(bytes.buffer, 100, 500);
    const before = n.crc32(view, 0);
    bytes[350] = bytes[350]! ^ 1;
    t.not(n.crc32(view, 0), before, 'sees a change made through another view');
    t.equal(n.crc32(view, 0), crc32TS(view));
    t.end();
  });

  t.test('bad arguments: TypeError / RangeError naming the argument', (t) => {
    const ok = new Uint8Array(4);
    const call = (...args: unknown[]): unknown => (n.crc32 as unknown as (...a: unknown[]) => unknown)(...args);
    t.throws(() => call([1, 2, 3], 0), { name: 'TypeError', message: /crc32: argument 'data' must be an ArrayBufferView .*got Array/ });
    t.throws(() => call('abc', 0), { name: 'TypeError', message: /argument 'data' .*got string/ });
    t.throws(() => call(new ArrayBuffer(8), 0), { name: 'TypeError', message: /argument 'data' .*got object/ });
    t.throws(() => call(null, 0), { name: 'TypeError', message: /argument 'data' .*got null/ });
    t.throws(() => call(ok, '0'), { name: 'TypeError', message: /crc32: argument 'crc' must be a number, got string/ });
    t.throws(() => call(ok, -1), { name: 'RangeError', message: /argument 'crc' must be an integer between 0 and 4294967295/ });
    t.throws(() => call(ok, 2 ** 32), { name: 'RangeError', message: /argument 'crc'/ });
    t.throws(() => call(ok, 1.5), { name: 'RangeError', message: /argument 'crc'/ });
    t.throws(() => call(ok, NaN), { name: 'RangeError', message: /argument 'crc'/ });
    t.throws(() => call(ok), { name: 'TypeError', message: /crc32: expected 2 arguments, got 1/ });
    t.equal(call(ok, 0xffffffff), crc32TS(ok, 0xffffffff), 'crc 0xffffffff is valid');
    // A detached buffer has no bytes left: the running value.
    const buf = new ArrayBuffer(16);
    const view = new Uint8Array(buf);
    structuredClone(buf, { transfer: [buf] });
    t.equal(call(view, 123), 123, 'detached view: length 0');
    t.end();
  });

  t.test('crc32() keeps its semantics: empty input, running values coerced like crc32TS', (t) => {
    const data = new Uint8Array([1, 2, 3, 4, 5]);
    t.equal(crc32(new Uint8Array(0), 0xabcdef01), 0xabcdef01, 'empty');
    t.equal(crc32(Buffer.allocUnsafeSlow(0), 0x1234), 0x1234, 'empty view of a zero-length ArrayBuffer');
    t.equal(crc32(data, -1), crc32TS(data, -1), 'running value -1 as 0xffffffff');
    t.equal(crc32(data, 2 ** 32 + 5), crc32TS(data, 2 ** 32 + 5), 'running value modulo 2^32');
    t.end();
  });

  t.test('calling crc32 starts no threads and loads no BLAS library (child process)', (t) => {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], {
      env: { ...process.env, [CHILD]: '1' }, encoding: 'utf8', timeout: 120_000,
    });
    const line = r.stdout.split('\n').find((l) => l.startsWith('CHILD '));
    if (!line) {
      t.fail(`the child printed no result (status ${r.status}): ${r.stderr.slice(-500)}`);
      t.end();
      return;
    }
    const out = JSON.parse(line.slice(6)) as { before: number; after: number; blas: boolean; implementation: string };
    t.equal(out.after, out.before, `thread count unchanged (${out.before})`);
    t.equal(out.blas, false, 'no BLAS library mapped');
    t.equal(out.implementation, crc32Implementation, `the child's crc32() uses ${out.implementation} too`);
    t.end();
  });
}
