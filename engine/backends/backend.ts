// The kernel contract every backend honours (DESIGN.md §2).
//
// Kernels work on flat, contiguous Float32Array storage with explicit sizes, so the same
// contract fits a Rust cdylib and a WebAssembly module. Images are NCHW; convolution
// weights are [outC, inC / groups, kH, kW]; matrices are row-major. A kernel never
// allocates its output: the caller passes it, sized as the shape requires, and the
// backend checks every length before it touches memory.
//
// Gradient kernels that produce parameter gradients ACCUMULATE into them (grad += ...),
// as Torch's accGradParameters does, so a flat gradient buffer can be zeroed once per
// iteration and filled layer by layer. Kernels that produce gradients w.r.t. inputs
// OVERWRITE their output.

export type BackendName = 'native' | 'wasm';

/** 2-D convolution geometry. Output size: floor((in + 2*pad - dil*(k-1) - 1) / stride) + 1. */
export interface Conv2dShape {
  batch: number;
  inC: number;
  inH: number;
  inW: number;
  outC: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  dilationH: number;
  dilationW: number;
  groups: number;
}

/**
 * 2-D pooling geometry. ceilMode rounds the output size up (Caffe's default, Torch's
 * :ceil()), but a window that would start entirely in the right/bottom padding is dropped,
 * as Torch and PyTorch do. countIncludePad (average pooling only): divide by the window
 * size clipped to the padded input (PyTorch's count_include_pad=True) rather than by the
 * number of real input cells in it.
 */
export interface Pool2dShape {
  batch: number;
  channels: number;
  inH: number;
  inW: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  ceilMode: boolean;
  countIncludePad: boolean;
}

/** Cross-channel LRN (Caffe/Torch SpatialCrossMapLRN): scale = k + alpha/size * sum(x^2 over size channels); y = x * scale^-beta. */
export interface LrnShape {
  batch: number;
  channels: number;
  height: number;
  width: number;
  size: number;
  alpha: number;
  beta: number;
  k: number;
}

/** Batch normalisation over [n, c, spatial] (spatial = 1 for the 1-d form). */
export interface BatchNormShape {
  n: number;
  c: number;
  spatial: number;
  eps: number;
}

export interface SgdOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  /** true on the first update of this slice: the momentum buffer is set to the gradient (PyTorch semantics). */
  firstStep: boolean;
}

export interface AdamOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count, for bias correction. */
  step: number;
}

export interface BackendInfo {
  name: BackendName;
  /** e.g. "mkl 2020.0.4", "openblas 0.3.21 (Haswell)", "builtin avx512" */
  blas: string;
  threads: number;
  cpuFeatures: string[];
  /** Free-form details a user may want from `squall info`. */
  details: Record<string, string>;
}

export interface Backend {
  readonly name: BackendName;
  info(): BackendInfo;
  /** Threads used by the heavy kernels (GEMM, convolution); >= 1. */
  setThreads(threads: number): void;
  getThreads(): number;

  // ---- Storage. A Float32Array the kernels use in place: on wasm it lives in the module's
  // linear memory (no copies per call), on native it is an ordinary array. Models keep
  // their parameters, gradients and activations in such arrays. Release with free().
  allocFloat32(length: number): Float32Array;
  /** Releases an array from allocFloat32 (an error for any other array, or a second free). */
  free(array: Float32Array): void;

  // ---- GEMM: C = alpha * op(A) * op(B) + beta * C, row-major; op(A) is m x k, op(B) is k x n.
  // lda/ldb/ldc are row strides of the stored matrices (A stored k x m when transA).
  sgemm(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
        a: Float32Array, lda: number, b: Float32Array, ldb: number, beta: number,
        c: Float32Array, ldc: number): void;
  /** Same as sgemm, off the JavaScript thread. Buffers must not be touched until it settles. */
  sgemmAsync(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
             a: Float32Array, lda: number, b: Float32Array, ldb: number, beta: number,
             c: Float32Array, ldc: number): Promise<void>;

