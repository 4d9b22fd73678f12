// 2-D convolution as im2col + GEMM (NCHW input, weight [outC, inC/groups, kH, kW]).
//
// A 1x1 convolution with stride 1 and no padding needs no im2col: the input planes are
// already the GEMM's B matrix. Otherwise the column matrix of a block of output pixels (or
// of input channels) is built in the thread's workspace, at most COL_BUDGET bytes at a
// time, so memory stays bounded for 224x224 layers.
//
// Threads (every thread calls with the same arguments and its own tid):
//  - forward: the batch * outH * outW output pixels are split into contiguous ranges;
//  - backward data: the batch * inC input planes are split (col2im of one input channel
//    touches only that channel, so the threads never write the same element);
//  - backward filter: the inC input channels are split, i.e. the columns of gradWeight;
//    each thread sums over the whole batch for its columns, and gradBias is split by
//    output channel.
// Chunk sizes depend only on the shape, never on the thread count, so every element is
// summed in the same order and results are identical for any number of threads.
import { ConvShape } from './shapes';
import { gemmSerial, gemmWorkspaceBytes, setImplicitB, NR } from './gemm';
import { partLo, fill } from './common';
import { winogradEligible, winogradForward, winogradWorkspace } from './winograd';

const COL_BUDGET: i32 = 8 << 20;

/**
 * Forward convolution: pack B straight from the image (1), build the column matrix first
 * (0), or decide by size (-1, the default): fused when one image's column matrix exceeds
 * COL_BUDGET. Measured here (interleaved A/B, noisy machine): fused is ~5-15% faster on
 * 224x224 layers, whose column matrix streams through memory, and a few % slower on small
 * layers, whose column matrix stays in cache and is packed with plain vector copies.
 */
let fusedIm2col: i32 = -1;
export function convSetFusedIm2col(mode: i32): void {
  fusedIm2col = mode;
}

/**
 * Forward 3x3 convolutions by Winograd F(2x2, 3x3) (assembly/winograd.ts): always where the
 * shape allows it (1), never (0), or where it pays (-1, the default; winogradPays). A shape
 * record's algo field (set by the host) takes precedence.
 */
let winogradMode: i32 = -1;
export function convSetWinograd(mode: i32): void {
  winogradMode = mode;
}

/**
 * Where Winograd beats im2col + GEMM. Measured here, one thread, Winograd time / im2col time
 * (plain and relaxed SIMD alike): inC 3: 1.05-1.1 (slower), inC 4: ~1.0, inC 6: 0.85-0.9,
 * inC 8: 0.6-0.8, inC >= 16: 0.4-0.55 for any outC (1 to 512). With few tiles the filter
 * transform (outC * inC work per thread, redone every call) dominates: 512 channels with
 * 4 output tiles 1.3-1.5 (slower), 16 tiles 0.65-0.9. Thread-count independent on purpose,
 * so a layer's result does not depend on the number of threads.
 */
function winogradPays(s: ConvShape): bool {
  const tiles = <i64>s.batch * <i64>((s.outH + 1) >> 1) * <i64>((s.outW + 1) >> 1);
  return s.inC >= 8 && tiles >= 32;
}

function useWinograd(s: ConvShape): bool {
  if (s.algo == 1 || !winogradEligible(s)) return false;
  if (s.algo == 2 || winogradMode == 1) return true;
  return winogradMode < 0 && winogradPays(s);
}

// @ts-ignore: decorator
@inline function isPointwise(s: ConvShape): bool {
  return s.kH == 1 && s.kW == 1 && s.strideH == 1 && s.strideW == 1 && s.padH == 0 && s.padW == 0;
}

// @ts-ignore: decorator
@inline function align64(x: usize): usize {
  return (x + 63) & ~(<usize>63);
}

/** Output pixels per forward chunk. */
function forwardChunk(s: ConvShape): i32 {
  const ohw = s.outH * s.outW;
  const K = (s.inC / s.groups) * s.kH * s.kW;
  let chunk = COL_BUDGET / (K * 4) / NR * NR;
  if (chunk < NR) chunk = NR;
  return min(chunk, ohw);
}

/** Input channels per backward chunk (data and filter). */
function channelChunk(s: ConvShape): i32 {
  const ohw = s.outH * s.outW;
  const rowBytes = s.kH * s.kW * ohw * 4;
  let chunk = COL_BUDGET / rowBytes;
  if (chunk < 1) chunk = 1;
  return min(chunk, s.inC / s.groups);
}

