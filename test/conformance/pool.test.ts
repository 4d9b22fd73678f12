// Max and average pooling, forward and backward, against the float64 reference: floor and
// ceil output modes (a last ceil window that starts in the padding dropped, a partial one
// kept), countIncludePad both ways, padding, overlapping and gapped windows, non-square
// geometry, ties in max pooling (first in row-major window order), all-negative inputs next
// to padding; backward also against finite differences; gradInput is overwritten.
import t from 'tap';
import type { Backend, Pool2dShape } from '../../engine/backends/backend.js';
import * as ref from './reference.js';
import { Rng, close, closeToFD, dot, filled, finiteDiff, fmt, forEachBackend, randArray, sampleIndices, toF64, type Tap } from './util.js';

function shape(p: Partial<Pool2dShape>): Pool2dShape {
  return {
    batch: 1, channels: 1, inH: 1, inW: 1, kH: 1, kW: 1, strideH: 1, strideW: 1, padH: 0, padW: 0,
    ceilMode: false, countIncludePad: true, ...p,
  };
}

const geometries: Partial<Pool2dShape>[] = [
  // 2x2/2 on an even image
  { batch: 2, channels: 3, inH: 8, inW: 8, kH: 2, kW: 2, strideH: 2, strideW: 2 },
  // 3x3/2 on an even image: ceil mode keeps a partial last window (floor 3, ceil 4)
  { batch: 1, channels: 2, inH: 8, inW: 8, kH: 3, kW: 3, strideH: 2, strideW: 2 },
  // ceil mode: the last window would start in the right padding and is dropped
  { batch: 1, channels: 2, inH: 5, inW: 4, kH: 2, kW: 2, strideH: 2, strideW: 3, padH: 1, padW: 1 },
  // 3x3/3 pad 1 on 6x6: ceil keeps a last window clipped at in + pad (divisor counts one pad row)
  { batch: 2, channels: 2, inH: 6, inW: 6, kH: 3, kW: 3, strideH: 3, strideW: 3, padH: 1, padW: 1 },
  // 3x3/2 pad 1 on odd sizes (ResNet's stem pooling)
  { batch: 2, channels: 3, inH: 9, inW: 7, kH: 3, kW: 3, strideH: 2, strideW: 2, padH: 1, padW: 1 },
  // Inception's 3x3/1 pad 1 (heavily overlapping windows)
  { batch: 1, channels: 4, inH: 7, inW: 7, kH: 3, kW: 3, strideH: 1, strideW: 1, padH: 1, padW: 1 },
  // non-square kernel, stride and padding
  { batch: 1, channels: 3, inH: 11, inW: 10, kH: 2, kW: 3, strideH: 1, strideW: 2, padH: 1, padW: 0 },
  // stride larger than the kernel: some inputs are in no window
  { batch: 2, channels: 2, inH: 10, inW: 11, kH: 2, kW: 2, strideH: 3, strideW: 3 },
  // global pooling
  { batch: 3, channels: 5, inH: 7, inW: 7, kH: 7, kW: 7, strideH: 1, strideW: 1 },
  // identity (1x1/1)
  { batch: 1, channels: 2, inH: 3, inW: 5 },
  // one-row image
  { batch: 2, channels: 1, inH: 1, inW: 13, kH: 1, kW: 4, strideH: 1, strideW: 3, padH: 0, padW: 2 },
];

function allModes(g: Partial<Pool2dShape>): Pool2dShape[] {
  const out: Pool2dShape[] = [];
  for (const ceilMode of [false, true]) for (const countIncludePad of [false, true]) out.push(shape({ ...g, ceilMode, countIncludePad }));
  return out;
}

function randomShape(rng: Rng): Pool2dShape {
  for (;;) {
    const kH = rng.int(1, 4);
    const kW = rng.int(1, 4);
    const s = shape({
      batch: rng.int(1, 2), channels: rng.int(1, 3), inH: rng.int(1, 12), inW: rng.int(1, 12), kH, kW,
      strideH: rng.int(1, 3), strideW: rng.int(1, 3), padH: rng.int(0, Math.floor(kH / 2)), padW: rng.int(0, Math.floor(kW / 2)),
      ceilMode: rng.bool(), countIncludePad: rng.bool(),
    });
    if (s.inH + 2 * s.padH >= kH && s.inW + 2 * s.padW >= kW) return s;
  }
}

