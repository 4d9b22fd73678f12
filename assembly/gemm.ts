// Single-precision GEMM, BLIS style: C = alpha * op(A) * op(B) + beta * C, row-major.
//
// Five loops around a register-blocked micro-kernel. The micro-kernel computes an
// MR x NR = 4 x 8 tile of C as 8 f32x4 accumulators (two per row), reading packed B
// (NR floats per k step) and broadcasting packed A with v128.load32_splat; with the two
// B vectors and the A broadcast that is 11 live v128 values, below the ~13 that V8 can
// keep in registers. Packing copies an MC x KC block of A (scaled by alpha) and a
// KC x NC panel of B into contiguous slivers, so the kernel streams memory in order and
// the B sliver (KC * NR floats) stays in L1 while the A block stays in L2.
//
// Threads: every thread calls sgemm() with the same arguments and its own tid; each
// takes a disjoint block of C (columns when n >= m, rows otherwise), packs its own
// panels in its own workspace (ws + tid * wsStride) and never writes outside its block,
// so no synchronisation is needed and the result does not depend on the thread count
// (every element of C is summed in the same order).
import { madd, partLo } from './common';
import { ConvShape } from './shapes';

export const MR: i32 = 4;
export const NR: i32 = 8;
let MC: i32 = 128;
let KC: i32 = 512;
let NC: i32 = 3072;

/** Overrides the cache blocking (for tuning experiments); sizes are rounded to the register block. */
export function gemmSetBlocking(mc: i32, kc: i32, nc: i32): void {
  MC = max(MR, (mc + MR - 1) / MR * MR);
  KC = max(1, kc);
  NC = max(NR, (nc + NR - 1) / NR * NR);
}

// @ts-ignore: decorator
@inline function roundUp(x: i32, m: i32): i32 {
  return (x + m - 1) / m * m;
}

/** Block size for `total` items in blocks of at most `limit`, all blocks (nearly) equal, a multiple of `unit`. */
// @ts-ignore: decorator
@inline function blockSize(total: i32, limit: i32, unit: i32): i32 {
  const blocks = (total + limit - 1) / limit;
  return roundUp((total + blocks - 1) / blocks, unit);
}

/**
 * Bytes of workspace one thread needs for a GEMM of at most m x n x k (gemmSerial). Uses
 * upper bounds of the block sizes that only grow with m, n and k, so the workspace for a
 * shape also suffices for every smaller one (the balanced block sizes themselves do not
 * grow monotonically: n = 2856 runs as one block of 2856, n = 3640 as two of 1824).
 */
export function gemmWorkspaceBytes(m: i32, n: i32, k: i32): i32 {
  const mc = min(MC, roundUp(max(m, 1), MR));
  const kc = min(KC, max(k, 1));
  const nc = min(NC, roundUp(max(n, 1), NR));
  return (mc * kc + kc * nc + MR * NR) * 4 + 64;
}

/** A 4x4 transpose of four rows. */
// @ts-ignore: decorator
@inline function tr0(r0: v128, r1: v128): v128 { return v128.shuffle<f32>(r0, r1, 0, 4, 1, 5); }
// @ts-ignore: decorator
@inline function tr1(r0: v128, r1: v128): v128 { return v128.shuffle<f32>(r0, r1, 2, 6, 3, 7); }
// @ts-ignore: decorator
@inline function lo2(t0: v128, t1: v128): v128 { return v128.shuffle<f32>(t0, t1, 0, 1, 4, 5); }
// @ts-ignore: decorator
@inline function hi2(t0: v128, t1: v128): v128 { return v128.shuffle<f32>(t0, t1, 2, 3, 6, 7); }

/**
 * Packs rows [i0, i0 + mc) and columns [p0, p0 + kc) of op(A), times alpha, into MR-row
 * slivers: sliver s holds, for each p, the MR values A[i0 + s*MR + r][p0 + p] (zero past mc).
 */