/** Workspace bytes each thread needs: kind 0 forward, 1 backward data, 2 backward filter. */
export function conv2dWorkspace(kind: i32, shape: usize): i32 {
  const s = changetype<ConvShape>(shape);
  const cin = s.inC / s.groups;
  const cout = s.outC / s.groups;
  const khkw = s.kH * s.kW;
  const K = cin * khkw;
  const ohw = s.outH * s.outW;
  const pw = isPointwise(s);
  if (kind == 0) {
    const chunk = forwardChunk(s);
    // Enough for either path (fused: one GEMM over up to ohw pixels, no column matrix) and,
    // when the shape allows it, for Winograd.
    const im2col = max((pw ? 0 : K * chunk * 4) + gemmWorkspaceBytes(cout, chunk, K), gemmWorkspaceBytes(cout, ohw, K)) + 128;
    return winogradEligible(s) ? max(im2col, winogradWorkspace(s) + 64) : im2col;
  }
  const cc = channelChunk(s);
  if (kind == 1) return (pw ? 0 : cc * khkw * ohw * 4) + gemmWorkspaceBytes(cc * khkw, ohw, cout) + 128;
  return (pw ? 0 : cc * khkw * ohw * 4) + gemmWorkspaceBytes(cout, cc * khkw, ohw) + 128;
}

/**
 * Column matrix of channels [c0, c1) of one image group (plane = planes of that group)
 * for output pixels [p0, p1): row (c - c0, ky, kx), column p - p0.
 */
function im2col(s: ConvShape, planes: usize, c0: i32, c1: i32, p0: i32, p1: i32, col: usize): void {
  const H = s.inH;
  const W = s.inW;
  const ow = s.outW;
  const sH = s.strideH;
  const sW = s.strideW;
  let dst = col;
  for (let c = c0; c < c1; c++) {
    const plane = planes + (<usize>c * <usize>(H * W) << 2);
    for (let ky = 0; ky < s.kH; ky++) {
      const iyBase = ky * s.dilationH - s.padH;
      for (let kx = 0; kx < s.kW; kx++) {
        const ixBase = kx * s.dilationW - s.padW;
        // Output columns whose input column ix = ox * sW + ixBase lies in [0, W).
        const lo = ixBase >= 0 ? 0 : (sW - 1 - ixBase) / sW;
        const hi = W - ixBase <= 0 ? 0 : (W - ixBase + sW - 1) / sW;
        let p = p0;
        while (p < p1) {
          const oy = p / ow;
          const ox0 = p - oy * ow;
          const ox1 = min(ow, ox0 + (p1 - p));
          const n = ox1 - ox0;
          const iy = oy * sH + iyBase;
          if (iy < 0 || iy >= H) {
            memory.fill(dst, 0, <usize>n << 2);
          } else {
            const a = min(max(lo, ox0), ox1);
            const b = max(a, min(hi, ox1));
            if (a > ox0) memory.fill(dst, 0, <usize>(a - ox0) << 2);
            if (b > a) {
              const src = plane + (<usize>(iy * W + a * sW + ixBase) << 2);
              const d = dst + (<usize>(a - ox0) << 2);
              if (sW == 1) {
                memory.copy(d, src, <usize>(b - a) << 2);
              } else {
                for (let i = 0; i < b - a; i++) store<f32>(d + (<usize>i << 2), load<f32>(src + (<usize>(i * sW) << 2)));
              }
            }
            if (ox1 > b) memory.fill(dst + (<usize>(b - ox0) << 2), 0, <usize>(ox1 - b) << 2);
          }
          dst += <usize>n << 2;
          p += n;
        }
      }
    }
  }
}

/** Adds the column matrix of channels [c0, c1) (all output pixels) back into their input planes. */
function col2im(s: ConvShape, planes: usize, c0: i32, c1: i32, col: usize): void {
  const H = s.inH;
  const W = s.inW;
  const oh = s.outH;
  const ow = s.outW;
  const sH = s.strideH;
  const sW = s.strideW;
  let src = col;
  for (let c = c0; c < c1; c++) {
    const plane = planes + (<usize>c * <usize>(H * W) << 2);
    for (let ky = 0; ky < s.kH; ky++) {
      const iyBase = ky * s.dilationH - s.padH;
      for (let kx = 0; kx < s.kW; kx++) {
        const ixBase = kx * s.dilationW - s.padW;
        const lo = ixBase >= 0 ? 0 : (sW - 1 - ixBase) / sW;
        const hi = min(ow, W - ixBase <= 0 ? 0 : (W - ixBase + sW - 1) / sW);
        for (let oy = 0; oy < oh; oy++) {
          const iy = oy * sH + iyBase;
          if (iy >= 0 && iy < H && hi > lo) {
            const row = src + (<usize>(oy * ow + lo) << 2);
            const dst = plane + (<usize>(iy * W + lo * sW + ixBase) << 2);
            const n = hi - lo;
            if (sW == 1) {
              let i = 0;
              for (; i + 4 <= n; i += 4) {
                const q = dst + (<usize>i << 2);
                v128.store(q, f32x4.add(v128.load(q), v128.load(row + (<usize>i << 2))));
              }
              for (; i < n; i++) {
                const q = dst + (<usize>i << 2);
                store<f32>(q, load<f32>(q) + load<f32>(row + (<usize>i << 2)));
              }
            } else {
              for (let i = 0; i < n; i++) {
                const q = dst + (<usize>(i * sW) << 2);
                store<f32>(q, load<f32>(q) + load<f32>(row + (<usize>i << 2)));
              }
            }
          }
        }
        src += <usize>(oh * ow) << 2;
      }
    }
  }
}

