// The WebAssembly comparison of bench/kernels, measured side by side in one process: Squall's
// wasm backend in both SIMD flavours (plain and relaxed) and TensorFlow.js's wasm backend
// (XNNPACK) on the same shapes, at one thread count.
//
// Why one process and call-by-call interleaving: this machine is shared, and its speed
// changes by a factor of two within seconds (another tenant on the same core). Measuring one
// implementation after another, even in alternating rounds, lets a slow minute land on one
// side only. Here every round calls each implementation once, in a rotating order, and the
// ratio to TensorFlow.js is taken per round (both calls saw the same machine) before the
// median; the median GFLOP/s of each implementation is reported beside it.
//
// The process must start with --experimental-wasm-relaxed-simd on Node 20 (the plain build
// is loaded explicitly, so both flavours run in the same process); TensorFlow.js's wasm
// module uses no relaxed instructions, so the flag does not change it. tfjs-backend-wasm
// fixes its thread pool when it initialises, hence one process per thread count.
//   node --experimental-wasm-relaxed-simd dist/bench/kernels/wasm_side_by_side.js '<request, one thread count>'
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { loadWasmBackend, type WasmBackend } from '../../engine/backends/wasm/node.js';
import { median } from '../common.js';
import { convFlop, parseRequest, type PeerResult } from './peer_request.js';

const request = parseRequest(process.argv[2]);
if (request.threads.length !== 1) throw new Error('wasm_side_by_side measures one thread count per process');
const threads = request.threads[0]!;
/** Least measuring time per shape (all implementations together) and least rounds. */
const minSeconds = Number(process.env.BENCH_WASM_SECONDS ?? 4);
const minRounds = 7;
const maxRounds = 200;