function packA(trans: bool, a: usize, lda: i32, i0: i32, p0: i32, mc: i32, kc: i32, alpha: f32, dst: usize): void {
  const va = f32x4.splat(alpha);
  const ldaB = <usize>lda << 2;
  for (let ir = 0; ir < mc; ir += MR) {
    const mr = min(MR, mc - ir);
    const d = dst + (<usize>ir * <usize>kc << 2);
    if (!trans) {
      const r0 = a + (<usize>(i0 + ir) * <usize>lda + <usize>p0 << 2);
      if (mr == MR) {
        const r1 = r0 + ldaB;
        const r2 = r1 + ldaB;
        const r3 = r2 + ldaB;
        let p = 0;
        for (; p + 4 <= kc; p += 4) {
          const o = <usize>p << 2;
          const x0 = v128.load(r0 + o);
          const x1 = v128.load(r1 + o);
          const x2 = v128.load(r2 + o);
          const x3 = v128.load(r3 + o);
          const t0 = tr0(x0, x1);
          const t1 = tr1(x0, x1);
          const t2 = tr0(x2, x3);
          const t3 = tr1(x2, x3);
          const dp = d + (<usize>p << 4);
          v128.store(dp, f32x4.mul(lo2(t0, t2), va));
          v128.store(dp, f32x4.mul(hi2(t0, t2), va), 16);
          v128.store(dp, f32x4.mul(lo2(t1, t3), va), 32);
          v128.store(dp, f32x4.mul(hi2(t1, t3), va), 48);
        }
        for (; p < kc; p++) {
          const o = <usize>p << 2;
          const dp = d + (<usize>p << 4);
          store<f32>(dp, alpha * load<f32>(r0 + o));
          store<f32>(dp, alpha * load<f32>(r1 + o), 4);
          store<f32>(dp, alpha * load<f32>(r2 + o), 8);
          store<f32>(dp, alpha * load<f32>(r3 + o), 12);
        }
      } else {
        for (let p = 0; p < kc; p++) {
          const dp = d + (<usize>p << 4);
          for (let r = 0; r < MR; r++) {
            const v: f32 = r < mr ? alpha * load<f32>(r0 + <usize>r * ldaB + (<usize>p << 2)) : 0;
            store<f32>(dp + (<usize>r << 2), v);
          }
        }
      }
    } else {
      // A is stored k x m: stored row p holds op(A)[.][p], contiguous in i.
      const c0 = a + (<usize>p0 * <usize>lda + <usize>(i0 + ir) << 2);
      if (mr == MR) {
        for (let p = 0; p < kc; p++) {
          v128.store(d + (<usize>p << 4), f32x4.mul(v128.load(c0 + <usize>p * ldaB), va));
        }
      } else {
        for (let p = 0; p < kc; p++) {
          const dp = d + (<usize>p << 4);
          const sp = c0 + <usize>p * ldaB;
          for (let r = 0; r < MR; r++) {
            const v: f32 = r < mr ? alpha * load<f32>(sp + (<usize>r << 2)) : 0;
            store<f32>(dp + (<usize>r << 2), v);
          }
        }
      }
    }
  }
}

/**
 * Packs rows [p0, p0 + kc) and columns [j0, j0 + nc) of op(B) into NR-column slivers:
 * sliver s holds, for each p, the NR values B[p0 + p][j0 + s*NR + j] (zero past nc).
 */
