// Float64 references for every kernel of engine/backends/backend.ts, written plainly: naive
// loops over Float64Array, straight from the definitions in backend.ts (and PyTorch/Torch/
// Caffe where backend.ts points there). No blocking, no tricks: these are the oracle.
//
// Sizes here are computed independently of backend.ts's convOutputSize/poolOutputSize.
import type { AdamOptions, BatchNormShape, Conv2dShape, LrnShape, Pool2dShape, SgdOptions } from '../../engine/backends/backend.js';
import { dropoutUniform } from '../../engine/backends/backend.js';

type Arr = ArrayLike<number>;

// ---------------------------------------------------------------------------------------
// GEMM

/**
 * C = alpha * op(A) * op(B) + beta * C with row-major storage and row strides. When beta
 * is 0 the old C is not read (BLAS semantics: NaN in C is ignored). Elements of C's rows
 * beyond column n are not touched. Returns a new array of C's length.
 */
export function gemm(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
  a: Arr, lda: number, b: Arr, ldb: number, beta: number, c: Arr, ldc: number): Float64Array {
  const out = Float64Array.from(c);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let p = 0; p < k; p++) {
        const av = transA ? a[p * lda + i]! : a[i * lda + p]!;
        const bv = transB ? b[j * ldb + p]! : b[p * ldb + j]!;
        acc += av * bv;
      }
      out[i * ldc + j] = beta === 0 ? alpha * acc : alpha * acc + beta * c[i * ldc + j]!;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Convolution

export function convOut(inp: number, k: number, stride: number, pad: number, dil: number): number {
  const effective = dil * (k - 1) + 1;
  return Math.floor((inp + 2 * pad - effective) / stride) + 1;
}

export function convSizes(s: Conv2dShape) {
  const outH = convOut(s.inH, s.kH, s.strideH, s.padH, s.dilationH);
  const outW = convOut(s.inW, s.kW, s.strideW, s.padW, s.dilationW);
  return {
    outH,
    outW,
    input: s.batch * s.inC * s.inH * s.inW,
    weight: s.outC * (s.inC / s.groups) * s.kH * s.kW,
    output: s.batch * s.outC * outH * outW,
  };
}

/**
 * Visits every (output cell, weight tap, input cell) triple of the convolution whose input
 * cell lies inside the image (padding contributes zeros): fn(outIndex, weightIndex, inIndex).
 */
function convTaps(s: Conv2dShape, fn: (o: number, w: number, i: number) => void): void {
  const { outH, outW } = convSizes(s);
  const icPerG = s.inC / s.groups;
  const ocPerG = s.outC / s.groups;
  for (let b = 0; b < s.batch; b++) {
    for (let oc = 0; oc < s.outC; oc++) {
      const g = Math.floor(oc / ocPerG);
      for (let oh = 0; oh < outH; oh++) {
        for (let ow = 0; ow < outW; ow++) {
          const o = ((b * s.outC + oc) * outH + oh) * outW + ow;
          for (let ic = 0; ic < icPerG; ic++) {
            const c = g * icPerG + ic;
            for (let kh = 0; kh < s.kH; kh++) {
              const ih = oh * s.strideH - s.padH + kh * s.dilationH;
              if (ih < 0 || ih >= s.inH) continue;
              for (let kw = 0; kw < s.kW; kw++) {
                const iw = ow * s.strideW - s.padW + kw * s.dilationW;
                if (iw < 0 || iw >= s.inW) continue;
                const w = ((oc * icPerG + ic) * s.kH + kh) * s.kW + kw;
                const i = ((b * s.inC + c) * s.inH + ih) * s.inW + iw;
                fn(o, w, i);
              }
            }
          }
        }
      }
    }
  }
}

export function conv2dForward(s: Conv2dShape, input: Arr, weight: Arr, bias: Arr | null): Float64Array {
  const { outH, outW, output } = convSizes(s);
  const y = new Float64Array(output);
  if (bias) {
    for (let i = 0; i < output; i++) y[i] = bias[Math.floor(i / (outH * outW)) % s.outC]!;
  }
  convTaps(s, (o, w, i) => {
    y[o]! += input[i]! * weight[w]!;
  });
  return y;
}

