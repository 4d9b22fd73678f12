// The wasm backend's linear memory grows (memory.grow) while kernels run, and nothing is
// corrupted: an async GEMM / convolution running on the worker threads keeps its operands
// while the main thread's calls grow the shared memory under it, and the main thread's own
// views over the memory are re-created after each grow (for the shared memory of the
// threaded build and for the plain memory of the single-threaded build, whose old
// ArrayBuffer is detached by a grow).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Conv2dShape } from '../../engine/backends/backend.js';
import { convOutputSize } from '../../engine/backends/backend.js';
import { createWasmBackend } from '../../engine/backends/wasm/core.js';
import { loadWasmBackend, wasmBuildDir } from '../../engine/backends/wasm/node.js';

let seed = 12345;
function rand(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32 * 2 - 1;
}
function randArray(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rand();
  return a;
}

/** C = A B (row-major, no transposes) in float64, rows [r0, r1) only. */
function gemmRef(m: number, n: number, k: number, a: Float32Array, b: Float32Array, r0 = 0, r1 = m): Float64Array {
  const c = new Float64Array((r1 - r0) * n);
  for (let i = r0; i < r1; i++) {
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p]!;
      for (let j = 0; j < n; j++) c[(i - r0) * n + j] += av * b[p * n + j]!;
    }
  }
  return c;
}

function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>, offset = 0): number {
  let diff = 0;
  let scale = 1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[offset + i]! - want[i]!);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return diff / scale;
}

t.test('async GEMM on the workers survives memory.grow from the main thread', async (t) => {
  const be = loadWasmBackend({ threads: 2, guard: true });
  t.teardown(() => be.dispose());
  const m = 1024, n = 1024, k = 1024;
  const a = randArray(m * k);
  const b = randArray(k * n);
  const c = new Float32Array(m * n).fill(NaN);

  let settled = false;
  const job = be.sgemmAsync(false, false, m, n, k, 1, a, k, b, n, 0, c, n).then(() => { settled = true; });
  // Let the job reach the workers, then make the main thread's calls grow the memory until it is done.
  await new Promise((r) => setTimeout(r, 5));
  const grows: number[] = [];
  let size = 1 << 20;
  let syncOk = true;
  while (!settled && size <= 1 << 24) {
    const before = be.memory.buffer.byteLength;
    const x = randArray(size);
    const y = randArray(size);
    const out = new Float32Array(size);
    be.add(x, y, out);
    for (let i = 0; i < size; i += 997) if (out[i] !== Math.fround(x[i]! + y[i]!)) syncOk = false;
    if (!settled && be.memory.buffer.byteLength > before) grows.push(be.memory.buffer.byteLength);
    size *= 2;
    await new Promise((r) => setImmediate(r));
  }
  t.ok(grows.length > 0, `the memory grew while the async GEMM was running (${grows.map((g) => `${g >> 20} MiB`).join(', ')})`);
  t.ok(syncOk, 'the main-thread calls that grew the memory computed correctly');
  await job;
  // Check a band of rows against float64 (the whole product is 2 GFLOP in JavaScript).
  for (const r0 of [0, 511, 1020]) {
    const want = gemmRef(m, n, k, a, b, r0, r0 + 4);
    t.ok(maxRelErr(c, want, r0 * n) <= 1e-4, `rows ${r0}..${r0 + 3} of the async result are right`);
  }
  t.equal(be.bytesInUse, 0, 'every region was released');
});

