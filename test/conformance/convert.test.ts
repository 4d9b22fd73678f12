// bf16 and fp16 wire encodings against a reference computed from the values (reference.ts):
// decoding is checked on all 65536 bit patterns; encoding bit for bit on random values over
// the whole float32 range, on every kind of special value (zeros, subnormals of both
// formats, halfway cases in both directions, overflow, infinities) and NaN stays NaN.
import t from 'tap';
import type { Backend } from '../../engine/backends/backend.js';
import * as ref from './reference.js';
import { Rng, forEachBackend, type Tap } from './util.js';

const f32 = (bits: number) => new Float32Array(new Uint32Array([bits >>> 0]).buffer)[0]!;

/** Float32 inputs for encoding tests: specials, ties, and random bit patterns. */
function encodeInputs(rng: Rng, fmt: 'bf16' | 'fp16'): Float32Array {
  const xs: number[] = [0, -0, 1, -1, 0.5, 2, 3, 1 / 3, Math.PI, -Math.E, 1e-3, 1e3, 65504, -65504, 65519, 65520, 65536, 1e5, 1e-5,
    6.1035156e-5, 5.96e-8, 2.98e-8, 2.99e-8, 1e-8, 1e-10, 1e-30, 1e-38, 1e-40, 1e-45, 3e38, -3e38, Infinity, -Infinity,
    f32(0x7f7fffff), f32(0xff7fffff), f32(0x00000001), f32(0x807fffff), f32(0x00800000), f32(0x3f808000), f32(0x3f818000),
    f32(0x3f80c000), f32(0x3f807fff), f32(0x477fefff), f32(0x477ff000), f32(0x33000000), f32(0x33000001), f32(0xb3400000)];
  // exact halfway cases in the format: 1 + k ulp + half an ulp, both parities, many binades
  const manBits = fmt === 'bf16' ? 7 : 10;
  for (let e = -20; e <= 20; e += 3) {
    for (let k = 0; k < 4; k++) {
      const ulp = Math.pow(2, e - manBits);
      xs.push(Math.pow(2, e) + k * ulp + ulp / 2, -(Math.pow(2, e) + k * ulp + ulp / 2));
    }
  }
  // halfway cases among fp16 subnormals
  for (let k = 0; k < 6; k++) xs.push((k + 0.5) * Math.pow(2, -24));
  // random bit patterns (every exponent), and random values in the format's normal range
  for (let i = 0; i < 20000; i++) {
    const v = f32(Math.floor(rng.next() * 4294967296));
    if (!Number.isNaN(v)) xs.push(v);
  }
  for (let i = 0; i < 20000; i++) xs.push(rng.uniform(-1, 1) * Math.pow(2, rng.int(-26, 17)));
  return Float32Array.from(xs);
}

function checkEncode(t: Tap, name: string, enc: (src: Float32Array, dst: Uint16Array) => void, refEnc: (x: number) => number,
  eBits: number, manBits: number, rng: Rng): void {
  const src = encodeInputs(rng, name === 'f32ToBf16' ? 'bf16' : 'fp16');
  const dst = new Uint16Array(src.length).fill(0xdead);
  enc(src, dst);
  const bad: string[] = [];
  for (let i = 0; i < src.length && bad.length < 5; i++) {
    const want = refEnc(src[i]!);
    if (dst[i] !== want) bad.push(`${src[i]} (0x${new Uint32Array(new Float32Array([src[i]!]).buffer)[0]!.toString(16)}) -> 0x${dst[i]!.toString(16)}, expected 0x${want.toString(16)}`);
  }
  t.same(bad, [], `${name}: ${src.length} values round to nearest even, bit for bit`);

  // NaN stays NaN (quiet or signalling, any payload, either sign)
  const nans = Float32Array.from([0x7fc00000, 0x7f800001, 0xff800001, 0x7fbfffff, 0xffc00001, 0x7f800100, 0x7f808000].map(f32));
  const nd = new Uint16Array(nans.length);
  enc(nans, nd);
  const notNaN = [...nd].map((b, i) => [b, i] as const).filter(([b]) => !ref.isNaNBits(b, eBits, manBits));
  t.same(notNaN.map(([b, i]) => `0x${new Uint32Array(nans.buffer)[i]!.toString(16)} -> 0x${b.toString(16)}`), [], `${name}: NaN stays NaN`);
}

