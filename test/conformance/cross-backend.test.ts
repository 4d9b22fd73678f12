// Native and wasm must agree on every kernel of the contract (relative 1e-4), so a job
// that mixes native and wasm workers trains one model. Each case runs the same call on
// both backends with identical inputs and compares every output; encodings, dropout masks
// and max-pool indices must agree exactly.
import t from 'tap';
import type { Backend, Conv2dShape, Pool2dShape, LrnShape, BatchNormShape } from '../../engine/backends/backend.js';
import { probeBackends } from '../../engine/backends/registry.js';
import { convSizes, poolSizes } from './reference.js';
import { Rng, randArray, maxRelErr, TOL } from './util.js';

type Outputs = (Float32Array | Int32Array | Uint16Array)[];
interface Case { name: string; exact?: boolean; run: (b: Backend) => Outputs | Promise<Outputs> }

const rng = new Rng(77);
const r = (n: number, lo = -1, hi = 1): Float32Array => randArray(rng, n, lo, hi);
const copy = (a: Float32Array): Float32Array => a.slice();

function convCase(s: Conv2dShape): Case[] {
  const { input: inLen, weight: wLen, output: outLen } = convSizes(s);
  const x = r(inLen), w = r(wLen), bias = r(s.outC), go = r(outLen), gw0 = r(wLen), gb0 = r(s.outC);
  const label = `groups ${s.groups} stride ${s.strideH}x${s.strideW} pad ${s.padH}x${s.padW} dil ${s.dilationH}x${s.dilationW}`;
  return [
    { name: `conv2dForward ${label}`, run: (b) => { const y = new Float32Array(outLen); b.conv2dForward(s, x, w, bias, y); return [y]; } },
    { name: `conv2dForwardAsync ${label}`, run: async (b) => { const y = new Float32Array(outLen); await b.conv2dForwardAsync(s, x, w, null, y); return [y]; } },
    { name: `conv2dBackwardData ${label}`, run: (b) => { const gi = new Float32Array(inLen); b.conv2dBackwardData(s, go, w, gi); return [gi]; } },
    { name: `conv2dBackwardFilter ${label}`, run: (b) => { const gw = copy(gw0), gb = copy(gb0); b.conv2dBackwardFilter(s, x, go, gw, gb); return [gw, gb]; } },
  ];
}

function poolCases(s: Pool2dShape): Case[] {
  const { input: inLen, output: outLen } = poolSizes(s);
  const x = r(inLen), go = r(outLen);
  const label = `${s.kH}x${s.kW}/${s.strideH} pad ${s.padH} ceil ${s.ceilMode} includePad ${s.countIncludePad}`;
  return [
    { name: `maxPool2d ${label}`, exact: true, run: (b) => {
      const y = new Float32Array(outLen), idx = new Int32Array(outLen), gi = new Float32Array(inLen);
      b.maxPool2dForward(s, x, y, idx); b.maxPool2dBackward(s, go, idx, gi); return [y, idx, gi];
    } },
    { name: `avgPool2d ${label}`, run: (b) => {
      const y = new Float32Array(outLen), gi = new Float32Array(inLen);
      b.avgPool2dForward(s, x, y); b.avgPool2dBackward(s, go, gi); return [y, gi];
    } },
  ];
}

const n = 1000;
const xs = r(n, -3, 3), gs = r(n);
const lrn: LrnShape = { batch: 2, channels: 7, height: 5, width: 3, size: 5, alpha: 1e-4 * 50, beta: 0.75, k: 1 };
const lrnLen = 2 * 7 * 5 * 3;
const bn: BatchNormShape = { n: 4, c: 3, spatial: 10, eps: 1e-3 };
const bnLen = 4 * 3 * 10;
const rows = 9, cols = 13;