/** dL/dinput for dL/doutput = gradOutput (the adjoint of conv2dForward without bias). */
export function conv2dBackwardData(s: Conv2dShape, gradOutput: Arr, weight: Arr): Float64Array {
  const gi = new Float64Array(convSizes(s).input);
  convTaps(s, (o, w, i) => {
    gi[i]! += gradOutput[o]! * weight[w]!;
  });
  return gi;
}

/** dL/dweight and dL/dbias (not accumulated: the caller adds the prior contents). */
export function conv2dBackwardFilter(s: Conv2dShape, input: Arr, gradOutput: Arr): { gradWeight: Float64Array; gradBias: Float64Array } {
  const { outH, outW, weight, output } = convSizes(s);
  const gw = new Float64Array(weight);
  const gb = new Float64Array(s.outC);
  convTaps(s, (o, w, i) => {
    gw[w]! += gradOutput[o]! * input[i]!;
  });
  for (let o = 0; o < output; o++) gb[Math.floor(o / (outH * outW)) % s.outC]! += gradOutput[o]!;
  return { gradWeight: gw, gradBias: gb };
}

// ---------------------------------------------------------------------------------------
// Pooling

/**
 * Output size: floor or ceil of (in + 2 pad - k) / stride, plus one; in ceil mode a last
 * window that would start at or beyond in + pad (entirely in the right padding) is dropped.
 */
export function poolOut(inp: number, k: number, stride: number, pad: number, ceil: boolean): number {
  const q = (inp + 2 * pad - k) / stride;
  let out = (ceil ? Math.ceil(q) : Math.floor(q)) + 1;
  if (ceil) {
    const lastStart = (out - 1) * stride - pad; // in input coordinates
    if (lastStart >= inp) out -= 1;
  }
  return out;
}

export function poolSizes(s: Pool2dShape) {
  const outH = poolOut(s.inH, s.kH, s.strideH, s.padH, s.ceilMode);
  const outW = poolOut(s.inW, s.kW, s.strideW, s.padW, s.ceilMode);
  return { outH, outW, input: s.batch * s.channels * s.inH * s.inW, output: s.batch * s.channels * outH * outW };
}

/** Max pooling: output, and per output the flat index h * inW + w in its plane (first max in row-major window order). */
export function maxPool2dForward(s: Pool2dShape, input: Arr): { output: Float64Array; indices: Int32Array } {
  const { outH, outW, output } = poolSizes(s);
  const y = new Float64Array(output);
  const idx = new Int32Array(output);
  for (let p = 0; p < s.batch * s.channels; p++) {
    for (let oh = 0; oh < outH; oh++) {
      for (let ow = 0; ow < outW; ow++) {
        let best = -Infinity;
        let bestIdx = -1;
        for (let kh = 0; kh < s.kH; kh++) {
          const ih = oh * s.strideH - s.padH + kh;
          if (ih < 0 || ih >= s.inH) continue;
          for (let kw = 0; kw < s.kW; kw++) {
            const iw = ow * s.strideW - s.padW + kw;
            if (iw < 0 || iw >= s.inW) continue;
            const v = input[(p * s.inH + ih) * s.inW + iw]!;
            if (bestIdx < 0 || v > best) {
              best = v;
              bestIdx = ih * s.inW + iw;
            }
          }
        }
        const o = (p * outH + oh) * outW + ow;
        y[o] = best;
        idx[o] = bestIdx;
      }
    }
  }
  return { output: y, indices: idx };
}

/** gradInput[plane, indices[o]] += gradOutput[o] (gradInput starts at zero). */
export function maxPool2dBackward(s: Pool2dShape, gradOutput: Arr, indices: Arr): Float64Array {
  const { outH, outW, input } = poolSizes(s);
  const gi = new Float64Array(input);
  for (let p = 0; p < s.batch * s.channels; p++) {
    for (let o = 0; o < outH * outW; o++) {
      gi[p * s.inH * s.inW + indices[p * outH * outW + o]!]! += gradOutput[p * outH * outW + o]!;
    }
  }
  return gi;
}

/**
 * For each output cell: the real input cells of its window and its divisor. The window in
 * padded coordinates is [start, start + k) clipped to [-pad, in + pad); countIncludePad
 * divides by the size of that clipped window, otherwise by the number of real cells.
 */
