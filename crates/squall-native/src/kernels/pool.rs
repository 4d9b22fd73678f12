//! Max and average 2-D pooling, forward and backward, split over (image, channel) planes.
//!
//! Window of output (oy, ox): rows [oy*sH - padH, oy*sH - padH + kH) clipped to the input
//! (and, for the count_include_pad divisor, to the padded input), likewise for columns. The
//! output-size rule (ceil mode drops a window starting in the right/bottom padding) is
//! `shapes::pool_output_size`, which guarantees every window holds at least one input cell.

use super::par::{for_each_chunk, for_each_chunk2, tasks_for};
use super::shapes::Pool2dShape;

/// Window [start, end) of one output position along one axis: clipped to the input, and
/// the size of the window clipped to the padded input.
#[derive(Clone, Copy, Debug)]
struct Win {
    start: usize,
    end: usize,
    padded: usize,
}

fn windows(out: usize, input: usize, k: usize, stride: usize, pad: usize) -> Vec<Win> {
    (0..out)
        .map(|o| {
            let s = (o * stride) as isize - pad as isize;
            let e_pad = (s + k as isize).min((input + pad) as isize);
            let padded = (e_pad - s) as usize;
            let start = s.max(0) as usize;
            let end = (s + k as isize).min(input as isize).max(start as isize) as usize;
            Win { start, end, padded }
        })
        .collect()
}

struct Geo {
    plane_in: usize,
    plane_out: usize,
    rows: Vec<Win>,
    cols: Vec<Win>,
}

fn geo(s: &Pool2dShape) -> Geo {
    debug_assert!(s.validate().is_ok());
    let (oh, ow) = (s.out_h(), s.out_w());
    Geo {
        plane_in: s.in_h * s.in_w,
        plane_out: oh * ow,
        rows: windows(oh, s.in_h, s.k_h, s.stride_h, s.pad_h),
        cols: windows(ow, s.in_w, s.k_w, s.stride_w, s.pad_w),
    }
}

fn tasks(s: &Pool2dShape, g: &Geo) -> usize {
    let planes = s.batch * s.channels;
    tasks_for(planes, planes * (g.plane_in + g.plane_out * s.k_h * s.k_w))
}

/// output = max over each window; indices = h * inW + w of the first maximum in row-major
/// window order (a NaN counts as the maximum, the first NaN wins).
pub fn max_pool2d_forward(s: &Pool2dShape, input: &[f32], output: &mut [f32], indices: &mut [i32]) {
    debug_assert_eq!(input.len(), s.input_len());
    debug_assert_eq!(output.len(), s.output_len());
    debug_assert_eq!(indices.len(), s.output_len());
    let g = geo(s);
    let iw = s.in_w;
    // The commonest pooling (2x2, stride 2) with every window whole takes a straight path.
    let full2x2 = s.k_h == 2 && s.k_w == 2 && s.stride_h == 2 && s.stride_w == 2
        && g.rows.iter().chain(&g.cols).all(|w| w.end - w.start == 2);
    let ow = g.cols.len();
    for_each_chunk2(output, g.plane_out, indices, g.plane_out, tasks(s, &g), |planes, out, idx| {
        let mut hbest = vec![0.0f32; if full2x2 { 0 } else { s.in_h * ow }];
        let mut hidx = vec![0u32; hbest.len()];
        for (k, p) in planes.enumerate() {
            let plane = &input[p * g.plane_in..(p + 1) * g.plane_in];
            let out = &mut out[k * g.plane_out..(k + 1) * g.plane_out];
            let idx = &mut idx[k * g.plane_out..(k + 1) * g.plane_out];
            if full2x2 {
                max_pool_2x2_plane(plane, iw, g.rows.len(), g.cols.len(), out, idx);
                continue;
            }
            max_pool_plane_separable(plane, iw, &g, out, idx, &mut hbest, &mut hidx);
        }
    });
}

