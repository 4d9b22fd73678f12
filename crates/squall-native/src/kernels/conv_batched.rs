//! Convolution of small output planes with the images of a batch side by side in one GEMM.
//!
//! Per-image GEMMs of a layer whose output planes are tiny (the 4x4 and 2x2 layers at the
//! end of VGG for 32x32 inputs, Inception's 7x7) have only ohw columns: a 512 x 4 x 4608
//! GEMM spends its time packing, not multiplying. Here the column matrices of nb images
//! are laid next to each other, K x (nb * ohw), so one GEMM per chunk of images has a
//! useful width; outputs and gradients are gathered / scattered between the NCHW planes
//! and that [channels, nb * ohw] layout. The GEMMs use the pool's threads; the other steps
//! are memory copies, small next to the GEMM at these shapes.

use super::conv::Plan;
use super::im2col::{col2im_add, im2col};
use super::par::with_workspace;
use super::shapes::Conv2dShape;
use crate::blas::sgemm;

/// Output planes smaller than this many pixels take the batched path.
pub(super) const SMALL_PLANE: usize = 64;
/// GEMM width (nb * ohw) a chunk of images aims for.
const TARGET_COLS: usize = 512;
/// Upper bound on the column matrix of one chunk, in floats (16 MiB).
const MAX_COL: usize = 4 << 20;

/// Whether a layer takes the batched path.
pub(super) fn applies(s: &Conv2dShape, p: &Plan) -> bool {
    s.batch > 1 && p.ohw < SMALL_PLANE
}

/// Images per chunk.
fn chunk_images(s: &Conv2dShape, p: &Plan) -> usize {
    let by_width = TARGET_COLS.div_ceil(p.ohw.max(1));
    let by_memory = (MAX_COL / (p.kdim * p.ohw).max(1)).max(1);
    by_width.min(by_memory).clamp(1, s.batch)
}

/// col[K, nb * ohw] of group g for images b0..b0+nb (image j in columns j*ohw..).
fn fill_cols(p: &Plan, input: &[f32], g: usize, b0: usize, nb: usize, col: &mut [f32], one: &mut [f32]) {
    let w = nb * p.ohw;
    for j in 0..nb {
        let b = b0 + j;
        let inp_g = &input[b * p.in_img + g * p.cin_g * p.ihw..b * p.in_img + (g + 1) * p.cin_g * p.ihw];
        if p.pointwise {
            for (k, row) in col.chunks_exact_mut(w).enumerate().take(p.kdim) {
                row[j * p.ohw..(j + 1) * p.ohw].copy_from_slice(&inp_g[k * p.ihw..k * p.ihw + p.ohw]);
            }
        } else {
            im2col(&p.geom, inp_g, 0..p.cin_g, 0..p.oh, one);
            for (k, row) in col.chunks_exact_mut(w).enumerate().take(p.kdim) {
                row[j * p.ohw..(j + 1) * p.ohw].copy_from_slice(&one[k * p.ohw..(k + 1) * p.ohw]);
            }
        }
    }
}

/// tile[cout_g, nb * ohw] <- the group-g output planes of images b0..b0+nb.
fn gather_planes(p: &Plan, planes: &[f32], g: usize, b0: usize, nb: usize, tile: &mut [f32]) {
    let w = nb * p.ohw;
    for j in 0..nb {
        let base = (b0 + j) * p.out_img + g * p.cout_g * p.ohw;
        for (co, row) in tile.chunks_exact_mut(w).enumerate().take(p.cout_g) {
            row[j * p.ohw..(j + 1) * p.ohw].copy_from_slice(&planes[base + co * p.ohw..base + (co + 1) * p.ohw]);
        }
    }
}

/// Calls `f(b0, nb, g, col, tile, one)` for every chunk of images and every group, with the
/// chunk's column matrix (K x nb*ohw), output tile (cout_g x nb*ohw) and one image's
/// column matrix as scratch, all from this thread's workspace.
fn for_each_chunk_and_group(s: &Conv2dShape, p: &Plan, mut f: impl FnMut(usize, usize, usize, &mut [f32], &mut [f32], &mut [f32])) {
    let nb_max = chunk_images(s, p);
    let col_len = p.kdim * nb_max * p.ohw;
    let tile_len = p.cout_g * nb_max * p.ohw;
    with_workspace(col_len + tile_len + p.kdim * p.ohw, |ws| {
        let (col, rest) = ws.split_at_mut(col_len);
        let (tile, one) = rest.split_at_mut(tile_len);
        let mut b0 = 0;
        while b0 < s.batch {
            let nb = nb_max.min(s.batch - b0);
            let w = nb * p.ohw;
            for g in 0..p.groups {
                f(b0, nb, g, &mut col[..p.kdim * w], &mut tile[..p.cout_g * w], one);
            }
            b0 += nb;
        }
    });
}