function avgWindows(s: Pool2dShape, fn: (o: number, cells: number[], divisor: number) => void): void {
  const { outH, outW } = poolSizes(s);
  for (let p = 0; p < s.batch * s.channels; p++) {
    for (let oh = 0; oh < outH; oh++) {
      for (let ow = 0; ow < outW; ow++) {
        const h0 = oh * s.strideH - s.padH;
        const w0 = ow * s.strideW - s.padW;
        const h1 = Math.min(h0 + s.kH, s.inH + s.padH);
        const w1 = Math.min(w0 + s.kW, s.inW + s.padW);
        const cells: number[] = [];
        for (let ih = Math.max(h0, 0); ih < Math.min(h1, s.inH); ih++) {
          for (let iw = Math.max(w0, 0); iw < Math.min(w1, s.inW); iw++) cells.push((p * s.inH + ih) * s.inW + iw);
        }
        const divisor = s.countIncludePad ? (h1 - h0) * (w1 - w0) : cells.length;
        fn((p * outH + oh) * outW + ow, cells, divisor);
      }
    }
  }
}

export function avgPool2dForward(s: Pool2dShape, input: Arr): Float64Array {
  const y = new Float64Array(poolSizes(s).output);
  avgWindows(s, (o, cells, divisor) => {
    let sum = 0;
    for (const i of cells) sum += input[i]!;
    y[o] = sum / divisor;
  });
  return y;
}

export function avgPool2dBackward(s: Pool2dShape, gradOutput: Arr): Float64Array {
  const gi = new Float64Array(poolSizes(s).input);
  avgWindows(s, (o, cells, divisor) => {
    for (const i of cells) gi[i]! += gradOutput[o]! / divisor;
  });
  return gi;
}

// ---------------------------------------------------------------------------------------
// Activations

export function relu(x: Arr): Float64Array {
  return Float64Array.from(x, (v) => (v > 0 ? v : 0));
}
export function reluBackward(x: Arr, g: Arr): Float64Array {
  return Float64Array.from(x, (v, i) => (v > 0 ? g[i]! : 0));
}
export function tanh(x: Arr): Float64Array {
  return Float64Array.from(x, (v) => Math.tanh(v));
}
export function tanhBackward(y: Arr, g: Arr): Float64Array {
  return Float64Array.from(y, (v, i) => g[i]! * (1 - v * v));
}
export function sigmoid(x: Arr): Float64Array {
  return Float64Array.from(x, (v) => 1 / (1 + Math.exp(-v)));
}
export function sigmoidBackward(y: Arr, g: Arr): Float64Array {
  return Float64Array.from(y, (v, i) => g[i]! * v * (1 - v));
}

// ---------------------------------------------------------------------------------------
// LRN (cross-channel): scale_c = k + alpha/size * sum of x^2 over channels
// [c - (size-1)/2, c + size/2] (clipped), y = x * scale^-beta.

function lrnWindow(s: LrnShape, c: number): [number, number] {
  const lo = Math.max(0, c - Math.floor((s.size - 1) / 2));
  const hi = Math.min(s.channels - 1, c + Math.floor(s.size / 2));
  return [lo, hi];
}

export function lrnForward(s: LrnShape, x: Arr): { output: Float64Array; scale: Float64Array } {
  const plane = s.height * s.width;
  const n = s.batch * s.channels * plane;
  const y = new Float64Array(n);
  const scale = new Float64Array(n);
  for (let b = 0; b < s.batch; b++) {
    for (let c = 0; c < s.channels; c++) {
      const [lo, hi] = lrnWindow(s, c);
      for (let p = 0; p < plane; p++) {
        let sum = 0;
        for (let j = lo; j <= hi; j++) {
          const v = x[(b * s.channels + j) * plane + p]!;
          sum += v * v;
        }
        const i = (b * s.channels + c) * plane + p;
        scale[i] = s.k + (s.alpha / s.size) * sum;
        y[i] = x[i]! * Math.pow(scale[i]!, -s.beta);
      }
    }
  }
  return { output: y, scale };
}

/**
 * dL/dx by the chain rule on the definition: y_i = x_i s_i^-beta with s_i depending on
 * x_j for every channel j in i's window, ds_i/dx_j = 2 alpha/size x_j.
 */
