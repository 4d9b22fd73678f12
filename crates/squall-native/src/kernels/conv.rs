//! 2-D convolution by im2col + GEMM, per image and group, over strips of output rows.
//!
//! Layouts (backend.ts): input [N, C, H, W], weight [outC, inC/groups, kH, kW], output
//! [N, outC, outH, outW]. For group g of one image, with K = inC/groups * kH * kW:
//!   forward        out_g[outC/g, rows]  = W_g[outC/g, K] * col[K, rows]
//!   backward data  col[K, rows]         = W_g^T * gout_g[outC/g, rows];  col2im into gin
//!   backward filt  gW_g[outC/g, K]     += gout_g[outC/g, rows] * col^T
//! The column matrix is built for a strip of output rows at a time (sized to stay in L2),
//! and the GEMM reads/writes the output planes in place through ldc = outH * outW. A 1x1,
//! stride-1, unpadded convolution uses the input planes directly as the column matrix.
//!
//! 3x3 stride-1 layers take Winograd F(2x2, 3x3) instead (winograd.rs) in forward and
//! backward data, where SQUALL_NATIVE_CONV / set_conv_algorithm and the shape say so.
//!
//! Threads (details at each entry point): forward spreads whole images over the pool when
//! the batch fills it evenly, else (image, group, strip) items; backward-data splits the
//! input-gradient planes; backward-filter gives every task a fixed range of items and its
//! own partial gradient, added in task order. A GEMM inside a pool task runs on one thread;
//! when there is too little work to split, the GEMM itself uses the threads. Every result
//! is independent of scheduling (backward-filter's summation order depends only on the
//! thread count).

use super::conv_batched;
use super::im2col::{col2im_add, im2col, ColGeom};
use super::par::{collect, for_each_chunk, task_range, tasks_for, with_workspace, LockedChunks};
use super::shapes::Conv2dShape;
use super::winograd;
use crate::blas::sgemm;
use crate::determinism::plan_threads;
use crate::parallel::parallel_for;
use std::ops::Range;

/// Column-matrix budget per thread, in floats (512 KiB: half of a 1 MiB L2).
const COL_BUDGET: usize = 128 * 1024;
/// Fewest GEMM columns per strip (narrower strips lose GEMM efficiency).
const MIN_STRIP_COLS: usize = 256;

#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    pub(super) groups: usize,
    pub(super) cin_g: usize,
    pub(super) cout_g: usize,
    /// K = cin_g * kH * kW.
    pub(super) kdim: usize,
    pub(super) ihw: usize,
    pub(super) ow: usize,
    pub(super) oh: usize,
    pub(super) ohw: usize,
    pub(super) in_img: usize,
    pub(super) out_img: usize,
    pub(super) pointwise: bool,
    pub(super) geom: ColGeom,
}

impl Plan {
    pub(super) fn new(s: &Conv2dShape) -> Plan {
        let (oh, ow) = (s.out_h(), s.out_w());
        let cin_g = s.in_c / s.groups;
        let pointwise = s.k_h == 1 && s.k_w == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0;
        Plan {
            groups: s.groups,
            cin_g,
            cout_g: s.out_c / s.groups,
            kdim: cin_g * s.k_h * s.k_w,
            ihw: s.in_h * s.in_w,
            ow,
            oh,
            ohw: oh * ow,
            in_img: s.in_c * s.in_h * s.in_w,
            out_img: s.out_c * oh * ow,
            pointwise,
            geom: ColGeom {
                channels: cin_g,
                in_h: s.in_h,
                in_w: s.in_w,
                k_h: s.k_h,
                k_w: s.k_w,
                stride_h: s.stride_h,
                stride_w: s.stride_w,
                pad_h: s.pad_h,
                pad_w: s.pad_w,
                dilation_h: s.dilation_h,
                dilation_w: s.dilation_w,
                out_h: oh,
                out_w: ow,
            },
        }
    }

