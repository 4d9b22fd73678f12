// A wasm kernel never writes out of bounds, and a bad call writes nothing.
//
// Two kinds of guard:
//  - in JavaScript: every output is a view into a larger array whose other elements hold
//    guard values; after every call (good or bad) the guards must be intact, and after a
//    bad call the output itself must be unchanged;
//  - in wasm linear memory: the backend runs in guard mode (a canary after every region of
//    every call, checked after every kernel), so a kernel that wrote past its own output
//    into the next tensor would fail the call.
// Bad calls must throw TypeError (wrong array type) or RangeError (wrong length, negative /
// non-integer sizes, zero strides, groups not dividing the channels, ...) naming the
// argument, and release every region they allocated.
import t from 'tap';
import type { Conv2dShape, Pool2dShape } from '../../engine/backends/backend.js';
import { convOutputSize, poolOutputSize } from '../../engine/backends/backend.js';
import { loadWasmBackend } from '../../engine/backends/wasm/node.js';

type Typed = Float32Array | Int32Array | Uint16Array;

const GUARD = 7;

/** Arrays carved out of one buffer, each with GUARD elements of guard value on both sides. */
class Guarded {
  private readonly parts: { whole: Typed; inner: Typed; guard: number }[] = [];
  f32(n: number, fill?: (i: number) => number): Float32Array {
    return this.make(new Float32Array(n + 2 * GUARD), n, -12345.5, fill) as Float32Array;
  }
  i32(n: number, fill?: (i: number) => number): Int32Array {
    return this.make(new Int32Array(n + 2 * GUARD), n, -777777, fill) as Int32Array;
  }
  u16(n: number, fill?: (i: number) => number): Uint16Array {
    return this.make(new Uint16Array(n + 2 * GUARD), n, 0xabcd, fill) as Uint16Array;
  }
  private make(whole: Typed, n: number, guard: number, fill?: (i: number) => number): Typed {
    whole.fill(guard);
    const inner = whole.subarray(GUARD, GUARD + n) as Typed;
    for (let i = 0; i < n; i++) inner[i] = fill ? fill(i) : Math.sin(i * 0.37 + n) * 2;
    this.parts.push({ whole, inner, guard });
    return inner;
  }
  /** true when every guard element still holds its value. */
  intact(): boolean {
    return this.parts.every(({ whole, inner, guard }) => {
      for (let i = 0; i < GUARD; i++) {
        if (whole[i] !== guard || whole[GUARD + inner.length + i] !== guard) return false;
      }
      return true;
    });
  }
  snapshot(): Typed[] {
    return this.parts.map((p) => p.whole.slice() as Typed);
  }
  unchangedSince(snap: Typed[]): boolean {
    return this.parts.every((p, i) => {
      const s = snap[i]!;
      for (let j = 0; j < s.length; j++) {
        if (!Object.is(s[j], p.whole[j])) return false;
      }
      return true;
    });
  }
}

const be = loadWasmBackend({ threads: 2, guard: true });
t.teardown(() => be.dispose());

const conv: Conv2dShape = { batch: 2, inC: 6, inH: 9, inW: 11, outC: 4, kH: 3, kW: 2, strideH: 2, strideW: 1,
  padH: 1, padW: 1, dilationH: 1, dilationW: 2, groups: 2 };
const cOH = convOutputSize(conv.inH, conv.kH, conv.strideH, conv.padH, conv.dilationH);
const cOW = convOutputSize(conv.inW, conv.kW, conv.strideW, conv.padW, conv.dilationW);
const cIn = conv.batch * conv.inC * conv.inH * conv.inW;
const cW = conv.outC * (conv.inC / conv.groups) * conv.kH * conv.kW;
const cOut = conv.batch * conv.outC * cOH * cOW;
const pool: Pool2dShape = { batch: 2, channels: 3, inH: 8, inW: 7, kH: 3, kW: 3, strideH: 2, strideW: 2, padH: 1, padW: 1,
  ceilMode: true, countIncludePad: false };