const require = createRequire(import.meta.url);
setWasmPaths(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm')), '/'));
setThreadsCount(threads);
await tf.setBackend('wasm');
await tf.ready();

const squall: { impl: string; be: WasmBackend }[] = [
  { impl: 'squall wasm (plain)', be: loadWasmBackend({ simd: 'plain', threads }) },
  { impl: 'squall wasm (relaxed)', be: loadWasmBackend({ simd: 'relaxed', threads }) },
];
const TFJS = 'tfjs-backend-wasm';

const fill = (a: Float32Array): Float32Array => {
  for (let i = 0; i < a.length; i++) a[i] = ((i * 7919) % 1000) / 1000 - 0.5;
  return a;
};

interface Contender { impl: string; run: () => void; release: () => void; times: number[] }

/** Interleaved rounds over the contenders; prints one result line per contender. */
function measure(kind: 'gemm' | 'conv', label: string, flop: number, contenders: Contender[]): void {
  for (const c of contenders) for (let i = 0; i < 2; i++) c.run();
  const start = performance.now();
  for (let round = 0; round < maxRounds && (round < minRounds || performance.now() - start < minSeconds * 1000); round++) {
    for (let j = 0; j < contenders.length; j++) {
      const c = contenders[(j + round) % contenders.length]!;
      const t0 = performance.now();
      c.run();
      c.times.push((performance.now() - t0) / 1000);
    }
  }
  const peer = contenders.find((c) => c.impl === TFJS)!;
  for (const c of contenders) {
    const result: PeerResult = {
      kind, label, threads, impl: c.impl, gflops: flop / median(c.times) / 1e9, rounds: c.times.length,
      bestGflops: flop / Math.min(...c.times) / 1e9,
      // Per round: the peer's time over this implementation's, both from the same round.
      pairedRatioToPeer: median(c.times.map((t, i) => peer.times[i]! / t)),
    };
    console.log(JSON.stringify(result));
    c.release();
  }
}

for (const s of request.gemm) {
  const contenders: Contender[] = squall.map(({ impl, be }) => {
    const a = fill(be.allocFloat32(s.m * s.k));
    const b = fill(be.allocFloat32(s.k * s.n));
    const c = be.allocFloat32(s.m * s.n);
    return {
      impl, times: [],
      run: () => be.sgemm(false, false, s.m, s.n, s.k, 1, a, s.k, b, s.n, 0, c, s.n),
      release: () => { for (const x of [a, b, c]) be.free(x); },
    };
  });
  const a = tf.randomUniform([s.m, s.k]);
  const b = tf.randomUniform([s.k, s.n]);
  contenders.push({
    impl: TFJS, times: [],
    run: () => {
      const c = tf.matMul(a, b);
      c.dataSync();
      c.dispose();
    },
    release: () => { a.dispose(); b.dispose(); },
  });
  measure('gemm', s.label, 2 * s.m * s.n * s.k, contenders);
}

for (const l of request.conv) {
  const out = l.hw + 2 * l.pad - l.k + 1;
  const shape = { batch: l.batch, inC: l.inC, inH: l.hw, inW: l.hw, outC: l.outC, kH: l.k, kW: l.k, strideH: 1, strideW: 1,
    padH: l.pad, padW: l.pad, dilationH: 1, dilationW: 1, groups: 1 };
  const contenders: Contender[] = squall.map(({ impl, be }) => {
    const x = fill(be.allocFloat32(l.batch * l.inC * l.hw * l.hw));
    const w = fill(be.allocFloat32(l.outC * l.inC * l.k * l.k));
    const bias = fill(be.allocFloat32(l.outC));
    const y = be.allocFloat32(l.batch * l.outC * out * out);
    return {
      impl, times: [],
      run: () => be.conv2dForward(shape, x, w, bias, y),
      release: () => { for (const v of [x, w, bias, y]) be.free(v); },
    };
  });
  const x = tf.randomUniform([l.batch, l.hw, l.hw, l.inC]) as tf.Tensor4D;
  const w = tf.randomUniform([l.k, l.k, l.inC, l.outC]) as tf.Tensor4D;
  contenders.push({
    impl: TFJS, times: [],
    run: () => {
      const y = tf.conv2d(x, w, 1, [[0, 0], [l.pad, l.pad], [l.pad, l.pad], [0, 0]]);
      y.dataSync();
      y.dispose();
    },
    release: () => { x.dispose(); w.dispose(); },
  });
  measure('conv', l.label, convFlop(l), contenders);
}

// Thread scaling: the same backend called at one thread and at `scaling.threads`, in turn,
// round after round; the speed-up is taken per round. Measured in the one-thread process,
// where TensorFlow.js has no thread pool of its own to compete for the cores.
for (const s of request.scaling?.gemm ?? []) {
  const many = request.scaling!.threads;
  for (const { impl, be } of squall) {
    const a = fill(be.allocFloat32(s.m * s.k));
    const b = fill(be.allocFloat32(s.k * s.n));
    const c = be.allocFloat32(s.m * s.n);
    const call = (n: number): number => {
      be.setThreads(n);
      const t0 = performance.now();
      be.sgemm(false, false, s.m, s.n, s.k, 1, a, s.k, b, s.n, 0, c, s.n);
      return (performance.now() - t0) / 1000;
    };
    call(1);
    call(many);
    const one: number[] = [];
    const more: number[] = [];
    const start = performance.now();
    for (let round = 0; round < maxRounds && (round < minRounds || performance.now() - start < minSeconds * 1000); round++) {
      if (round % 2 === 0) { one.push(call(1)); more.push(call(many)); } else { more.push(call(many)); one.push(call(1)); }
    }
    be.setThreads(threads);
    const flop = 2 * s.m * s.n * s.k;
    console.log(JSON.stringify({
      kind: 'scaling', label: s.label, threads: many, impl, gflops: flop / median(more) / 1e9, oneThreadGflops: flop / median(one) / 1e9,
      rounds: one.length, pairedSpeedup: median(one.map((t, i) => t / more[i]!)),
    } satisfies PeerResult));
    for (const x of [a, b, c]) be.free(x);
  }
}

console.log(JSON.stringify({ kind: 'info', threads, tfjsBackend: tf.getBackend(), squall: squall.map(({ impl, be }) => [impl, be.info().blas]) }));
for (const { be } of squall) be.dispose();