    /// Output rows per strip for a column budget of `budget` floats.
    fn strip_rows(&self, budget: usize) -> usize {
        let cols = (budget / self.kdim.max(1)).max(MIN_STRIP_COLS);
        cols.div_ceil(self.ow).clamp(1, self.oh)
    }

    fn strips(&self, rows: usize) -> usize {
        self.oh.div_ceil(rows)
    }

    fn strip(&self, rows: usize, i: usize) -> Range<usize> {
        let y0 = i * rows;
        y0..(y0 + rows).min(self.oh)
    }

    pub(super) fn weight_g<'a>(&self, weight: &'a [f32], g: usize) -> &'a [f32] {
        &weight[g * self.cout_g * self.kdim..(g + 1) * self.cout_g * self.kdim]
    }
}

/// Whether `items` equal work items keep `t` threads at least 85% busy.
pub(super) fn balanced(items: usize, t: usize) -> bool {
    t > 1 && items >= t && items * 100 >= 85 * t * items.div_ceil(t)
}

/// Length of a row-major m x n matrix stored with row stride ld.
fn span(m: usize, n: usize, ld: usize) -> usize {
    if m == 0 || n == 0 {
        0
    } else {
        (m - 1) * ld + n
    }
}

/// Fills col (K x ns) for group input planes `inp` and output rows `rows`; the channels
/// are split over the pool when `par`.
fn fill_col(p: &Plan, inp: &[f32], rows: Range<usize>, col: &mut [f32], par: bool) {
    let ns = rows.len() * p.ow;
    let per_chan = p.geom.kernel_area() * ns;
    let tasks = if par { tasks_for(p.cin_g, p.cin_g * per_chan) } else { 1 };
    for_each_chunk(col, per_chan, tasks, |chans, chunk| im2col(&p.geom, inp, chans, rows.clone(), chunk));
}

/// out_g[cout_g rows with stride ohw, columns of output rows r] = W_g * col(r), via `col`
/// (unused when pointwise). `c` starts at the strip's first element of channel 0; `ldc` its stride.
#[allow(clippy::too_many_arguments)]
fn forward_strip(p: &Plan, inp_g: &[f32], w_g: &[f32], r: Range<usize>, col: &mut [f32], c: &mut [f32], ldc: usize,
                 par: bool) {
    let ns = r.len() * p.ow;
    let off = r.start * p.ow;
    if p.pointwise {
        let b = &inp_g[off..off + span(p.cin_g, ns, p.ihw)];
        sgemm(false, false, p.cout_g, ns, p.kdim, 1.0, w_g, p.kdim, b, p.ihw, 0.0, c, ldc);
    } else {
        let col = &mut col[..p.kdim * ns];
        fill_col(p, inp_g, r, col, par);
        sgemm(false, false, p.cout_g, ns, p.kdim, 1.0, w_g, p.kdim, col, ns, 0.0, c, ldc);
    }
}

fn add_bias(out_g: &mut [f32], stride: usize, len: usize, bias_g: &[f32]) {
    for (co, &bv) in bias_g.iter().enumerate() {
        for v in &mut out_g[co * stride..co * stride + len] {
            *v += bv;
        }
    }
}

/// One image, all groups and strips, writing the output planes in place.
#[allow(clippy::too_many_arguments)]
fn forward_image(p: &Plan, rows: usize, inp: &[f32], weight: &[f32], bias: Option<&[f32]>, out: &mut [f32],
                 col: &mut [f32], par: bool) {
    for g in 0..p.groups {
        let inp_g = &inp[g * p.cin_g * p.ihw..(g + 1) * p.cin_g * p.ihw];
        let w_g = p.weight_g(weight, g);
        let out_g = &mut out[g * p.cout_g * p.ohw..(g + 1) * p.cout_g * p.ohw];
        let strip_rows = if p.pointwise { p.oh } else { rows };
        for si in 0..p.strips(strip_rows) {
            let r = p.strip(strip_rows, si);
            let off = r.start * p.ow;
            let c = &mut out_g[off..off + span(p.cout_g, r.len() * p.ow, p.ohw)];
            forward_strip(p, inp_g, w_g, r, col, c, p.ohw, par);
        }
        if let Some(b) = bias {
            add_bias(out_g, p.ohw, p.ohw, &b[g * p.cout_g..(g + 1) * p.cout_g]);
        }
    }
}