const cases: Case[] = [
  { name: 'sgemm NN/TN/NT/TT with strides', run: (b) => {
    const g = new Rng(3); // inputs drawn afresh, identically, for each backend
    const out: Outputs = [];
    for (const ta of [false, true]) for (const tb of [false, true]) {
      const [m, nn, k] = [23, 31, 300];
      const lda = (ta ? m : k) + 3, ldb = (tb ? k : nn) + 2, ldc = nn + 1;
      const a = randArray(g, (ta ? k : m) * lda), bb = randArray(g, (tb ? nn : k) * ldb), c = randArray(g, m * ldc);
      b.sgemm(ta, tb, m, nn, k, 0.7, a, lda, bb, ldb, 0.3, c, ldc);
      out.push(c);
    }
    return out;
  } },
  ...convCase({ batch: 2, inC: 6, inH: 13, inW: 11, outC: 8, kH: 3, kW: 3, strideH: 1, strideW: 1, padH: 1, padW: 1, dilationH: 1, dilationW: 1, groups: 1 }),
  ...convCase({ batch: 3, inC: 4, inH: 9, inW: 12, outC: 6, kH: 3, kW: 5, strideH: 2, strideW: 1, padH: 2, padW: 1, dilationH: 2, dilationW: 1, groups: 2 }),
  ...convCase({ batch: 2, inC: 5, inH: 7, inW: 7, outC: 5, kH: 3, kW: 3, strideH: 1, strideW: 2, padH: 1, padW: 0, dilationH: 1, dilationW: 1, groups: 5 }),
  ...convCase({ batch: 2, inC: 16, inH: 6, inW: 6, outC: 7, kH: 1, kW: 1, strideH: 1, strideW: 1, padH: 0, padW: 0, dilationH: 1, dilationW: 1, groups: 1 }),
  ...poolCases({ batch: 2, channels: 3, inH: 11, inW: 10, kH: 3, kW: 3, strideH: 2, strideW: 2, padH: 1, padW: 1, ceilMode: true, countIncludePad: true }),
  ...poolCases({ batch: 1, channels: 4, inH: 8, inW: 9, kH: 2, kW: 2, strideH: 2, strideW: 2, padH: 0, padW: 0, ceilMode: true, countIncludePad: false }),
  ...poolCases({ batch: 2, channels: 2, inH: 7, inW: 7, kH: 3, kW: 3, strideH: 1, strideW: 1, padH: 1, padW: 1, ceilMode: false, countIncludePad: false }),
  { name: 'relu/tanh/sigmoid and backwards', run: (b) => {
    const out: Outputs = [];
    const y = new Float32Array(n), gi = new Float32Array(n);
    b.relu(xs, y); b.reluBackward(xs, gs, gi); out.push(y.slice(), gi.slice());
    b.tanh(xs, y); b.tanhBackward(y, gs, gi); out.push(y.slice(), gi.slice());
    b.sigmoid(xs, y); b.sigmoidBackward(y, gs, gi); out.push(y.slice(), gi.slice());
    return out;
  } },
  { name: 'lrn forward/backward', run: (b) => {
    const x = new Rng(9), inp = randArray(x, lrnLen), go = randArray(x, lrnLen);
    const y = new Float32Array(lrnLen), sc = new Float32Array(lrnLen), gi = new Float32Array(lrnLen);
    b.lrnForward(lrn, inp, y, sc); b.lrnBackward(lrn, inp, y, sc, go, gi); return [y, sc, gi];
  } },
  { name: 'softmax/logSoftmax and backwards', run: (b) => {
    const x = new Rng(10), inp = randArray(x, rows * cols, -5, 5), go = randArray(x, rows * cols);
    const y = new Float32Array(rows * cols), gi = new Float32Array(rows * cols), ly = new Float32Array(rows * cols), lgi = new Float32Array(rows * cols);
    b.softmaxForward(rows, cols, inp, y); b.softmaxBackward(rows, cols, y, go, gi);
    b.logSoftmaxForward(rows, cols, inp, ly); b.logSoftmaxBackward(rows, cols, ly, go, lgi);
    return [y, gi, ly, lgi];
  } },
  { name: 'batchNorm train, backward, inference', run: (b) => {
    const x = new Rng(11), inp = randArray(x, bnLen, -2, 4), gamma = randArray(x, 3), beta = randArray(x, 3), go = randArray(x, bnLen);
    const rm = randArray(x, 3), rv = randArray(x, 3, 0.5, 2);
    const y = new Float32Array(bnLen), sm = new Float32Array(3), si = new Float32Array(3), gi = new Float32Array(bnLen);
    const gg = randArray(x, 3), gb = randArray(x, 3);
    b.batchNormForward(bn, inp, y, gamma, beta, rm, rv, sm, si, true, 0.1);
    b.batchNormBackward(bn, inp, gamma, sm, si, go, gi, gg, gb);
    const yi = new Float32Array(bnLen);
    b.batchNormForward(bn, inp, yi, gamma, beta, rm, rv, sm, si, false, 0.1);
    return [y, rm, rv, sm, si, gi, gg, gb, yi];
  } },
  { name: 'dropout forward/backward', exact: true, run: (b) => {
    const y = new Float32Array(n), mask = new Float32Array(n), gi = new Float32Array(n);
    b.dropoutForward(0.3, 12345, xs, y, mask); b.dropoutBackward(mask, gs, gi); return [y, mask, gi];
  } },
  { name: 'add/scale/axpy/sumSlices', run: (b) => {
    const o1 = new Float32Array(n), o2 = new Float32Array(n), y = copy(gs), o3 = new Float32Array(n);
    b.add(xs, gs, o1); b.scale(xs, -0.37, o2); b.axpy(1.7, xs, y); b.sumSlices([xs, gs, o1], o3);
    return [o1, o2, y, o3];
  } },
  { name: 'bf16/fp16 encode and decode', exact: true, run: (b) => {
    const src = Float32Array.from([...xs.subarray(0, 100), 0, -0, 65504, 65520, 1e-8, 3e-5, Infinity, -Infinity, NaN, 3.4e38]);
    const h = new Uint16Array(src.length), bf = new Uint16Array(src.length), fh = new Float32Array(src.length), fb = new Float32Array(src.length);
    b.f32ToF16(src, h); b.f16ToF32(h, fh); b.f32ToBf16(src, bf); b.bf16ToF32(bf, fb);
    return [h, bf, fh, fb];
  } },
  { name: 'sgd (nesterov, weight decay) and adam updates', run: (b) => {
    const x = new Rng(12), p0 = randArray(x, 300), g = randArray(x, 300), buf0 = randArray(x, 300), m0 = randArray(x, 300), v0 = randArray(x, 300, 0, 1);
    const p1 = copy(p0), buf = copy(buf0), p2 = copy(p0), m = copy(m0), v = copy(v0);
    b.sgdUpdate({ lr: 0.05, momentum: 0.9, dampening: 0, weightDecay: 5e-4, nesterov: true, firstStep: false }, p1, g, buf);
    b.adamUpdate({ lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-4, step: 7 }, p2, g, m, v);
    return [p1, buf, p2, m, v];
  } },
];

const { available, unavailable } = probeBackends();
const native = available.find((b) => b.name === 'native');
const wasm = available.find((b) => b.name === 'wasm');
if (!native || !wasm) {
  t.pass(`skipped: cross-backend agreement needs native and wasm: ${unavailable.map((u) => u.reason).join('; ')}`);
} else {
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const a = await c.run(native);
      const b = await c.run(wasm);
      t.equal(a.length, b.length, 'same number of outputs');
      for (let i = 0; i < a.length; i++) {
        const x = a[i]!, y = b[i]!;
        if (c.exact || !(x instanceof Float32Array)) {
          const same = x.length === y.length && x.every((v, j) => Object.is(v, y[j]) || (Number.isNaN(v) && Number.isNaN(y[j]!)));
          t.ok(same, `output ${i}: native and wasm bit-identical`);
        } else {
          const err = maxRelErr(y as Float32Array, x);
          t.ok(err <= TOL, `output ${i}: native vs wasm max relative error ${err.toExponential(2)} <= ${TOL}`);
        }
      }
    });
  }
}