function checkMax(t: Tap, be: Backend, rng: Rng, s: Pool2dShape, x: Float32Array): void {
  const z = ref.poolSizes(s);
  const name = fmt(s);
  const want = ref.maxPool2dForward(s, x);
  const y = filled(z.output, NaN);
  const idx = new Int32Array(z.output).fill(-7);
  be.maxPool2dForward(s, x, y, idx);
  close(t, y, want.output, `max forward ${name}`, 0);
  let firstBad = -1;
  for (let i = 0; i < z.output && firstBad < 0; i++) if (idx[i] !== want.indices[i]) firstBad = i;
  t.ok(firstBad < 0, `max indices ${name}` +
    (firstBad >= 0 ? `: first difference at [${firstBad}]: got ${idx[firstBad]}, expected ${want.indices[firstBad]}` : ''));
  const gy = randArray(rng, z.output);
  const gx = filled(z.input, NaN);
  be.maxPool2dBackward(s, gy, want.indices, gx);
  close(t, gx, ref.maxPool2dBackward(s, gy, want.indices), `max backward ${name}`);
}

function checkAvg(t: Tap, be: Backend, rng: Rng, s: Pool2dShape, x: Float32Array): void {
  const z = ref.poolSizes(s);
  const name = fmt(s);
  const y = filled(z.output, NaN);
  be.avgPool2dForward(s, x, y);
  close(t, y, ref.avgPool2dForward(s, x), `avg forward ${name}`);
  const gy = randArray(rng, z.output);
  const gx = filled(z.input, NaN);
  be.avgPool2dBackward(s, gy, gx);
  close(t, gx, ref.avgPool2dBackward(s, gy), `avg backward ${name}`);
}

