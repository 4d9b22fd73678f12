// The wasm backend's Winograd F(2x2, 3x3) forward convolution (assembly/winograd.ts),
// forced on, against the float64 reference at the conformance tolerance: odd and even
// heights and widths, padding 0 and 1, batch 1-3, input and output channel counts 1, 3, 17
// and 64, with bias and without, on 1 and 2 threads, sync and async. Every call runs in
// guard mode (a canary after every region and every thread's workspace in wasm memory)
// with guard values around the output array, whose prior contents (NaN) must all be
// overwritten. Results must not depend on the thread count (bit for bit), 'auto' must pick
// Winograd exactly where the kernels' crossover says so, and native and wasm must agree.
//
// The file runs on the plain SIMD build and starts itself again under
// --experimental-wasm-relaxed-simd for the relaxed build (SQUALL_WINOGRAD_SIMD=relaxed).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend, Conv2dShape } from '../../engine/backends/backend.js';
import { loadBackend } from '../../engine/backends/registry.js';
import { loadWasmBackend, wasmBuildDir } from '../../engine/backends/wasm/node.js';
import * as ref from '../conformance/reference.js';
import { Rng, TOL, maxRelErr, randArray } from '../conformance/util.js';

const simd = process.env.SQUALL_WINOGRAD_SIMD === 'relaxed' ? 'relaxed' : 'plain';

function shape(p: Partial<Conv2dShape>): Conv2dShape {
  return {
    batch: 1, inC: 1, inH: 3, inW: 3, outC: 1, kH: 3, kW: 3, strideH: 1, strideW: 1, padH: 0, padW: 0,
    dilationH: 1, dilationW: 1, groups: 1, ...p,
  };
}

const label = (s: Conv2dShape): string => `${s.batch}x${s.inC}x${s.inH}x${s.inW} -> ${s.outC} pad ${s.padH}`;

// Every pair of channel counts, each with padding 0 and 1, cycling through image sizes (odd
// and even heights and widths, outputs from 1x1 up) and batches 1-3.
const shapes: Conv2dShape[] = [];
{
  const dims = [1, 3, 17, 64];
  const sizes: [number, number][] = [[5, 8], [8, 7], [9, 9], [12, 13], [3, 4], [6, 6], [4, 11], [13, 10], [3, 3], [10, 5]];
  let i = 0;
  for (const inC of dims) {
    for (const outC of dims) {
      for (const pad of [0, 1]) {
        const [inH, inW] = sizes[i % sizes.length]!;
        shapes.push(shape({ batch: 1 + (i % 3), inC, outC, inH, inW, padH: pad, padW: pad }));
        i++;
      }
    }
  }
}
// Larger layers: enough work to be split over 2 threads, several blocks of tile slivers per
// thread, a last partial sliver, unequal padding per axis.
const larger: Conv2dShape[] = [
  shape({ batch: 3, inC: 17, inH: 30, inW: 31, outC: 17, padH: 1, padW: 1 }),
  shape({ batch: 2, inC: 64, inH: 19, inW: 20, outC: 64 }),
  shape({ batch: 1, inC: 3, inH: 41, inW: 37, outC: 64, padH: 1, padW: 1 }),
  shape({ batch: 2, inC: 64, inH: 23, inW: 9, outC: 3, padH: 1, padW: 0 }),
  shape({ batch: 1, inC: 20, inH: 57, inW: 55, outC: 9, padH: 0, padW: 1 }),
];

interface Data { x: Float32Array; w: Float32Array; b: Float32Array; withBias: Float64Array; noBias: Float64Array; len: number }
const rng = new Rng(3131);
const cache = new Map<Conv2dShape, Data>();
function data(s: Conv2dShape): Data {
  let d = cache.get(s);
  if (!d) {
    const z = ref.convSizes(s);
    const x = randArray(rng, z.input);
    const w = randArray(rng, z.weight);
    const b = randArray(rng, s.outC);
    d = { x, w, b, withBias: ref.conv2dForward(s, x, w, b), noBias: ref.conv2dForward(s, x, w, null), len: z.output };
    cache.set(s, d);
  }
  return d;
}

const GUARD = 8;
const GUARD_VALUE = -12345.5;
/** An output of n elements (NaN) with GUARD guard values on both sides. */
function guarded(n: number): { y: Float32Array; intact: () => boolean } {
  const whole = new Float32Array(n + 2 * GUARD).fill(GUARD_VALUE);
  const y = whole.subarray(GUARD, GUARD + n).fill(NaN);
  return { y, intact: () => whole.subarray(0, GUARD).every((v) => v === GUARD_VALUE) && whole.subarray(GUARD + n).every((v) => v === GUARD_VALUE) };
}

const sameBits = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

