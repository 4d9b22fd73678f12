// Squall's wasm backend on the GEMM and conv shapes of bench/kernels, in a child process so
// the SIMD flavour can be chosen by the V8 flags it starts with (relaxed SIMD needs
// --experimental-wasm-relaxed-simd on Node 20) and its threads stay apart from the parent's.
// Arrays are resident in wasm memory (allocFloat32), as tensors of a wasm worker are and as
// TensorFlow.js keeps its own; the copy cost of plain arrays is measured by bench/wasm.
//   SQUALL_WASM_SIMD=plain|relaxed node dist/bench/kernels/wasm_peer.js '<json request>'
import { loadWasmBackend } from '../../engine/backends/wasm/node.js';
import { timeSync } from '../common.js';
import { convFlop, parseRequest } from './peer_request.js';

const request = parseRequest(process.argv[2]);
const be = loadWasmBackend();
const fill = (a: Float32Array): Float32Array => {
  for (let i = 0; i < a.length; i++) a[i] = ((i * 7919) % 1000) / 1000 - 0.5;
  return a;
};

for (const threads of request.threads) {
  be.setThreads(threads);
  for (const s of request.gemm) {
    const a = fill(be.allocFloat32(s.m * s.k));
    const b = fill(be.allocFloat32(s.k * s.n));
    const c = be.allocFloat32(s.m * s.n);
    const t = timeSync(() => be.sgemm(false, false, s.m, s.n, s.k, 1, a, s.k, b, s.n, 0, c, s.n));
    console.log(JSON.stringify({ kind: 'gemm', label: s.label, threads, gflops: (2 * s.m * s.n * s.k) / t.medianSeconds / 1e9 }));
    for (const x of [a, b, c]) be.free(x);
  }
  for (const l of request.conv) {
    const out = l.hw + 2 * l.pad - l.k + 1;
    const shape = { batch: l.batch, inC: l.inC, inH: l.hw, inW: l.hw, outC: l.outC, kH: l.k, kW: l.k, strideH: 1, strideW: 1,
      padH: l.pad, padW: l.pad, dilationH: 1, dilationW: 1, groups: 1 };
    const x = fill(be.allocFloat32(l.batch * l.inC * l.hw * l.hw));
    const w = fill(be.allocFloat32(l.outC * l.inC * l.k * l.k));
    const bias = fill(be.allocFloat32(l.outC));
    const y = be.allocFloat32(l.batch * l.outC * out * out);
    const t = timeSync(() => be.conv2dForward(shape, x, w, bias, y));
    console.log(JSON.stringify({ kind: 'conv', label: l.label, threads, gflops: convFlop(l) / t.medianSeconds / 1e9 }));
    for (const v of [x, w, bias, y]) be.free(v);
  }
}
console.log(JSON.stringify({ kind: 'info', blas: be.info().blas }));
be.dispose();