t.test('async convolution survives memory.grow from the main thread', async (t) => {
  const be = loadWasmBackend({ threads: 2, guard: true });
  t.teardown(() => be.dispose());
  const s: Conv2dShape = { batch: 8, inC: 64, inH: 32, inW: 32, outC: 64, kH: 3, kW: 3, strideH: 1, strideW: 1,
    padH: 1, padW: 1, dilationH: 1, dilationW: 1, groups: 1 };
  const oh = convOutputSize(s.inH, s.kH, s.strideH, s.padH, s.dilationH);
  const ow = convOutputSize(s.inW, s.kW, s.strideW, s.padW, s.dilationW);
  const x = randArray(s.batch * s.inC * s.inH * s.inW);
  const w = randArray(s.outC * s.inC * 9);
  const y = new Float32Array(s.batch * s.outC * oh * ow);
  let settled = false;
  const job = be.conv2dForwardAsync(s, x, w, null, y).then(() => { settled = true; });
  await new Promise((r) => setTimeout(r, 2));
  const before = be.memory.buffer.byteLength;
  let grewWhileRunning = false;
  for (let size = 1 << 21; size <= 1 << 24 && !settled; size *= 2) {
    const big = new Float32Array(size).fill(1.5);
    const out = new Float32Array(size);
    be.scale(big, 2, out);
    if (out[size - 1] !== 3 || out[0] !== 3) t.fail('scale on the grown memory is wrong');
    if (!settled && be.memory.buffer.byteLength > before) grewWhileRunning = true;
  }
  await job;
  t.ok(grewWhileRunning || be.memory.buffer.byteLength > before, 'the memory grew during the run');
  // Reference for a few output planes.
  let err = 0;
  for (const [nb, o] of [[0, 0], [3, 17], [7, 63]] as const) {
    for (let yy = 0; yy < oh; yy++) {
      for (let xx = 0; xx < ow; xx++) {
        let acc = 0;
        for (let c = 0; c < s.inC; c++) {
          for (let ky = 0; ky < 3; ky++) {
            for (let kx = 0; kx < 3; kx++) {
              const iy = yy - 1 + ky;
              const ix = xx - 1 + kx;
              if (iy < 0 || iy >= s.inH || ix < 0 || ix >= s.inW) continue;
              acc += x[((nb * s.inC + c) * s.inH + iy) * s.inW + ix]! * w[((o * s.inC + c) * 3 + ky) * 3 + kx]!;
            }
          }
        }
        err = Math.max(err, Math.abs(acc - y[((nb * s.outC + o) * oh + yy) * ow + xx]!) / Math.max(1, Math.abs(acc)));
      }
    }
  }
  t.ok(err <= 1e-4, `async convolution output is right after the grow (max rel err ${err.toExponential(2)})`);
});

t.test('every call sees the grown memory (shared memory, main thread only)', (t) => {
  const be = loadWasmBackend({ threads: 1, guard: true });
  t.teardown(() => be.dispose());
  const first = be.memory.buffer.byteLength;
  // Sizes rise so most calls must grow the memory between copying in and copying out.
  for (let size = 1000; size <= 1 << 24; size *= 4) {
    const x = randArray(size);
    const y = new Float32Array(size);
    be.relu(x, y);
    let ok = true;
    for (let i = 0; i < size; i++) if (y[i] !== (x[i]! > 0 ? x[i] : 0)) { ok = false; break; }
    t.ok(ok, `relu over ${size} elements correct (memory ${be.memory.buffer.byteLength >> 20} MiB)`);
  }
  t.ok(be.memory.buffer.byteLength > first, 'the memory grew');
  t.end();
});

t.test('single-threaded build: views are re-created after a grow detaches the buffer', (t) => {
  const bytes = readFileSync(join(wasmBuildDir(), 'squall-st.wasm'));
  const be = createWasmBackend({ module: new WebAssembly.Module(bytes), sharedMemory: false, variant: 'squall-st.wasm', guard: true });
  const m = 70, n = 90, k = 50;
  const a = randArray(m * k);
  const b = randArray(k * n);
  const c = new Float32Array(m * n);
  be.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n);
  t.ok(maxRelErr(c, gemmRef(m, n, k, a, b)) <= 1e-4, 'sgemm before growing');
  const old = be.memory.buffer;
  const big = randArray(1 << 22);
  const out = new Float32Array(1 << 22);
  be.scale(big, -1, out);
  t.equal(old.byteLength, 0, 'the old ArrayBuffer was detached by the grow');
  t.ok(out.every((v, i) => v === -big[i]!), 'scale across the grow is right');
  const c2 = new Float32Array(m * n);
  be.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c2, n);
  t.same(c2, c, 'sgemm after the grow gives the same result');
  t.end();
});
