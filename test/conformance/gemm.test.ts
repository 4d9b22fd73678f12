// sgemm and sgemmAsync against the float64 reference: every transpose combination, odd
// sizes, long reductions, alpha/beta (beta = 0 ignores NaN garbage in C), row strides
// larger than the rows (with NaN in the stride padding of A and B, and C's padding left
// untouched), the async variant, and the JavaScript thread staying free while it runs.
import t from 'tap';
import type { Backend } from '../../engine/backends/backend.js';
import * as ref from './reference.js';
import { Rng, close, forEachBackend, fmt, measureAsync, within, type Tap } from './util.js';

interface GemmCase {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  alpha: number;
  beta: number;
  padA: number;
  padB: number;
  padC: number;
}

/**
 * A stored matrix of rows x cols with row stride cols + pad: values in the matrix, `padValue`
 * in the stride padding (NaN for inputs, so reading it poisons the result).
 */
function stored(rng: Rng, rows: number, cols: number, pad: number, padValue: number, value?: () => number): Float32Array {
  const ld = cols + pad;
  const a = new Float32Array(rows * ld).fill(padValue);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) a[r * ld + c] = value ? value() : rng.uniform(-1, 1);
  return a;
}

function makeOperands(rng: Rng, c: GemmCase) {
  const [aRows, aCols] = c.transA ? [c.k, c.m] : [c.m, c.k];
  const [bRows, bCols] = c.transB ? [c.n, c.k] : [c.k, c.n];
  const a = stored(rng, aRows, aCols, c.padA, NaN);
  const b = stored(rng, bRows, bCols, c.padB, NaN);
  // C: NaN garbage when beta == 0 (must be ignored), values otherwise; padding holds a
  // sentinel that must survive.
  const cm = stored(rng, c.m, c.n, c.padC, -777.5, c.beta === 0 ? () => NaN : undefined);
  return { a, lda: aCols + c.padA, b, ldb: bCols + c.padB, c: cm, ldc: c.n + c.padC };
}

function runCase(t: Tap, be: Backend, rng: Rng, c: GemmCase): void {
  const o = makeOperands(rng, c);
  const a0 = o.a.slice();
  const b0 = o.b.slice();
  const want = ref.gemm(c.transA, c.transB, c.m, c.n, c.k, c.alpha, o.a, o.lda, o.b, o.ldb, c.beta, o.c, o.ldc);
  be.sgemm(c.transA, c.transB, c.m, c.n, c.k, c.alpha, o.a, o.lda, o.b, o.ldb, c.beta, o.c, o.ldc);
  const name = fmt(c);
  // Compare the m x n block; the padding separately (must be untouched).
  const got: number[] = [];
  const exp: number[] = [];
  let padOk = true;
  for (let i = 0; i < c.m; i++) {
    for (let j = 0; j < o.ldc; j++) {
      const v = o.c[i * o.ldc + j]!;
      if (j < c.n) {
        got.push(v);
        exp.push(want[i * o.ldc + j]!);
      } else if (v !== -777.5) {
        padOk = false;
      }
    }
  }
  close(t, got, exp, `sgemm ${name}`);
  if (c.padC > 0) t.ok(padOk, `sgemm ${name}: C's stride padding untouched`);
  if (!sameBitsQuiet(o.a, a0) || !sameBitsQuiet(o.b, b0)) t.fail(`sgemm ${name}: A or B was modified`);
}