function checkDecode(t: Tap, name: string, dec: (src: Uint16Array, dst: Float32Array) => void, refDec: (b: number) => number): void {
  const src = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const dst = new Float32Array(65536).fill(12345);
  dec(src, dst);
  const bad: string[] = [];
  for (let i = 0; i < 65536 && bad.length < 5; i++) {
    const want = refDec(i);
    const got = dst[i]!;
    const ok = Number.isNaN(want) ? Number.isNaN(got) : Object.is(got, want);
    if (!ok) bad.push(`0x${i.toString(16)} -> ${got}, expected ${want}`);
  }
  t.same(bad, [], `${name}: all 65536 bit patterns decode exactly`);
}

function checkRoundTrip(t: Tap, name: string, be: Backend, enc: 'f32ToBf16' | 'f32ToF16', dec: 'bf16ToF32' | 'f16ToF32', eBits: number, manBits: number): void {
  // every non-NaN pattern decodes to a float32 that encodes back to the same pattern
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i).filter((b) => !ref.isNaNBits(b, eBits, manBits));
  const f = new Float32Array(all.length);
  be[dec](all, f);
  const back = new Uint16Array(all.length);
  be[enc](f, back);
  let first = -1;
  for (let i = 0; i < all.length && first < 0; i++) if (back[i] !== all[i]) first = i;
  t.ok(first < 0, `${name}: decode then encode is the identity on every non-NaN pattern` +
    (first >= 0 ? ` (0x${all[first]!.toString(16)} -> ${f[first]} -> 0x${back[first]!.toString(16)})` : ''));
}

forEachBackend(t, async (t, be) => {
  const rng = new Rng(10);
  t.test('bf16', (t) => {
    checkDecode(t, 'bf16ToF32', (s, d) => be.bf16ToF32(s, d), ref.bf16ToF32);
    checkEncode(t, 'f32ToBf16', (s, d) => be.f32ToBf16(s, d), ref.f32ToBf16, 8, 7, rng);
    checkRoundTrip(t, 'bf16', be, 'f32ToBf16', 'bf16ToF32', 8, 7);
    t.end();
  });
  t.test('fp16', (t) => {
    checkDecode(t, 'f16ToF32', (s, d) => be.f16ToF32(s, d), ref.f16ToF32);
    checkEncode(t, 'f32ToF16', (s, d) => be.f32ToF16(s, d), ref.f32ToF16, 5, 10, rng);
    checkRoundTrip(t, 'fp16', be, 'f32ToF16', 'f16ToF32', 5, 10);
    t.end();
  });
  t.test('short arrays (vector tails)', (t) => {
    for (const n of [1, 3, 7, 9, 17]) {
      const x = Float32Array.from({ length: n }, () => rng.uniform(-100, 100));
      const h = new Uint16Array(n);
      const b = new Uint16Array(n);
      be.f32ToF16(x, h);
      be.f32ToBf16(x, b);
      t.same([...h], [...x].map(ref.f32ToF16), `f32ToF16 n=${n}`);
      t.same([...b], [...x].map(ref.f32ToBf16), `f32ToBf16 n=${n}`);
      const back = new Float32Array(n);
      be.f16ToF32(h, back);
      t.same([...back], [...h].map(ref.f16ToF32), `f16ToF32 n=${n}`);
      be.bf16ToF32(b, back);
      t.same([...back], [...b].map(ref.bf16ToF32), `bf16ToF32 n=${n}`);
    }
    t.end();
  });
});
