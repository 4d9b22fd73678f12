// The native backend: the Rust N-API module built from crates/squall-native into
// <repo>/native/squall.<platform>.node. Its exports mirror the Backend interface one to
// one (same names, same positional arguments) except that shape and option objects are
// passed as positional numbers/booleans in their interface's field order; this file does
// that flattening. Heavy kernels have *Async variants that run on the libuv pool.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type {
  AdamOptions,
  Backend,
  BackendInfo,
  BatchNormShape,
  Conv2dShape,
  LrnShape,
  Pool2dShape,
  SgdOptions,
} from './backend.js';

export type BlasProvider = 'mkl' | 'openblas' | 'builtin';

/** What the module's info() returns. */
export interface NativeInfo {
  /** Provider + version + kernel, e.g. "openblas 0.3.21 (Haswell)", "builtin avx512 14x32". */
  blas: string;
  provider: BlasProvider;
  threads: number;
  cpuFeatures: string[];
  /** Providers usable on this machine. */
  providers: BlasProvider[];
  /** How the provider was chosen: 'env' (SQUALL_BLAS), 'calibration', 'table', 'default', 'deterministic' (the mode's fixed choice), or 'manual' (selectBlas). */
  selectedBy: string;
  cpuModel: string;
  builtinKernel: string;
  /** The built-in GEMM's micro-kernels this CPU can run, best first (SQUALL_GEMM_KERNEL picks one). */
  builtinKernels: string[];
  /** GFLOP/s per provider from the calibration (empty when it did not run). */
  calibration: Record<string, number>;
  cacheFile: string | null;
  notes: string[];
  openblasCoretype: string | null;
  /** Convolution algorithm for 3x3 stride-1 layers (forward and backward data): SQUALL_NATIVE_CONV or setConvAlgorithm. */
  convAlgorithm: NativeConvAlgorithm;
  /** What the mode and provider promise about bit-identical results (engine/backends/determinism.ts). */
  reproducibility: NativeReproducibility;
}

export interface NativeReproducibility {
  /** The deterministic mode is on (SQUALL_DETERMINISTIC=1, --deterministic, setDeterministic). */
  deterministic: boolean;
  /** Bit-identical across runs, processes and buffer alignments on this machine. */
  reproducible: boolean;
  /** ... and across thread counts. */
  threadIndependent: boolean;
  /** Why, naming the provider and what the mode does to it. */
  reason: string;
}

/** The native crc32's kernel: VPCLMULQDQ + AVX2, PCLMULQDQ + SSE4.1, or tables. */
export type NativeCrcKernel = 'vpclmul' | 'pclmul' | 'slicing-by-16';

/** 'auto': Winograd F(2x2,3x3) where it pays; 'im2col': never; 'winograd': wherever the shape allows it. */
export type NativeConvAlgorithm = 'auto' | 'im2col' | 'winograd';

type Conv = [batch: number, inC: number, inH: number, inW: number, outC: number, kH: number, kW: number,
  strideH: number, strideW: number, padH: number, padW: number, dilationH: number, dilationW: number, groups: number];
type Pool = [batch: number, channels: number, inH: number, inW: number, kH: number, kW: number, strideH: number,
  strideW: number, padH: number, padW: number, ceilMode: boolean, countIncludePad: boolean];
type Lrn = [batch: number, channels: number, height: number, width: number, size: number, alpha: number, beta: number, k: number];
type Bn = [n: number, c: number, spatial: number, eps: number];
type Sgd = [lr: number, momentum: number, dampening: number, weightDecay: number, nesterov: boolean, firstStep: boolean];
type Adam = [lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number];
type F32 = Float32Array;
type Gemm = [transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, a: F32, lda: number,
  b: F32, ldb: number, beta: number, c: F32, ldc: number];