const pOH = poolOutputSize(pool.inH, pool.kH, pool.strideH, pool.padH, true);
const pOW = poolOutputSize(pool.inW, pool.kW, pool.strideW, pool.padW, true);
const pIn = pool.batch * pool.channels * pool.inH * pool.inW;
const pOut = pool.batch * pool.channels * pOH * pOW;
const lrn = { batch: 2, channels: 7, height: 3, width: 5, size: 5, alpha: 1e-2, beta: 0.75, k: 1 };
const lrnLen = 2 * 7 * 3 * 5;
const bn = { n: 3, c: 5, spatial: 7, eps: 1e-5 };
const bnLen = 3 * 5 * 7;
const N = 1001;

/** One kernel call on fresh guarded arrays; `bad` mutates the arguments to make a bad call. */
interface Case {
  name: string;
  run: (g: Guarded, bad?: (args: unknown[]) => void) => unknown;
}

function call(bad: ((args: unknown[]) => void) | undefined, fn: (...a: never[]) => unknown, args: unknown[]): unknown {
  if (bad) bad(args);
  return (fn as (...a: unknown[]) => unknown).apply(be, args);
}

const gemmCase = (transA: boolean, transB: boolean): Case => ({
  name: `sgemm ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`,
  run: (g, bad) => {
    const m = 13, n = 17, k = 29, lda = (transA ? m : k) + 2, ldb = (transB ? k : n) + 1, ldc = n + 3;
    const a = g.f32(((transA ? k : m) - 1) * lda + (transA ? m : k));
    const b = g.f32(((transB ? n : k) - 1) * ldb + (transB ? k : n));
    const c = g.f32((m - 1) * ldc + n);
    return call(bad, be.sgemm, [transA, transB, m, n, k, 1.25, a, lda, b, ldb, 0.5, c, ldc]);
  },
});

