//! im2col / col2im over a strip of output rows.
//!
//! The column matrix of one group of one image, restricted to output rows [y0, y1), is
//! K x ns with K = channels * kH * kW (row r = (c * kH + ky) * kW + kx) and
//! ns = (y1 - y0) * outW (column = (y - y0) * outW + x), so the GEMM of a strip writes
//! straight into rows y0..y1 of every output plane. For each (kx) the range of output
//! columns whose input column is inside the image is computed once; each output row is
//! then a zero prefix, a contiguous copy (stride 1) or a strided gather, and a zero suffix,
//! with no per-element branching.

use std::ops::Range;

/// Geometry of one group's im2col.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ColGeom {
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_h: usize,
    pub pad_w: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
    pub out_h: usize,
    pub out_w: usize,
}

/// For kernel column kx: output columns [lo, hi) read input columns ix0, ix0 + stride, ...;
/// the others read padding.
#[derive(Clone, Copy, Debug)]
struct XSpan {
    lo: usize,
    hi: usize,
    ix0: usize,
}

impl ColGeom {
    pub fn kernel_area(&self) -> usize {
        self.k_h * self.k_w
    }
    pub fn plane(&self) -> usize {
        self.in_h * self.in_w
    }

    fn x_span(&self, kx: usize) -> XSpan {
        // Input column of output column x: x * sw + off, off = kx * dw - pw.
        let off = (kx * self.dilation_w) as isize - self.pad_w as isize;
        let sw = self.stride_w as isize;
        let ow = self.out_w as isize;
        let lo = if off >= 0 { 0 } else { ((-off + sw - 1) / sw).min(ow) };
        let room = self.in_w as isize - off; // need x * sw < room
        let hi = if room <= 0 { 0 } else { ((room + sw - 1) / sw).min(ow) };
        let hi = hi.max(lo);
        let ix0 = if hi > lo { lo * sw + off } else { 0 };
        XSpan { lo: lo as usize, hi: hi as usize, ix0: ix0 as usize }
    }

    /// Input row read by output row y at kernel row ky, if inside the image.
    #[inline]
    fn in_row(&self, y: usize, ky: usize) -> Option<usize> {
        let iy = (y * self.stride_h + ky * self.dilation_h).checked_sub(self.pad_h)?;
        (iy < self.in_h).then_some(iy)
    }
}

/// Fills the column rows of channels `chans` (a chunk of K rows: chans.len() * kH * kW rows
/// of ns) for output rows `rows`. `input` holds all `g.channels` planes of the group.
pub(crate) fn im2col(g: &ColGeom, input: &[f32], chans: Range<usize>, rows: Range<usize>, col: &mut [f32]) {
    let ow = g.out_w;
    let ns = rows.len() * ow;
    let plane = g.plane();
    debug_assert!(input.len() >= g.channels * plane);
    debug_assert!(rows.end <= g.out_h);
    debug_assert_eq!(col.len(), chans.len() * g.kernel_area() * ns);
    if ns == 0 {
        return;
    }
    let spans: Vec<XSpan> = (0..g.k_w).map(|kx| g.x_span(kx)).collect();
    let mut col_rows = col.chunks_exact_mut(ns);
    for c in chans {
        let src_plane = &input[c * plane..(c + 1) * plane];
        for ky in 0..g.k_h {
            for sp in &spans {
                let dst_row = col_rows.next().expect("column buffer too short");
                for (y, dst) in rows.clone().zip(dst_row.chunks_exact_mut(ow)) {
                    let Some(iy) = g.in_row(y, ky) else {
                        dst.fill(0.0);
                        continue;
                    };
                    let src = &src_plane[iy * g.in_w..(iy + 1) * g.in_w];
                    let (head, rest) = dst.split_at_mut(sp.lo);
                    let (mid, tail) = rest.split_at_mut(sp.hi - sp.lo);
                    head.fill(0.0);
                    tail.fill(0.0);
                    if g.stride_w == 1 {
                        mid.copy_from_slice(&src[sp.ix0..sp.ix0 + mid.len()]);
                    } else {
                        for (d, &s) in mid.iter_mut().zip(src[sp.ix0..].iter().step_by(g.stride_w)) {
                            *d = s;
                        }
                    }
                }
            }
        }
    }
}

