// 2-D convolution forward, backward-data and backward-filter (sync and async) against the
// float64 reference, on fixed and random shapes covering padding, stride, dilation, groups
// (depthwise included), 1x1 and non-square kernels; gradients also against central finite
// differences (float64 on the reference forward, and float32 through the backend's own
// forward); overwrite (gradInput) versus accumulate (gradWeight, gradBias) semantics.
import t from 'tap';
import type { Backend, Conv2dShape } from '../../engine/backends/backend.js';
import * as ref from './reference.js';
import {
  Rng, close, closeToFD, dot, filled, finiteDiff, fmt, forEachBackend, measureAsync, randArray, sampleIndices, toF64, within, type Tap,
} from './util.js';

function shape(p: Partial<Conv2dShape>): Conv2dShape {
  return {
    batch: 1, inC: 1, inH: 1, inW: 1, outC: 1, kH: 1, kW: 1, strideH: 1, strideW: 1, padH: 0, padW: 0,
    dilationH: 1, dilationW: 1, groups: 1, ...p,
  };
}

const fixed: Conv2dShape[] = [
  // 3x3 "same" convolution
  shape({ batch: 2, inC: 3, inH: 7, inW: 7, outC: 4, kH: 3, kW: 3, padH: 1, padW: 1 }),
  // odd image, non-square kernel, stride 2, no padding
  shape({ batch: 1, inC: 2, inH: 9, inW: 11, outC: 3, kH: 3, kW: 5, strideH: 2, strideW: 2 }),
  // dilation 2
  shape({ batch: 2, inC: 3, inH: 10, inW: 9, outC: 5, kH: 3, kW: 3, padH: 2, padW: 2, dilationH: 2, dilationW: 2 }),
  // groups 2
  shape({ batch: 2, inC: 4, inH: 6, inW: 7, outC: 6, kH: 3, kW: 3, padH: 1, padW: 1, groups: 2 }),
  // depthwise, stride 2
  shape({ batch: 2, inC: 5, inH: 9, inW: 9, outC: 5, kH: 3, kW: 3, strideH: 2, strideW: 2, padH: 1, padW: 1, groups: 5 }),
  // depthwise with channel multiplier 2
  shape({ batch: 1, inC: 3, inH: 8, inW: 5, outC: 6, kH: 3, kW: 3, padH: 1, padW: 1, groups: 3 }),
  // 1x1
  shape({ batch: 3, inC: 8, inH: 5, inW: 5, outC: 7 }),
  // 1x1 stride 2
  shape({ batch: 2, inC: 6, inH: 9, inW: 7, outC: 4, strideH: 2, strideW: 2 }),
  // padding wider than the kernel: the border outputs see only padding
  shape({ batch: 1, inC: 3, inH: 4, inW: 4, outC: 2, padH: 1, padW: 1 }),
  // kernel as large as the image: 1x1 output
  shape({ batch: 2, inC: 2, inH: 5, inW: 6, outC: 3, kH: 5, kW: 6 }),
  // different stride / dilation / padding per axis
  shape({ batch: 1, inC: 3, inH: 11, inW: 13, outC: 4, kH: 3, kW: 2, strideH: 1, strideW: 3, padH: 0, padW: 1, dilationH: 3, dilationW: 1 }),
  // long reductions (inC * kH * kW = 288, 576)
  shape({ batch: 2, inC: 32, inH: 8, inW: 8, outC: 17, kH: 3, kW: 3, padH: 1, padW: 1 }),
  shape({ batch: 1, inC: 64, inH: 6, inW: 6, outC: 8, kH: 3, kW: 3 }),
  // 3x3 stride 1 with enough channels for a Winograd path
  shape({ batch: 2, inC: 16, inH: 12, inW: 12, outC: 16, kH: 3, kW: 3, padH: 1, padW: 1 }),
  // 7x7 stride 2 (Inception-v1's first layer, small), grouped
  shape({ batch: 2, inC: 6, inH: 17, inW: 17, outC: 6, kH: 7, kW: 7, strideH: 2, strideW: 2, padH: 3, padW: 3, groups: 2 }),
];