/// output = conv(input, weight) + bias (overwrites output).
///
/// Threads: whole images per task when the batch fills the pool evenly; otherwise
/// (image, group, strip) items per task, each computing a tile in its own workspace and
/// copying it into the output; with too few items, one image at a time with im2col split
/// over channels and the GEMM using the threads.
pub fn conv2d_forward(s: &Conv2dShape, input: &[f32], weight: &[f32], bias: Option<&[f32]>, output: &mut [f32]) {
    debug_assert!(s.validate().is_ok());
    debug_assert_eq!(input.len(), s.input_len());
    debug_assert_eq!(weight.len(), s.weight_len());
    debug_assert_eq!(output.len(), s.output_len());
    debug_assert!(bias.is_none_or(|b| b.len() == s.out_c));
    if winograd::use_forward(s) {
        return winograd::forward(s, input, weight, bias, output);
    }
    let p = Plan::new(s);
    if conv_batched::applies(s, &p) {
        return conv_batched::forward(s, &p, input, weight, bias, output);
    }
    let t = plan_threads();
    let rows = p.strip_rows(COL_BUDGET);
    let col_len = if p.pointwise { 0 } else { p.kdim * rows * p.ow };
    let items = s.batch * p.groups * p.strips(rows);
    if balanced(s.batch, t) {
        for_each_chunk(output, p.out_img, s.batch, |imgs, out| {
            with_workspace(col_len, |col| {
                for (k, b) in imgs.enumerate() {
                    let inp = &input[b * p.in_img..(b + 1) * p.in_img];
                    let o = &mut out[k * p.out_img..(k + 1) * p.out_img];
                    forward_image(&p, rows, inp, weight, bias, o, col, false);
                }
            })
        });
    } else if balanced(items, t) {
        let strips = p.strips(rows);
        let outs = LockedChunks::new(output, p.out_img);
        parallel_for(items, |item| {
            let (b, g, si) = (item / strips / p.groups, (item / strips) % p.groups, item % strips);
            let r = p.strip(rows, si);
            let ns = r.len() * p.ow;
            let off = r.start * p.ow;
            let inp_g = &input[b * p.in_img + g * p.cin_g * p.ihw..b * p.in_img + (g + 1) * p.cin_g * p.ihw];
            with_workspace(col_len + p.cout_g * rows * p.ow, |ws| {
                let (col, tile) = ws.split_at_mut(col_len);
                let tile = &mut tile[..p.cout_g * ns];
                forward_strip(&p, inp_g, p.weight_g(weight, g), r, col, tile, ns, false);
                if let Some(bias) = bias {
                    add_bias(tile, ns, ns, &bias[g * p.cout_g..(g + 1) * p.cout_g]);
                }
                outs.with(b, |out| {
                    let out_g = &mut out[g * p.cout_g * p.ohw..(g + 1) * p.cout_g * p.ohw];
                    for (dst, src) in out_g.chunks_exact_mut(p.ohw).zip(tile.chunks_exact(ns)) {
                        dst[off..off + ns].copy_from_slice(src);
                    }
                });
            })
        });
    } else {
        let rows = p.strip_rows(COL_BUDGET * t);
        let col_len = if p.pointwise { 0 } else { p.kdim * rows * p.ow };
        with_workspace(col_len, |col| {
            for (b, o) in output.chunks_exact_mut(p.out_img).enumerate() {
                forward_image(&p, rows, &input[b * p.in_img..(b + 1) * p.in_img], weight, bias, o, col, true);
            }
        });
    }
}