function packB(trans: bool, b: usize, ldb: i32, p0: i32, j0: i32, kc: i32, nc: i32, dst: usize): void {
  const ldbB = <usize>ldb << 2;
  for (let jr = 0; jr < nc; jr += NR) {
    const nr = min(NR, nc - jr);
    const d = dst + (<usize>jr * <usize>kc << 2);
    if (!trans) {
      const s0 = b + (<usize>p0 * <usize>ldb + <usize>(j0 + jr) << 2);
      if (nr == NR) {
        for (let p = 0; p < kc; p++) {
          const sp = s0 + <usize>p * ldbB;
          const dp = d + (<usize>p << 5);
          v128.store(dp, v128.load(sp));
          v128.store(dp, v128.load(sp, 16), 16);
        }
      } else {
        for (let p = 0; p < kc; p++) {
          const sp = s0 + <usize>p * ldbB;
          const dp = d + (<usize>p << 5);
          for (let j = 0; j < NR; j++) store<f32>(dp + (<usize>j << 2), j < nr ? load<f32>(sp + (<usize>j << 2)) : 0);
        }
      }
    } else {
      // B is stored n x k: stored row j holds op(B)[.][j], contiguous in p.
      const s0 = b + (<usize>(j0 + jr) * <usize>ldb + <usize>p0 << 2);
      if (nr == NR) {
        let p = 0;
        for (; p + 4 <= kc; p += 4) {
          const o = <usize>p << 2;
          const dp = d + (<usize>p << 5);
          for (let h = 0; h < 2; h++) {
            const r0 = s0 + <usize>(h * 4) * ldbB + o;
            const x0 = v128.load(r0);
            const x1 = v128.load(r0 + ldbB);
            const x2 = v128.load(r0 + 2 * ldbB);
            const x3 = v128.load(r0 + 3 * ldbB);
            const t0 = tr0(x0, x1);
            const t1 = tr1(x0, x1);
            const t2 = tr0(x2, x3);
            const t3 = tr1(x2, x3);
            const dh = dp + (<usize>h << 4);
            v128.store(dh, lo2(t0, t2));
            v128.store(dh, hi2(t0, t2), 32);
            v128.store(dh, lo2(t1, t3), 64);
            v128.store(dh, hi2(t1, t3), 96);
          }
        }
        for (; p < kc; p++) {
          const dp = d + (<usize>p << 5);
          for (let j = 0; j < NR; j++) store<f32>(dp + (<usize>j << 2), load<f32>(s0 + <usize>j * ldbB + (<usize>p << 2)));
        }
      } else {
        for (let p = 0; p < kc; p++) {
          const dp = d + (<usize>p << 5);
          for (let j = 0; j < NR; j++) {
            store<f32>(dp + (<usize>j << 2), j < nr ? load<f32>(s0 + <usize>j * ldbB + (<usize>p << 2)) : 0);
          }
        }
      }
    }
  }
}

// ---- implicit im2col: B of a convolution, packed straight from the image ----------------
//
// For the forward convolution, op(B) is the column matrix of one image group: row
// (c, ky, kx), column = output pixel. Instead of writing that matrix out (im2col) and then
// packing it, packBIm2col packs the slivers directly from the input planes, which saves two
// passes over a matrix kH * kW times larger than the input. conv.ts sets the source with
// setImplicitB before gemmSerial and clears it after; the state is per instance, i.e. per
// thread.
let imShape: usize = 0;
let imPlanes: usize = 0;
let imP0: i32 = 0;

/** B comes from the image planes `planes` (shape: ConvShape), columns from output pixel p0; shape 0: a plain matrix again. */
export function setImplicitB(shape: usize, planes: usize, p0: i32): void {
  imShape = shape;
  imPlanes = planes;
  imP0 = p0;
}

function packBIm2col(p0: i32, j0: i32, kc: i32, nc: i32, dst: usize): void {
  const s = changetype<ConvShape>(imShape);
  const H = s.inH;
  const W = s.inW;
  const ow = s.outW;
  const kW = s.kW;
  const khkw = s.kH * kW;
  const sH = s.strideH;
  const sW = s.strideW;
  const planeB = <usize>(H * W) << 2;
  const sliverB = <usize>kc << 5; // bytes between consecutive slivers
  let c = p0 / khkw;
  const r0 = p0 - c * khkw;
  let ky = r0 / kW;
  let kx = r0 - ky * kW;
  const q0 = imP0 + j0; // first output pixel
  const oy0 = q0 / ow;
  const ox00 = q0 - oy0 * ow;
  // Row by row of op(B) (one (c, ky, kx) each), then sliver by sliver along the output
  // pixels: the reads walk the input rows in order and the per-row index math is hoisted.
  for (let p = 0; p < kc; p++) {
    const plane = imPlanes + <usize>c * planeB;
    const iyOff = ky * s.dilationH - s.padH;
    const ixOff = kx * s.dilationW - s.padW;
    let oy = oy0;
    let ox = ox00;
    let dp = dst + (<usize>p << 5);
    for (let jr = 0; jr < nc; jr += NR) {
      const nr = min(NR, nc - jr);
      const iy = oy * sH + iyOff;
      if (nr == NR && ox + NR <= ow) {
        const ix0 = ox * sW + ixOff;
        if (iy < 0 || iy >= H) {
          v128.store(dp, i32x4.splat(0));
          v128.store(dp, i32x4.splat(0), 16);
        } else if (sW == 1 && ix0 >= 0 && ix0 + NR <= W) {
          const src = plane + (<usize>(iy * W + ix0) << 2);
          v128.store(dp, v128.load(src));
          v128.store(dp, v128.load(src, 16), 16);
        } else {
          const row = plane + (<usize>(iy * W) << 2);
          for (let j = 0; j < NR; j++) {
            const ix = ix0 + j * sW;
            store<f32>(dp + (<usize>j << 2), ix >= 0 && ix < W ? load<f32>(row + (<usize>ix << 2)) : 0);
          }
        }
        ox += NR;
        if (ox == ow) {
          ox = 0;
          oy++;
        }
      } else {
        // The sliver wraps to the next output row (or is the last, partial one).
        for (let j = 0; j < NR; j++) {
          let v: f32 = 0;
          if (j < nr) {
            const yy = oy * sH + iyOff;
            const ix = ox * sW + ixOff;
            if (yy >= 0 && yy < H && ix >= 0 && ix < W) v = load<f32>(plane + (<usize>(yy * W + ix) << 2));
            if (++ox == ow) {
              ox = 0;
              oy++;
            }
          }
          store<f32>(dp + (<usize>j << 2), v);
        }
      }
      dp += sliverB;
    }
    if (++kx == kW) {
      kx = 0;
      if (++ky == s.kH) {
        ky = 0;
        c++;
      }
    }
  }
}