const cases: Case[] = [
  gemmCase(false, false), gemmCase(true, false), gemmCase(false, true), gemmCase(true, true),
  { name: 'sgemm large (threads)', run: (g, bad) => {
    const m = 150, n = 131, k = 77;
    return call(bad, be.sgemm, [false, false, m, n, k, 1, g.f32(m * k), k, g.f32(k * n), n, 0, g.f32(m * n), n]);
  } },
  { name: 'conv2dForward', run: (g, bad) => call(bad, be.conv2dForward, [{ ...conv }, g.f32(cIn), g.f32(cW), g.f32(conv.outC), g.f32(cOut)]) },
  { name: 'conv2dForward 1x1', run: (g, bad) => {
    const s = { ...conv, kH: 1, kW: 1, strideH: 1, strideW: 1, padH: 0, padW: 0, dilationH: 1, dilationW: 1 };
    return call(bad, be.conv2dForward, [s, g.f32(cIn), g.f32(conv.outC * 3), null, g.f32(conv.batch * conv.outC * conv.inH * conv.inW)]);
  } },
  { name: 'conv2dBackwardData', run: (g, bad) => call(bad, be.conv2dBackwardData, [{ ...conv }, g.f32(cOut), g.f32(cW), g.f32(cIn)]) },
  { name: 'conv2dBackwardFilter', run: (g, bad) => call(bad, be.conv2dBackwardFilter, [{ ...conv }, g.f32(cIn), g.f32(cOut), g.f32(cW), g.f32(conv.outC)]) },
  { name: 'maxPool2dForward', run: (g, bad) => call(bad, be.maxPool2dForward, [{ ...pool }, g.f32(pIn), g.f32(pOut), g.i32(pOut)]) },
  { name: 'maxPool2dBackward', run: (g, bad) => call(bad, be.maxPool2dBackward, [{ ...pool }, g.f32(pOut), g.i32(pOut, (i) => (i * 7) % (pool.inH * pool.inW)), g.f32(pIn)]) },
  { name: 'avgPool2dForward', run: (g, bad) => call(bad, be.avgPool2dForward, [{ ...pool, countIncludePad: true }, g.f32(pIn), g.f32(pOut)]) },
  { name: 'avgPool2dBackward', run: (g, bad) => call(bad, be.avgPool2dBackward, [{ ...pool }, g.f32(pOut), g.f32(pIn)]) },
  { name: 'relu', run: (g, bad) => call(bad, be.relu, [g.f32(N), g.f32(N)]) },
  { name: 'reluBackward', run: (g, bad) => call(bad, be.reluBackward, [g.f32(N), g.f32(N), g.f32(N)]) },
  { name: 'tanh', run: (g, bad) => call(bad, be.tanh, [g.f32(N), g.f32(N)]) },
  { name: 'tanhBackward', run: (g, bad) => call(bad, be.tanhBackward, [g.f32(N), g.f32(N), g.f32(N)]) },
  { name: 'sigmoid', run: (g, bad) => call(bad, be.sigmoid, [g.f32(N), g.f32(N)]) },
  { name: 'sigmoidBackward', run: (g, bad) => call(bad, be.sigmoidBackward, [g.f32(N), g.f32(N), g.f32(N)]) },
  { name: 'lrnForward', run: (g, bad) => call(bad, be.lrnForward, [{ ...lrn }, g.f32(lrnLen), g.f32(lrnLen), g.f32(lrnLen)]) },
  { name: 'lrnBackward', run: (g, bad) => call(bad, be.lrnBackward, [{ ...lrn }, g.f32(lrnLen), g.f32(lrnLen), g.f32(lrnLen, () => 1.5),
    g.f32(lrnLen), g.f32(lrnLen)]) },
  { name: 'softmaxForward', run: (g, bad) => call(bad, be.softmaxForward, [7, 13, g.f32(91), g.f32(91)]) },
  { name: 'softmaxBackward', run: (g, bad) => call(bad, be.softmaxBackward, [7, 13, g.f32(91), g.f32(91), g.f32(91)]) },
  { name: 'logSoftmaxForward', run: (g, bad) => call(bad, be.logSoftmaxForward, [7, 13, g.f32(91), g.f32(91)]) },
  { name: 'logSoftmaxBackward', run: (g, bad) => call(bad, be.logSoftmaxBackward, [7, 13, g.f32(91), g.f32(91), g.f32(91)]) },
  { name: 'batchNormForward', run: (g, bad) => call(bad, be.batchNormForward, [{ ...bn }, g.f32(bnLen), g.f32(bnLen), g.f32(5), g.f32(5),
    g.f32(5), g.f32(5, () => 1), g.f32(5), g.f32(5), true, 0.1]) },
  { name: 'batchNormBackward', run: (g, bad) => call(bad, be.batchNormBackward, [{ ...bn }, g.f32(bnLen), g.f32(5), g.f32(5), g.f32(5, () => 2),
    g.f32(bnLen), g.f32(bnLen), g.f32(5), g.f32(5)]) },
  { name: 'dropoutForward', run: (g, bad) => call(bad, be.dropoutForward, [0.3, 42, g.f32(N), g.f32(N), g.f32(N)]) },
  { name: 'dropoutBackward', run: (g, bad) => call(bad, be.dropoutBackward, [g.f32(N), g.f32(N), g.f32(N)]) },
  { name: 'add', run: (g, bad) => call(bad, be.add, [g.f32(N), g.f32(N), g.f32(N)]) },
  { name: 'scale', run: (g, bad) => call(bad, be.scale, [g.f32(N), 0.5, g.f32(N)]) },
  { name: 'axpy', run: (g, bad) => call(bad, be.axpy, [0.5, g.f32(N), g.f32(N)]) },
  { name: 'sumSlices', run: (g, bad) => call(bad, be.sumSlices, [[g.f32(N), g.f32(N), g.f32(N)], g.f32(N)]) },
  { name: 'f32ToBf16', run: (g, bad) => call(bad, be.f32ToBf16, [g.f32(N), g.u16(N)]) },
  { name: 'bf16ToF32', run: (g, bad) => call(bad, be.bf16ToF32, [g.u16(N, (i) => i * 61), g.f32(N)]) },
  { name: 'f32ToF16', run: (g, bad) => call(bad, be.f32ToF16, [g.f32(N), g.u16(N)]) },
  { name: 'f16ToF32', run: (g, bad) => call(bad, be.f16ToF32, [g.u16(N, (i) => i * 61), g.f32(N)]) },
  { name: 'sgdUpdate', run: (g, bad) => call(bad, be.sgdUpdate, [{ lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 1e-4, nesterov: true,
    firstStep: false }, g.f32(N), g.f32(N), g.f32(N)]) },
  { name: 'adamUpdate', run: (g, bad) => call(bad, be.adamUpdate, [{ lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 3 },
    g.f32(N), g.f32(N), g.f32(N), g.f32(N, () => 0.25)]) },
];

