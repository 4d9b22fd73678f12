// Resident arrays (WasmBackend.allocFloat32): views of the wasm memory that kernels use in
// place, without the copies a plain Float32Array costs. They give the same results as plain
// arrays, including when an output overlaps an input of the same call, and stay valid when
// the memory grows.
import t from 'tap';
import type { Conv2dShape } from '../../engine/backends/backend.js';
import { loadWasmBackend } from '../../engine/backends/wasm/node.js';

const be = loadWasmBackend({ threads: 2, guard: true });
t.teardown(() => be.dispose());

function fill(a: Float32Array, seed: number): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] = Math.sin(i * 0.37 + seed);
  return a;
}
function resident(src: Float32Array): Float32Array {
  const r = be.allocFloat32(src.length);
  r.set(src);
  return r;
}

t.test('same results as plain arrays', async (t) => {
  const m = 96, n = 200, k = 130;
  const a = fill(new Float32Array(m * k), 1);
  const b = fill(new Float32Array(k * n), 2);
  const c = fill(new Float32Array(m * n), 3);
  const want = c.slice();
  be.sgemm(false, false, m, n, k, 1.5, a, k, b, n, 0.5, want, n);
  const ra = resident(a), rb = resident(b), rc = resident(c);
  be.sgemm(false, false, m, n, k, 1.5, ra, k, rb, n, 0.5, rc, n);
  t.same(rc, want, 'sgemm in place');
  rc.set(c);
  await be.sgemmAsync(false, false, m, n, k, 1.5, ra, k, rb, n, 0.5, rc, n);
  t.same(rc, want, 'sgemmAsync in place');

  const s: Conv2dShape = { batch: 2, inC: 8, inH: 13, inW: 11, outC: 12, kH: 3, kW: 3, strideH: 1, strideW: 1,
    padH: 1, padW: 1, dilationH: 1, dilationW: 1, groups: 2 };
  const x = fill(new Float32Array(2 * 8 * 13 * 11), 4);
  const w = fill(new Float32Array(12 * 4 * 9), 5);
  const bias = fill(new Float32Array(12), 6);
  const y = new Float32Array(2 * 12 * 13 * 11);
  be.conv2dForward(s, x, w, bias, y);
  const ry = be.allocFloat32(y.length);
  be.conv2dForward(s, resident(x), resident(w), resident(bias), ry);
  t.same(ry, y, 'conv2dForward in place');
  const gw = fill(new Float32Array(w.length), 7);
  const rgw = resident(gw);
  be.conv2dBackwardFilter(s, x, y, gw, null);
  be.conv2dBackwardFilter(s, resident(x), ry, rgw, null);
  t.same(rgw, gw, 'conv2dBackwardFilter accumulates in place');
});

t.test('outputs overlapping inputs of the same call', (t) => {
  const x = fill(new Float32Array(1000), 8);
  const rx = resident(x);
  be.relu(rx, rx);
  t.same(rx, x.map((v) => (v > 0 ? v : 0)), 'relu(x, x)');
  const a = resident(fill(new Float32Array(500), 9));
  const b = fill(new Float32Array(500), 10);
  const sum = a.map((v, i) => Math.fround(v + b[i]!));
  be.add(a, resident(b), a);
  t.same(a, sum, 'add(a, b, a)');
  // C overlapping A: the result must be computed from the original A.
  const m = 20, k = 20, n = 20;
  const buf = be.allocFloat32(m * k + 10);
  fill(buf, 11);
  const A = buf.subarray(0, m * k);
  const C = buf.subarray(10, 10 + m * n);
  const B = resident(fill(new Float32Array(k * n), 12));
  const want = new Float32Array(m * n);
  be.sgemm(false, false, m, n, k, 1, A.slice(), k, B.slice(), n, 0, want, n);
  be.sgemm(false, false, m, n, k, 1, A, k, B, n, 0, C, n);
  t.same(C, want, 'sgemm with C overlapping A');
  t.end();
});

t.test('resident arrays survive memory growth and can be freed', (t) => {
  const r = resident(fill(new Float32Array(4096), 13));
  const copy = r.slice();
  const before = be.memory.buffer.byteLength;
  const big = be.allocFloat32(1 << 24); // 64 MiB: grows the memory
  t.ok(be.memory.buffer.byteLength > before, 'the memory grew');
  t.same(r, copy, 'an older resident view still reads its values');
  const out = new Float32Array(4096);
  be.scale(r, 2, out);
  t.same(out, copy.map((v) => v * 2), 'and kernels still use it in place');
  be.free(big);
  be.free(r);
  t.throws(() => be.free(r), /not an array from allocFloat32/, 'double free is refused');
  t.throws(() => be.free(new Float32Array(4)), /not an array from allocFloat32/, 'a plain array is refused');
  t.end();
});