/** Larger layers: several column strips per image (with a short last strip), uneven batches over the threads. */
const larger: Conv2dShape[] = [
  shape({ batch: 3, inC: 32, inH: 30, inW: 30, outC: 16, kH: 3, kW: 3, padH: 1, padW: 1 }),
  shape({ batch: 2, inC: 128, inH: 20, inW: 23, outC: 8, kH: 3, kW: 3, padH: 1, padW: 1, groups: 2 }),
  shape({ batch: 5, inC: 24, inH: 19, inW: 17, outC: 40, kH: 1, kW: 1 }),
  shape({ batch: 1, inC: 16, inH: 41, inW: 37, outC: 12, kH: 5, kW: 5, strideH: 2, strideW: 2, padH: 2, padW: 2 }),
];

function randomShape(rng: Rng): Conv2dShape {
  for (;;) {
    const groups = rng.pick([1, 1, 2, 3]);
    const s = shape({
      batch: rng.int(1, 3), inC: groups * rng.int(1, 4), outC: groups * rng.int(1, 4), groups,
      inH: rng.int(1, 13), inW: rng.int(1, 13), kH: rng.pick([1, 2, 3, 5]), kW: rng.pick([1, 2, 3, 5]),
      strideH: rng.int(1, 3), strideW: rng.int(1, 3), padH: rng.int(0, 2), padW: rng.int(0, 2),
      dilationH: rng.int(1, 2), dilationW: rng.int(1, 2),
    });
    const { outH, outW } = ref.convSizes(s);
    if (outH >= 1 && outW >= 1) return s;
  }
}

function data(rng: Rng, s: Conv2dShape) {
  const z = ref.convSizes(s);
  return {
    ...z,
    x: randArray(rng, z.input),
    w: randArray(rng, z.weight),
    bias: randArray(rng, s.outC),
    gy: randArray(rng, z.output),
  };
}

function checkShape(t: Tap, be: Backend, rng: Rng, s: Conv2dShape): void {
  const d = data(rng, s);
  const name = fmt(s);

  // forward, with and without bias; the output's prior contents are overwritten
  const y = filled(d.output, NaN);
  be.conv2dForward(s, d.x, d.w, d.bias, y);
  close(t, y, ref.conv2dForward(s, d.x, d.w, d.bias), `forward ${name}`);
  const y0 = filled(d.output, NaN);
  be.conv2dForward(s, d.x, d.w, null, y0);
  close(t, y0, ref.conv2dForward(s, d.x, d.w, null), `forward, no bias ${name}`);

  // backward data overwrites gradInput
  const gx = filled(d.input, NaN);
  be.conv2dBackwardData(s, d.gy, d.w, gx);
  close(t, gx, ref.conv2dBackwardData(s, d.gy, d.w), `backward data ${name}`);

  // backward filter accumulates into gradWeight and gradBias
  const gw = randArray(rng, d.weight);
  const gb = randArray(rng, s.outC);
  const gwPrior = toF64(gw);
  const gbPrior = toF64(gb);
  be.conv2dBackwardFilter(s, d.x, d.gy, gw, gb);
  const r = ref.conv2dBackwardFilter(s, d.x, d.gy);
  close(t, gw, r.gradWeight.map((v, i) => v + gwPrior[i]!), `backward filter: gradWeight += ${name}`);
  close(t, gb, r.gradBias.map((v, i) => v + gbPrior[i]!), `backward filter: gradBias += ${name}`);
  const gw2 = new Float32Array(d.weight);
  be.conv2dBackwardFilter(s, d.x, d.gy, gw2, null);
  close(t, gw2, r.gradWeight, `backward filter, gradBias null ${name}`);
}

/** Float64 central differences of L = sum(gy * conv(x, w, b)) on the reference forward. */
function checkFD64(t: Tap, be: Backend, rng: Rng, s: Conv2dShape): void {
  const d = data(rng, s);
  const name = fmt(s);
  const x = toF64(d.x);
  const w = toF64(d.w);
  const b = toF64(d.bias);
  const gx = new Float32Array(d.input);
  be.conv2dBackwardData(s, d.gy, d.w, gx);
  closeToFD(t, gx, finiteDiff((xx) => dot(d.gy, ref.conv2dForward(s, xx, w, b)), x, 1e-3, sampleIndices(rng, d.input, 40)),
    `backward data ${name}`);
  const gw = new Float32Array(d.weight);
  const gb = new Float32Array(s.outC);
  be.conv2dBackwardFilter(s, d.x, d.gy, gw, gb);
  closeToFD(t, gw, finiteDiff((ww) => dot(d.gy, ref.conv2dForward(s, x, ww, b)), w, 1e-3, sampleIndices(rng, d.weight, 40)),
    `backward filter (weight) ${name}`);
  closeToFD(t, gb, finiteDiff((bb) => dot(d.gy, ref.conv2dForward(s, x, w, bb)), b, 1e-3), `backward filter (bias) ${name}`);
}