function sameBitsQuiet(x: Float32Array, y: Float32Array): boolean {
  const a = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const b = new Uint32Array(y.buffer, y.byteOffset, y.length);
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

forEachBackend(t, async (t, be) => {
  const rng = new Rng(1);
  const odd = [1, 3, 7, 17, 33, 64, 65];

  t.test('every transpose combination, odd sizes, alpha/beta, strides', (t) => {
    const alphas = [1, -0.5, 2.25];
    const betas = [0, 1, -1.5, 0.3];
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (let rep = 0; rep < 6; rep++) {
          runCase(t, be, rng, {
            transA, transB,
            m: rng.pick(odd), n: rng.pick(odd), k: rng.pick([1, 3, 7, 17, 33, 100]),
            alpha: alphas[rep % alphas.length]!, beta: betas[rep % betas.length]!,
            padA: rng.pick([0, 1, 5]), padB: rng.pick([0, 2, 7]), padC: rng.pick([0, 1, 3]),
          });
        }
      }
    }
    t.end();
  });

  t.test('long reductions (K of several hundred)', (t) => {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        runCase(t, be, rng, { transA, transB, m: 33, n: 47, k: rng.pick([513, 777]), alpha: 1, beta: 0, padA: 0, padB: 0, padC: 0 });
      }
    }
    runCase(t, be, rng, { transA: false, transB: false, m: 128, n: 96, k: 640, alpha: 0.5, beta: 1, padA: 3, padB: 0, padC: 1 });
    t.end();
  });

  t.test('sizes past the blocking edges of a packed GEMM (m > 336, k > 512, n > 4096)', (t) => {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        runCase(t, be, rng, { transA, transB, m: 401, n: 70, k: 600, alpha: 1, beta: 0.5, padA: 1, padB: 0, padC: 2 });
        runCase(t, be, rng, { transA, transB, m: 3, n: 4103, k: 20, alpha: -1, beta: 0, padA: 0, padB: 3, padC: 0 });
      }
    }
    t.end();
  });

  t.test('vector shapes and 1x1x1', (t) => {
    for (const [m, n, k] of [[1, 1, 1], [1, 65, 300], [65, 1, 300], [17, 9, 1], [1, 1, 513]] as const) {
      for (const transA of [false, true]) {
        runCase(t, be, rng, { transA, transB: !transA, m, n, k, alpha: 1.5, beta: 0.5, padA: 1, padB: 0, padC: 2 });
      }
    }
    t.end();
  });

  t.test('beta = 0 ignores NaN and infinity in C; alpha = 0 scales C', (t) => {
    const m = 7, n = 5, k = 9;
    const a = Float32Array.from({ length: m * k }, () => rng.uniform());
    const b = Float32Array.from({ length: k * n }, () => rng.uniform());
    const c = Float32Array.from({ length: m * n }, (_, i) => [NaN, Infinity, -Infinity][i % 3]!);
    be.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n);
    close(t, c, ref.gemm(false, false, m, n, k, 1, a, k, b, n, 0, new Float64Array(m * n), n), 'beta=0 over NaN/inf garbage');
    const c2 = Float32Array.from({ length: m * n }, () => rng.uniform());
    const want = ref.gemm(false, false, m, n, k, 0, a, k, b, n, -2, c2, n);
    be.sgemm(false, false, m, n, k, 0, a, k, b, n, -2, c2, n);
    close(t, c2, want, 'alpha=0, beta=-2: C = -2 C');
    const c3 = Float32Array.from({ length: m * n }, () => rng.uniform());
    be.sgemm(false, false, m, n, k, 0, a, k, b, n, 0, c3, n);
    t.ok(c3.every((v) => v === 0), 'alpha=0, beta=0: C = 0');
    t.end();
  });

  t.test('empty products follow the formula: k = 0 gives C = beta C; m = 0 or n = 0 is a no-op', (t) => {
    const c = Float32Array.from([1, 2, 3, 4, 5, 6]);
    be.sgemm(false, false, 2, 3, 0, 1, new Float32Array(0), 1, new Float32Array(0), 3, 0.5, c, 3);
    t.same([...c], [0.5, 1, 1.5, 2, 2.5, 3], 'k = 0, beta = 0.5');
    const c0 = Float32Array.from([NaN, NaN]);
    be.sgemm(true, true, 1, 2, 0, 1, new Float32Array(0), 1, new Float32Array(0), 1, 0, c0, 2);
    t.same([...c0], [0, 0], 'k = 0, beta = 0 over NaN: zeros');
    be.sgemm(false, false, 0, 3, 4, 1, new Float32Array(0), 4, new Float32Array(12), 3, 0, new Float32Array(0), 3);
    be.sgemm(false, false, 3, 0, 4, 1, new Float32Array(12), 4, new Float32Array(0), 1, 0, new Float32Array(0), 1);
    t.pass('m = 0 and n = 0 accepted');
    t.end();
  });

  t.test('sgemmAsync equals sgemm', async (t) => {
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const c: GemmCase = { transA, transB, m: 67, n: 45, k: 301, alpha: 0.75, beta: rng.pick([0, 1.25]), padA: 1, padB: 2, padC: 1 };
      const o = makeOperands(rng, c);
      const want = ref.gemm(transA, transB, c.m, c.n, c.k, c.alpha, o.a, o.lda, o.b, o.ldb, c.beta, o.c, o.ldc);
      const cSync = o.c.slice();
      be.sgemm(transA, transB, c.m, c.n, c.k, c.alpha, o.a, o.lda, o.b, o.ldb, c.beta, cSync, o.ldc);
      const p = be.sgemmAsync(transA, transB, c.m, c.n, c.k, c.alpha, o.a, o.lda, o.b, o.ldb, c.beta, o.c, o.ldc);
      t.ok(p instanceof Promise, 'sgemmAsync returns a Promise');
      await within(p, 'sgemmAsync');
      const pick = (arr: ArrayLike<number>) => Array.from({ length: c.m * c.n }, (_, i) => arr[Math.floor(i / c.n) * o.ldc + (i % c.n)]!);
      close(t, pick(o.c), pick(want), `sgemmAsync ${fmt(c)} vs reference`);
      close(t, o.c, cSync, `sgemmAsync ${fmt(c)} vs sgemm`, 1e-6);
    }
    t.end();
  });

  t.test('sgemmAsync on subarray views', async (t) => {
    const m = 19, n = 23, k = 41;
    const big = new Float32Array(5000).fill(NaN);
    const a = big.subarray(3, 3 + m * k);
    const b = big.subarray(1000, 1000 + k * n);
    const c = big.subarray(2001, 2001 + m * n);
    for (let i = 0; i < a.length; i++) a[i] = rng.uniform();
    for (let i = 0; i < b.length; i++) b[i] = rng.uniform();
    const want = ref.gemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n);
    await within(be.sgemmAsync(false, false, m, n, k, 1, a, k, b, n, 0, c, n), 'sgemmAsync');
    close(t, c, want, 'views with byte offsets');
    t.ok(Number.isNaN(big[2000]) && Number.isNaN(big[2001 + m * n]), 'neighbours of C untouched');
    t.end();
  });

  t.test('several sgemmAsync in flight at once', async (t) => {
    const jobs = Array.from({ length: 4 }, (_, j) => {
      const c: GemmCase = { transA: j % 2 === 1, transB: j >= 2, m: 50 + j, n: 40, k: 200, alpha: 1, beta: 0, padA: 0, padB: 0, padC: 0 };
      const o = makeOperands(rng, c);
      return { c, o, want: ref.gemm(c.transA, c.transB, c.m, c.n, c.k, 1, o.a, o.lda, o.b, o.ldb, 0, o.c, o.ldc) };
    });
    await within(Promise.all(jobs.map(({ c, o }) => be.sgemmAsync(c.transA, c.transB, c.m, c.n, c.k, 1, o.a, o.lda, o.b, o.ldb, 0, o.c, o.ldc))),
      'four concurrent sgemmAsync');
    for (const { c, o, want } of jobs) close(t, o.c, want, `concurrent ${fmt(c)}`);
    t.end();
  });

  t.test('sgemmAsync does not block the JavaScript thread', async (t) => {
    const n = 1024; // long enough (tens of ms) that a blocking call cannot hide in scheduling noise
    const a = Float32Array.from({ length: n * n }, () => rng.uniform());
    const b = Float32Array.from({ length: n * n }, () => rng.uniform());
    const cSync = new Float32Array(n * n);
    const c = new Float32Array(n * n);
    const t0 = performance.now();
    be.sgemm(false, false, n, n, n, 1, a, n, b, n, 0, cSync, n);
    const syncMs = performance.now() - t0;
    const r = await measureAsync(() => be.sgemmAsync(false, false, n, n, n, 1, a, n, b, n, 0, c, n));
    t.comment(`${n}^3: sync ${syncMs.toFixed(1)} ms; async call returned in ${r.callMs.toFixed(2)} ms, ` +
      `settled after ${r.totalMs.toFixed(1)} ms and ${r.turns} event-loop turns`);
    t.ok(r.turns >= 1, 'event-loop turns ran while sgemmAsync was in flight');
    t.ok(r.pendingAfterCall, `the call returned before the work was done (returned in ${r.callMs.toFixed(2)} ms; sync takes ${syncMs.toFixed(1)} ms)`);
    close(t, c, cSync, 'async result equals sync result', 1e-6);
    t.end();
  });
});