/// Input-gradient planes of channels `chans` (within group g's channels) of one image:
/// col = W_g[:, chans]^T * gout_g per strip, then col2im into `gin` (those planes only).
#[allow(clippy::too_many_arguments)]
fn backward_data_run(p: &Plan, rows: usize, go_g: &[f32], w_g: &[f32], chans: Range<usize>, gin: &mut [f32],
                     col: &mut [f32]) {
    let area = p.geom.kernel_area();
    let m = chans.len() * area;
    let a = &w_g[chans.start * area..];
    if p.pointwise {
        sgemm(true, false, m, p.ohw, p.cout_g, 1.0, a, p.kdim, go_g, p.ohw, 0.0, gin, p.ihw);
        return;
    }
    gin.fill(0.0);
    for si in 0..p.strips(rows) {
        let r = p.strip(rows, si);
        let ns = r.len() * p.ow;
        let off = r.start * p.ow;
        let col = &mut col[..m * ns];
        let b = &go_g[off..off + span(p.cout_g, ns, p.ohw)];
        sgemm(true, false, m, ns, p.cout_g, 1.0, a, p.kdim, b, p.ohw, 0.0, col, ns);
        col2im_add(&p.geom, col, chans.clone(), r, gin);
    }
}

/// grad_input = conv_transpose(grad_output, weight) (overwrites grad_input).
///
/// Threads: the input-gradient planes (image, channel) are split into one contiguous range
/// per thread; every plane is produced by exactly one task (its GEMM rows are the weight
/// columns of its channels), so the result is deterministic and needs no reduction.
pub fn conv2d_backward_data(s: &Conv2dShape, grad_output: &[f32], weight: &[f32], grad_input: &mut [f32]) {
    debug_assert!(s.validate().is_ok());
    debug_assert_eq!(grad_output.len(), s.output_len());
    debug_assert_eq!(weight.len(), s.weight_len());
    debug_assert_eq!(grad_input.len(), s.input_len());
    if winograd::use_backward_data(s) {
        return winograd::backward_data(s, grad_output, weight, grad_input);
    }
    let p = Plan::new(s);
    if conv_batched::applies(s, &p) {
        return conv_batched::backward_data(s, &p, grad_output, weight, grad_input);
    }
    let t = plan_threads();
    let planes = s.batch * s.in_c;
    let tasks = t.min(planes);
    let rows = p.strip_rows(if tasks > 1 { COL_BUDGET } else { COL_BUDGET * t });
    let col_len = if p.pointwise { 0 } else { p.kdim * rows * p.ow };
    for_each_chunk(grad_input, p.ihw, tasks, |range, chunk| {
        with_workspace(col_len, |col| {
            let mut pl = range.start;
            while pl < range.end {
                let (b, ch) = (pl / s.in_c, pl % s.in_c);
                let (g, c0) = (ch / p.cin_g, ch % p.cin_g);
                let run_end = range.end.min(b * s.in_c + (g + 1) * p.cin_g);
                let gin = &mut chunk[(pl - range.start) * p.ihw..(run_end - range.start) * p.ihw];
                let go_g = &grad_output[b * p.out_img + g * p.cout_g * p.ohw..b * p.out_img + (g + 1) * p.cout_g * p.ohw];
                backward_data_run(&p, rows, go_g, p.weight_g(weight, g), c0..c0 + (run_end - pl), gin, col);
                pl = run_end;
            }
        })
    });
}