export function lrnBackward(s: LrnShape, x: Arr, gradOutput: Arr): Float64Array {
  const plane = s.height * s.width;
  const { scale } = lrnForward(s, x);
  const gi = new Float64Array(x.length);
  for (let b = 0; b < s.batch; b++) {
    for (let c = 0; c < s.channels; c++) {
      const [lo, hi] = lrnWindow(s, c);
      for (let p = 0; p < plane; p++) {
        const i = (b * s.channels + c) * plane + p;
        const si = scale[i]!;
        gi[i]! += gradOutput[i]! * Math.pow(si, -s.beta);
        const dyds = gradOutput[i]! * x[i]! * -s.beta * Math.pow(si, -s.beta - 1);
        for (let j = lo; j <= hi; j++) {
          const xj = (b * s.channels + j) * plane + p;
          gi[xj]! += dyds * (2 * s.alpha / s.size) * x[xj]!;
        }
      }
    }
  }
  return gi;
}

// ---------------------------------------------------------------------------------------
// Softmax over the last dimension

export function softmax(rows: number, cols: number, x: Arr): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let c = 0; c < cols; c++) max = Math.max(max, x[r * cols + c]!);
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(x[r * cols + c]! - max);
    for (let c = 0; c < cols; c++) y[r * cols + c] = Math.exp(x[r * cols + c]! - max) / sum;
  }
  return y;
}

export function logSoftmax(rows: number, cols: number, x: Arr): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let c = 0; c < cols; c++) max = Math.max(max, x[r * cols + c]!);
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(x[r * cols + c]! - max);
    const lse = max + Math.log(sum);
    for (let c = 0; c < cols; c++) y[r * cols + c] = x[r * cols + c]! - lse;
  }
  return y;
}

/** gradInput = y * (g - sum(g * y)) per row (y: the softmax output). */
export function softmaxBackward(rows: number, cols: number, y: Arr, g: Arr): Float64Array {
  const gi = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let dotGY = 0;
    for (let c = 0; c < cols; c++) dotGY += g[r * cols + c]! * y[r * cols + c]!;
    for (let c = 0; c < cols; c++) gi[r * cols + c] = y[r * cols + c]! * (g[r * cols + c]! - dotGY);
  }
  return gi;
}

/** gradInput = g - exp(y) * sum(g) per row (y: the log-softmax output). */
export function logSoftmaxBackward(rows: number, cols: number, y: Arr, g: Arr): Float64Array {
  const gi = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let sumG = 0;
    for (let c = 0; c < cols; c++) sumG += g[r * cols + c]!;
    for (let c = 0; c < cols; c++) gi[r * cols + c] = g[r * cols + c]! - Math.exp(y[r * cols + c]!) * sumG;
  }
  return gi;
}

// ---------------------------------------------------------------------------------------
// Batch normalisation over [n, c, spatial]

function bnIndex(s: BatchNormShape, i: number, ch: number, p: number): number {
  return (i * s.c + ch) * s.spatial + p;
}

/** Per-channel mean and biased variance, two-pass. */
export function bnStats(s: BatchNormShape, x: Arr): { mean: Float64Array; variance: Float64Array } {
  const count = s.n * s.spatial;
  const mean = new Float64Array(s.c);
  const variance = new Float64Array(s.c);
  for (let ch = 0; ch < s.c; ch++) {
    let sum = 0;
    for (let i = 0; i < s.n; i++) for (let p = 0; p < s.spatial; p++) sum += x[bnIndex(s, i, ch, p)]!;
    const mu = sum / count;
    let sq = 0;
    for (let i = 0; i < s.n; i++) {
      for (let p = 0; p < s.spatial; p++) {
        const d = x[bnIndex(s, i, ch, p)]! - mu;
        sq += d * d;
      }
    }
    mean[ch] = mu;
    variance[ch] = sq / count;
  }
  return { mean, variance };
}

export function batchNormTrain(s: BatchNormShape, x: Arr, gamma: Arr, beta: Arr, runningMean: Arr, runningVar: Arr, momentum: number) {
  const { mean, variance } = bnStats(s, x);
  const count = s.n * s.spatial;
  const invStd = Float64Array.from(variance, (v) => 1 / Math.sqrt(v + s.eps));
  const y = new Float64Array(x.length);
  for (let i = 0; i < s.n; i++) {
    for (let ch = 0; ch < s.c; ch++) {
      for (let p = 0; p < s.spatial; p++) {
        const j = bnIndex(s, i, ch, p);
        y[j] = gamma[ch]! * (x[j]! - mean[ch]!) * invStd[ch]! + beta[ch]!;
      }
    }
  }
  const newMean = Float64Array.from(runningMean, (r, ch) => (1 - momentum) * r + momentum * mean[ch]!);
  const newVar = Float64Array.from(runningVar, (r, ch) => (1 - momentum) * r + momentum * variance[ch]! * count / (count - 1));
  return { y, saveMean: mean, saveInvStd: invStd, runningMean: newMean, runningVar: newVar };
}