  // ---- Convolution. input [batch, inC, inH, inW], weight [outC, inC/groups, kH, kW],
  // bias [outC] or null, output [batch, outC, outH, outW].
  conv2dForward(s: Conv2dShape, input: Float32Array, weight: Float32Array, bias: Float32Array | null,
                output: Float32Array): void;
  conv2dForwardAsync(s: Conv2dShape, input: Float32Array, weight: Float32Array, bias: Float32Array | null,
                     output: Float32Array): Promise<void>;
  /** gradInput = conv_transpose(gradOutput, weight); overwrites gradInput. */
  conv2dBackwardData(s: Conv2dShape, gradOutput: Float32Array, weight: Float32Array, gradInput: Float32Array): void;
  conv2dBackwardDataAsync(s: Conv2dShape, gradOutput: Float32Array, weight: Float32Array, gradInput: Float32Array): Promise<void>;
  /** gradWeight += dL/dW, gradBias += sum of gradOutput over batch and space (gradBias may be null). */
  conv2dBackwardFilter(s: Conv2dShape, input: Float32Array, gradOutput: Float32Array, gradWeight: Float32Array,
                       gradBias: Float32Array | null): void;
  conv2dBackwardFilterAsync(s: Conv2dShape, input: Float32Array, gradOutput: Float32Array, gradWeight: Float32Array,
                            gradBias: Float32Array | null): Promise<void>;

  // ---- Pooling. indices hold, per output cell, the flat index (h * inW + w) of the max
  // within its own input plane; ties resolve to the first in row-major window order.
  maxPool2dForward(s: Pool2dShape, input: Float32Array, output: Float32Array, indices: Int32Array): void;
  /** Overwrites gradInput. */
  maxPool2dBackward(s: Pool2dShape, gradOutput: Float32Array, indices: Int32Array, gradInput: Float32Array): void;
  avgPool2dForward(s: Pool2dShape, input: Float32Array, output: Float32Array): void;
  /** Overwrites gradInput. */
  avgPool2dBackward(s: Pool2dShape, gradOutput: Float32Array, gradInput: Float32Array): void;

  // ---- Activations (element-wise, output may alias input in forward).
  relu(x: Float32Array, y: Float32Array): void;
  /** gradInput = gradOutput where x > 0, else 0 (x: the forward input). */
  reluBackward(x: Float32Array, gradOutput: Float32Array, gradInput: Float32Array): void;
  tanh(x: Float32Array, y: Float32Array): void;
  /** gradInput = gradOutput * (1 - y^2) (y: the forward output). */
  tanhBackward(y: Float32Array, gradOutput: Float32Array, gradInput: Float32Array): void;
  sigmoid(x: Float32Array, y: Float32Array): void;
  /** gradInput = gradOutput * y * (1 - y). */
  sigmoidBackward(y: Float32Array, gradOutput: Float32Array, gradInput: Float32Array): void;

  // ---- LRN. scale (same size as input) is saved by forward for backward.
  lrnForward(s: LrnShape, input: Float32Array, output: Float32Array, scale: Float32Array): void;
  lrnBackward(s: LrnShape, input: Float32Array, output: Float32Array, scale: Float32Array,
              gradOutput: Float32Array, gradInput: Float32Array): void;

  // ---- Softmax over the last dimension of a [rows, cols] matrix.
  softmaxForward(rows: number, cols: number, x: Float32Array, y: Float32Array): void;
  softmaxBackward(rows: number, cols: number, y: Float32Array, gradOutput: Float32Array, gradInput: Float32Array): void;
  logSoftmaxForward(rows: number, cols: number, x: Float32Array, y: Float32Array): void;
  logSoftmaxBackward(rows: number, cols: number, y: Float32Array, gradOutput: Float32Array, gradInput: Float32Array): void;

