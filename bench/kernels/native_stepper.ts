// One native workload (an sgemm shape, or a convolution's forward or filter gradient) kept
// warm in its own process and run on request, in bench/train's stepper protocol (see
// ../train/stepper.ts): a {"ready":true,...} line after warm-up, then per stdin line "<n>"
// n steps and {"times":[seconds per call]}; "quit" or the end of stdin ends it.
//   node dist/bench/kernels/native_stepper.js '{"workload":{"kind":"gemm","label":"1024^3","m":1024,"n":1024,"k":1024},"threads":1}'
// What is compared is chosen at start-up by the environment the parent gives the process
// (SQUALL_BLAS, SQUALL_DETERMINISTIC, SQUALL_GEMM_KERNEL, SQUALL_GEMM_BLOCK, OPENBLAS_*),
// all read once per process, which is why every configuration has a process of its own.
// A step repeats a short call until it lasts at least `minStepSeconds`, and reports the
// time per call.
import { createInterface } from 'node:readline';
import type { Conv2dShape } from '../../engine/backends/backend.js';
import { convOutputSize } from '../../engine/backends/backend.js';
import { loadNativeBackend, nativeModule } from '../../engine/backends/native.js';

export type NativeWorkload =
  | { kind: 'gemm'; label: string; m: number; n: number; k: number }
  | { kind: 'conv-forward' | 'conv-backward-filter'; label: string; shape: Conv2dShape };

export interface NativeStepRequest { workload: NativeWorkload; threads: number; minStepSeconds?: number }

/** Floating-point operations of one call. */
export function workloadFlop(w: NativeWorkload): number {
  if (w.kind === 'gemm') return 2 * w.m * w.n * w.k;
  const s = w.shape;
  const oh = convOutputSize(s.inH, s.kH, s.strideH, s.padH, s.dilationH);
  const ow = convOutputSize(s.inW, s.kW, s.strideW, s.padW, s.dilationW);
  return 2 * s.batch * s.outC * oh * ow * (s.inC / s.groups) * s.kH * s.kW;
}

function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (((i + seed) * 7919) % 1000) / 1000 - 0.5;
  return a;
}

function prepare(w: NativeWorkload): () => void {
  const be = loadNativeBackend();
  if (w.kind === 'gemm') {
    const a = fill(w.m * w.k, 1);
    const b = fill(w.k * w.n, 2);
    const c = new Float32Array(w.m * w.n);
    return () => be.sgemm(false, false, w.m, w.n, w.k, 1, a, w.k, b, w.n, 0, c, w.n);
  }
  const s = w.shape;
  const oh = convOutputSize(s.inH, s.kH, s.strideH, s.padH, s.dilationH);
  const ow = convOutputSize(s.inW, s.kW, s.strideW, s.padW, s.dilationW);
  const x = fill(s.batch * s.inC * s.inH * s.inW, 3);
  const wt = fill(s.outC * (s.inC / s.groups) * s.kH * s.kW, 4);
  if (w.kind === 'conv-forward') {
    const bias = fill(s.outC, 5);
    const y = new Float32Array(s.batch * s.outC * oh * ow);
    return () => be.conv2dForward(s, x, wt, bias, y);
  }
  const gy = fill(s.batch * s.outC * oh * ow, 6);
  const gw = new Float32Array(wt.length);
  const gb = new Float32Array(s.outC);
  return () => be.conv2dBackwardFilter(s, x, gy, gw, gb);
}

const isMain = process.argv[1]?.endsWith('native_stepper.js') ?? false;
if (isMain) {
  const request = JSON.parse(process.argv[2] ?? '{}') as NativeStepRequest;
  const mod = nativeModule();
  loadNativeBackend().setThreads(request.threads);
  const call = prepare(request.workload);
  // Calls per step: enough that a step lasts minStepSeconds (timer resolution, per-step overhead).
  call();
  const t0 = performance.now();
  call();
  const once = (performance.now() - t0) / 1000;
  const reps = Math.max(1, Math.ceil((request.minStepSeconds ?? 0.004) / Math.max(once, 1e-7)));
  const step = (): number => {
    const t = performance.now();
    for (let i = 0; i < reps; i++) call();
    return (performance.now() - t) / 1000 / reps;
  };
  for (let i = 0; i < 3; i++) step();
  const info = mod.info();
  console.log(JSON.stringify({
    ready: true, reps, blas: info.blas, provider: info.provider, selectedBy: info.selectedBy, threads: info.threads,
    builtinKernel: info.builtinKernel, convAlgorithm: info.convAlgorithm, reproducibility: info.reproducibility,
    openblasCoretype: process.env.OPENBLAS_CORETYPE ?? null, openblasL2Size: process.env.OPENBLAS_L2_SIZE ?? null,
  }));
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === 'quit') break;
    const times: number[] = [];
    for (let i = Number(line); i > 0; i--) times.push(step());
    console.log(JSON.stringify({ times }));
  }
  process.exit(0);
}