t.test('good calls write only their outputs (JavaScript guards and wasm canaries)', (t) => {
  for (const c of cases) {
    const g = new Guarded();
    let err: unknown = null;
    try {
      c.run(g);
    } catch (e) {
      err = e;
    }
    t.equal(err, null, `${c.name}: no error (a damaged canary in wasm memory would throw)`);
    t.ok(g.intact(), `${c.name}: guard values around every array intact`);
  }
  t.equal(be.bytesInUse, 0, 'every region released');
  t.end();
});

t.test('async calls write only their outputs', async (t) => {
  const g = new Guarded();
  const m = 33, n = 45, k = 700;
  await be.sgemmAsync(false, true, m, n, k, 1, g.f32(m * k), k, g.f32(n * k), k, 0, g.f32(m * n), n);
  await be.conv2dForwardAsync({ ...conv }, g.f32(cIn), g.f32(cW), null, g.f32(cOut));
  await be.conv2dBackwardDataAsync({ ...conv }, g.f32(cOut), g.f32(cW), g.f32(cIn));
  await be.conv2dBackwardFilterAsync({ ...conv }, g.f32(cIn), g.f32(cOut), g.f32(cW), null);
  t.ok(g.intact(), 'guard values intact after the async kernels');
  t.equal(be.bytesInUse, 0, 'every region released');
});

/** Runs a bad call: it must throw `ctor` naming `names`, leave every array as it was and release its regions. */
function expectBad(t: Tap, c: Case, what: string, ctor: ErrorConstructor, names: string[], bad: (args: unknown[]) => void): void {
  const g = new Guarded();
  let snap: Typed[] = [];
  let err: unknown = null;
  try {
    c.run(g, (args) => {
      bad(args);
      snap = g.snapshot();
    });
  } catch (e) {
    err = e;
  }
  const ok = err instanceof ctor && names.every((n) => (err as Error).message.includes(n));
  t.ok(ok, `${c.name} ${what}: ${ctor.name} naming ${names.join(', ')} (got ${err === null ? 'no error' : `${(err as Error).name}: ${(err as Error).message}`})`);
  t.ok(g.unchangedSince(snap), `${c.name} ${what}: nothing written`);
}
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

function byName(name: string): Case {
  return cases.find((c) => c.name === name)!;
}

