// A quick, one-off measurement of the wasm backend's sgemm: through the Backend API with
// plain Float32Arrays (the copies into and out of wasm memory included) and with resident
// arrays (allocFloat32: no copies, as tensors kept in wasm memory), 1 and 2 threads at 512^3, 1024^3
// and the im2col shape of a 3x3 / 64-channel layer on 56x56 (m x n x k = 64 x 3136 x 576),
// with plain SIMD and, in a child process started with --experimental-wasm-relaxed-simd,
// relaxed SIMD. Best of several runs; the machine is shared, so treat the figures as rough.
// The full comparison with TensorFlow.js is bench/kernels' job.
//   node dist/bench/wasm/gemm-quick.js [--reps N]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadWasmBackend } from '../../engine/backends/wasm/node.js';

const shapes: [number, number, number][] = [[512, 512, 512], [1024, 1024, 1024], [64, 3136, 576]];
const repsArg = process.argv.indexOf('--reps');
const reps = repsArg > 0 ? Number(process.argv[repsArg + 1]) : 7;

function measure(): void {
  const be = loadWasmBackend();
  console.log(`wasm sgemm, ${be.info().blas} (GFLOP/s, best of ${reps}):`);
  console.log(`  ${'m x n x k'.padEnd(15)} ${'copies: 1 thread'.padStart(16)} ${'2 threads'.padStart(10)}   ${'resident: 1 thread'.padStart(18)} ${'2 threads'.padStart(10)}`);
  for (const [m, n, k] of shapes) {
    const plain = [new Float32Array(m * k), new Float32Array(k * n), new Float32Array(m * n)] as const;
    const res = [be.allocFloat32(m * k), be.allocFloat32(k * n), be.allocFloat32(m * n)] as const;
    for (const arrs of [plain, res]) {
      for (let i = 0; i < arrs[0].length; i++) arrs[0][i] = Math.random() - 0.5;
      for (let i = 0; i < arrs[1].length; i++) arrs[1][i] = Math.random() - 0.5;
    }
    const rate: string[] = [];
    for (const [a, b, c] of [plain, res]) {
      for (const threads of [1, 2]) {
        be.setThreads(threads);
        be.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n); // warm-up (starts the workers)
        let best = Infinity;
        for (let r = 0; r < reps; r++) {
          const t0 = performance.now();
          be.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n);
          best = Math.min(best, performance.now() - t0);
        }
        rate.push(((2 * m * n * k) / best / 1e6).toFixed(1));
      }
    }
    for (const r of res) be.free(r);
    console.log(`  ${`${m}x${n}x${k}`.padEnd(15)} ${rate[0]!.padStart(16)} ${rate[1]!.padStart(10)}   ${rate[2]!.padStart(18)} ${rate[3]!.padStart(10)}`);
  }
  be.dispose();
}

if (process.env.SQUALL_GEMM_QUICK_CHILD) {
  measure();
} else {
  process.env.SQUALL_WASM_SIMD = 'plain';
  measure();
  const child = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: 'inherit', env: { ...process.env, SQUALL_GEMM_QUICK_CHILD: '1', SQUALL_WASM_SIMD: 'auto' } });
  if (child.status !== 0) console.log('relaxed SIMD: the child process failed');
}