/// Max pooling of one plane in two passes. The first maximum in row-major window order
/// is the first maximum, over the window's rows in order, of each row's first maximum; so
/// pass 1 takes, for every input row and output column, the first maximum over the
/// window's columns (hbest / hidx), and pass 2 takes, for every output, the first maximum
/// of those over the window's rows. A NaN counts as the maximum and the first NaN wins, in
/// both passes. Pass 2 runs over consecutive outputs with branch-free selects.
fn max_pool_plane_separable(plane: &[f32], iw: usize, g: &Geo, out: &mut [f32], idx: &mut [i32], hbest: &mut [f32], hidx: &mut [u32]) {
    let ow = g.cols.len();
    #[allow(clippy::eq_op)]
    let better = |v: f32, best: f32| v > best || (v != v && best == best);
    let rows_used = g.rows.iter().map(|r| r.end).max().unwrap_or(0);
    let first_row = g.rows.iter().map(|r| r.start).min().unwrap_or(0);
    for y in first_row..rows_used {
        let row = &plane[y * iw..(y + 1) * iw];
        let hb = &mut hbest[y * ow..(y + 1) * ow];
        let hi = &mut hidx[y * ow..(y + 1) * ow];
        for (ox, c) in g.cols.iter().enumerate() {
            let mut b = row[c.start];
            let mut at = c.start;
            for x in c.start + 1..c.end {
                let v = row[x];
                let take = better(v, b);
                b = if take { v } else { b };
                at = if take { x } else { at };
            }
            hb[ox] = b;
            hi[ox] = (y * iw + at) as u32;
        }
    }
    for (oy, r) in g.rows.iter().enumerate() {
        let o = &mut out[oy * ow..(oy + 1) * ow];
        let ix = &mut idx[oy * ow..(oy + 1) * ow];
        o.copy_from_slice(&hbest[r.start * ow..(r.start + 1) * ow]);
        for (d, &src) in ix.iter_mut().zip(&hidx[r.start * ow..(r.start + 1) * ow]) {
            *d = src as i32;
        }
        for y in r.start + 1..r.end {
            let hb = &hbest[y * ow..(y + 1) * ow];
            let hi = &hidx[y * ow..(y + 1) * ow];
            for (((b, at), &v), &vi) in o.iter_mut().zip(ix.iter_mut()).zip(hb).zip(hi) {
                let take = better(v, *b);
                *b = if take { v } else { *b };
                *at = if take { vi as i32 } else { *at };
            }
        }
    }
}

/// 2x2 / stride-2 max pooling of one plane whose windows all lie inside it (row oy reads
/// input rows 2oy and 2oy+1). Same tie and NaN rules as the general loop: candidates in
/// row-major window order, a later one wins only if greater, or NaN over a non-NaN.
fn max_pool_2x2_plane(plane: &[f32], iw: usize, oh: usize, ow: usize, out: &mut [f32], idx: &mut [i32]) {
    #[allow(clippy::eq_op)]
    let better = |v: f32, best: f32| v > best || (v != v && best == best);
    for oy in 0..oh {
        let r0 = &plane[2 * oy * iw..2 * oy * iw + 2 * ow];
        let r1 = &plane[(2 * oy + 1) * iw..(2 * oy + 1) * iw + 2 * ow];
        let o = &mut out[oy * ow..(oy + 1) * ow];
        let ix = &mut idx[oy * ow..(oy + 1) * ow];
        for ox in 0..ow {
            let base = 2 * oy * iw + 2 * ox;
            let (mut best, mut at) = (r0[2 * ox], base);
            if better(r0[2 * ox + 1], best) {
                best = r0[2 * ox + 1];
                at = base + 1;
            }
            if better(r1[2 * ox], best) {
                best = r1[2 * ox];
                at = base + iw;
            }
            if better(r1[2 * ox + 1], best) {
                best = r1[2 * ox + 1];
                at = base + iw + 1;
            }
            o[ox] = best;
            ix[ox] = at as i32;
        }
    }
}