/** The raw exports of squall.<platform>.node. */
export interface NativeModule {
  info(): NativeInfo;
  setThreads(threads: number): void;
  getThreads(): number;
  /** The deterministic mode for the rest of the process; throws when the provider cannot follow. */
  setDeterministic(on: boolean): void;
  getDeterministic(): boolean;
  /** Switches the BLAS provider for this process; returns its description. Throws when it cannot load. */
  selectBlas(name: BlasProvider | string): string;
  /** Chooses the convolution algorithm for later calls (default: SQUALL_NATIVE_CONV, else 'auto'). RangeError for other names. */
  setConvAlgorithm(algorithm: NativeConvAlgorithm | string): void;
  getConvAlgorithm(): NativeConvAlgorithm;
  /** Parses one Float32Array and returns: the per-call overhead floor. */
  noop(x: F32): void;
  /**
   * CRC-32 (IEEE, as zlib.crc32) of the bytes of `data` (any typed array, Buffer or DataView,
   * read in place) continuing from the uint32 `crc` (0 to start). Starts no threads and
   * chooses no BLAS provider.
   */
  crc32(data: ArrayBufferView, crc: number): number;
  /** What crc32 uses for inputs of 128 bytes and more on this CPU. */
  crc32Kernel(): NativeCrcKernel;

  sgemm(...args: Gemm): void;
  sgemmAsync(...args: Gemm): Promise<void>;
  conv2dForward(...args: [...Conv, input: F32, weight: F32, bias: F32 | null, output: F32]): void;
  conv2dForwardAsync(...args: [...Conv, input: F32, weight: F32, bias: F32 | null, output: F32]): Promise<void>;
  conv2dBackwardData(...args: [...Conv, gradOutput: F32, weight: F32, gradInput: F32]): void;
  conv2dBackwardDataAsync(...args: [...Conv, gradOutput: F32, weight: F32, gradInput: F32]): Promise<void>;
  conv2dBackwardFilter(...args: [...Conv, input: F32, gradOutput: F32, gradWeight: F32, gradBias: F32 | null]): void;
  conv2dBackwardFilterAsync(...args: [...Conv, input: F32, gradOutput: F32, gradWeight: F32, gradBias: F32 | null]): Promise<void>;

  maxPool2dForward(...args: [...Pool, input: F32, output: F32, indices: Int32Array]): void;
  maxPool2dBackward(...args: [...Pool, gradOutput: F32, indices: Int32Array, gradInput: F32]): void;
  avgPool2dForward(...args: [...Pool, input: F32, output: F32]): void;
  avgPool2dBackward(...args: [...Pool, gradOutput: F32, gradInput: F32]): void;

  relu(x: F32, y: F32): void;
  reluBackward(x: F32, gradOutput: F32, gradInput: F32): void;
  tanh(x: F32, y: F32): void;
  tanhBackward(y: F32, gradOutput: F32, gradInput: F32): void;
  sigmoid(x: F32, y: F32): void;
  sigmoidBackward(y: F32, gradOutput: F32, gradInput: F32): void;

  lrnForward(...args: [...Lrn, input: F32, output: F32, scale: F32]): void;
  lrnBackward(...args: [...Lrn, input: F32, output: F32, scale: F32, gradOutput: F32, gradInput: F32]): void;

  softmaxForward(rows: number, cols: number, x: F32, y: F32): void;
  softmaxBackward(rows: number, cols: number, y: F32, gradOutput: F32, gradInput: F32): void;
  logSoftmaxForward(rows: number, cols: number, x: F32, y: F32): void;
  logSoftmaxBackward(rows: number, cols: number, y: F32, gradOutput: F32, gradInput: F32): void;

  batchNormForward(...args: [...Bn, x: F32, y: F32, gamma: F32, beta: F32, runningMean: F32, runningVar: F32,
    saveMean: F32, saveInvStd: F32, training: boolean, momentum: number]): void;
  batchNormBackward(...args: [...Bn, x: F32, gamma: F32, saveMean: F32, saveInvStd: F32, gradOutput: F32,
    gradInput: F32, gradGamma: F32, gradBeta: F32]): void;

  dropoutForward(p: number, seed: number, x: F32, y: F32, mask: F32): void;
  dropoutBackward(mask: F32, gradOutput: F32, gradInput: F32): void;

  add(a: F32, b: F32, out: F32): void;
  scale(x: F32, alpha: number, out: F32): void;
  axpy(alpha: number, x: F32, y: F32): void;
  sumSlices(slices: F32[], out: F32): void;

  f32ToBf16(src: F32, dst: Uint16Array): void;
  bf16ToF32(src: Uint16Array, dst: F32): void;
  f32ToF16(src: F32, dst: Uint16Array): void;
  f16ToF32(src: Uint16Array, dst: F32): void;

