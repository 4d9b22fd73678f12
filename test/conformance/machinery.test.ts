// The suite's own machinery: the float64 references and the test utilities checked by hand.
import tap from 'tap';
import type { Conv2dShape, Pool2dShape } from '../../engine/backends/backend.js';
import { adamUpdate, avgPool2dForward, bf16ToF32, conv2dForward, convOut, f16ToF32, f32ToBf16, f32ToF16, gemm, isNaNBits, maxPool2dForward, poolOut, sgdUpdate, softmax } from './reference.js';
import { Arena, Rng, finiteDiff, maxRelErr, namesIt } from './util.js';

tap.test('util: error metric', (t) => {
  t.equal(maxRelErr([1, 2, 3], [1, 2, 3]), 0);
  t.equal(maxRelErr([0.5], [0.25]), 0.25, 'absolute below magnitude 1');
  t.equal(maxRelErr([110, 1], [100, 1]), 0.1, 'relative to the largest reference');
  t.equal(maxRelErr([NaN], [0]), Infinity, 'NaN is an infinite error');
  t.equal(maxRelErr([1, 2], [1]), Infinity, 'length mismatch');
  t.end();
});
tap.test('util: RNG is deterministic', (t) => {
  const a = new Rng(7);
  const b = new Rng(7);
  const xs = Array.from({ length: 5 }, () => a.next());
  t.same(xs, Array.from({ length: 5 }, () => b.next()));
  t.ok(xs.every((x) => x >= 0 && x < 1));
  t.end();
});
tap.test('util: error messages must name the argument', (t) => {
  t.ok(namesIt('sgemm: a must be a Float32Array', ['a']));
  t.ok(namesIt("argument 'c' is too short", ['c']));
  t.ok(namesIt('c has length 11, need 12', ['c']));
  t.notOk(namesIt('c must be a Float32Array', ['a']), 'the article a is not argument a');
  t.ok(namesIt('s.strideH must be >= 1', ['strideH']));
  t.notOk(namesIt('strideHW must be >= 1', ['strideH']));
  t.end();
});
tap.test('util: finite differences', (t) => {
  const fd = finiteDiff((x) => x[0]! * x[0]! * x[1]!, Float64Array.from([3, 2]), 1e-5);
  t.ok(Math.abs(fd.get(0)! - 12) < 1e-6 && Math.abs(fd.get(1)! - 9) < 1e-6);
  t.end();
});
tap.test('util: arena guards', (t) => {
  const a = Arena.f32(64, 3);
  const v = a.alloc(4, [1, 2, 3, 4]);
  const snap = a.snapshot();
  v[0] = 9;
  t.same(a.changedOutside(snap, [v]), []);
  a.buf[0] = 0;
  t.same(a.changedOutside(snap, [v]), [0]);
  t.end();
});