/**
 * Float32 central differences through the backend's own forward: perturb one input (or
 * weight) by about 0.25 and divide the change of L = sum(gy * y) by the actual float32
 * change of the input. Convolution is linear, so the only error is float32 rounding.
 */
function checkFD32(t: Tap, be: Backend, rng: Rng, s: Conv2dShape): void {
  const d = data(rng, s);
  const name = fmt(s);
  const y = new Float32Array(d.output);
  const loss = (x: Float32Array, w: Float32Array) => {
    be.conv2dForward(s, x, w, d.bias, y);
    return dot(d.gy, y);
  };
  const fd = (arr: Float32Array, idx: number[]) => {
    const out = new Map<number, number>();
    for (const i of idx) {
      const old = arr[i]!;
      arr[i] = old + 0.25;
      const up = arr[i]!;
      const lp = loss(d.x, d.w);
      arr[i] = old - 0.25;
      const down = arr[i]!;
      const lm = loss(d.x, d.w);
      arr[i] = old;
      out.set(i, (lp - lm) / (up - down));
    }
    return out;
  };
  const gx = new Float32Array(d.input);
  be.conv2dBackwardData(s, d.gy, d.w, gx);
  closeToFD(t, gx, fd(d.x, sampleIndices(rng, d.input, 30)), `float32 backend-forward FD, backward data ${name}`);
  const gw = new Float32Array(d.weight);
  be.conv2dBackwardFilter(s, d.x, d.gy, gw, null);
  closeToFD(t, gw, fd(d.w, sampleIndices(rng, d.weight, 30)), `float32 backend-forward FD, backward filter ${name}`);
}

async function checkAsync(t: Tap, be: Backend, rng: Rng, s: Conv2dShape): Promise<void> {
  const d = data(rng, s);
  const name = fmt(s);
  const ySync = new Float32Array(d.output);
  be.conv2dForward(s, d.x, d.w, d.bias, ySync);
  const y = filled(d.output, NaN);
  const p = be.conv2dForwardAsync(s, d.x, d.w, d.bias, y);
  t.ok(p instanceof Promise, 'conv2dForwardAsync returns a Promise');
  await within(p, 'conv2dForwardAsync');
  close(t, y, ref.conv2dForward(s, d.x, d.w, d.bias), `forward async vs reference ${name}`);
  close(t, y, ySync, `forward async vs sync ${name}`, 1e-6);

  const gxSync = new Float32Array(d.input);
  be.conv2dBackwardData(s, d.gy, d.w, gxSync);
  const gx = filled(d.input, NaN);
  await within(be.conv2dBackwardDataAsync(s, d.gy, d.w, gx), 'conv2dBackwardDataAsync');
  close(t, gx, ref.conv2dBackwardData(s, d.gy, d.w), `backward data async vs reference ${name}`);
  close(t, gx, gxSync, `backward data async vs sync ${name}`, 1e-6);

  const gwPrior = randArray(rng, d.weight);
  const gbPrior = randArray(rng, s.outC);
  const gwSync = gwPrior.slice();
  const gbSync = gbPrior.slice();
  be.conv2dBackwardFilter(s, d.x, d.gy, gwSync, gbSync);
  const gw = gwPrior.slice();
  const gb = gbPrior.slice();
  await within(be.conv2dBackwardFilterAsync(s, d.x, d.gy, gw, gb), 'conv2dBackwardFilterAsync');
  const r = ref.conv2dBackwardFilter(s, d.x, d.gy);
  close(t, gw, r.gradWeight.map((v, i) => v + gwPrior[i]!), `backward filter async accumulates ${name}`);
  close(t, gb, r.gradBias.map((v, i) => v + gbPrior[i]!), `backward filter async accumulates bias ${name}`);
  close(t, gw, gwSync, `backward filter async vs sync ${name}`, 1e-6);
  close(t, gb, gbSync, `backward filter async vs sync (bias) ${name}`, 1e-6);
  const gw0 = new Float32Array(d.weight);
  await within(be.conv2dBackwardFilterAsync(s, d.x, d.gy, gw0, null), 'conv2dBackwardFilterAsync');
  close(t, gw0, r.gradWeight, `backward filter async, gradBias null ${name}`);
}

