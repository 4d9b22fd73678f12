// The WebAssembly peer: TensorFlow.js's wasm backend (XNNPACK, SIMD) on the GEMM and conv
// shapes of bench/kernels. Run as a child process so its threads and memory stay apart:
//   node dist/bench/kernels/tfjs_peer.js '<json request>'  -> one JSON line per shape
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { timeSync } from '../common.js';

interface Request {
  threads: number;
  gemm: { label: string; m: number; n: number; k: number }[];
  conv: { label: string; batch: number; inC: number; hw: number; outC: number; k: number; pad: number }[];
}

const request = JSON.parse(process.argv[2] ?? '{}') as Request;
const require = createRequire(import.meta.url);
const wasmDir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm'));
setWasmPaths(join(wasmDir, '/'));
setThreadsCount(request.threads);
await tf.setBackend('wasm');
await tf.ready();

for (const s of request.gemm ?? []) {
  const a = tf.randomUniform([s.m, s.k]);
  const b = tf.randomUniform([s.k, s.n]);
  const t = timeSync(() => {
    const c = tf.matMul(a, b);
    c.dataSync();
    c.dispose();
  });
  console.log(JSON.stringify({ kind: 'gemm', label: s.label, threads: request.threads, gflops: (2 * s.m * s.n * s.k) / t.medianSeconds / 1e9 }));
  a.dispose();
  b.dispose();
}
for (const l of request.conv ?? []) {
  const x = tf.randomUniform([l.batch, l.hw, l.hw, l.inC]) as tf.Tensor4D;
  const w = tf.randomUniform([l.k, l.k, l.inC, l.outC]) as tf.Tensor4D;
  const out = (l.hw + 2 * l.pad - l.k) + 1;
  const t = timeSync(() => {
    const y = tf.conv2d(x, w, 1, [[0, 0], [l.pad, l.pad], [l.pad, l.pad], [0, 0]]);
    y.dataSync();
    y.dispose();
  });
  const flop = 2 * l.batch * l.outC * out * out * l.inC * l.k * l.k;
  console.log(JSON.stringify({ kind: 'conv', label: l.label, threads: request.threads, gflops: flop / t.medianSeconds / 1e9 }));
  x.dispose();
  w.dispose();
}
console.log(JSON.stringify({ kind: 'info', backend: tf.getBackend(), threadsRequested: request.threads }));