export function batchNormInference(s: BatchNormShape, x: Arr, gamma: Arr, beta: Arr, runningMean: Arr, runningVar: Arr): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < s.n; i++) {
    for (let ch = 0; ch < s.c; ch++) {
      for (let p = 0; p < s.spatial; p++) {
        const j = bnIndex(s, i, ch, p);
        y[j] = gamma[ch]! * (x[j]! - runningMean[ch]!) / Math.sqrt(runningVar[ch]! + s.eps) + beta[ch]!;
      }
    }
  }
  return y;
}

/**
 * Training-mode backward from the saved statistics: with xhat = (x - mean) * invStd and
 * N = n * spatial, gradBeta = sum g, gradGamma = sum g * xhat,
 * gradInput = gamma * invStd / N * (N g - sum g - xhat * sum g * xhat).
 */
export function batchNormBackward(s: BatchNormShape, x: Arr, gamma: Arr, saveMean: Arr, saveInvStd: Arr, g: Arr) {
  const count = s.n * s.spatial;
  const gradGamma = new Float64Array(s.c);
  const gradBeta = new Float64Array(s.c);
  const gi = new Float64Array(x.length);
  for (let ch = 0; ch < s.c; ch++) {
    let sumG = 0;
    let sumGX = 0;
    for (let i = 0; i < s.n; i++) {
      for (let p = 0; p < s.spatial; p++) {
        const j = bnIndex(s, i, ch, p);
        sumG += g[j]!;
        sumGX += g[j]! * (x[j]! - saveMean[ch]!) * saveInvStd[ch]!;
      }
    }
    gradBeta[ch] = sumG;
    gradGamma[ch] = sumGX;
    for (let i = 0; i < s.n; i++) {
      for (let p = 0; p < s.spatial; p++) {
        const j = bnIndex(s, i, ch, p);
        const xhat = (x[j]! - saveMean[ch]!) * saveInvStd[ch]!;
        gi[j] = gamma[ch]! * saveInvStd[ch]! / count * (count * g[j]! - sumG - xhat * sumGX);
      }
    }
  }
  return { gradInput: gi, gradGamma, gradBeta };
}

// ---------------------------------------------------------------------------------------
// Dropout (inverted), with backend.ts's generator

export function dropoutMask(p: number, seed: number, n: number): Float64Array {
  return Float64Array.from({ length: n }, (_, i) => (dropoutUniform(seed, i) < p ? 0 : 1 / (1 - p)));
}

// ---------------------------------------------------------------------------------------
// Element-wise

export function add(a: Arr, b: Arr): Float64Array {
  return Float64Array.from(a, (v, i) => v + b[i]!);
}
export function scale(x: Arr, alpha: number): Float64Array {
  return Float64Array.from(x, (v) => alpha * v);
}
export function axpy(alpha: number, x: Arr, y: Arr): Float64Array {
  return Float64Array.from(y, (v, i) => v + alpha * x[i]!);
}
export function sumSlices(slices: Arr[], n: number): Float64Array {
  const out = new Float64Array(n);
  for (const s of slices) for (let i = 0; i < n; i++) out[i]! += s[i]!;
  return out;
}

// ---------------------------------------------------------------------------------------
// bf16 / fp16, from the values (not from float32's bit layout): a binary floating-point
// format with `p` significand bits (hidden bit included), exponent bias `bias` and `eBits`
// exponent bits; round to nearest, ties to even; overflow to infinity.

interface Fmt {
  p: number;
  eBits: number;
  bias: number;
}
const BF16: Fmt = { p: 8, eBits: 8, bias: 127 };
const FP16: Fmt = { p: 11, eBits: 5, bias: 15 };

/** Exact floor(log2(a)) for a finite a > 0. */
function ilog2(a: number): number {
  let e = Math.floor(Math.log2(a));
  while (Math.pow(2, e) > a) e--;
  while (Math.pow(2, e + 1) <= a) e++;
  return e;
}