forEachBackend(t, async (t, be) => {
  const rng = new Rng(2);

  t.test('fixed shapes', (t) => {
    for (const s of fixed) checkShape(t, be, rng, s);
    t.end();
  });

  t.test('larger layers (column strips, thread splits)', (t) => {
    for (const s of larger) checkShape(t, be, rng, s);
    t.end();
  });

  t.test('random shapes', (t) => {
    for (let i = 0; i < 8; i++) checkShape(t, be, rng, randomShape(rng));
    t.end();
  });

  t.test('gradients vs float64 finite differences on the reference forward', (t) => {
    for (const i of [0, 2, 3, 4, 10]) checkFD64(t, be, rng, fixed[i]!);
    checkFD64(t, be, rng, randomShape(rng));
    t.end();
  });

  t.test('gradients vs float32 finite differences through the backend forward', (t) => {
    for (const i of [0, 1, 2, 5]) checkFD32(t, be, rng, fixed[i]!);
    t.end();
  });

  t.test('accumulation over two calls (a flat gradient filled layer by layer)', (t) => {
    const s = fixed[3]!;
    const d = data(rng, s);
    const gw = new Float32Array(d.weight);
    const gb = new Float32Array(s.outC);
    be.conv2dBackwardFilter(s, d.x, d.gy, gw, gb);
    be.conv2dBackwardFilter(s, d.x, d.gy, gw, gb);
    const r = ref.conv2dBackwardFilter(s, d.x, d.gy);
    close(t, gw, r.gradWeight.map((v) => 2 * v), 'gradWeight after two calls = 2 dW');
    close(t, gb, r.gradBias.map((v) => 2 * v), 'gradBias after two calls = 2 db');
    t.end();
  });

  t.test('async variants equal the sync ones', async (t) => {
    for (const i of [0, 4, 6, 11, 14]) await checkAsync(t, be, rng, fixed[i]!);
    await checkAsync(t, be, rng, randomShape(rng));
    t.end();
  });

  t.test('conv2dForwardAsync does not block the JavaScript thread', async (t) => {
    const s = shape({ batch: 8, inC: 64, inH: 28, inW: 28, outC: 64, kH: 3, kW: 3, padH: 1, padW: 1 }); // ~0.9 GFLOP
    const d = data(rng, s);
    const ySync = new Float32Array(d.output);
    const t0 = performance.now();
    be.conv2dForward(s, d.x, d.w, d.bias, ySync);
    const syncMs = performance.now() - t0;
    const y = new Float32Array(d.output);
    const r = await measureAsync(() => be.conv2dForwardAsync(s, d.x, d.w, d.bias, y));
    t.comment(`${fmt(s)}: sync ${syncMs.toFixed(1)} ms; async call returned in ${r.callMs.toFixed(2)} ms, ` +
      `settled after ${r.totalMs.toFixed(1)} ms and ${r.turns} event-loop turns`);
    t.ok(r.turns >= 1, 'event-loop turns ran while conv2dForwardAsync was in flight');
    t.ok(r.pendingAfterCall, `the call returned before the work was done (returned in ${r.callMs.toFixed(2)} ms; sync takes ${syncMs.toFixed(1)} ms)`);
    close(t, y, ySync, 'async result equals sync result', 1e-6);

    const gx = new Float32Array(d.input);
    const rd = await measureAsync(() => be.conv2dBackwardDataAsync(s, d.gy, d.w, gx));
    t.ok(rd.turns >= 1, `event-loop turns ran while conv2dBackwardDataAsync was in flight (${rd.turns})`);
    const gw = new Float32Array(d.weight);
    const rf = await measureAsync(() => be.conv2dBackwardFilterAsync(s, d.x, d.gy, gw, null));
    t.ok(rf.turns >= 1, `event-loop turns ran while conv2dBackwardFilterAsync was in flight (${rf.turns})`);
    t.end();
  });
});