t.test('bad calls throw naming the argument and write nothing', (t) => {
  // Wrong array types and lengths, for every array argument of every kernel.
  for (const c of cases) {
    let arrayIdx: number[] = [];
    try {
      c.run(new Guarded(), (args) => {
        arrayIdx = args.flatMap((a, i) => (ArrayBuffer.isView(a) ? [i] : []));
        throw new Error('probe');
      });
    } catch { /* probe */ }
    for (const i of arrayIdx) {
      expectBad(t, c, `arg ${i} as Float64Array`, TypeError, ['must be a'], (args) => {
        args[i] = new Float64Array((args[i] as Typed).length);
      });
      expectBad(t, c, `arg ${i} one element short`, RangeError, ['length'], (args) => {
        const a = args[i] as Typed;
        args[i] = a.subarray(0, a.length - 1);
      });
    }
  }
  // Sizes and strides.
  const nn = byName('sgemm NN');
  expectBad(t, nn, 'm = -1', RangeError, ['m'], (a) => { a[2] = -1; });
  expectBad(t, nn, 'n = 2.5', RangeError, ['n'], (a) => { a[3] = 2.5; });
  expectBad(t, nn, 'k as a string', TypeError, ['k'], (a) => { a[4] = '29'; });
  expectBad(t, nn, 'lda < k', RangeError, ['lda'], (a) => { a[7] = 28; });
  expectBad(t, nn, 'ldb = 0', RangeError, ['ldb'], (a) => { a[9] = 0; });
  expectBad(t, nn, 'ldc < n', RangeError, ['ldc'], (a) => { a[12] = 16; });
  expectBad(t, nn, 'c too short for ldc', RangeError, ["'c'"], (a) => { a[12] = 40; });
  expectBad(t, nn, 'transA not a boolean', TypeError, ['transA'], (a) => { a[0] = 0; });
  const cf = byName('conv2dForward');
  for (const [field, value, ctor] of [['strideH', 0, RangeError], ['strideW', -1, RangeError], ['padH', -1, RangeError],
    ['dilationW', 0, RangeError], ['groups', 4, RangeError], ['groups', 0, RangeError], ['batch', 1.5, RangeError],
    ['kH', 20, RangeError], ['inC', '6', TypeError]] as const) {
    expectBad(t, cf, `${field} = ${JSON.stringify(value)}`, ctor, [field === 'kH' ? 'kernel height' : field], (a) => {
      (a[0] as Record<string, unknown>)[field] = value;
    });
  }
  expectBad(t, byName('conv2dBackwardFilter'), 'groups not dividing outC', RangeError, ['groups'], (a) => {
    Object.assign(a[0] as object, { inC: 6, outC: 5, groups: 3 });
  });
  const mp = byName('maxPool2dForward');
  expectBad(t, mp, 'strideH = 0', RangeError, ['strideH'], (a) => { (a[0] as Pool2dShape).strideH = 0; });
  expectBad(t, mp, 'pad more than half the kernel', RangeError, ['padding'], (a) => { (a[0] as Pool2dShape).padW = 2; });
  expectBad(t, mp, 'ceilMode not a boolean', TypeError, ['ceilMode'], (a) => { (a[0] as Record<string, unknown>).ceilMode = 1; });
  expectBad(t, byName('maxPool2dBackward'), 'an index outside the plane', RangeError, ['indices'], (a) => {
    (a[2] as Int32Array)[5] = pool.inH * pool.inW;
  });
  expectBad(t, byName('maxPool2dBackward'), 'a negative index', RangeError, ['indices'], (a) => {
    (a[2] as Int32Array)[pOut - 1] = -1;
  });
  expectBad(t, byName('lrnForward'), 'even size', RangeError, ['size'], (a) => { (a[0] as { size: number }).size = 4; });
  expectBad(t, byName('batchNormForward'), 'negative eps', RangeError, ['eps'], (a) => { (a[0] as { eps: number }).eps = -1; });
  expectBad(t, byName('batchNormForward'), 'training not a boolean', TypeError, ['training'], (a) => { a[9] = 'yes'; });
  expectBad(t, byName('softmaxForward'), 'rows = -7', RangeError, ['rows'], (a) => { a[0] = -7; });
  expectBad(t, byName('dropoutForward'), 'p = 1.5', RangeError, ['p'], (a) => { a[0] = 1.5; });
  expectBad(t, byName('dropoutForward'), 'seed = 0.5', RangeError, ['seed'], (a) => { a[1] = 0.5; });
  expectBad(t, byName('sumSlices'), 'a slice of the wrong length', RangeError, ['slices[1]'], (a) => {
    const s = a[0] as Float32Array[];
    s[1] = s[1]!.subarray(1);
  });
  expectBad(t, byName('sumSlices'), 'slices not an array', TypeError, ['slices'], (a) => { a[0] = (a[0] as Float32Array[])[0]; });
  expectBad(t, byName('adamUpdate'), 'step = 0', RangeError, ['step'], (a) => { (a[0] as { step: number }).step = 0; });
  expectBad(t, byName('sgdUpdate'), 'nesterov missing', TypeError, ['nesterov'], (a) => { delete (a[0] as { nesterov?: boolean }).nesterov; });
  t.equal(be.bytesInUse, 0, 'no region leaked by the failed calls');
  t.end();
});

