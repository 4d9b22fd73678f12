// Wire encodings of a slice on every backend: f32 is bit-exact (NaN, infinities, -0,
// subnormals included); bf16 and fp16 round to nearest even as the plain JavaScript
// references below do, keep NaN, and fp16 overflows to infinity; payload sizes are checked
// before anything is written; unaligned payloads decode; native and wasm produce the same
// bytes (a mixed cluster must agree on what it sends).
import t from 'tap';
import type { Backend } from '../../engine/backends/backend.js';
import { availableBackends } from '../../engine/backends/registry.js';
import { bytesPerValue, decodeSlice, encodeSlice, roundTrip, wireDtype, wireFormatOf, WireFormatError, type WireFormat } from '../../engine/cluster/index.js';
import { WireDtype } from '../../transport/transport.js';
import { Rng, forEachBackend, randArray } from '../conformance/util.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bf16 bits of x: round to nearest even on the top 16 bits; NaN stays a (quiet) NaN. */
function bf16Ref(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if (Number.isNaN(f32[0])) return (b >>> 16) | 0x40;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

function bf16Value(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

/** The fp16 value nearest to x (ties to even), as a number; overflow to +-Infinity. */
function f16Ref(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Infinity; // 65504 + half an ulp (16) rounds up to infinity
  if (a === 0) return x;
  // Quantum: 2^(e-10) for normal, 2^-24 for subnormal.
  const e = Math.max(Math.floor(Math.log2(a)), -14);
  const q = 2 ** (e - 10);
  const m = a / q;
  let r = Math.round(m);
  if (Math.abs(m - Math.trunc(m) - 0.5) < 1e-12 && r % 2 === 1) r -= 1; // ties to even
  return Math.sign(x) * r * q;
}

function specials(): Float32Array {
  return Float32Array.from([0, -0, 1, -1, 0.1, 3.14159, 1e-40, -1e-42, 1e-8, 65504, 65519, 65520, 1e5, -1e30, 3e38,
    Infinity, -Infinity, NaN, 1.00390625, 1.01171875, 1 + 2 ** -9, 1 + 3 * 2 ** -9]);
}

t.test('format table', async (t) => {
  for (const [f, d, b] of [['f32', WireDtype.F32, 4], ['bf16', WireDtype.BF16, 2], ['fp16', WireDtype.F16, 2]] as const) {
    t.equal(wireDtype(f), d, `${f} -> dtype ${d}`);
    t.equal(wireFormatOf(d), f, `dtype ${d} -> ${f}`);
    t.equal(bytesPerValue(f), b, `${f}: ${b} bytes per value`);
  }
  t.throws(() => wireFormatOf(WireDtype.Bytes), WireFormatError, 'Bytes is not a float slice');
  t.throws(() => wireDtype('f64' as WireFormat), WireFormatError, 'unknown format');
});

forEachBackend(t, async (t, be: Backend) => {
  const rng = new Rng(41);
  const x = new Float32Array([...specials(), ...randArray(rng, 997, -50, 50), ...randArray(rng, 100, -1e-6, 1e-6)]);

  await t.test('f32 is bit-exact', async (t) => {
    const p = encodeSlice(be, x, 'f32');
    t.equal(p.byteLength, 4 * x.length, 'payload size');
    const y = new Float32Array(x.length);
    decodeSlice(be, p, 'f32', y);
    t.same(new Uint32Array(y.buffer), new Uint32Array(x.buffer), 'decoded bits equal the source bits');
    const before = x.slice();
    p.fill(0);
    t.same(x, before, 'the payload is a copy: changing it leaves the source alone');
  });

  await t.test('bf16 rounds to nearest even', async (t) => {
    const p = encodeSlice(be, x, 'bf16');
    t.equal(p.byteLength, 2 * x.length, 'payload size');
    const bits = new Uint16Array(p.buffer, p.byteOffset, x.length);
    let bad = -1;
    for (let i = 0; i < x.length && bad < 0; i++) {
      if (Number.isNaN(x[i])) {
        if (!Number.isNaN(bf16Value(bits[i]!))) bad = i;
      } else if (bits[i] !== bf16Ref(x[i]!)) bad = i;
    }
    t.equal(bad, -1, bad < 0 ? 'every value as the reference' : `x[${bad}] = ${x[bad]}: got 0x${bits[bad]!.toString(16)}, want 0x${bf16Ref(x[bad]!).toString(16)}`);
    const y = roundTrip(be, x, 'bf16');
    let worst = 0;
    for (let i = 0; i < x.length; i++) {
      if (Number.isFinite(x[i]!) && Math.abs(x[i]!) > 1e-37) worst = Math.max(worst, Math.abs(y[i]! - x[i]!) / Math.abs(x[i]!));
    }
    t.ok(worst <= 2 ** -8, `relative rounding error ${worst.toExponential(2)} <= 2^-8 (8 significant bits)`);
    t.ok(Number.isNaN(y[specials().indexOf(NaN)] ?? NaN) && y.includes(Infinity) && y.includes(-Infinity), 'NaN and infinities survive');
  });

  await t.test('fp16 rounds to nearest even and overflows to infinity', async (t) => {
    const y = roundTrip(be, x, 'fp16');
    let bad = -1;
    for (let i = 0; i < x.length && bad < 0; i++) {
      const want = f16Ref(x[i]!);
      if (!(Object.is(y[i], want) || (y[i] === want))) bad = i;
    }
    t.equal(bad, -1, bad < 0 ? 'every value as the reference' : `x[${bad}] = ${x[bad]}: got ${y[bad]}, want ${f16Ref(x[bad]!)}`);
    t.equal(roundTrip(be, Float32Array.of(1e5, -7e4), 'fp16').join(), 'Infinity,-Infinity', 'beyond 65504 -> infinity');
  });

  await t.test('sizes are checked before writing; unaligned payloads decode', async (t) => {
    for (const f of ['f32', 'bf16', 'fp16'] as const) {
      const p = encodeSlice(be, x.subarray(0, 10), f);
      const dst = new Float32Array(11).fill(7);
      t.throws(() => decodeSlice(be, p, f, dst), WireFormatError, `${f}: 10 values into 11`);
      t.ok(dst.every((v) => v === 7), `${f}: destination untouched`);
      const odd = new Uint8Array(p.byteLength + 1);
      odd.set(p, 1);
      const y = new Float32Array(10);
      decodeSlice(be, odd.subarray(1), f, y);
      t.same([...y].map(String), [...roundTrip(be, x.subarray(0, 10), f)].map(String), `${f}: payload at an odd byte offset`);
      const empty = new Float32Array(0);
      t.equal(encodeSlice(be, empty, f).byteLength, 0, `${f}: an empty slice encodes to nothing`);
      decodeSlice(be, new Uint8Array(0), f, empty);
    }
    // A source inside the backend's own storage (wasm linear memory) encodes too.
    const own = be.allocFloat32(16);
    own.set(x.subarray(0, 16));
    t.same([...roundTrip(be, own, 'bf16')].map(String), [...roundTrip(be, x.subarray(0, 16), 'bf16')].map(String), 'backend-allocated source');
    be.free(own);
  });
});

t.test('native and wasm send the same bytes', async (t) => {
  const bes = availableBackends();
  if (bes.length < 2) {
    t.pass('needs both backends: skipped');
    return;
  }
  const rng = new Rng(42);
  const x = new Float32Array([...specials(), ...randArray(rng, 4096, -100, 100)]);
  for (const f of ['bf16', 'fp16'] as const) {
    const a = encodeSlice(bes[0]!, x, f);
    const b = encodeSlice(bes[1]!, x, f);
    // NaN payload bits may differ; compare the rest bit for bit.
    let same = a.length === b.length;
    const ua = new Uint16Array(a.buffer);
    const ub = new Uint16Array(b.buffer);
    for (let i = 0; same && i < x.length; i++) same = Number.isNaN(x[i]) || ua[i] === ub[i];
    t.ok(same, `${f}: ${bes[0]!.name} and ${bes[1]!.name} encode identically`);
  }
});