/// grad_input = scatter-add of grad_output to the saved indices (overwrites grad_input).
/// Indices outside the plane are ignored.
pub fn max_pool2d_backward(s: &Pool2dShape, grad_output: &[f32], indices: &[i32], grad_input: &mut [f32]) {
    debug_assert_eq!(grad_output.len(), s.output_len());
    debug_assert_eq!(indices.len(), s.output_len());
    debug_assert_eq!(grad_input.len(), s.input_len());
    let g = geo(s);
    let planes = s.batch * s.channels;
    let t = tasks_for(planes, planes * (g.plane_in + g.plane_out));
    for_each_chunk(grad_input, g.plane_in, t, |planes, gin| {
        gin.fill(0.0);
        for (k, p) in planes.enumerate() {
            let gi = &mut gin[k * g.plane_in..(k + 1) * g.plane_in];
            let go = &grad_output[p * g.plane_out..(p + 1) * g.plane_out];
            let ix = &indices[p * g.plane_out..(p + 1) * g.plane_out];
            for (&v, &i) in go.iter().zip(ix) {
                if let Some(d) = usize::try_from(i).ok().and_then(|i| gi.get_mut(i)) {
                    *d += v;
                }
            }
        }
    });
}

fn divisor(s: &Pool2dShape, r: &Win, c: &Win) -> f32 {
    if s.count_include_pad {
        (r.padded * c.padded) as f32
    } else {
        ((r.end - r.start) * (c.end - c.start)) as f32
    }
}

/// output = mean over each window (divisor per count_include_pad).
pub fn avg_pool2d_forward(s: &Pool2dShape, input: &[f32], output: &mut [f32]) {
    debug_assert_eq!(input.len(), s.input_len());
    debug_assert_eq!(output.len(), s.output_len());
    let g = geo(s);
    let iw = s.in_w;
    for_each_chunk(output, g.plane_out, tasks(s, &g), |planes, out| {
        for (k, p) in planes.enumerate() {
            let plane = &input[p * g.plane_in..(p + 1) * g.plane_in];
            let mut cells = out[k * g.plane_out..(k + 1) * g.plane_out].iter_mut();
            for r in &g.rows {
                for c in &g.cols {
                    let mut sum = 0.0f32;
                    for y in r.start..r.end {
                        sum += plane[y * iw + c.start..y * iw + c.end].iter().sum::<f32>();
                    }
                    *cells.next().expect("output plane too short") = sum / divisor(s, r, c);
                }
            }
        }
    });
}