  sgdUpdate(...args: [...Sgd, params: F32, grads: F32, momentumBuf: F32]): void;
  adamUpdate(...args: [...Adam, params: F32, grads: F32, m: F32, v: F32]): void;
}

const BUILD_COMMAND = 'npx napi build --release --platform --manifest-path crates/squall-native/Cargo.toml --output-dir native';

/** The repository root: the nearest ancestor of this file holding Squall's package.json. */
export function repoRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  let fallback: string | undefined;
  for (let dir = start; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      fallback ??= dir;
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'squall') return dir;
      } catch {
        // not JSON: keep walking
      }
    }
    if (dirname(dir) === dir) break;
  }
  if (fallback) return fallback;
  throw new Error(`cannot find the Squall repository root (no package.json above ${start})`);
}

/** Candidate file names of the module for this platform, as `napi build --platform` names them. */
function binaryNames(): string[] {
  const base = `squall.${process.platform}-${process.arch}`;
  if (process.platform === 'linux') return [`${base}-gnu.node`, `${base}-musl.node`];
  if (process.platform === 'win32') return [`${base}-msvc.node`];
  return [`${base}.node`];
}

/** Where the module is: $SQUALL_NATIVE_PATH, or <repo>/native/squall.<platform>.node. */
export function nativeModulePath(): string {
  const override = process.env.SQUALL_NATIVE_PATH;
  if (override) return override;
  const dir = join(repoRoot(), 'native');
  const names = binaryNames();
  return names.map((n) => join(dir, n)).find((p) => existsSync(p)) ?? join(dir, names[0]!);
}

let loaded: NativeModule | undefined;

/** The raw module if this process has loaded it, without loading it. */
export function loadedNativeModule(): NativeModule | undefined {
  return loaded;
}

/** The raw module (benchmarks use selectBlas and noop). Throws a clear Error when it is not built. */
export function nativeModule(): NativeModule {
  if (loaded) return loaded;
  const path = nativeModulePath();
  if (!existsSync(path)) {
    throw new Error(`the native module is not built: ${path} does not exist. Build it with \`npm run build\` ` +
      `(needs a Rust toolchain), or directly: ${BUILD_COMMAND}`);
  }
  const require = createRequire(import.meta.url);
  try {
    loaded = require(path) as NativeModule;
  } catch (err) {
    throw new Error(`the native module ${path} failed to load: ${(err as Error).message}. Rebuild it: ${BUILD_COMMAND}`);
  }
  return loaded;
}

const conv = (s: Conv2dShape): Conv => [s.batch, s.inC, s.inH, s.inW, s.outC, s.kH, s.kW, s.strideH, s.strideW,
  s.padH, s.padW, s.dilationH, s.dilationW, s.groups];
const pool = (s: Pool2dShape): Pool => [s.batch, s.channels, s.inH, s.inW, s.kH, s.kW, s.strideH, s.strideW,
  s.padH, s.padW, s.ceilMode, s.countIncludePad];
const lrn = (s: LrnShape): Lrn => [s.batch, s.channels, s.height, s.width, s.size, s.alpha, s.beta, s.k];
const bn = (s: BatchNormShape): Bn => [s.n, s.c, s.spatial, s.eps];
const sgd = (o: SgdOptions): Sgd => [o.lr, o.momentum, o.dampening, o.weightDecay, o.nesterov, o.firstStep];
const adam = (o: AdamOptions): Adam => [o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, o.step];

class NativeBackend implements Backend {
  readonly name = 'native' as const;

  constructor(private readonly m: NativeModule) {}

  info(): BackendInfo {
    const i = this.m.info();
    const details: Record<string, string> = {
      provider: i.provider,
      providers: i.providers.join(', '),
      selectedBy: i.selectedBy,
      cpuModel: i.cpuModel,
      builtin: i.builtinKernel,
      'conv forward, backward data': {
        auto: 'Winograd F(2x2,3x3) for 3x3 stride-1 layers summing >= 8 channels over >= 32 output tiles, else im2col + GEMM',
        im2col: 'im2col + GEMM (forced)',
        winograd: 'Winograd F(2x2,3x3) wherever the shape allows it (forced), else im2col + GEMM',
      }[i.convAlgorithm] ?? i.convAlgorithm,
    };
    const r = i.reproducibility;
    details.reproducible = `${r.reproducible ? (r.threadIndependent ? 'yes, and across thread counts' : 'yes, at a fixed thread count') : 'no'}: ${r.reason}`;
    const cal = Object.entries(i.calibration);
    if (cal.length) details.calibration = cal.map(([p, g]) => `${p} ${g.toFixed(1)}`).join(', ') + ' GFLOP/s';
    if (i.cacheFile) details.cacheFile = i.cacheFile;
    if (i.notes.length) details.notes = i.notes.join('; ');
    return { name: 'native', blas: i.blas, threads: i.threads, cpuFeatures: i.cpuFeatures, details };
  }
  setThreads(threads: number): void {
    this.m.setThreads(threads);
  }
  getThreads(): number {
    return this.m.getThreads();
  }

