// `squall selftest`: a quick check that every backend computes what it should on this
// machine (a broken BLAS build or a CPU-feature misdetection shows up here first).
// References are float64 loops, independent of every backend.
import type { Backend, Conv2dShape } from '../backends/backend.js';
import { convOutputSize } from '../backends/backend.js';
import { probeBackends } from '../backends/registry.js';
import { wasmBuildDir } from '../backends/wasm/node.js';
import { Random } from '../tensor/random.js';

interface Check {
  name: string;
  error: number;
}

const tolerance = 1e-4;

function randomArray(rng: Random, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
}

function relativeError(got: Float32Array, want: Float64Array): number {
  let diff = 0;
  let scale = 1;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return Number.isFinite(diff) ? diff / scale : Infinity;
}

function checkGemm(backend: Backend, rng: Random, transA: boolean, transB: boolean): Check {
  const [m, n, k] = [37, 41, 129];
  const a = randomArray(rng, m * k);
  const b = randomArray(rng, k * n);
  const c = randomArray(rng, m * n);
  const want = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let p = 0; p < k; p++) acc += (transA ? a[p * m + i]! : a[i * k + p]!) * (transB ? b[j * k + p]! : b[p * n + j]!);
      want[i * n + j] = 1.5 * acc + 0.5 * c[i * n + j]!;
    }
  }
  backend.sgemm(transA, transB, m, n, k, 1.5, a, transA ? m : k, b, transB ? k : n, 0.5, c, n);
  return { name: `sgemm ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`, error: relativeError(c, want) };
}

function checkConv(backend: Backend, rng: Random): Check {
  const s: Conv2dShape = { batch: 2, inC: 6, inH: 11, inW: 9, outC: 4, kH: 3, kW: 3, strideH: 2, strideW: 1,
    padH: 1, padW: 2, dilationH: 1, dilationW: 2, groups: 2 };
  const oh = convOutputSize(s.inH, s.kH, s.strideH, s.padH, s.dilationH);
  const ow = convOutputSize(s.inW, s.kW, s.strideW, s.padW, s.dilationW);
  const cin = s.inC / s.groups;
  const cout = s.outC / s.groups;
  const x = randomArray(rng, s.batch * s.inC * s.inH * s.inW);
  const w = randomArray(rng, s.outC * cin * s.kH * s.kW);
  const bias = randomArray(rng, s.outC);
  const want = new Float64Array(s.batch * s.outC * oh * ow);
  for (let nb = 0; nb < s.batch; nb++) {
    for (let o = 0; o < s.outC; o++) {
      const g = Math.floor(o / cout);
      for (let y = 0; y < oh; y++) {
        for (let xo = 0; xo < ow; xo++) {
          let acc = bias[o]!;
          for (let c = 0; c < cin; c++) {
            for (let ky = 0; ky < s.kH; ky++) {
              for (let kx = 0; kx < s.kW; kx++) {
                const iy = y * s.strideH - s.padH + ky * s.dilationH;
                const ix = xo * s.strideW - s.padW + kx * s.dilationW;
                if (iy < 0 || iy >= s.inH || ix < 0 || ix >= s.inW) continue;
                acc += x[((nb * s.inC + g * cin + c) * s.inH + iy) * s.inW + ix]! * w[((o * cin + c) * s.kH + ky) * s.kW + kx]!;
              }
            }
          }
          want[((nb * s.outC + o) * oh + y) * ow + xo] = acc;
        }
      }
    }
  }
  const out = new Float32Array(want.length);
  backend.conv2dForward(s, x, w, bias, out);
  return { name: 'conv2d forward (groups, stride, pad, dilation)', error: relativeError(out, want) };
}

/**
 * `squall selftest --wasi`: runs build/wasm/squall-wasi.wasm under Node's node:wasi (WASI
 * preview1). That module is the wasm kernels built as a self-contained WASI command (see
 * assembly/wasi.ts): no JavaScript host, only wasi_snapshot_preview1 imports, so the same
 * file runs on any WASI runtime (wasmtime, wasmer, WasmEdge, a browser WASI shim). Its
 * _start checks GEMM (every transpose), convolution forward and backward and pooling
 * against float64 loops, prints through fd_write and exits 0 when all pass.
 */
async function wasiSelftest(): Promise<number> {
  const { existsSync, readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const path = join(wasmBuildDir(), 'squall-wasi.wasm');
  if (!existsSync(path)) {
    console.log(`selftest --wasi: FAILED, ${path} is missing; build it with \`npm run build\` (or \`node scripts/build-wasm.mjs\`)`);
    return 1;
  }
  // node:wasi announces itself as experimental on load; that warning is noise here.
  const emitWarning = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (String(warning).includes('WASI')) return;
    (emitWarning as (...a: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  let WASI: typeof import('node:wasi').WASI;
  try {
    ({ WASI } = await import('node:wasi'));
  } finally {
    process.emitWarning = emitWarning;
  }
  const wasi = new WASI({ version: 'preview1', args: ['squall-wasi.wasm'], env: {}, returnOnExit: true });
  const module = await WebAssembly.compile(readFileSync(path));
  const instance = await WebAssembly.instantiate(module, wasi.getImportObject() as WebAssembly.Imports);
  console.log(`selftest --wasi: running ${path} under node:wasi (WASI preview1)`);
  let code: number;
  try {
    code = wasi.start(instance);
  } catch (err) {
    console.log(`selftest --wasi: FAILED, the module trapped: ${(err as Error).message}`);
    return 1;
  }
  console.log(code === 0 ? 'selftest --wasi: passed (exit status 0)' : `selftest --wasi: FAILED (exit status ${code})`);
  return code === 0 ? 0 : 1;
}

export async function selftestCommand(args: string[]): Promise<number> {
  if (args.includes('--wasi')) return wasiSelftest();
  const { available, unavailable } = probeBackends();
  let failures = 0;
  for (const u of unavailable) console.log(`selftest: backend ${u.name} skipped: ${u.reason}`);
  if (available.length === 0) {
    console.log('selftest: FAILED, no backend is available');
    return 1;
  }
  for (const backend of available) {
    const rng = new Random(20261122);
    const checks: Check[] = [];
    for (const ta of [false, true]) for (const tb of [false, true]) checks.push(checkGemm(backend, rng, ta, tb));
    checks.push(checkConv(backend, rng));
    for (const c of checks) {
      const ok = c.error <= tolerance;
      if (!ok) failures++;
      console.log(`selftest ${backend.name} (${backend.info().blas}): ${ok ? 'ok  ' : 'FAIL'} ${c.name}: max relative error ${c.error.toExponential(2)}`);
    }
  }
  console.log(failures ? `selftest: FAILED (${failures} checks)` : 'selftest: all kernels agree with the float64 reference');
  return failures ? 1 : 0;
}
