// Forward 3x3 convolution (stride 1, dilation 1, one group) by Winograd F(2x2, 3x3).
//
// Every 2x2 block of output pixels (a tile) of an output channel o is
//   Y = A^T [ sum_c (G g[o][c] G^T) .* (B^T d[c] B) ] A
// with d[c] the 4x4 input patch of the tile in channel c (zero outside the image) and
// g[o][c] the 3x3 filter: 16 multiplies per tile and channel pair instead of 36. The sum
// over c is, for each of the 16 positions xi of the 4x4 transformed tile, a GEMM
// U_xi [outC x inC] times V_xi [inC x tiles], run with the 4 x 8 micro-kernel of gemm.ts on
// operands laid out as its packed slivers:
//  - U (filter transform, every call: it costs about outC * inC * 50 flops): for every 4
//    output channels, for every xi, inC steps of 4 values (the packed-A sliver);
//  - V (input transform): tiles are numbered (image, tile row, tile column) and taken 8 at a
//    time (an NR sliver); for every sliver, for every xi, inC steps of 8 values (packed B).
// A block of slivers is transformed into V (sized to stay in L2), then for every 4 output
// channels and every sliver the 16 micro-kernel calls leave a 16 x 4 x 8 product in a small
// buffer (L1), which the output transform (plus bias) turns into 4 x 8 output tiles
// written to the NCHW output.
//
// Threads: the tiles are split into contiguous ranges of whole slivers; every thread
// transforms the (whole) filter into its own workspace. Every output value is computed by
// the same operations in the same order whatever the thread count and the blocking, so
// results do not depend on either.
import { ConvShape } from './shapes';
import { kernel4x8, SET } from './gemm';
import { partLo } from './common';

/** Bytes of transformed input per block of tile slivers (re-read for every 4 output channels). */
const V_BLOCK_BYTES: i32 = 192 << 10;
/** Largest transformed filter (per thread) the Winograd path accepts; beyond it im2col runs. */
const U_MAX_BYTES: i64 = 64 << 20;

// @ts-ignore: decorator
@inline function align64(x: usize): usize {
  return (x + 63) & ~(<usize>63);
}

/** Bytes of the transformed filter (16 positions x outC rounded up to 4 x inC). */
// @ts-ignore: decorator
@inline function filterBytes(s: ConvShape): i64 {
  return <i64>16 * <i64>((s.outC + 3) & ~3) * <i64>s.inC * 4;
}

/** true when F(2x2, 3x3) applies: a 3x3 kernel, stride 1, dilation 1, one group (any padding). */
export function winogradEligible(s: ConvShape): bool {
  return s.kH == 3 && s.kW == 3 && s.strideH == 1 && s.strideW == 1 && s.dilationH == 1 && s.dilationW == 1 &&
    s.groups == 1 && s.outH >= 1 && s.outW >= 1 && filterBytes(s) <= U_MAX_BYTES;
}

// @ts-ignore: decorator
@inline function tilesTotal(s: ConvShape): i32 {
  return s.batch * ((s.outH + 1) >> 1) * ((s.outW + 1) >> 1);
}

/** Tile slivers (8 tiles each) per block. */
function blockSlivers(s: ConvShape): i32 {
  let tb = V_BLOCK_BYTES / (16 * 32 * s.inC);
  if (tb < 1) tb = 1;
  return min(tb, (tilesTotal(s) + 7) >> 3);
}

/** Workspace bytes one thread needs (the same for any thread count). */
export function winogradWorkspace(s: ConvShape): i32 {
  return <i32>filterBytes(s) + 64 + blockSlivers(s) * 16 * 32 * s.inC + 64 + 2048 + 1024 + 64;
}