pub(super) fn forward(s: &Conv2dShape, p: &Plan, input: &[f32], weight: &[f32], bias: Option<&[f32]>, output: &mut [f32]) {
    for_each_chunk_and_group(s, p, |b0, nb, g, col, tile, one| {
        let w = nb * p.ohw;
        fill_cols(p, input, g, b0, nb, col, one);
        sgemm(false, false, p.cout_g, w, p.kdim, 1.0, p.weight_g(weight, g), p.kdim, col, w, 0.0, tile, w);
        for j in 0..nb {
            let base = (b0 + j) * p.out_img + g * p.cout_g * p.ohw;
            for (co, row) in tile.chunks_exact(w).enumerate() {
                let dst = &mut output[base + co * p.ohw..base + (co + 1) * p.ohw];
                dst.copy_from_slice(&row[j * p.ohw..(j + 1) * p.ohw]);
                if let Some(bias) = bias {
                    let bv = bias[g * p.cout_g + co];
                    for v in dst {
                        *v += bv;
                    }
                }
            }
        }
    });
}

pub(super) fn backward_data(s: &Conv2dShape, p: &Plan, grad_output: &[f32], weight: &[f32], grad_input: &mut [f32]) {
    for_each_chunk_and_group(s, p, |b0, nb, g, col, tile, one| {
        let w = nb * p.ohw;
        gather_planes(p, grad_output, g, b0, nb, tile);
        // col = W_g^T * gout
        sgemm(true, false, p.kdim, w, p.cout_g, 1.0, p.weight_g(weight, g), p.kdim, tile, w, 0.0, col, w);
        for j in 0..nb {
            let b = b0 + j;
            let gin = &mut grad_input[b * p.in_img + g * p.cin_g * p.ihw..b * p.in_img + (g + 1) * p.cin_g * p.ihw];
            if p.pointwise {
                for (k, row) in col.chunks_exact(w).enumerate() {
                    gin[k * p.ihw..k * p.ihw + p.ohw].copy_from_slice(&row[j * p.ohw..(j + 1) * p.ohw]);
                }
            } else {
                for (k, row) in col.chunks_exact(w).enumerate() {
                    one[k * p.ohw..(k + 1) * p.ohw].copy_from_slice(&row[j * p.ohw..(j + 1) * p.ohw]);
                }
                gin.fill(0.0);
                col2im_add(&p.geom, &one[..p.kdim * p.ohw], 0..p.cin_g, 0..p.oh, gin);
            }
        }
    });
}

pub(super) fn backward_filter(s: &Conv2dShape, p: &Plan, input: &[f32], grad_output: &[f32], grad_weight: &mut [f32],
                              grad_bias: Option<&mut [f32]>) {
    // Bias sums in f64, like the per-image path, so the order of images does not matter.
    let mut gb = vec![0.0f64; if grad_bias.is_some() { s.out_c } else { 0 }];
    for_each_chunk_and_group(s, p, |b0, nb, g, col, tile, one| {
        let w = nb * p.ohw;
        fill_cols(p, input, g, b0, nb, col, one);
        gather_planes(p, grad_output, g, b0, nb, tile);
        let gw_g = &mut grad_weight[g * p.cout_g * p.kdim..(g + 1) * p.cout_g * p.kdim];
        // gW_g += gout * col^T
        sgemm(false, true, p.cout_g, p.kdim, w, 1.0, tile, w, col, w, 1.0, gw_g, p.kdim);
        if !gb.is_empty() {
            for (co, row) in tile.chunks_exact(w).enumerate() {
                gb[g * p.cout_g + co] += row.iter().map(|&v| v as f64).sum::<f64>();
            }
        }
    });
    if let Some(b) = grad_bias {
        for (o, &v) in b.iter_mut().zip(&gb) {
            *o += v as f32;
        }
    }
}