/** output = conv(input, weight) + bias (bias 0: none). */
export function conv2dForward(tid: i32, nthreads: i32, shape: usize, input: usize, weight: usize, bias: usize,
                              output: usize, ws: usize, wsStride: i32): void {
  const s = changetype<ConvShape>(shape);
  if (useWinograd(s)) {
    winogradForward(tid, nthreads, s, input, weight, bias, output, ws + <usize>tid * <usize>wsStride);
    return;
  }
  const groups = s.groups;
  const cin = s.inC / groups;
  const cout = s.outC / groups;
  const K = cin * s.kH * s.kW;
  const HW = s.inH * s.inW;
  const ohw = s.outH * s.outW;
  const pw = isPointwise(s);
  const chunk = forwardChunk(s);
  const w = align64(ws + <usize>tid * <usize>wsStride);
  const col = w;
  const gws = pw ? w : align64(col + (<usize>K * <usize>chunk << 2));
  const total = s.batch * ohw;
  const lo = partLo(total, NR, tid, nthreads);
  const hi = partLo(total, NR, tid + 1, nthreads);
  let q = lo;
  while (q < hi) {
    const n = q / ohw;
    const pStart = q - n * ohw;
    const pEnd = min(ohw, pStart + (hi - q));
    for (let g = 0; g < groups; g++) {
      const planes = input + (<usize>(n * s.inC + g * cin) * <usize>HW << 2);
      const wg = weight + (<usize>(g * cout) * <usize>K << 2);
      const outBase = output + (<usize>(n * s.outC + g * cout) * <usize>ohw << 2);
      if (!pw && (fusedIm2col > 0 || (fusedIm2col < 0 && <i64>K * <i64>ohw * 4 > <i64>COL_BUDGET))) {
        const np = pEnd - pStart;
        const c = outBase + (<usize>pStart << 2);
        let beta: f32 = 0;
        if (bias) {
          for (let o = 0; o < cout; o++) fill(c + (<usize>o * <usize>ohw << 2), np, load<f32>(bias + (<usize>(g * cout + o) << 2)));
          beta = 1;
        }
        setImplicitB(shape, planes, pStart);
        gemmSerial(false, false, cout, np, K, 1, wg, K, 0, 0, beta, c, ohw, w);
        setImplicitB(0, 0, 0);
        continue;
      }
      for (let p0 = pStart; p0 < pEnd; p0 += chunk) {
        const p1 = min(pEnd, p0 + chunk);
        const np = p1 - p0;
        const c = outBase + (<usize>p0 << 2);
        let beta: f32 = 0;
        if (bias) {
          for (let o = 0; o < cout; o++) fill(c + (<usize>o * <usize>ohw << 2), np, load<f32>(bias + (<usize>(g * cout + o) << 2)));
          beta = 1;
        }
        if (pw) {
          gemmSerial(false, false, cout, np, K, 1, wg, K, planes + (<usize>p0 << 2), HW, beta, c, ohw, gws);
        } else {
          im2col(s, planes, 0, cin, p0, p1, col);
          gemmSerial(false, false, cout, np, K, 1, wg, K, col, np, beta, c, ohw, gws);
        }
      }
    }
    q += pEnd - pStart;
  }
}