t.test(`forced Winograd against the float64 reference, guard mode, ${simd} SIMD`, async (t) => {
  const be = loadWasmBackend({ simd, threads: 1, guard: true, convAlgorithm: 'winograd' });
  t.teardown(() => be.dispose());
  t.match(be.info().blas, simd === 'relaxed' ? /relaxed-simd/ : /simd128/, `the ${simd} build`);
  t.equal(be.getConvAlgorithm(), 'winograd', 'convAlgorithm option taken');
  let worst = 0;
  for (const s of [...shapes, ...larger]) {
    const d = data(s);
    const byThreads: Float32Array[] = [];
    for (const threads of [1, 2]) {
      be.setThreads(threads);
      for (const bias of [true, false]) {
        const g = guarded(d.len);
        be.conv2dForward(s, d.x, d.w, bias ? d.b : null, g.y);
        const err = maxRelErr(g.y, bias ? d.withBias : d.noBias);
        worst = Math.max(worst, err);
        t.ok(err <= TOL && g.intact(), `${label(s)} ${bias ? 'bias' : 'no bias'} ${threads}t: error ${err.toExponential(2)} <= ${TOL}, ` +
          'guard values intact');
        if (bias) byThreads.push(g.y.slice());
      }
    }
    t.ok(sameBits(byThreads[0]!, byThreads[1]!), `${label(s)}: 1 and 2 threads bit-identical`);
    const ga = guarded(d.len);
    await be.conv2dForwardAsync(s, d.x, d.w, d.b, ga.y);
    t.ok(sameBits(ga.y, byThreads[0]!) && ga.intact(), `${label(s)}: async on 2 threads bit-identical, guard values intact`);
  }
  t.comment(`worst relative error ${worst.toExponential(2)}`);
  t.equal(be.bytesInUse, 0, 'every region released');
});

t.test(`the algorithm switch and the automatic choice, ${simd} SIMD`, (t) => {
  const be = loadWasmBackend({ simd, threads: 1 });
  t.teardown(() => be.dispose());
  t.equal(be.getConvAlgorithm(), process.env.SQUALL_WASM_CONV || 'auto', 'default: auto (or SQUALL_WASM_CONV)');
  t.throws(() => be.setConvAlgorithm('fft' as never), RangeError, 'an unknown algorithm is refused');
  const run = (s: Conv2dShape, algo: 'auto' | 'im2col' | 'winograd'): Float32Array => {
    be.setConvAlgorithm(algo);
    const d = data(s);
    const y = new Float32Array(d.len);
    be.conv2dForward(s, d.x, d.w, d.b, y);
    return y;
  };
  // The two algorithms round differently, so they disagree in some bits: the switch works.
  const big = larger[0]!;
  const yw = run(big, 'winograd');
  const yi = run(big, 'im2col');
  t.notOk(sameBits(yw, yi), 'forced Winograd and forced im2col differ in rounding (the switch takes effect)');
  t.ok(maxRelErr(yi, data(big).withBias) <= TOL, 'forced im2col is right too');
  // auto: Winograd for 3x3 stride 1 with >= 8 input channels and >= 32 output tiles.
  const tiles = (s: Conv2dShape): number => {
    const z = ref.convSizes(s);
    return s.batch * Math.ceil(z.outH / 2) * Math.ceil(z.outW / 2);
  };
  for (const s of [...shapes, ...larger]) {
    const pays = s.inC >= 8 && tiles(s) >= 32;
    const auto = run(s, 'auto');
    t.ok(sameBits(auto, run(s, pays ? 'winograd' : 'im2col')), `${label(s)}: auto runs ${pays ? 'Winograd' : 'im2col'}`);
  }
  // Shapes Winograd does not apply to run im2col even when it is forced.
  for (const s of [
    shape({ batch: 2, inC: 16, inH: 12, inW: 12, outC: 16, strideH: 2, strideW: 2, padH: 1, padW: 1 }),
    shape({ batch: 2, inC: 16, inH: 12, inW: 12, outC: 16, dilationH: 2, dilationW: 2, padH: 2, padW: 2 }),
    shape({ batch: 2, inC: 16, inH: 12, inW: 12, outC: 16, groups: 2, padH: 1, padW: 1 }),
    shape({ batch: 2, inC: 16, inH: 12, inW: 12, outC: 16, kH: 5, kW: 5, padH: 2, padW: 2 }),
  ]) {
    t.ok(sameBits(run(s, 'winograd'), run(s, 'im2col')), `${fmtShape(s)}: not eligible, im2col either way`);
  }
  be.setConvAlgorithm('auto');
  t.end();
});

function fmtShape(s: Conv2dShape): string {
  return `${label(s)} k${s.kH} stride ${s.strideH} dil ${s.dilationH} groups ${s.groups}`;
}

// The module's own switch (convSetWinograd) and thread split, on one instance: every tid of
// 1, 2 and 3 threads called in turn, each with its own workspace followed by guard words.
interface Exports {
  heapBase(): number;
  conv2dWorkspace(kind: number, shape: number): number;
  conv2dForward(tid: number, nthreads: number, shape: number, input: number, weight: number, bias: number, output: number,
    ws: number, wsStride: number): void;
  convSetWinograd(mode: number): void;
}