/// Accumulates the filter (and bias) gradient of work items [items) into gw / gb, where
/// item = (image * groups + group) * strips + strip.
#[allow(clippy::too_many_arguments)]
fn backward_filter_items(p: &Plan, rows: usize, items: Range<usize>, input: &[f32], gout: &[f32],
                         gw: &mut [f32], gb: Option<&mut [f64]>, col: &mut [f32], par: bool) {
    let strips = p.strips(rows);
    let mut gb = gb;
    for item in items {
        let si = item % strips;
        let g = (item / strips) % p.groups;
        let b = item / strips / p.groups;
        let r = p.strip(rows, si);
        let ns = r.len() * p.ow;
        let inp_g = &input[b * p.in_img + g * p.cin_g * p.ihw..b * p.in_img + (g + 1) * p.cin_g * p.ihw];
        let go_g = &gout[b * p.out_img + g * p.cout_g * p.ohw..b * p.out_img + (g + 1) * p.cout_g * p.ohw];
        let off = r.start * p.ow;
        let a = &go_g[off..off + span(p.cout_g, ns, p.ohw)];
        let gw_g = &mut gw[g * p.cout_g * p.kdim..(g + 1) * p.cout_g * p.kdim];
        if p.pointwise {
            // Input plane rows r are the column matrix (outW == inW): B^T = input[cin_g, ns] with ld ihw.
            let bt = &inp_g[off..off + span(p.cin_g, ns, p.ihw)];
            sgemm(false, true, p.cout_g, p.kdim, ns, 1.0, a, p.ohw, bt, p.ihw, 1.0, gw_g, p.kdim);
        } else {
            let col = &mut col[..p.kdim * ns];
            fill_col(p, inp_g, r.clone(), col, par);
            sgemm(false, true, p.cout_g, p.kdim, ns, 1.0, a, p.ohw, col, ns, 1.0, gw_g, p.kdim);
        }
        if let Some(gb) = gb.as_deref_mut() {
            for (co, acc) in gb[g * p.cout_g..(g + 1) * p.cout_g].iter_mut().enumerate() {
                let row = &a[co * p.ohw..co * p.ohw + ns];
                *acc += row.iter().map(|&v| v as f64).sum::<f64>();
            }
        }
    }
}