// How the micro-kernel combines its tile with C.
export const ACC: i32 = 0; //   C += AB
export const SET: i32 = 1; //   C = AB
export const AXPBY: i32 = 2; // C = AB + beta * C

// @ts-ignore: decorator
@inline function put(cp: usize, acc: v128, mode: i32, vb: v128): void {
  if (mode == SET) v128.store(cp, acc);
  else if (mode == ACC) v128.store(cp, f32x4.add(v128.load(cp), acc));
  else v128.store(cp, madd(vb, v128.load(cp), acc));
}

/** The 4 x 8 micro-kernel over kc steps of packed A (pa) and packed B (pb). ldc in bytes. */
export function kernel4x8(kc: i32, pa: usize, pb: usize, c: usize, ldc: usize, mode: i32, beta: f32): void {
  let c00 = f32x4.splat(0);
  let c01 = c00;
  let c10 = c00;
  let c11 = c00;
  let c20 = c00;
  let c21 = c00;
  let c30 = c00;
  let c31 = c00;
  // An end pointer rather than a counter: one induction variable less in the loop
  // (measured ~10% faster in V8).
  const end = pa + (<usize>kc << 4);
  while (pa < end) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let a = v128.load32_splat(pa);
    c00 = madd(a, b0, c00);
    c01 = madd(a, b1, c01);
    a = v128.load32_splat(pa, 4);
    c10 = madd(a, b0, c10);
    c11 = madd(a, b1, c11);
    a = v128.load32_splat(pa, 8);
    c20 = madd(a, b0, c20);
    c21 = madd(a, b1, c21);
    a = v128.load32_splat(pa, 12);
    c30 = madd(a, b0, c30);
    c31 = madd(a, b1, c31);
    pa += 16;
    pb += 32;
  }
  const vb = f32x4.splat(beta);
  put(c, c00, mode, vb);
  put(c + 16, c01, mode, vb);
  c += ldc;
  put(c, c10, mode, vb);
  put(c + 16, c11, mode, vb);
  c += ldc;
  put(c, c20, mode, vb);
  put(c + 16, c21, mode, vb);
  c += ldc;
  put(c, c30, mode, vb);
  put(c + 16, c31, mode, vb);
}

/** C = beta * C on an m x n block (beta == 0 writes zeros, whatever C held). */
export function scaleBlock(m: i32, n: i32, beta: f32, c: usize, ldc: i32): void {
  if (beta == 1) return;
  for (let i = 0; i < m; i++) {
    const row = c + (<usize>i * <usize>ldc << 2);
    if (beta == 0) {
      memory.fill(row, 0, <usize>n << 2);
    } else {
      for (let j = 0; j < n; j++) {
        const q = row + (<usize>j << 2);
        store<f32>(q, beta * load<f32>(q));
      }
    }
  }
}