/// Adds the column rows of channels `chans` (chans.len() * kH * kW rows of ns, output rows
/// `rows`) back into their input planes: `grad` holds the planes of exactly `chans`.
pub(crate) fn col2im_add(g: &ColGeom, col: &[f32], chans: Range<usize>, rows: Range<usize>, grad: &mut [f32]) {
    let ow = g.out_w;
    let ns = rows.len() * ow;
    let plane = g.plane();
    debug_assert_eq!(grad.len(), chans.len() * plane);
    debug_assert!(rows.end <= g.out_h);
    debug_assert_eq!(col.len(), chans.len() * g.kernel_area() * ns);
    if ns == 0 {
        return;
    }
    let spans: Vec<XSpan> = (0..g.k_w).map(|kx| g.x_span(kx)).collect();
    let mut col_rows = col.chunks_exact(ns);
    for dst_plane in grad.chunks_exact_mut(plane) {
        for ky in 0..g.k_h {
            for sp in &spans {
                let src_row = col_rows.next().expect("column buffer too short");
                for (y, src) in rows.clone().zip(src_row.chunks_exact(ow)) {
                    let Some(iy) = g.in_row(y, ky) else { continue };
                    let dst = &mut dst_plane[iy * g.in_w..(iy + 1) * g.in_w];
                    let mid = &src[sp.lo..sp.hi];
                    if g.stride_w == 1 {
                        for (d, &s) in dst[sp.ix0..sp.ix0 + mid.len()].iter_mut().zip(mid) {
                            *d += s;
                        }
                    } else {
                        for (d, &s) in dst[sp.ix0..].iter_mut().step_by(g.stride_w).zip(mid) {
                            *d += s;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::Rng;

    fn naive_col(g: &ColGeom, input: &[f32], rows: Range<usize>) -> Vec<f32> {
        let ns = rows.len() * g.out_w;
        let mut col = vec![0.0; g.channels * g.kernel_area() * ns];
        for c in 0..g.channels {
            for ky in 0..g.k_h {
                for kx in 0..g.k_w {
                    let r = (c * g.k_h + ky) * g.k_w + kx;
                    for (yy, y) in rows.clone().enumerate() {
                        for x in 0..g.out_w {
                            let iy = (y * g.stride_h + ky * g.dilation_h) as isize - g.pad_h as isize;
                            let ix = (x * g.stride_w + kx * g.dilation_w) as isize - g.pad_w as isize;
                            let v = if iy >= 0 && ix >= 0 && (iy as usize) < g.in_h && (ix as usize) < g.in_w {
                                input[c * g.plane() + iy as usize * g.in_w + ix as usize]
                            } else {
                                0.0
                            };
                            col[r * ns + yy * g.out_w + x] = v;
                        }
                    }
                }
            }
        }
        col
    }

    #[test]
    fn im2col_matches_naive_and_col2im_is_its_adjoint() {
        let mut rng = Rng::new(11);
        for case in 0..200 {
            let k_h = 1 + rng.below(4);
            let k_w = 1 + rng.below(4);
            let dilation_h = 1 + rng.below(3);
            let dilation_w = 1 + rng.below(3);
            let pad_h = rng.below(4);
            let pad_w = rng.below(4);
            let in_h = 1 + rng.below(9);
            let in_w = 1 + rng.below(9);
            if in_h + 2 * pad_h < dilation_h * (k_h - 1) + 1 || in_w + 2 * pad_w < dilation_w * (k_w - 1) + 1 {
                continue;
            }
            let stride_h = 1 + rng.below(3);
            let stride_w = 1 + rng.below(3);
            let out_h = (in_h + 2 * pad_h - dilation_h * (k_h - 1) - 1) / stride_h + 1;
            let out_w = (in_w + 2 * pad_w - dilation_w * (k_w - 1) - 1) / stride_w + 1;
            let g = ColGeom { channels: 1 + rng.below(3), in_h, in_w, k_h, k_w, stride_h, stride_w, pad_h, pad_w,
                              dilation_h, dilation_w, out_h, out_w };
            let input = rng.vec(g.channels * g.plane(), -1.0, 1.0);
            let y0 = rng.below(out_h);
            let y1 = y0 + 1 + rng.below(out_h - y0);
            let want = naive_col(&g, &input, y0..y1);
            let mut col = vec![f32::NAN; want.len()];
            im2col(&g, &input, 0..g.channels, y0..y1, &mut col);
            assert_eq!(col, want, "case {case}: {g:?} rows {y0}..{y1}");
            // Adjoint: <im2col(x), c> == <x, col2im(c)>.
            let c = rng.vec(col.len(), -1.0, 1.0);
            let mut back = vec![0.0; input.len()];
            col2im_add(&g, &c, 0..g.channels, y0..y1, &mut back);
            let lhs: f64 = col.iter().zip(&c).map(|(&a, &b)| a as f64 * b as f64).sum();
            let rhs: f64 = input.iter().zip(&back).map(|(&a, &b)| a as f64 * b as f64).sum();
            assert!((lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()), "case {case}: {lhs} vs {rhs}");
        }
    }
}

#[cfg(test)]
mod bench {
    use super::*;
    use std::time::Instant;

    /// im2col cost per element for VGG layers: `cargo test --release im2col_rate -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn im2col_rate() {
        for &(c, hw, rows) in &[(64usize, 32usize, 8usize), (64, 56, 5), (128, 56, 2)] {
            let g = ColGeom { channels: c, in_h: hw, in_w: hw, k_h: 3, k_w: 3, stride_h: 1, stride_w: 1, pad_h: 1, pad_w: 1,
                              dilation_h: 1, dilation_w: 1, out_h: hw, out_w: hw };
            let input: Vec<f32> = (0..c * hw * hw).map(|i| i as f32).collect();
            let mut col = vec![0.0f32; c * 9 * rows * hw];
            let strips = hw.div_ceil(rows);
            let mut best = f64::MAX;
            for _ in 0..20 {
                let t0 = Instant::now();
                for si in 0..strips {
                    let r = si * rows..((si + 1) * rows).min(hw);
                    let n = c * 9 * r.len() * hw;
                    im2col(&g, &input, 0..c, r, &mut col[..n]);
                }
                best = best.min(t0.elapsed().as_secs_f64());
            }
            let elems = (c * 9 * hw * hw) as f64;
            // GEMM flops per col element = 2 * outC (outC = c here).
            println!("im2col {c}ch {hw}x{hw} strips of {rows} rows: {:.3} ns/elem, {:.1} us/image \
                      (= GEMM time at {:.0} GFLOP/s)", best * 1e9 / elems, best * 1e6, 2.0 * c as f64 * elems / best * 1e-9);
        }
    }
}