/** Gg G^T for one filter tap grid held in 9 values (scalars or vectors of 4 filters), stored at dst + xi * us. */
// @ts-ignore: decorator
@inline function filterTile<T>(g00: T, g01: T, g02: T, g10: T, g11: T, g12: T, g20: T, g21: T, g22: T,
                                half: T, dst: usize, us: usize): void {
  // Gg (4 x 3), G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1], then each row times G^T.
  for (let a = 0; a < 4; a++) {
    let x0: T;
    let x1: T;
    let x2: T;
    if (a == 0) {
      x0 = g00; x1 = g01; x2 = g02;
    } else if (a == 3) {
      x0 = g20; x1 = g21; x2 = g22;
    } else if (a == 1) {
      x0 = mulT<T>(half, addT<T>(addT<T>(g00, g10), g20));
      x1 = mulT<T>(half, addT<T>(addT<T>(g01, g11), g21));
      x2 = mulT<T>(half, addT<T>(addT<T>(g02, g12), g22));
    } else {
      x0 = mulT<T>(half, addT<T>(subT<T>(g00, g10), g20));
      x1 = mulT<T>(half, addT<T>(subT<T>(g01, g11), g21));
      x2 = mulT<T>(half, addT<T>(subT<T>(g02, g12), g22));
    }
    const r = dst + <usize>(a * 4) * us;
    store<T>(r, x0);
    store<T>(r + us, mulT<T>(half, addT<T>(addT<T>(x0, x1), x2)));
    store<T>(r + 2 * us, mulT<T>(half, addT<T>(subT<T>(x0, x1), x2)));
    store<T>(r + 3 * us, x2);
  }
}

// f32 and v128 arithmetic under one name (the filter transform runs on both).
// @ts-ignore: decorator
@inline function addT<T>(a: T, b: T): T {
  if (isVector<T>()) return <T>f32x4.add(<v128>a, <v128>b);
  else return <T>(<f32>a + <f32>b);
}
// @ts-ignore: decorator
@inline function subT<T>(a: T, b: T): T {
  if (isVector<T>()) return <T>f32x4.sub(<v128>a, <v128>b);
  else return <T>(<f32>a - <f32>b);
}
// @ts-ignore: decorator
@inline function mulT<T>(a: T, b: T): T {
  if (isVector<T>()) return <T>f32x4.mul(<v128>a, <v128>b);
  else return <T>(<f32>a * <f32>b);
}

// A 4x4 transpose of four rows.
// @ts-ignore: decorator
@inline function tr0(r0: v128, r1: v128): v128 { return v128.shuffle<f32>(r0, r1, 0, 4, 1, 5); }
// @ts-ignore: decorator
@inline function tr1(r0: v128, r1: v128): v128 { return v128.shuffle<f32>(r0, r1, 2, 6, 3, 7); }
// @ts-ignore: decorator
@inline function lo2(t0: v128, t1: v128): v128 { return v128.shuffle<f32>(t0, t1, 0, 1, 4, 5); }
// @ts-ignore: decorator
@inline function hi2(t0: v128, t1: v128): v128 { return v128.shuffle<f32>(t0, t1, 2, 3, 6, 7); }

/**
 * U for output channels [0, outC rounded up to 4): U + ((o / 4 * 16 + xi) * inC + c) * 16
 * holds the 4 values of channels o..o+3 (zero past outC). Four whole filters at a time as
 * vectors (their taps transposed into lanes); a last partial group one filter at a time.
 */