t.test('bad async calls reject and write nothing', async (t) => {
  const g = new Guarded();
  const c = g.f32(20);
  const snap = g.snapshot();
  await t.rejects(be.sgemmAsync(false, false, 4, 5, 3, 1, g.f32(11), 3, g.f32(15), 5, 0, c, 5), RangeError, 'a too short');
  await t.rejects(be.conv2dForwardAsync({ ...conv, strideH: 0 }, g.f32(cIn), g.f32(cW), null, g.f32(cOut)), RangeError, 'strideH 0');
  t.ok(g.unchangedSince(snap.concat(g.snapshot().slice(snap.length))), 'nothing written');
  t.equal(be.bytesInUse, 0, 'no region leaked');
});

t.test('large shapes across the blocking and chunking edges stay in bounds (guard mode)', async (t) => {
  // sgemm with m > MC, k > KC and n > NC (several blocks of each, uneven remainders), and
  // convolutions whose column matrix is split into chunks of output pixels (forward) and
  // of input channels (backward): the workspace of every chunk size must suffice.
  for (const [m, n, k] of [[300, 3100, 700], [5, 7000, 1100]] as const) {
    const g = new Guarded();
    const a = g.f32(m * k, (i) => Math.sin(i) * 0.5);
    const b = g.f32(k * n, (i) => Math.cos(i * 0.3) * 0.5);
    const c = g.f32(m * n);
    be.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n);
    let err = 0;
    for (const [i, j] of [[0, 0], [m - 1, n - 1], [m >> 1, 3077], [m - 1, 3071]] as const) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p]! * b[p * n + j]!;
      err = Math.max(err, Math.abs(s - c[i * n + j]!) / Math.max(1, Math.abs(s)));
    }
    t.ok(err <= 1e-4 && g.intact(), `sgemm ${m}x${n}x${k}: right (${err.toExponential(1)}) and in bounds`);
  }
  const s: Conv2dShape = { batch: 1, inC: 64, inH: 224, inW: 224, outC: 64, kH: 3, kW: 3, strideH: 1, strideW: 1,
    padH: 1, padW: 1, dilationH: 1, dilationW: 1, groups: 1 };
  const len = 64 * 224 * 224;
  const g = new Guarded();
  const x = g.f32(len);
  const w = g.f32(64 * 64 * 9);
  const y = g.f32(len);
  const gx = g.f32(len);
  const gw = g.f32(64 * 64 * 9, () => 0);
  const gb = g.f32(64, () => 0);
  // The split over threads changes the chunk sizes each thread sees: run 1 and 2 threads.
  for (const threads of [1, 2]) {
    be.setThreads(threads);
    gw.fill(0);
    gb.fill(0);
    be.conv2dForward(s, x, w, null, y);
    await be.conv2dForwardAsync(s, x, w, null, g.f32(len));
    be.conv2dBackwardData(s, y, w, gx);
    be.conv2dBackwardFilter(s, x, y, gw, gb);
    t.ok(g.intact(), `conv 64x224x224 (chunked) forward and backward on ${threads} thread(s): guard values intact`);
  }
  // Spot checks against the definition.
  let err = 0;
  for (const [o, yy, xx] of [[0, 0, 0], [63, 223, 223], [17, 100, 5], [40, 16, 200]] as const) {
    let acc = 0;
    for (let c = 0; c < 64; c++) {
      for (let ky = 0; ky < 3; ky++) {
        for (let kx = 0; kx < 3; kx++) {
          const iy = yy - 1 + ky;
          const ix = xx - 1 + kx;
          if (iy >= 0 && iy < 224 && ix >= 0 && ix < 224) acc += x[(c * 224 + iy) * 224 + ix]! * w[((o * 64 + c) * 3 + ky) * 3 + kx]!;
        }
      }
    }
    err = Math.max(err, Math.abs(acc - y[(o * 224 + yy) * 224 + xx]!) / Math.max(1, Math.abs(acc)));
  }
  t.ok(err <= 1e-4, `forward output right at the chunk edges (${err.toExponential(1)})`);
  let bias = 0;
  for (let i = 0; i < 224 * 224; i++) bias += y[5 * 224 * 224 + i]!;
  t.ok(Math.abs(gb[5]! - bias) / Math.max(1, Math.abs(bias)) <= 1e-4, 'gradBias right');
  t.equal(be.bytesInUse, 0, 'every region released');
});