/** gradInput = conv_transpose(gradOutput, weight) (overwritten). */
export function conv2dBackwardData(tid: i32, nthreads: i32, shape: usize, gradOutput: usize, weight: usize,
                                   gradInput: usize, ws: usize, wsStride: i32): void {
  const s = changetype<ConvShape>(shape);
  const groups = s.groups;
  const cin = s.inC / groups;
  const cout = s.outC / groups;
  const khkw = s.kH * s.kW;
  const K = cin * khkw;
  const HW = s.inH * s.inW;
  const ohw = s.outH * s.outW;
  const pw = isPointwise(s);
  const cc = channelChunk(s);
  const w = align64(ws + <usize>tid * <usize>wsStride);
  const col = w;
  const gws = pw ? w : align64(col + (<usize>(cc * khkw) * <usize>ohw << 2));
  const total = s.batch * s.inC;
  const lo = partLo(total, 1, tid, nthreads);
  const hi = partLo(total, 1, tid + 1, nthreads);
  let q = lo;
  while (q < hi) {
    const n = q / s.inC;
    const ci = q - n * s.inC;
    const g = ci / cin;
    const cA = ci - g * cin;
    const cB = min(cin, cA + (hi - q));
    const planes = gradInput + (<usize>(n * s.inC + g * cin) * <usize>HW << 2);
    const go = gradOutput + (<usize>(n * s.outC + g * cout) * <usize>ohw << 2);
    const wg = weight + (<usize>(g * cout) * <usize>K << 2);
    for (let c0 = cA; c0 < cB; c0 += cc) {
      const c1 = min(cB, c0 + cc);
      const rows = (c1 - c0) * khkw;
      const a = wg + (<usize>(c0 * khkw) << 2);
      if (pw) {
        gemmSerial(true, false, rows, ohw, cout, 1, a, K, go, ohw, 0, planes + (<usize>c0 * <usize>HW << 2), HW, gws);
      } else {
        gemmSerial(true, false, rows, ohw, cout, 1, a, K, go, ohw, 0, col, ohw, gws);
        memory.fill(planes + (<usize>c0 * <usize>HW << 2), 0, <usize>(c1 - c0) * <usize>HW << 2);
        col2im(s, planes, c0, c1, col);
      }
    }
    q += cB - cA;
  }
}

/** gradWeight += dL/dW; gradBias (0: none) += sum of gradOutput over batch and space. */
export function conv2dBackwardFilter(tid: i32, nthreads: i32, shape: usize, input: usize, gradOutput: usize,
                                     gradWeight: usize, gradBias: usize, ws: usize, wsStride: i32): void {
  const s = changetype<ConvShape>(shape);
  const groups = s.groups;
  const cin = s.inC / groups;
  const cout = s.outC / groups;
  const khkw = s.kH * s.kW;
  const K = cin * khkw;
  const HW = s.inH * s.inW;
  const ohw = s.outH * s.outW;
  const pw = isPointwise(s);
  const cc = channelChunk(s);
  const w = align64(ws + <usize>tid * <usize>wsStride);
  const col = w;
  const gws = pw ? w : align64(col + (<usize>(cc * khkw) * <usize>ohw << 2));
  const lo = partLo(s.inC, 1, tid, nthreads);
  const hi = partLo(s.inC, 1, tid + 1, nthreads);
  let ci = lo;
  while (ci < hi) {
    const g = ci / cin;
    const cA = ci - g * cin;
    const cB = min(cin, cA + (hi - ci));
    const gw = gradWeight + (<usize>(g * cout) * <usize>K << 2);
    for (let c0 = cA; c0 < cB; c0 += cc) {
      const c1 = min(cB, c0 + cc);
      const rows = (c1 - c0) * khkw;
      for (let n = 0; n < s.batch; n++) {
        const planes = input + (<usize>(n * s.inC + g * cin) * <usize>HW << 2);
        const go = gradOutput + (<usize>(n * s.outC + g * cout) * <usize>ohw << 2);
        let b = planes + (<usize>c0 * <usize>HW << 2);
        if (!pw) {
          im2col(s, planes, c0, c1, 0, ohw, col);
          b = col;
        }
        gemmSerial(false, true, cout, rows, ohw, 1, go, ohw, b, ohw, 1, gw + (<usize>(c0 * khkw) << 2), K, gws);
      }
    }
    ci += cB - cA;
  }
  if (gradBias) {
    const o0 = partLo(s.outC, 1, tid, nthreads);
    const o1 = partLo(s.outC, 1, tid + 1, nthreads);
    for (let o = o0; o < o1; o++) {
      let sum: f64 = 0;
      for (let n = 0; n < s.batch; n++) {
        const p = gradOutput + (<usize>(n * s.outC + o) * <usize>ohw << 2);
        let acc = f32x4.splat(0);
        let i = 0;
        for (; i + 4 <= ohw; i += 4) acc = f32x4.add(acc, v128.load(p + (<usize>i << 2)));
        let part: f64 = <f64>f32x4.extract_lane(acc, 0) + <f64>f32x4.extract_lane(acc, 1) +
          <f64>f32x4.extract_lane(acc, 2) + <f64>f32x4.extract_lane(acc, 3);
        for (; i < ohw; i++) part += <f64>load<f32>(p + (<usize>i << 2));
        sum += part;
      }
      const q = gradBias + (<usize>o << 2);
      store<f32>(q, <f32>(<f64>load<f32>(q) + sum));
    }
  }
}