function transformFilter(s: ConvShape, weight: usize, u: usize): void {
  const inC = s.inC;
  const outC = s.outC;
  const oc4 = (outC + 3) & ~3;
  const us = <usize>inC << 4; // bytes per position xi of one sliver
  const fs = <usize>inC * 36; //  bytes between the filters of consecutive output channels
  const vhalf = f32x4.splat(0.5);
  for (let o0 = 0; o0 < oc4; o0 += 4) {
    const base = u + <usize>(o0 * 4) * us;
    if (o0 + 4 <= outC) {
      let f = weight + <usize>o0 * fs;
      for (let c = 0; c < inC; c++) {
        const a0 = v128.load(f);
        const a1 = v128.load(f + fs);
        const a2 = v128.load(f + 2 * fs);
        const a3 = v128.load(f + 3 * fs);
        let t0 = tr0(a0, a1);
        let t1 = tr1(a0, a1);
        let t2 = tr0(a2, a3);
        let t3 = tr1(a2, a3);
        const g00 = lo2(t0, t2);
        const g01 = hi2(t0, t2);
        const g02 = lo2(t1, t3);
        const g10 = hi2(t1, t3);
        const b0 = v128.load(f, 16);
        const b1 = v128.load(f + fs, 16);
        const b2 = v128.load(f + 2 * fs, 16);
        const b3 = v128.load(f + 3 * fs, 16);
        t0 = tr0(b0, b1);
        t1 = tr1(b0, b1);
        t2 = tr0(b2, b3);
        t3 = tr1(b2, b3);
        const g11 = lo2(t0, t2);
        const g12 = hi2(t0, t2);
        const g20 = lo2(t1, t3);
        const g21 = hi2(t1, t3);
        let g22 = f32x4.splat(load<f32>(f, 32));
        g22 = f32x4.replace_lane(g22, 1, load<f32>(f + fs, 32));
        g22 = f32x4.replace_lane(g22, 2, load<f32>(f + 2 * fs, 32));
        g22 = f32x4.replace_lane(g22, 3, load<f32>(f + 3 * fs, 32));
        filterTile<v128>(g00, g01, g02, g10, g11, g12, g20, g21, g22, vhalf, base + (<usize>c << 4), us);
        f += 36;
      }
    } else {
      for (let o = o0; o < o0 + 4; o++) {
        const lane = base + (<usize>(o - o0) << 2);
        for (let c = 0; c < inC; c++) {
          const dst = lane + (<usize>c << 4);
          if (o >= outC) {
            for (let x = 0; x < 16; x++) store<f32>(dst + <usize>x * us, 0);
            continue;
          }
          const g = weight + <usize>o * fs + <usize>c * 36;
          filterTile<f32>(load<f32>(g), load<f32>(g, 4), load<f32>(g, 8), load<f32>(g, 12), load<f32>(g, 16),
            load<f32>(g, 20), load<f32>(g, 24), load<f32>(g, 28), load<f32>(g, 32), 0.5, dst, us);
        }
      }
    }
  }
}

// Even and odd lanes of two vectors: a = x0..x3, b = x4..x7 -> (x0, x2, x4, x6), (x1, x3, x5, x7).
// @ts-ignore: decorator
@inline function ev(a: v128, b: v128): v128 { return v128.shuffle<f32>(a, b, 0, 2, 4, 6); }
// @ts-ignore: decorator
@inline function od(a: v128, b: v128): v128 { return v128.shuffle<f32>(a, b, 1, 3, 5, 7); }

/**
 * Points at the 10 input values x = ix0 .. ix0 + 9 of row iy of a plane: in place when they
 * all lie inside, else copied to buf with zeros for the padding.
 */
// @ts-ignore: decorator
@inline function rowPtr(plane: usize, iy: i32, ix0: i32, s: ConvShape, colsIn: bool, buf: usize): usize {
  const W = s.inW;
  if (iy >= 0 && iy < s.inH) {
    const row = plane + (<usize>(iy * W) << 2);
    if (colsIn) return row + (<usize>ix0 << 2);
    for (let k = 0; k < 10; k++) {
      const ix = ix0 + k;
      store<f32>(buf + (<usize>k << 2), ix >= 0 && ix < W ? load<f32>(row + (<usize>ix << 2)) : 0);
    }
  } else {
    v128.store(buf, f32x4.splat(0));
    v128.store(buf, f32x4.splat(0), 16);
    v128.store(buf, f32x4.splat(0), 32);
  }
  return buf;
}