function roundHalfEven(q: number): number {
  const f = Math.floor(q);
  const r = q - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function encode(x: number, f: Fmt): number {
  const maxE = (1 << f.eBits) - 1;
  const manBits = f.p - 1;
  const signBit = 1 << (f.eBits + manBits);
  const negative = x < 0 || Object.is(x, -0);
  const sign = negative ? signBit : 0;
  if (Number.isNaN(x)) return (maxE << manBits) | (1 << (manBits - 1)); // a quiet NaN
  const a = Math.abs(x);
  if (a === Infinity) return sign | (maxE << manBits);
  if (a === 0) return sign;
  const minE = 1 - f.bias; // exponent of the smallest normal
  const e = Math.max(ilog2(a), minE);
  const ulp = Math.pow(2, e - manBits);
  let q = roundHalfEven(a / ulp); // a / ulp is exact: scaling by a power of two
  let ee = e;
  if (q === 1 << f.p) {
    // rounded up to the next binade
    q = 1 << manBits;
    ee += 1;
  }
  if (q < 1 << manBits) return sign | q; // subnormal (or zero)
  const biased = ee + f.bias;
  if (biased >= maxE) return sign | (maxE << manBits); // overflow to infinity
  return sign | (biased << manBits) | (q - (1 << manBits));
}

function decode(bits: number, f: Fmt): number {
  const manBits = f.p - 1;
  const maxE = (1 << f.eBits) - 1;
  const sign = bits >> (f.eBits + manBits) & 1 ? -1 : 1;
  const e = (bits >> manBits) & maxE;
  const m = bits & ((1 << manBits) - 1);
  if (e === maxE) return m === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * m * Math.pow(2, 1 - f.bias - manBits);
  return sign * (1 + m / (1 << manBits)) * Math.pow(2, e - f.bias);
}

export const f32ToBf16 = (x: number): number => encode(x, BF16);
export const bf16ToF32 = (bits: number): number => decode(bits, BF16);
export const f32ToF16 = (x: number): number => encode(x, FP16);
export const f16ToF32 = (bits: number): number => decode(bits, FP16);
/** Whether `bits` is a NaN in the format with `eBits` exponent and `manBits` mantissa bits. */
export function isNaNBits(bits: number, eBits: number, manBits: number): boolean {
  return ((bits >> manBits) & ((1 << eBits) - 1)) === (1 << eBits) - 1 && (bits & ((1 << manBits) - 1)) !== 0;
}

// ---------------------------------------------------------------------------------------
// Optimisers, as PyTorch defines them (torch.optim.SGD and torch.optim.Adam, one step)

export function sgdUpdate(o: SgdOptions, params: Arr, grads: Arr, buf: Arr) {
  const p = Float64Array.from(params);
  const b = Float64Array.from(buf);
  for (let i = 0; i < p.length; i++) {
    const g = grads[i]! + o.weightDecay * params[i]!;
    let step = g;
    if (o.momentum !== 0) {
      b[i] = o.firstStep ? g : o.momentum * buf[i]! + (1 - o.dampening) * g;
      step = o.nesterov ? g + o.momentum * b[i]! : b[i]!;
    }
    p[i] = params[i]! - o.lr * step;
  }
  return { params: p, momentumBuf: b };
}

export function adamUpdate(o: AdamOptions, params: Arr, grads: Arr, m: Arr, v: Arr) {
  const p = Float64Array.from(params);
  const m2 = Float64Array.from(m);
  const v2 = Float64Array.from(v);
  const bc1 = 1 - Math.pow(o.beta1, o.step);
  const bc2 = 1 - Math.pow(o.beta2, o.step);
  for (let i = 0; i < p.length; i++) {
    const g = grads[i]! + o.weightDecay * params[i]!;
    m2[i] = o.beta1 * m[i]! + (1 - o.beta1) * g;
    v2[i] = o.beta2 * v[i]! + (1 - o.beta2) * g * g;
    const mHat = m2[i]! / bc1;
    const vHat = v2[i]! / bc2;
    p[i] = params[i]! - o.lr * mHat / (Math.sqrt(vHat) + o.eps);
  }
  return { params: p, m: m2, v: v2 };
}