/// grad_weight += dL/dW; grad_bias += sum of grad_output over batch and space.
pub fn conv2d_backward_filter(s: &Conv2dShape, input: &[f32], grad_output: &[f32], grad_weight: &mut [f32],
                              grad_bias: Option<&mut [f32]>) {
    debug_assert!(s.validate().is_ok());
    debug_assert_eq!(input.len(), s.input_len());
    debug_assert_eq!(grad_output.len(), s.output_len());
    debug_assert_eq!(grad_weight.len(), s.weight_len());
    debug_assert!(grad_bias.as_ref().is_none_or(|b| b.len() == s.out_c));
    let p = Plan::new(s);
    if conv_batched::applies(s, &p) {
        return conv_batched::backward_filter(s, &p, input, grad_output, grad_weight, grad_bias);
    }
    let t = plan_threads();
    let with_bias = grad_bias.is_some();
    // Work items are (image, group, strip); with enough of them each thread takes a fixed
    // contiguous range with its own partial gradient.
    let rows1 = p.strip_rows(COL_BUDGET);
    let items = s.batch * p.groups * p.strips(rows1);
    let col_len1 = if p.pointwise { 0 } else { p.kdim * rows1 * p.ow };
    let gb_total: Vec<f64> = if t > 1 && items >= t {
        let parts = collect(t, |task| {
            let mut gw = vec![0.0f32; grad_weight.len()];
            let mut gb = vec![0.0f64; if with_bias { s.out_c } else { 0 }];
            with_workspace(col_len1, |col| {
                let gbr = if with_bias { Some(&mut gb[..]) } else { None };
                backward_filter_items(&p, rows1, task_range(items, t, task), input, grad_output, &mut gw, gbr, col, false);
            });
            (gw, gb)
        });
        let mut gb_total = vec![0.0f64; if with_bias { s.out_c } else { 0 }];
        for (gw, gb) in &parts {
            for (o, &v) in grad_weight.iter_mut().zip(gw) {
                *o += v;
            }
            for (o, &v) in gb_total.iter_mut().zip(gb) {
                *o += v;
            }
        }
        gb_total
    } else {
        let rows = p.strip_rows(COL_BUDGET * t);
        let items = s.batch * p.groups * p.strips(rows);
        let col_len = if p.pointwise { 0 } else { p.kdim * rows * p.ow };
        let mut gb = vec![0.0f64; if with_bias { s.out_c } else { 0 }];
        with_workspace(col_len, |col| {
            let gbr = if with_bias { Some(&mut gb[..]) } else { None };
            backward_filter_items(&p, rows, 0..items, input, grad_output, grad_weight, gbr, col, true);
        });
        gb
    };
    if let Some(b) = grad_bias {
        for (o, &v) in b.iter_mut().zip(&gb_total) {
            *o += v as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::threads;
    use crate::kernels::testutil::{assert_close, Rng};

    fn idx(n: usize, c: usize, h: usize, w: usize, cs: usize, hs: usize, ws: usize) -> usize {
        ((n * cs + c) * hs + h) * ws + w
    }

    /// f64 references: forward, backward data, backward filter, backward bias.
    fn reference(s: &Conv2dShape, x: &[f32], w: &[f32], bias: &[f32], go: &[f32]) -> [Vec<f64>; 4] {
        let (oh, ow) = (s.out_h(), s.out_w());
        let (cin_g, cout_g) = (s.in_c / s.groups, s.out_c / s.groups);
        let mut y = vec![0.0f64; s.output_len()];
        let mut gi = vec![0.0f64; s.input_len()];
        let mut gw = vec![0.0f64; s.weight_len()];
        let mut gb = vec![0.0f64; s.out_c];
        for n in 0..s.batch {
            for co in 0..s.out_c {
                let g = co / cout_g;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let oi = idx(n, co, oy, ox, s.out_c, oh, ow);
                        let mut acc = bias[co] as f64;
                        gb[co] += go[oi] as f64;
                        for ci in 0..cin_g {
                            for ky in 0..s.k_h {
                                for kx in 0..s.k_w {
                                    let iy = (oy * s.stride_h + ky * s.dilation_h) as isize - s.pad_h as isize;
                                    let ix = (ox * s.stride_w + kx * s.dilation_w) as isize - s.pad_w as isize;
                                    if iy < 0 || ix < 0 || iy as usize >= s.in_h || ix as usize >= s.in_w {
                                        continue;
                                    }
                                    let xi = idx(n, g * cin_g + ci, iy as usize, ix as usize, s.in_c, s.in_h, s.in_w);
                                    let wi = idx(co, ci, ky, kx, cin_g, s.k_h, s.k_w);
                                    acc += x[xi] as f64 * w[wi] as f64;
                                    gi[xi] += go[oi] as f64 * w[wi] as f64;
                                    gw[wi] += go[oi] as f64 * x[xi] as f64;
                                }
                            }
                        }
                        y[oi] = acc;
                    }
                }
            }
        }
        [y, gi, gw, gb]
    }

    fn check(s: &Conv2dShape, rng: &mut Rng) {
        assert!(s.validate().is_ok(), "{s:?}");
        let x = rng.vec(s.input_len(), -1.0, 1.0);
        let w = rng.vec(s.weight_len(), -1.0, 1.0);
        let bias = rng.vec(s.out_c, -1.0, 1.0);
        let go = rng.vec(s.output_len(), -1.0, 1.0);
        let [y_ref, gi_ref, gw_ref, gb_ref] = reference(s, &x, &w, &bias, &go);

        let mut y = vec![f32::NAN; s.output_len()];
        conv2d_forward(s, &x, &w, Some(&bias), &mut y);
        assert_close(&y, &y_ref, 1e-5);
        let mut y2 = vec![f32::NAN; s.output_len()];
        conv2d_forward(s, &x, &w, None, &mut y2);
        let nobias: Vec<f64> = y_ref.iter().enumerate().map(|(i, &v)| v - bias[(i / (s.out_h() * s.out_w())) % s.out_c] as f64).collect();
        assert_close(&y2, &nobias, 1e-5);

        let mut gi = vec![f32::NAN; s.input_len()];
        conv2d_backward_data(s, &go, &w, &mut gi);
        assert_close(&gi, &gi_ref, 1e-5);

        // Accumulates: start from 1.
        let mut gw = vec![1.0f32; s.weight_len()];
        let mut gb = vec![1.0f32; s.out_c];
        conv2d_backward_filter(s, &x, &go, &mut gw, Some(&mut gb));
        let gw_want: Vec<f64> = gw_ref.iter().map(|v| v + 1.0).collect();
        let gb_want: Vec<f64> = gb_ref.iter().map(|v| v + 1.0).collect();
        assert_close(&gw, &gw_want, 1e-5);
        assert_close(&gb, &gb_want, 1e-5);
        let mut gw2 = vec![0.0f32; s.weight_len()];
        conv2d_backward_filter(s, &x, &go, &mut gw2, None);
        assert_close(&gw2, &gw_ref, 1e-5);
    }

    #[allow(clippy::too_many_arguments)]
    fn shape(batch: usize, in_c: usize, in_h: usize, in_w: usize, out_c: usize, k: (usize, usize), stride: (usize, usize),
             pad: (usize, usize), dil: (usize, usize), groups: usize) -> Conv2dShape {
        Conv2dShape { batch, in_c, in_h, in_w, out_c, k_h: k.0, k_w: k.1, stride_h: stride.0, stride_w: stride.1,
                      pad_h: pad.0, pad_w: pad.1, dilation_h: dil.0, dilation_w: dil.1, groups }
    }

    #[test]
    fn fixed_shapes() {
        let mut rng = Rng::new(21);
        // 3x3 same conv, odd sizes.
        check(&shape(2, 3, 7, 9, 5, (3, 3), (1, 1), (1, 1), (1, 1), 1), &mut rng);
        // Pointwise, grouped.
        check(&shape(3, 6, 5, 7, 4, (1, 1), (1, 1), (0, 0), (1, 1), 2), &mut rng);
        // 1x1 with stride (not the pointwise path).
        check(&shape(2, 4, 7, 7, 6, (1, 1), (2, 2), (0, 0), (1, 1), 1), &mut rng);
        // Strided, padded, dilated, grouped, rectangular kernel.
        check(&shape(2, 6, 11, 10, 9, (3, 2), (2, 3), (2, 1), (2, 3), 3), &mut rng);
        // Depthwise.
        check(&shape(1, 4, 6, 5, 4, (3, 3), (1, 2), (1, 1), (1, 1), 4), &mut rng);
        // Padding larger than the kernel reach; tall strips (several strips per image).
        check(&shape(1, 2, 40, 13, 3, (5, 5), (1, 1), (3, 3), (1, 1), 1), &mut rng);
        // Many strips: wide image.
        check(&shape(2, 3, 23, 90, 2, (3, 3), (1, 1), (1, 1), (1, 1), 1), &mut rng);
    }

    /// Every threading path (1 thread; images; items; channel splits) gives the reference
    /// result, and backward-filter is bit-for-bit repeatable at a fixed thread count.
    #[test]
    fn thread_counts_and_determinism() {
        let mut rng = Rng::new(23);
        let t0 = threads();
        let shapes = [shape(1, 3, 30, 31, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1),
                      shape(3, 4, 20, 17, 6, (3, 3), (2, 1), (1, 2), (1, 1), 2),
                      shape(5, 4, 9, 9, 4, (1, 1), (1, 1), (0, 0), (1, 1), 1)];
        for &t in &[1usize, 3, 2, 4] {
            crate::parallel::set_threads(t);
            for s in &shapes {
                check(s, &mut rng);
                let x = rng.vec(s.input_len(), -1.0, 1.0);
                let go = rng.vec(s.output_len(), -1.0, 1.0);
                let run = || {
                    let mut gw = vec![0.0f32; s.weight_len()];
                    let mut gb = vec![0.0f32; s.out_c];
                    conv2d_backward_filter(s, &x, &go, &mut gw, Some(&mut gb));
                    (gw, gb)
                };
                let first = run();
                for _ in 0..3 {
                    assert_eq!(run(), first);
                }
            }
        }
        crate::parallel::set_threads(t0);
    }

    #[test]
    fn random_shapes() {
        let mut rng = Rng::new(22);
        let mut done = 0;
        while done < 40 {
            let groups = 1 + rng.below(3);
            let s = shape(1 + rng.below(3), groups * (1 + rng.below(3)), 1 + rng.below(9), 1 + rng.below(9),
                          groups * (1 + rng.below(3)), (1 + rng.below(4), 1 + rng.below(4)),
                          (1 + rng.below(3), 1 + rng.below(3)), (rng.below(3), rng.below(3)),
                          (1 + rng.below(2), 1 + rng.below(2)), groups);
            if s.validate().is_err() {
                continue;
            }
            check(&s, &mut rng);
            done += 1;
        }
    }

    /// VGG-16 3x3 layers: conv GFLOP/s vs raw sgemm on the im2col shape of one image
    /// (M = outC, N = outH * outW, K = inC * 9, called once per image), with the provider
    /// Squall selects. `cargo test --release conv_vs_gemm_rate -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn conv_vs_gemm_rate() {
        use std::time::Instant;
        let provider = crate::blas::ensure_selected().expect("no BLAS provider");
        println!("BLAS: {}", crate::blas::describe(provider));
        let t0 = threads();
        for &t in &[t0, 1] {
            crate::parallel::set_threads(t);
            for &(batch, c, hw) in &[(8usize, 64usize, 56usize), (16, 128, 32), (32, 64, 32), (1, 64, 56), (3, 128, 56)] {
                let s = shape(batch, c, hw, hw, c, (3, 3), (1, 1), (1, 1), (1, 1), 1);
                let mut rng = Rng::new(5);
                let x = rng.vec(s.input_len(), -1.0, 1.0);
                let w = rng.vec(s.weight_len(), -1.0, 1.0);
                let bias = rng.vec(s.out_c, -1.0, 1.0);
                let go = rng.vec(s.output_len(), -1.0, 1.0);
                let mut y = vec![0.0; s.output_len()];
                let mut gi = vec![0.0; s.input_len()];
                let mut gw = vec![0.0; s.weight_len()];
                let mut gb = vec![0.0; s.out_c];
                let flops = 2.0 * (batch * c * c * 9 * hw * hw) as f64;
                let (m, n, k) = (c, hw * hw, c * 9);
                let a = rng.vec(m * k, -1.0, 1.0);
                let b = rng.vec(k * n, -1.0, 1.0);
                let mut cm = vec![0.0; m * n];
                // Interleaved best-of-5, so load from other processes hits all four alike.
                let mut best = [f64::MAX; 4];
                for rep in 0..6 {
                    let mut timed = |i: usize, f: &mut dyn FnMut()| {
                        let t0 = Instant::now();
                        f();
                        if rep > 0 {
                            best[i] = best[i].min(t0.elapsed().as_secs_f64());
                        }
                    };
                    timed(0, &mut || {
                        for _ in 0..batch {
                            sgemm(false, false, m, n, k, 1.0, &a, k, &b, n, 0.0, &mut cm, n);
                        }
                    });
                    timed(1, &mut || conv2d_forward(&s, &x, &w, Some(&bias), &mut y));
                    timed(2, &mut || conv2d_backward_data(&s, &go, &w, &mut gi));
                    timed(3, &mut || conv2d_backward_filter(&s, &x, &go, &mut gw, Some(&mut gb)));
                }
                let [gg, gf, gd, gw_] = best.map(|t| flops / t * 1e-9);
                println!("threads {t} VGG 3x3 {c}->{c} {hw}x{hw} batch {batch:2}: sgemm {m}x{n}x{k} {gg:6.1} GFLOP/s | \
                          forward {gf:6.1} ({:.2}x) | backward data {gd:6.1} ({:.2}x) | backward filter {gw_:6.1} ({:.2}x)",
                         gf / gg, gd / gg, gw_ / gg);
            }
        }
        crate::parallel::set_threads(t0);
    }
}