/**
 * B^T d B for 4 tiles (the lanes), rows given as 4 columns each, stored at dst + xi * vs.
 * B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], applied to the columns of each row, then
 * to the rows.
 */
// @ts-ignore: decorator
@inline function storeV(t0: v128, t1: v128, t2: v128, t3: v128, dst: usize, vs: usize, row: i32): void {
  v128.store(dst + <usize>(row * 4) * vs, t0);
  v128.store(dst + <usize>(row * 4 + 1) * vs, t1);
  v128.store(dst + <usize>(row * 4 + 2) * vs, t2);
  v128.store(dst + <usize>(row * 4 + 3) * vs, t3);
}

/** The input transform of tiles q .. q + 3 (q a multiple of 4) for every channel, into dst (+ xi * vs + c * 32). */
function transformInputQuad(s: ConvShape, input: usize, q: i32, total: i32, dst: usize, vs: usize, scratch: usize): void {
  const inC = s.inC;
  const H = s.inH;
  const W = s.inW;
  const HW = <usize>(H * W) << 2;
  const tW = (s.outW + 1) >> 1;
  const tpi = ((s.outH + 1) >> 1) * tW;
  const n = q / tpi;
  const rem = q - n * tpi;
  const ty = rem / tW;
  const tx = rem - ty * tW;
  if (q + 3 < total && tx + 3 < tW) {
    // Four tiles side by side: rows of 10 input values, tile k at columns 2k .. 2k + 3.
    const iy0 = 2 * ty - s.padH;
    const ix0 = 2 * tx - s.padW;
    const colsIn = ix0 >= 0 && ix0 + 10 <= W;
    let plane = input + <usize>(n * inC) * HW;
    let d = dst;
    for (let c = 0; c < inC; c++) {
      const p0 = rowPtr(plane, iy0, ix0, s, colsIn, scratch);
      const p1 = rowPtr(plane, iy0 + 1, ix0, s, colsIn, scratch + 64);
      const p2 = rowPtr(plane, iy0 + 2, ix0, s, colsIn, scratch + 128);
      const p3 = rowPtr(plane, iy0 + 3, ix0, s, colsIn, scratch + 192);
      // Row 0 and row 2.
      let a = v128.load(p0);
      let b = v128.load(p0, 16);
      let a2 = v128.load(p0, 8);
      let b2 = v128.load(p0, 24);
      let c0 = ev(a, b);
      let c1 = od(a, b);
      let c2 = ev(a2, b2);
      let c3 = od(a2, b2);
      const t00 = f32x4.sub(c0, c2);
      const t01 = f32x4.add(c1, c2);
      const t02 = f32x4.sub(c2, c1);
      const t03 = f32x4.sub(c1, c3);
      a = v128.load(p2);
      b = v128.load(p2, 16);
      a2 = v128.load(p2, 8);
      b2 = v128.load(p2, 24);
      c0 = ev(a, b);
      c1 = od(a, b);
      c2 = ev(a2, b2);
      c3 = od(a2, b2);
      const t20 = f32x4.sub(c0, c2);
      const t21 = f32x4.add(c1, c2);
      const t22 = f32x4.sub(c2, c1);
      const t23 = f32x4.sub(c1, c3);
      storeV(f32x4.sub(t00, t20), f32x4.sub(t01, t21), f32x4.sub(t02, t22), f32x4.sub(t03, t23), d, vs, 0);
      // Row 1.
      a = v128.load(p1);
      b = v128.load(p1, 16);
      a2 = v128.load(p1, 8);
      b2 = v128.load(p1, 24);
      c0 = ev(a, b);
      c1 = od(a, b);
      c2 = ev(a2, b2);
      c3 = od(a2, b2);
      const t10 = f32x4.sub(c0, c2);
      const t11 = f32x4.add(c1, c2);
      const t12 = f32x4.sub(c2, c1);
      const t13 = f32x4.sub(c1, c3);
      storeV(f32x4.add(t10, t20), f32x4.add(t11, t21), f32x4.add(t12, t22), f32x4.add(t13, t23), d, vs, 1);
      storeV(f32x4.sub(t20, t10), f32x4.sub(t21, t11), f32x4.sub(t22, t12), f32x4.sub(t23, t13), d, vs, 2);
      // Row 3.
      a = v128.load(p3);
      b = v128.load(p3, 16);
      a2 = v128.load(p3, 8);
      b2 = v128.load(p3, 24);
      c0 = ev(a, b);
      c1 = od(a, b);
      c2 = ev(a2, b2);
      c3 = od(a2, b2);
      storeV(f32x4.sub(t10, f32x4.sub(c0, c2)), f32x4.sub(t11, f32x4.add(c1, c2)), f32x4.sub(t12, f32x4.sub(c2, c1)),
        f32x4.sub(t13, f32x4.sub(c1, c3)), d, vs, 3);
      plane += HW;
      d += 32;
    }
    return;
  }
  // Tiles on different rows (or past the last tile): gather each lane's 4x4 patch into
  // g[r][col][lane] (scratch), then the same transform.
  const info = scratch + 256; // per lane: input offset of the patch's (0, 0) in plane 0 (or -1), iy0, ix0
  for (let k = 0; k < 4; k++) {
    const qk = q + k;
    const e = info + (<usize>k << 4);
    if (qk >= total) {
      store<i32>(e, -1);
      continue;
    }
    const nk = qk / tpi;
    const rk = qk - nk * tpi;
    const yk = rk / tW;
    store<i32>(e, nk * inC);
    store<i32>(e, 2 * yk - s.padH, 4);
    store<i32>(e, 2 * (rk - yk * tW) - s.padW, 8);
  }
  let d = dst;
  for (let c = 0; c < inC; c++) {
    for (let k = 0; k < 4; k++) {
      const e = info + (<usize>k << 4);
      const pl = load<i32>(e);
      const iy0 = load<i32>(e, 4);
      const ix0 = load<i32>(e, 8);
      const plane = input + <usize>(pl + c) * HW;
      for (let r = 0; r < 4; r++) {
        const iy = iy0 + r;
        for (let col = 0; col < 4; col++) {
          const ix = ix0 + col;
          let v: f32 = 0;
          if (pl >= 0 && iy >= 0 && iy < H && ix >= 0 && ix < W) v = load<f32>(plane + (<usize>(iy * W + ix) << 2));
          store<f32>(scratch + (<usize>((r * 4 + col) * 4 + k) << 2), v);
        }
      }
    }
    let c0 = v128.load(scratch);
    let c1 = v128.load(scratch, 16);
    let c2 = v128.load(scratch, 32);
    let c3 = v128.load(scratch, 48);
    const t00 = f32x4.sub(c0, c2);
    const t01 = f32x4.add(c1, c2);
    const t02 = f32x4.sub(c2, c1);
    const t03 = f32x4.sub(c1, c3);
    c0 = v128.load(scratch, 128);
    c1 = v128.load(scratch, 144);
    c2 = v128.load(scratch, 160);
    c3 = v128.load(scratch, 176);
    const t20 = f32x4.sub(c0, c2);
    const t21 = f32x4.add(c1, c2);
    const t22 = f32x4.sub(c2, c1);
    const t23 = f32x4.sub(c1, c3);
    storeV(f32x4.sub(t00, t20), f32x4.sub(t01, t21), f32x4.sub(t02, t22), f32x4.sub(t03, t23), d, vs, 0);
    c0 = v128.load(scratch, 64);
    c1 = v128.load(scratch, 80);
    c2 = v128.load(scratch, 96);
    c3 = v128.load(scratch, 112);
    const t10 = f32x4.sub(c0, c2);
    const t11 = f32x4.add(c1, c2);
    const t12 = f32x4.sub(c2, c1);
    const t13 = f32x4.sub(c1, c3);
    storeV(f32x4.add(t10, t20), f32x4.add(t11, t21), f32x4.add(t12, t22), f32x4.add(t13, t23), d, vs, 1);
    storeV(f32x4.sub(t20, t10), f32x4.sub(t21, t11), f32x4.sub(t22, t12), f32x4.sub(t23, t13), d, vs, 2);
    c0 = v128.load(scratch, 192);
    c1 = v128.load(scratch, 208);
    c2 = v128.load(scratch, 224);
    c3 = v128.load(scratch, 240);
    storeV(f32x4.sub(t10, f32x4.sub(c0, c2)), f32x4.sub(t11, f32x4.add(c1, c2)), f32x4.sub(t12, f32x4.sub(c2, c1)),
      f32x4.sub(t13, f32x4.sub(c1, c3)), d, vs, 3);
    d += 32;
  }
}