  private readonly allocated = new WeakSet<Float32Array>();

  /** Native kernels read and write any Float32Array in place: an ordinary array. */
  allocFloat32(length: number): Float32Array {
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`allocFloat32: length must be a non-negative integer, got ${length}`);
    const a = new Float32Array(length);
    this.allocated.add(a);
    return a;
  }

  free(array: Float32Array): void {
    if (!this.allocated.delete(array)) throw new Error('free: not an array from allocFloat32 (or freed already)');
  }

  sgemm(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, a: F32, lda: number,
        b: F32, ldb: number, beta: number, c: F32, ldc: number): void {
    this.m.sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  sgemmAsync(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, a: F32, lda: number,
             b: F32, ldb: number, beta: number, c: F32, ldc: number): Promise<void> {
    return this.m.sgemmAsync(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }

  conv2dForward(s: Conv2dShape, input: F32, weight: F32, bias: F32 | null, output: F32): void {
    this.m.conv2dForward(...conv(s), input, weight, bias, output);
  }
  conv2dForwardAsync(s: Conv2dShape, input: F32, weight: F32, bias: F32 | null, output: F32): Promise<void> {
    return this.m.conv2dForwardAsync(...conv(s), input, weight, bias, output);
  }
  conv2dBackwardData(s: Conv2dShape, gradOutput: F32, weight: F32, gradInput: F32): void {
    this.m.conv2dBackwardData(...conv(s), gradOutput, weight, gradInput);
  }
  conv2dBackwardDataAsync(s: Conv2dShape, gradOutput: F32, weight: F32, gradInput: F32): Promise<void> {
    return this.m.conv2dBackwardDataAsync(...conv(s), gradOutput, weight, gradInput);
  }
  conv2dBackwardFilter(s: Conv2dShape, input: F32, gradOutput: F32, gradWeight: F32, gradBias: F32 | null): void {
    this.m.conv2dBackwardFilter(...conv(s), input, gradOutput, gradWeight, gradBias);
  }
  conv2dBackwardFilterAsync(s: Conv2dShape, input: F32, gradOutput: F32, gradWeight: F32, gradBias: F32 | null): Promise<void> {
    return this.m.conv2dBackwardFilterAsync(...conv(s), input, gradOutput, gradWeight, gradBias);
  }

  maxPool2dForward(s: Pool2dShape, input: F32, output: F32, indices: Int32Array): void {
    this.m.maxPool2dForward(...pool(s), input, output, indices);
  }
  maxPool2dBackward(s: Pool2dShape, gradOutput: F32, indices: Int32Array, gradInput: F32): void {
    this.m.maxPool2dBackward(...pool(s), gradOutput, indices, gradInput);
  }
  avgPool2dForward(s: Pool2dShape, input: F32, output: F32): void {
    this.m.avgPool2dForward(...pool(s), input, output);
  }
  avgPool2dBackward(s: Pool2dShape, gradOutput: F32, gradInput: F32): void {
    this.m.avgPool2dBackward(...pool(s), gradOutput, gradInput);
  }

  relu(x: F32, y: F32): void {
    this.m.relu(x, y);
  }
  reluBackward(x: F32, gradOutput: F32, gradInput: F32): void {
    this.m.reluBackward(x, gradOutput, gradInput);
  }
  tanh(x: F32, y: F32): void {
    this.m.tanh(x, y);
  }
  tanhBackward(y: F32, gradOutput: F32, gradInput: F32): void {
    this.m.tanhBackward(y, gradOutput, gradInput);
  }
  sigmoid(x: F32, y: F32): void {
    this.m.sigmoid(x, y);
  }
  sigmoidBackward(y: F32, gradOutput: F32, gradInput: F32): void {
    this.m.sigmoidBackward(y, gradOutput, gradInput);
  }

  lrnForward(s: LrnShape, input: F32, output: F32, scale: F32): void {
    this.m.lrnForward(...lrn(s), input, output, scale);
  }
  lrnBackward(s: LrnShape, input: F32, output: F32, scale: F32, gradOutput: F32, gradInput: F32): void {
    this.m.lrnBackward(...lrn(s), input, output, scale, gradOutput, gradInput);
  }

  softmaxForward(rows: number, cols: number, x: F32, y: F32): void {
    this.m.softmaxForward(rows, cols, x, y);
  }
  softmaxBackward(rows: number, cols: number, y: F32, gradOutput: F32, gradInput: F32): void {
    this.m.softmaxBackward(rows, cols, y, gradOutput, gradInput);
  }
  logSoftmaxForward(rows: number, cols: number, x: F32, y: F32): void {
    this.m.logSoftmaxForward(rows, cols, x, y);
  }
  logSoftmaxBackward(rows: number, cols: number, y: F32, gradOutput: F32, gradInput: F32): void {
    this.m.logSoftmaxBackward(rows, cols, y, gradOutput, gradInput);
  }

  batchNormForward(s: BatchNormShape, x: F32, y: F32, gamma: F32, beta: F32, runningMean: F32, runningVar: F32,
                   saveMean: F32, saveInvStd: F32, training: boolean, momentum: number): void {
    this.m.batchNormForward(...bn(s), x, y, gamma, beta, runningMean, runningVar, saveMean, saveInvStd, training, momentum);
  }
  batchNormBackward(s: BatchNormShape, x: F32, gamma: F32, saveMean: F32, saveInvStd: F32, gradOutput: F32,
                    gradInput: F32, gradGamma: F32, gradBeta: F32): void {
    this.m.batchNormBackward(...bn(s), x, gamma, saveMean, saveInvStd, gradOutput, gradInput, gradGamma, gradBeta);
  }

  dropoutForward(p: number, seed: number, x: F32, y: F32, mask: F32): void {
    this.m.dropoutForward(p, seed, x, y, mask);
  }
  dropoutBackward(mask: F32, gradOutput: F32, gradInput: F32): void {
    this.m.dropoutBackward(mask, gradOutput, gradInput);
  }

  add(a: F32, b: F32, out: F32): void {
    this.m.add(a, b, out);
  }
  scale(x: F32, alpha: number, out: F32): void {
    this.m.scale(x, alpha, out);
  }
  axpy(alpha: number, x: F32, y: F32): void {
    this.m.axpy(alpha, x, y);
  }
  sumSlices(slices: F32[], out: F32): void {
    this.m.sumSlices(slices, out);
  }

  f32ToBf16(src: F32, dst: Uint16Array): void {
    this.m.f32ToBf16(src, dst);
  }
  bf16ToF32(src: Uint16Array, dst: F32): void {
    this.m.bf16ToF32(src, dst);
  }
  f32ToF16(src: F32, dst: Uint16Array): void {
    this.m.f32ToF16(src, dst);
  }
  f16ToF32(src: Uint16Array, dst: F32): void {
    this.m.f16ToF32(src, dst);
  }

  sgdUpdate(o: SgdOptions, params: F32, grads: F32, momentumBuf: F32): void {
    this.m.sgdUpdate(...sgd(o), params, grads, momentumBuf);
  }
  adamUpdate(o: AdamOptions, params: F32, grads: F32, m: F32, v: F32): void {
    this.m.adamUpdate(...adam(o), params, grads, m, v);
  }
}

let backend: NativeBackend | undefined;

/**
 * The native Backend. Throws a clear Error when the module is not built (or does not load),
 * or when SQUALL_BLAS names a provider that cannot be loaded.
 */
export function loadNativeBackend(): Backend {
  if (!backend) {
    const m = nativeModule();
    // The BLAS provider is otherwise chosen on first use; with SQUALL_BLAS set, choose it now
    // so that a provider that cannot load makes the backend unavailable, with the reason.
    if (process.env.SQUALL_BLAS) m.info();
    backend = new NativeBackend(m);
  }
  return backend;
}