tap.test('reference: gemm by hand', (t) => {
  // A = [[1,2],[3,4]], B = [[5,6],[7,8]] -> AB = [[19,22],[43,50]]
  const c = gemm(false, false, 2, 2, 2, 1, [1, 2, 3, 4], 2, [5, 6, 7, 8], 2, 0, [NaN, NaN, NaN, NaN], 2);
  t.same([...c], [19, 22, 43, 50]);
  // A^T B^T with A stored [[1,3],[2,4]] and B stored [[5,7],[6,8]]: the same product.
  const d = gemm(true, true, 2, 2, 2, 2, [1, 3, 2, 4], 2, [5, 7, 6, 8], 2, 1, [1, 1, 1, 1], 2);
  t.same([...d], [39, 45, 87, 101]);
  t.end();
});
tap.test('reference: conv by hand', (t) => {
  const s: Conv2dShape = { batch: 1, inC: 1, inH: 3, inW: 3, outC: 1, kH: 2, kW: 2, strideH: 1, strideW: 1,
    padH: 0, padW: 0, dilationH: 1, dilationW: 1, groups: 1 };
  const y = conv2dForward(s, [1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 0, 0, -1], [10]);
  t.same([...y], [6, 6, 6, 6]);
  t.equal(convOut(7, 3, 2, 1, 2), 3);
  t.equal(convOut(5, 1, 1, 0, 1), 5);
  t.end();
});
tap.test('reference: pooling sizes and divisors', (t) => {
  t.equal(poolOut(5, 2, 2, 1, true), 3, 'ceil: last window starts in the padding, dropped');
  t.equal(poolOut(6, 3, 3, 1, true), 3, 'ceil: partial last window kept');
  t.equal(poolOut(6, 3, 3, 1, false), 2);
  const s: Pool2dShape = { batch: 1, channels: 1, inH: 1, inW: 4, kH: 1, kW: 3, strideH: 1, strideW: 3, padH: 0, padW: 1,
    ceilMode: true, countIncludePad: true };
  // windows [-1,2) and [2,5) clipped to [2,5): divisors 3 and 3 (includes the right pad cell)
  t.same([...avgPool2dForward(s, [3, 6, 9, 12])], [3, 7]);
  t.same([...avgPool2dForward({ ...s, countIncludePad: false }, [3, 6, 9, 12])], [4.5, 10.5]);
  const mp = maxPool2dForward({ ...s, kW: 2, strideW: 2, padW: 0, ceilMode: false }, [5, 5, 1, 7]);
  t.same([...mp.indices], [0, 3], 'ties resolve to the first');
  t.end();
});
tap.test('reference: bf16 and fp16 by hand', (t) => {
  t.equal(f32ToF16(1), 0x3c00);
  t.equal(f32ToF16(-2), 0xc000);
  t.equal(f32ToF16(65504), 0x7bff);
  t.equal(f32ToF16(65520), 0x7c00, '65520 rounds to infinity');
  t.equal(f32ToF16(65519.99), 0x7bff);
  t.equal(f32ToF16(Math.pow(2, -24)), 0x0001, 'smallest subnormal');
  t.equal(f32ToF16(Math.pow(2, -25)), 0x0000, 'tie to even: zero');
  t.equal(f32ToF16(3 * Math.pow(2, -25)), 0x0002, 'tie to even: two');
  t.equal(f32ToF16(-0), 0x8000);
  t.equal(f32ToF16(1 + Math.pow(2, -11)), 0x3c00, 'tie to even (down)');
  t.equal(f32ToF16(1 + 3 * Math.pow(2, -11)), 0x3c02, 'tie to even (up)');
  t.equal(f16ToF32(0x3555), 0.333251953125);
  t.equal(f16ToF32(0x0400), Math.pow(2, -14));
  t.equal(f16ToF32(0xfc00), -Infinity);
  t.ok(Number.isNaN(f16ToF32(0x7c01)));
  t.equal(f32ToBf16(1), 0x3f80);
  t.equal(f32ToBf16(1 + Math.pow(2, -8)), 0x3f80, 'bf16 tie to even (down)');
  t.equal(f32ToBf16(1 + 3 * Math.pow(2, -8)), 0x3f82, 'bf16 tie to even (up)');
  t.equal(f32ToBf16(Math.fround(3.4028234663852886e38)), 0x7f80, 'max float rounds to infinity');
  t.equal(f32ToBf16(Math.pow(2, -133)), 0x0001, 'smallest bf16 subnormal');
  t.equal(bf16ToF32(0xc0a0), -5);
  t.ok(isNaNBits(f32ToBf16(NaN), 8, 7));
  t.end();
});
tap.test('reference: softmax and optimisers by hand', (t) => {
  const y = softmax(1, 2, [0, Math.log(3)]);
  t.ok(Math.abs(y[0]! - 0.25) < 1e-15 && Math.abs(y[1]! - 0.75) < 1e-15);
  const s = sgdUpdate({ lr: 0.5, momentum: 0.9, dampening: 0.5, weightDecay: 0.1, nesterov: false, firstStep: false },
    [1], [2], [4]);
  // g = 2.1, buf = 3.6 + 1.05 = 4.65, p = 1 - 2.325
  t.ok(Math.abs(s.params[0]! + 1.325) < 1e-12 && Math.abs(s.momentumBuf[0]! - 4.65) < 1e-12);
  const a = adamUpdate({ lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 0, weightDecay: 0, step: 1 }, [1], [3], [0], [0]);
  t.ok(Math.abs(a.params[0]! - 0.9) < 1e-12, 'first Adam step moves by lr * sign(g)');
  t.end();
});