/**
 * The output transform of output channels o0 .. o0 + 3 and tiles q .. q + 7 from the
 * products m (m + xi * 128 + r * 32 + lane * 4: channel o0 + r, tile q + lane), plus bias.
 * A^T = [1 1 1 0; 0 1 -1 -1], applied to the columns, then to the rows.
 */
function transformOutput(s: ConvShape, bias: usize, output: usize, o0: i32, q: i32, total: i32, m: usize, scratch: usize): void {
  const outC = s.outC;
  const oh = s.outH;
  const ow = s.outW;
  const ohw = <usize>(oh * ow) << 2;
  const tW = (ow + 1) >> 1;
  const tpi = ((oh + 1) >> 1) * tW;
  const rows = min(4, outC - o0);
  for (let h = 0; h < 2; h++) {
    const qh = q + h * 4;
    if (qh >= total) break;
    const n = qh / tpi;
    const rem = qh - n * tpi;
    const ty = rem / tW;
    const tx = rem - ty * tW;
    const fast = qh + 3 < total && 2 * tx + 8 <= ow && 2 * ty + 2 <= oh;
    const mh = m + (<usize>h << 4);
    for (let r = 0; r < rows; r++) {
      const o = o0 + r;
      const mr = mh + (<usize>r << 5);
      // Columns: s0j = m0j + m1j + m2j, s1j = m1j - m2j - m3j.
      let m0 = v128.load(mr);
      let m1 = v128.load(mr, 512);
      let m2 = v128.load(mr, 1024);
      let m3 = v128.load(mr, 1536);
      const s00 = f32x4.add(f32x4.add(m0, m1), m2);
      const s10 = f32x4.sub(f32x4.sub(m1, m2), m3);
      m0 = v128.load(mr, 128);
      m1 = v128.load(mr, 640);
      m2 = v128.load(mr, 1152);
      m3 = v128.load(mr, 1664);
      const s01 = f32x4.add(f32x4.add(m0, m1), m2);
      const s11 = f32x4.sub(f32x4.sub(m1, m2), m3);
      m0 = v128.load(mr, 256);
      m1 = v128.load(mr, 768);
      m2 = v128.load(mr, 1280);
      m3 = v128.load(mr, 1792);
      const s02 = f32x4.add(f32x4.add(m0, m1), m2);
      const s12 = f32x4.sub(f32x4.sub(m1, m2), m3);
      m0 = v128.load(mr, 384);
      m1 = v128.load(mr, 896);
      m2 = v128.load(mr, 1408);
      m3 = v128.load(mr, 1920);
      const s03 = f32x4.add(f32x4.add(m0, m1), m2);
      const s13 = f32x4.sub(f32x4.sub(m1, m2), m3);
      const vb = f32x4.splat(bias ? load<f32>(bias + (<usize>o << 2)) : 0);
      const y00 = f32x4.add(f32x4.add(f32x4.add(s00, s01), s02), vb);
      const y01 = f32x4.add(f32x4.sub(f32x4.sub(s01, s02), s03), vb);
      const y10 = f32x4.add(f32x4.add(f32x4.add(s10, s11), s12), vb);
      const y11 = f32x4.add(f32x4.sub(f32x4.sub(s11, s12), s13), vb);
      if (fast) {
        const p = output + <usize>(n * outC + o) * ohw + (<usize>(2 * ty * ow + 2 * tx) << 2);
        v128.store(p, v128.shuffle<f32>(y00, y01, 0, 4, 1, 5));
        v128.store(p, v128.shuffle<f32>(y00, y01, 2, 6, 3, 7), 16);
        const p1 = p + (<usize>ow << 2);
        v128.store(p1, v128.shuffle<f32>(y10, y11, 0, 4, 1, 5));
        v128.store(p1, v128.shuffle<f32>(y10, y11, 2, 6, 3, 7), 16);
        continue;
      }
      v128.store(scratch, y00);
      v128.store(scratch, y01, 16);
      v128.store(scratch, y10, 32);
      v128.store(scratch, y11, 48);
      for (let k = 0; k < 4; k++) {
        const qk = qh + k;
        if (qk >= total) break;
        const nk = qk / tpi;
        const rk = qk - nk * tpi;
        const yk = rk / tW;
        const xk = rk - yk * tW;
        const plane = output + <usize>(nk * outC + o) * ohw;
        for (let dy = 0; dy < 2; dy++) {
          const oy = 2 * yk + dy;
          if (oy >= oh) break;
          for (let dx = 0; dx < 2; dx++) {
            const ox = 2 * xk + dx;
            if (ox >= ow) break;
            store<f32>(plane + (<usize>(oy * ow + ox) << 2), load<f32>(scratch + (<usize>((dy * 2 + dx) * 4 + k) << 2)));
          }
        }
      }
    }
  }
}