/** One thread's GEMM on its own block. ws: this thread's workspace. */
export function gemmSerial(transA: bool, transB: bool, m: i32, n: i32, k: i32, alpha: f32,
                           a: usize, lda: i32, b: usize, ldb: i32, beta: f32, c: usize, ldc: i32, ws: usize): void {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0) {
    scaleBlock(m, n, beta, c, ldc);
    return;
  }
  // Blocks of (nearly) equal size: k = 576 runs as 3 x 192 rather than 256 + 256 + 64.
  const kcMax = blockSize(k, KC, 1);
  const mcMax = blockSize(m, MC, MR);
  const ncMax = blockSize(n, NC, NR);
  const pA = (ws + 15) & ~(<usize>15);
  const pB = pA + (<usize>mcMax * <usize>kcMax << 2);
  const tile = pB + (<usize>kcMax * <usize>ncMax << 2);
  const ldcB = <usize>ldc << 2;
  const first = beta == 0 ? SET : (beta == 1 ? ACC : AXPBY);
  for (let jc = 0; jc < n; jc += ncMax) {
    const nc = min(ncMax, n - jc);
    for (let pc = 0; pc < k; pc += kcMax) {
      const kc = min(kcMax, k - pc);
      if (imShape) packBIm2col(pc, jc, kc, nc, pB);
      else packB(transB, b, ldb, pc, jc, kc, nc, pB);
      const mode = pc == 0 ? first : ACC;
      for (let ic = 0; ic < m; ic += mcMax) {
        const mc = min(mcMax, m - ic);
        packA(transA, a, lda, ic, pc, mc, kc, alpha, pA);
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = min(NR, nc - jr);
          const pbj = pB + (<usize>jr * <usize>kc << 2);
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = min(MR, mc - ir);
            const pai = pA + (<usize>ir * <usize>kc << 2);
            const cp = c + (<usize>(ic + ir) * <usize>ldc + <usize>(jc + jr) << 2);
            if (mr == MR && nr == NR) {
              kernel4x8(kc, pai, pbj, cp, ldcB, mode, beta);
            } else {
              kernel4x8(kc, pai, pbj, tile, <usize>NR << 2, SET, 0);
              for (let r = 0; r < mr; r++) {
                for (let j = 0; j < nr; j++) {
                  const q = cp + <usize>r * ldcB + (<usize>j << 2);
                  const v = load<f32>(tile + (<usize>(r * NR + j) << 2));
                  if (mode == SET) store<f32>(q, v);
                  else if (mode == ACC) store<f32>(q, load<f32>(q) + v);
                  else store<f32>(q, v + beta * load<f32>(q));
                }
              }
            }
          }
        }
      }
    }
  }
}

/** How C is split among threads: true = by columns. */
// @ts-ignore: decorator
@inline function splitColumns(m: i32, n: i32): bool {
  return n >= m;
}

/** Workspace bytes per thread for sgemm() with nthreads threads. */
export function sgemmWorkspace(m: i32, n: i32, k: i32, nthreads: i32): i32 {
  if (nthreads > 1) {
    if (splitColumns(m, n)) n = roundUp((n + nthreads - 1) / nthreads, NR);
    else m = roundUp((m + nthreads - 1) / nthreads, MR);
  }
  return gemmWorkspaceBytes(m, n, k);
}

/** Thread tid's share of C = alpha * op(A) op(B) + beta * C. */
export function sgemm(tid: i32, nthreads: i32, transA: bool, transB: bool, m: i32, n: i32, k: i32, alpha: f32,
                      a: usize, lda: i32, b: usize, ldb: i32, beta: f32, c: usize, ldc: i32,
                      ws: usize, wsStride: i32): void {
  const w = ws + <usize>tid * <usize>wsStride;
  if (nthreads <= 1) {
    gemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, w);
    return;
  }
  if (splitColumns(m, n)) {
    const j0 = partLo(n, NR, tid, nthreads);
    const j1 = partLo(n, NR, tid + 1, nthreads);
    if (j1 <= j0) return;
    const bOff: usize = transB ? <usize>j0 * <usize>ldb : <usize>j0;
    gemmSerial(transA, transB, m, j1 - j0, k, alpha, a, lda, b + (bOff << 2), ldb, beta, c + (<usize>j0 << 2), ldc, w);
  } else {
    const i0 = partLo(m, MR, tid, nthreads);
    const i1 = partLo(m, MR, tid + 1, nthreads);
    if (i1 <= i0) return;
    const aOff: usize = transA ? <usize>i0 : <usize>i0 * <usize>lda;
    gemmSerial(transA, transB, i1 - i0, n, k, alpha, a + (aOff << 2), lda, b, ldb, beta, c + (<usize>i0 * <usize>ldc << 2), ldc, w);
  }
}