/// grad_input = each grad_output cell spread evenly over its window (overwrites grad_input).
pub fn avg_pool2d_backward(s: &Pool2dShape, grad_output: &[f32], grad_input: &mut [f32]) {
    debug_assert_eq!(grad_output.len(), s.output_len());
    debug_assert_eq!(grad_input.len(), s.input_len());
    let g = geo(s);
    let iw = s.in_w;
    for_each_chunk(grad_input, g.plane_in, tasks(s, &g), |planes, gin| {
        gin.fill(0.0);
        for (k, p) in planes.enumerate() {
            let gi = &mut gin[k * g.plane_in..(k + 1) * g.plane_in];
            let mut go = grad_output[p * g.plane_out..(p + 1) * g.plane_out].iter();
            for r in &g.rows {
                for c in &g.cols {
                    let v = *go.next().expect("grad_output plane too short") / divisor(s, r, c);
                    for y in r.start..r.end {
                        for d in &mut gi[y * iw + c.start..y * iw + c.end] {
                            *d += v;
                        }
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, Rng};

    type Refs = (Vec<f64>, Vec<i32>, Vec<f64>, Vec<f64>, Vec<f64>);

    /// Plain reference straight from the definitions in backend.ts.
    fn reference(s: &Pool2dShape, x: &[f32], go: &[f32]) -> Refs {
        let (oh, ow) = (s.out_h(), s.out_w());
        let planes = s.batch * s.channels;
        let (mut ymax, mut imax, mut gmax) = (vec![0.0; planes * oh * ow], vec![0; planes * oh * ow], vec![0.0; x.len()]);
        let (mut yavg, mut gavg) = (vec![0.0; planes * oh * ow], vec![0.0; x.len()]);
        for p in 0..planes {
            for oy in 0..oh {
                for ox in 0..ow {
                    let o = (p * oh + oy) * ow + ox;
                    let (mut best, mut bi, mut sum, mut real, mut padded) = (f64::NEG_INFINITY, -1i64, 0.0f64, 0, 0);
                    for ky in 0..s.k_h {
                        for kx in 0..s.k_w {
                            let iy = (oy * s.stride_h + ky) as i64 - s.pad_h as i64;
                            let ix = (ox * s.stride_w + kx) as i64 - s.pad_w as i64;
                            if iy < (s.in_h + s.pad_h) as i64 && ix < (s.in_w + s.pad_w) as i64 {
                                padded += 1;
                            }
                            if iy < 0 || ix < 0 || iy >= s.in_h as i64 || ix >= s.in_w as i64 {
                                continue;
                            }
                            real += 1;
                            let v = x[p * s.in_h * s.in_w + (iy as usize) * s.in_w + ix as usize] as f64;
                            sum += v;
                            if v > best {
                                best = v;
                                bi = iy * s.in_w as i64 + ix;
                            }
                        }
                    }
                    assert!(real > 0);
                    ymax[o] = best;
                    imax[o] = bi as i32;
                    gmax[p * s.in_h * s.in_w + bi as usize] += go[o] as f64;
                    let div = if s.count_include_pad { padded } else { real } as f64;
                    yavg[o] = sum / div;
                    for ky in 0..s.k_h {
                        for kx in 0..s.k_w {
                            let iy = (oy * s.stride_h + ky) as i64 - s.pad_h as i64;
                            let ix = (ox * s.stride_w + kx) as i64 - s.pad_w as i64;
                            if iy >= 0 && ix >= 0 && iy < s.in_h as i64 && ix < s.in_w as i64 {
                                gavg[p * s.in_h * s.in_w + (iy as usize) * s.in_w + ix as usize] += go[o] as f64 / div;
                            }
                        }
                    }
                }
            }
        }
        (ymax, imax, gmax, yavg, gavg)
    }

    fn check(s: &Pool2dShape, rng: &mut Rng) {
        assert!(s.validate().is_ok(), "{s:?}");
        // Values on a coarse grid so ties happen.
        let x: Vec<f32> = (0..s.input_len()).map(|_| rng.below(7) as f32 - 3.0).collect();
        let go = rng.vec(s.output_len(), -1.0, 1.0);
        let (ymax, imax, gmax, yavg, gavg) = reference(s, &x, &go);
        let mut y = vec![f32::NAN; s.output_len()];
        let mut idx = vec![-7; s.output_len()];
        max_pool2d_forward(s, &x, &mut y, &mut idx);
        assert_close(&y, &ymax, 0.0);
        assert_eq!(idx, imax, "{s:?}");
        let mut gi = vec![f32::NAN; s.input_len()];
        max_pool2d_backward(s, &go, &idx, &mut gi);
        assert_close(&gi, &gmax, 1e-6);
        avg_pool2d_forward(s, &x, &mut y);
        assert_close(&y, &yavg, 1e-6);
        avg_pool2d_backward(s, &go, &mut gi);
        assert_close(&gi, &gavg, 1e-6);
    }

    #[test]
    fn ceil_mode_and_padding() {
        let mut rng = Rng::new(31);
        let mut done = 0;
        while done < 300 {
            let k_h = 1 + rng.below(4);
            let k_w = 1 + rng.below(4);
            let s = Pool2dShape { batch: 1 + rng.below(2), channels: 1 + rng.below(3), in_h: 1 + rng.below(9),
                                  in_w: 1 + rng.below(9), k_h, k_w, stride_h: 1 + rng.below(3), stride_w: 1 + rng.below(3),
                                  pad_h: rng.below(k_h / 2 + 1), pad_w: rng.below(k_w / 2 + 1),
                                  ceil_mode: rng.below(2) == 1, count_include_pad: rng.below(2) == 1 };
            if s.validate().is_err() {
                continue;
            }
            check(&s, &mut rng);
            done += 1;
        }
        // Caffe/GoogLeNet-style 3x3 stride 2 ceil on an odd size, and a big case (parallel path).
        let s = Pool2dShape { batch: 2, channels: 64, in_h: 57, in_w: 57, k_h: 3, k_w: 3, stride_h: 2, stride_w: 2,
                              pad_h: 0, pad_w: 0, ceil_mode: true, count_include_pad: true };
        assert_eq!(s.out_h(), 28);
        check(&s, &mut rng);
        // Ceil mode dropping a window that would start in the padding: in 5, k 2, s 2, pad 1.
        let s = Pool2dShape { batch: 1, channels: 1, in_h: 5, in_w: 4, k_h: 2, k_w: 2, stride_h: 2, stride_w: 2,
                              pad_h: 1, pad_w: 1, ceil_mode: true, count_include_pad: true };
        assert_eq!((s.out_h(), s.out_w()), (3, 3));
        check(&s, &mut rng);
    }

    #[test]
    fn count_include_pad_divisor_clipped_to_padded_input() {
        // 1-D-like: in 4, k 3, s 2, pad 1, ceil -> out 3; last window [3, 6) clipped to the
        // padded input [-1, 5) covers 2 cells (one real, one pad).
        let s = Pool2dShape { batch: 1, channels: 1, in_h: 1, in_w: 4, k_h: 1, k_w: 3, stride_h: 1, stride_w: 2,
                              pad_h: 0, pad_w: 1, ceil_mode: true, count_include_pad: true };
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut y = vec![0.0; s.output_len()];
        avg_pool2d_forward(&s, &x, &mut y);
        assert_eq!(y, vec![3.0 / 3.0, 9.0 / 3.0, 4.0 / 2.0]);
        let s2 = Pool2dShape { count_include_pad: false, ..s };
        avg_pool2d_forward(&s2, &x, &mut y);
        assert_eq!(y, vec![3.0 / 2.0, 9.0 / 3.0, 4.0 / 1.0]);
    }

    #[test]
    fn max_nan_and_first_tie() {
        let s = Pool2dShape { batch: 1, channels: 1, in_h: 2, in_w: 2, k_h: 2, k_w: 2, stride_h: 2, stride_w: 2,
                              pad_h: 0, pad_w: 0, ceil_mode: false, count_include_pad: true };
        let mut y = [0.0];
        let mut i = [0];
        max_pool2d_forward(&s, &[1.0, 5.0, 5.0, 2.0], &mut y, &mut i);
        assert_eq!((y[0], i[0]), (5.0, 1));
        max_pool2d_forward(&s, &[1.0, f32::NAN, 3.0, f32::NAN], &mut y, &mut i);
        assert!(y[0].is_nan());
        assert_eq!(i[0], 1);
        let mut gi = [9.0; 4];
        max_pool2d_backward(&s, &[2.0], &[-1], &mut gi);
        assert_eq!(gi, [0.0; 4]);
    }
}

#[cfg(test)]
mod pool_bench {
    use super::*;

    /// `cargo test --release pool_speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn pool_speed() {
        for &(c, hw, k, st, pad) in &[(192usize, 28usize, 3usize, 1usize, 1usize), (64, 112, 3, 2, 0), (6, 24, 2, 2, 0)] {
            let s = Pool2dShape { batch: 8, channels: c, in_h: hw, in_w: hw, k_h: k, k_w: k, stride_h: st, stride_w: st, pad_h: pad, pad_w: pad,
                ceil_mode: true, count_include_pad: false };
            let x: Vec<f32> = (0..s.batch * c * hw * hw).map(|i| ((i * 7919) % 1000) as f32).collect();
            let mut y = vec![0.0f32; s.batch * c * s.out_h() * s.out_w()];
            let mut ix = vec![0i32; y.len()];
            let t = std::time::Instant::now();
            for _ in 0..10 {
                max_pool2d_forward(&s, &x, &mut y, &mut ix);
            }
            println!("{c}x{hw} k{k} s{st}: {:.2} ms", t.elapsed().as_secs_f64() * 100.0);
        }
    }
}