/** Thread tid's share of output = conv(input, weight) + bias (bias 0: none); w: this thread's workspace. */
export function winogradForward(tid: i32, nthreads: i32, s: ConvShape, input: usize, weight: usize, bias: usize,
                                output: usize, w: usize): void {
  const inC = s.inC;
  const oc4 = (s.outC + 3) & ~3;
  const total = tilesTotal(s);
  const lo = partLo(total, 8, tid, nthreads);
  const hi = partLo(total, 8, tid + 1, nthreads);
  if (lo >= hi) return;
  const tb = blockSlivers(s);
  const us = <usize>inC << 4; //  bytes per position of a filter sliver
  const vs = <usize>inC << 5; //  bytes per position of a tile sliver
  const u = align64(w);
  const v = align64(u + <usize>(oc4 * 16) * us / 4);
  const m = align64(v + <usize>(tb * 16) * vs);
  const scratch = m + 2048;
  transformFilter(s, weight, u);
  for (let q0 = lo; q0 < hi; q0 += tb * 8) {
    const nsl = min(tb, (hi - q0 + 7) >> 3);
    for (let j = 0; j < nsl; j++) {
      const vj = v + <usize>(j * 16) * vs;
      transformInputQuad(s, input, q0 + j * 8, total, vj, vs, scratch);
      transformInputQuad(s, input, q0 + j * 8 + 4, total, vj + 16, vs, scratch);
    }
    for (let o0 = 0; o0 < oc4; o0 += 4) {
      const ui = u + <usize>(o0 * 4) * us;
      for (let j = 0; j < nsl; j++) {
        const vj = v + <usize>(j * 16) * vs;
        for (let x = 0; x < 16; x++) {
          kernel4x8(inC, ui + <usize>x * us, vj + <usize>x * vs, m + (<usize>x << 7), 32, SET, 0);
        }
        transformOutput(s, bias, output, o0, q0 + j * 8, total, m, scratch);
      }
    }
  }
}