  // ---- Batch normalisation. Training: batch statistics; saveMean/saveInvStd [c] are
  // written; runningMean/runningVar are updated with momentum (running = (1-m)*running +
  // m*batch, unbiased variance, as PyTorch). Inference: running statistics are used and
  // save* are not touched.
  batchNormForward(s: BatchNormShape, x: Float32Array, y: Float32Array, gamma: Float32Array, beta: Float32Array,
                   runningMean: Float32Array, runningVar: Float32Array, saveMean: Float32Array,
                   saveInvStd: Float32Array, training: boolean, momentum: number): void;
  /** Training-mode backward. gradInput overwritten; gradGamma/gradBeta accumulated. */
  batchNormBackward(s: BatchNormShape, x: Float32Array, gamma: Float32Array, saveMean: Float32Array,
                    saveInvStd: Float32Array, gradOutput: Float32Array, gradInput: Float32Array,
                    gradGamma: Float32Array, gradBeta: Float32Array): void;

  // ---- Dropout (inverted): mask[i] = 0 with probability p else 1/(1-p), from a seeded
  // generator (same seed -> same mask on every backend); y = x * mask.
  dropoutForward(p: number, seed: number, x: Float32Array, y: Float32Array, mask: Float32Array): void;
  dropoutBackward(mask: Float32Array, gradOutput: Float32Array, gradInput: Float32Array): void;

  // ---- Element-wise.
  add(a: Float32Array, b: Float32Array, out: Float32Array): void;
  scale(x: Float32Array, alpha: number, out: Float32Array): void;
  /** y += alpha * x */
  axpy(alpha: number, x: Float32Array, y: Float32Array): void;
  /** out = sum of slices, added in array order (rank order), so the result is reproducible. */
  sumSlices(slices: Float32Array[], out: Float32Array): void;

  // ---- Wire encodings: bf16 (round to nearest even; NaN stays NaN) and IEEE fp16 (round to nearest even, overflow to inf).
  f32ToBf16(src: Float32Array, dst: Uint16Array): void;
  bf16ToF32(src: Uint16Array, dst: Float32Array): void;
  f32ToF16(src: Float32Array, dst: Uint16Array): void;
  f16ToF32(src: Uint16Array, dst: Float32Array): void;

  // ---- Optimiser updates on one flat slice (params, grads and state have equal length).
  /**
   * PyTorch SGD: g = grad + wd * p; buf = first ? g : momentum * buf + (1 - dampening) * g;
   * step = nesterov ? g + momentum * buf : buf (or g when momentum == 0); p -= lr * step.
   */
  sgdUpdate(o: SgdOptions, params: Float32Array, grads: Float32Array, momentumBuf: Float32Array): void;
  /** Adam (L2 weight decay added to the gradient, as torch.optim.Adam). */
  adamUpdate(o: AdamOptions, params: Float32Array, grads: Float32Array, m: Float32Array, v: Float32Array): void;
}

export function convOutputSize(input: number, kernel: number, stride: number, pad: number, dilation: number): number {
  return Math.floor((input + 2 * pad - dilation * (kernel - 1) - 1) / stride) + 1;
}

/** Pooling output size with Torch's ceil-mode rule (the last window must start inside input + left pad). */
export function poolOutputSize(input: number, kernel: number, stride: number, pad: number, ceilMode: boolean): number {
  const span = input + 2 * pad - kernel;
  let out = (ceilMode ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
  if (ceilMode && (out - 1) * stride >= input + pad) out -= 1;
  return out;
}

/**
 * The dropout generator every backend implements bit for bit, so one seed gives one mask
 * on native, wasm and in a peer's process: a counter-based hash (lowbias32) of
 * (index + seed * 0x9E3779B9) mod 2^32, its top 24 bits scaled to [0, 1). Element i is
 * dropped when the value is < p.
 */
export function dropoutUniform(seed: number, index: number): number {
  let x = (index + Math.imul(seed >>> 0, 0x9e3779b9)) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return (x >>> 8) * (1 / 16777216);
}