forEachBackend(t, async (t, be) => {
  const rng = new Rng(3);

  t.test('output sizes follow the ceil-mode rule', (t) => {
    // The caller sizes the output; a backend with another rule rejects it. These cases pin
    // the rule down: [in, k, stride, pad] -> [floor, ceil].
    const cases: [number, number, number, number, number, number][] = [
      [8, 3, 2, 0, 3, 4], // partial last window kept
      [5, 2, 2, 1, 3, 3], // ceil would add a window starting in the padding: dropped
      [4, 2, 3, 1, 2, 2], // same
      [6, 3, 3, 1, 2, 3], // kept, clipped at in + pad
      [7, 3, 2, 0, 3, 3], // exact fit
    ];
    for (const [inp, k, stride, pad, fl, ce] of cases) {
      t.equal(ref.poolOut(inp, k, stride, pad, false), fl, `floor(${inp}, ${k}, ${stride}, ${pad})`);
      t.equal(ref.poolOut(inp, k, stride, pad, true), ce, `ceil(${inp}, ${k}, ${stride}, ${pad})`);
      for (const ceilMode of [false, true]) {
        const s = shape({ inH: inp, inW: inp, kH: k, kW: k, strideH: stride, strideW: stride, padH: pad, padW: pad, ceilMode });
        const out = (ceilMode ? ce : fl) ** 2;
        const x = randArray(rng, inp * inp);
        let err: unknown;
        try {
          be.maxPool2dForward(s, x, new Float32Array(out), new Int32Array(out));
          be.avgPool2dForward(s, x, new Float32Array(out));
        } catch (e) {
          err = e;
        }
        t.equal(err, undefined, `${fmt(s)}: accepts an output of ${out}` + (err ? ` (${(err as Error).message})` : ''));
      }
    }
    t.end();
  });

  t.test('fixed geometries, every mode', (t) => {
    for (const g of geometries) {
      for (const s of allModes(g)) {
        const x = randArray(rng, ref.poolSizes(s).input);
        checkMax(t, be, rng, s, x);
        checkAvg(t, be, rng, s, x);
      }
    }
    t.end();
  });

  t.test('random geometries', (t) => {
    for (let i = 0; i < 12; i++) {
      const s = randomShape(rng);
      const x = randArray(rng, ref.poolSizes(s).input);
      checkMax(t, be, rng, s, x);
      checkAvg(t, be, rng, s, x);
    }
    t.end();
  });

  t.test('max pooling: ties resolve to the first in row-major window order', (t) => {
    for (const g of [geometries[0]!, geometries[1]!, geometries[4]!, geometries[5]!]) {
      for (const s of allModes(g)) {
        // few distinct values: many ties in every window
        const x = Float32Array.from({ length: ref.poolSizes(s).input }, () => rng.int(0, 2));
        checkMax(t, be, rng, s, x);
      }
    }
    const s = shape({ inH: 4, inW: 4, kH: 2, kW: 2, strideH: 2, strideW: 2 });
    const idx = new Int32Array(4);
    be.maxPool2dForward(s, new Float32Array(16).fill(3), new Float32Array(4), idx);
    t.same([...idx], [0, 2, 8, 10], 'constant input: the top-left cell of each window');
    // NaN is the maximum and the first NaN wins, in whole 2x2 windows as elsewhere.
    const xs = new Float32Array(16).fill(1);
    xs[1] = NaN; // window 0: second cell
    xs[6] = 9; xs[7] = NaN; // window 1: a larger value, then NaN in the first row
    xs[13] = NaN; xs[12] = 5; // window 2 (cells 8, 9, 12, 13): NaN after a 5
    const ys = new Float32Array(4);
    be.maxPool2dForward(s, xs, ys, idx);
    t.same([...idx], [1, 7, 13, 10], 'NaN cells win; otherwise the first maximum');
    t.ok(Number.isNaN(ys[0]!) && Number.isNaN(ys[1]!) && Number.isNaN(ys[2]!) && ys[3] === 1, 'outputs: NaN, NaN, NaN, 1');
    t.end();
  });

  t.test('max pooling with padding never returns the padding', (t) => {
    for (const g of [geometries[3]!, geometries[4]!, geometries[5]!]) {
      for (const s of allModes(g)) {
        const x = randArray(rng, ref.poolSizes(s).input, -5, -1);
        checkMax(t, be, rng, s, x);
      }
    }
    t.end();
  });

  t.test('average pooling divisors near the padding, ceil mode', (t) => {
    // 1x4 row, window 3, stride 3, pad 1, ceil: windows [-1, 2) and [2, 5) clipped at 5.
    const s = shape({ inH: 1, inW: 4, kW: 3, strideW: 3, padW: 1, ceilMode: true, countIncludePad: true });
    const y = new Float32Array(2);
    be.avgPool2dForward(s, Float32Array.from([3, 6, 9, 12]), y);
    t.same([...y], [3, 7], 'countIncludePad: (3+6)/3, (9+12)/3');
    be.avgPool2dForward({ ...s, countIncludePad: false }, Float32Array.from([3, 6, 9, 12]), y);
    t.same([...y], [4.5, 10.5], 'real cells only: (3+6)/2, (9+12)/2');
    t.end();
  });

  t.test('backward vs finite differences', (t) => {
    for (const g of [geometries[1]!, geometries[3]!, geometries[6]!]) {
      for (const s of allModes(g)) {
        const z = ref.poolSizes(s);
        const x = randArray(rng, z.input);
        const gy = randArray(rng, z.output);
        const x64 = toF64(x);
        const idxs = sampleIndices(rng, z.input, 30);
        const name = fmt(s);
        const gxAvg = new Float32Array(z.input);
        be.avgPool2dBackward(s, gy, gxAvg);
        closeToFD(t, gxAvg, finiteDiff((xx) => dot(gy, ref.avgPool2dForward(s, xx)), x64, 1e-4, idxs), `avg backward ${name}`);
        // max: the backend's own indices; random distinct inputs, so a 1e-6 step crosses no tie
        const y = new Float32Array(z.output);
        const ind = new Int32Array(z.output);
        be.maxPool2dForward(s, x, y, ind);
        const gxMax = new Float32Array(z.input);
        be.maxPool2dBackward(s, gy, ind, gxMax);
        closeToFD(t, gxMax, finiteDiff((xx) => dot(gy, ref.maxPool2dForward(s, xx).output), x64, 1e-6, idxs), `max backward ${name}`);
      }
    }
    t.end();
  });
});
