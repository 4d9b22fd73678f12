// The WebAssembly peer: TensorFlow.js's wasm backend (XNNPACK, SIMD) on the GEMM and conv
// shapes of bench/kernels. Run as a child process per thread count: tfjs-backend-wasm fixes
// its thread pool when the backend initialises.
//   node dist/bench/kernels/tfjs_peer.js '<json request with one thread count>'
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { timeSync } from '../common.js';
import { convFlop, parseRequest } from './peer_request.js';

const request = parseRequest(process.argv[2]);
if (request.threads.length !== 1) throw new Error('tfjs_peer measures one thread count per process');
const threads = request.threads[0]!;
const require = createRequire(import.meta.url);
const wasmDir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm'));
setWasmPaths(join(wasmDir, '/'));
setThreadsCount(threads);
await tf.setBackend('wasm');
await tf.ready();

for (const s of request.gemm) {
  const a = tf.randomUniform([s.m, s.k]);
  const b = tf.randomUniform([s.k, s.n]);
  const t = timeSync(() => {
    const c = tf.matMul(a, b);
    c.dataSync();
    c.dispose();
  });
  console.log(JSON.stringify({ kind: 'gemm', label: s.label, threads, gflops: (2 * s.m * s.n * s.k) / t.medianSeconds / 1e9 }));
  a.dispose();
  b.dispose();
}
for (const l of request.conv) {
  const x = tf.randomUniform([l.batch, l.hw, l.hw, l.inC]) as tf.Tensor4D;
  const w = tf.randomUniform([l.k, l.k, l.inC, l.outC]) as tf.Tensor4D;
  const t = timeSync(() => {
    const y = tf.conv2d(x, w, 1, [[0, 0], [l.pad, l.pad], [l.pad, l.pad], [0, 0]]);
    y.dataSync();
    y.dispose();
  });
  console.log(JSON.stringify({ kind: 'conv', label: l.label, threads, gflops: convFlop(l) / t.medianSeconds / 1e9 }));
  x.dispose();
  w.dispose();
}
console.log(JSON.stringify({ kind: 'info', backend: tf.getBackend(), threads }));