t.test(`kernel exports: convSetWinograd, thread split, no write outside output and workspaces, ${simd} SIMD`, (t) => {
  const file = join(wasmBuildDir(), simd === 'relaxed' ? 'squall-relaxed.wasm' : 'squall.wasm');
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
  const ex = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(file)), { env: { memory } }).exports as unknown as Exports;
  let top = Math.ceil(ex.heapBase() / 64) * 64;
  const alloc = (bytes: number): number => {
    const p = top;
    top = Math.ceil((top + bytes + 64) / 64) * 64;
    const need = Math.ceil(top / 65536) - memory.buffer.byteLength / 65536;
    if (need > 0) memory.grow(need);
    return p;
  };
  const MARK = 0x5eed;
  for (const s of [shapes[21]!, shapes[30]!, larger[0]!, larger[4]!]) {
    const z = ref.convSizes(s);
    const d = data(s);
    const ps = alloc(68);
    new Int32Array(memory.buffer, ps, 17).set([s.batch, s.inC, s.inH, s.inW, s.outC, s.kH, s.kW, s.strideH, s.strideW,
      s.padH, s.padW, s.dilationH, s.dilationW, s.groups, z.outH, z.outW, 0]);
    const px = alloc(d.x.length * 4);
    const pw = alloc(d.w.length * 4);
    const pb = alloc(d.b.length * 4);
    new Float32Array(memory.buffer, px, d.x.length).set(d.x);
    new Float32Array(memory.buffer, pw, d.w.length).set(d.w);
    new Float32Array(memory.buffer, pb, d.b.length).set(d.b);
    const wsBytes = Math.ceil(ex.conv2dWorkspace(0, ps) / 64) * 64 + 64; // + 64 guard bytes per thread
    const results: Float32Array[] = [];
    for (const [mode, threads] of [[1, 1], [1, 2], [1, 3], [0, 1]] as const) {
      const py = alloc((d.len + 32) * 4);
      const ws = alloc(wsBytes * threads);
      const i32 = new Int32Array(memory.buffer);
      i32.fill(MARK, py / 4, py / 4 + d.len + 32);
      for (let k = 0; k < threads; k++) i32.fill(MARK, (ws + k * wsBytes + wsBytes - 64) / 4, (ws + k * wsBytes + wsBytes) / 4);
      ex.convSetWinograd(mode);
      for (let tid = 0; tid < threads; tid++) ex.conv2dForward(tid, threads, ps, px, pw, pb, py + 64, ws, wsBytes);
      const after = new Int32Array(memory.buffer);
      let guards = true;
      for (let k = 0; k < 16; k++) guards &&= after[py / 4 + k] === MARK && after[py / 4 + 16 + d.len + k] === MARK;
      for (let k = 0; k < threads; k++) {
        for (let j = 0; j < 16; j++) guards &&= after[(ws + k * wsBytes + wsBytes - 64) / 4 + j] === MARK;
      }
      const y = new Float32Array(memory.buffer, py + 64, d.len).slice();
      const err = maxRelErr(y, d.withBias);
      t.ok(err <= TOL && guards, `${label(s)} convSetWinograd(${mode}) ${threads} thread(s): error ${err.toExponential(2)}, ` +
        'nothing written outside the output and the workspaces');
      results.push(y);
    }
    t.ok(sameBits(results[0]!, results[1]!) && sameBits(results[0]!, results[2]!), `${label(s)}: 1, 2 and 3 threads bit-identical`);
    t.notOk(sameBits(results[0]!, results[3]!), `${label(s)}: convSetWinograd(0) runs the other algorithm`);
  }
  ex.convSetWinograd(-1);
  t.end();
});

t.test(`native and wasm (Winograd) agree within ${TOL}`, (t) => {
  let native: Backend;
  try {
    native = loadBackend('native');
  } catch (err) {
    t.pass(`skipped: the native backend is not available (${(err as Error).message})`);
    t.end();
    return;
  }
  const be = loadWasmBackend({ simd, threads: 2, convAlgorithm: 'winograd' });
  t.teardown(() => be.dispose());
  for (const s of [shapes[10]!, shapes[31]!, ...larger]) {
    const d = data(s);
    const a = new Float32Array(d.len);
    const b = new Float32Array(d.len);
    native.conv2dForward(s, d.x, d.w, d.b, a);
    be.conv2dForward(s, d.x, d.w, d.b, b);
    const err = maxRelErr(b, a);
    t.ok(err <= TOL, `${label(s)}: native vs wasm Winograd ${err.toExponential(2)} <= ${TOL}`);
  }
  t.end();
});

if (simd === 'plain') {
  t.test('the same on the relaxed SIMD build (child under --experimental-wasm-relaxed-simd)', (t) => {
    const r = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', fileURLToPath(import.meta.url)],
      { encoding: 'utf8', timeout: 600_000, env: { ...process.env, SQUALL_WINOGRAD_SIMD: 'relaxed', SQUALL_WASM_SIMD: 'relaxed' } });
    const failures = r.stdout.split('\n').filter((l) => /^\s*not ok/.test(l));
    if (r.status !== 0) t.comment(`${failures.slice(0, 20).join('\n')}\n${r.stderr.split('\n').slice(-10).join('\n')}`);
    t.equal(r.status, 0, 'every Winograd test passes on the relaxed build');
    t.match(r.stdout, /# worst relative error/, 'the relaxed run compared against the reference');
    t.end();
  });
}
