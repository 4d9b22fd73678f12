//! Softmax and log-softmax over the last dimension of a row-major [rows, cols] matrix,
//! numerically stable (the row maximum is subtracted), row sums accumulated in f64.
//! Large matrices are split over rows.

use super::par::{for_each_chunk, tasks_for};

fn row_max(x: &[f32]) -> f32 {
    x.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

fn for_rows(rows: usize, cols: usize, out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    debug_assert_eq!(out.len(), rows * cols);
    if cols == 0 {
        return;
    }
    for_each_chunk(out, cols, tasks_for(rows, rows * cols * 8), |r, chunk| {
        for (i, row) in r.zip(chunk.chunks_exact_mut(cols)) {
            f(i, row);
        }
    });
}

/// y = exp(x - max) / sum(exp(x - max)) per row.
pub fn softmax_forward(rows: usize, cols: usize, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), rows * cols);
    for_rows(rows, cols, y, |i, yr| {
        let xr = &x[i * cols..(i + 1) * cols];
        let m = row_max(xr);
        let mut sum = 0.0f64;
        for (o, &v) in yr.iter_mut().zip(xr) {
            let e = (v - m).exp();
            *o = e;
            sum += e as f64;
        }
        let inv = (1.0 / sum) as f32;
        for o in yr.iter_mut() {
            *o *= inv;
        }
    });
}

/// gi = y * (go - sum(go * y)) per row.
pub fn softmax_backward(rows: usize, cols: usize, y: &[f32], go: &[f32], gi: &mut [f32]) {
    debug_assert_eq!(y.len(), rows * cols);
    debug_assert_eq!(go.len(), rows * cols);
    for_rows(rows, cols, gi, |i, gr| {
        let yr = &y[i * cols..(i + 1) * cols];
        let gor = &go[i * cols..(i + 1) * cols];
        let dot = yr.iter().zip(gor).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() as f32;
        for ((o, &a), &g) in gr.iter_mut().zip(yr).zip(gor) {
            *o = a * (g - dot);
        }
    });
}

/// y = x - max - ln(sum(exp(x - max))) per row.
pub fn log_softmax_forward(rows: usize, cols: usize, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), rows * cols);
    for_rows(rows, cols, y, |i, yr| {
        let xr = &x[i * cols..(i + 1) * cols];
        let m = row_max(xr);
        let sum: f64 = xr.iter().map(|&v| (v - m).exp() as f64).sum();
        let lse = sum.ln() as f32;
        for (o, &v) in yr.iter_mut().zip(xr) {
            *o = (v - m) - lse;
        }
    });
}

/// gi = go - exp(y) * sum(go) per row (y: the log-softmax output).
pub fn log_softmax_backward(rows: usize, cols: usize, y: &[f32], go: &[f32], gi: &mut [f32]) {
    debug_assert_eq!(y.len(), rows * cols);
    debug_assert_eq!(go.len(), rows * cols);
    for_rows(rows, cols, gi, |i, gr| {
        let yr = &y[i * cols..(i + 1) * cols];
        let gor = &go[i * cols..(i + 1) * cols];
        let sum = gor.iter().map(|&g| g as f64).sum::<f64>() as f32;
        for ((o, &a), &g) in gr.iter_mut().zip(yr).zip(gor) {
            *o = g - a.exp() * sum;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, Rng};

    #[test]
    fn softmax_and_log_softmax_vs_f64() {
        let mut rng = Rng::new(51);
        for &(rows, cols, spread) in &[(3usize, 7usize, 5.0f32), (1, 1, 1.0), (130, 1001, 30.0), (4, 10, 1000.0)] {
            let x = rng.vec(rows * cols, -spread, spread);
            let go = rng.vec(rows * cols, -1.0, 1.0);
            let mut sm = vec![0.0f64; rows * cols];
            let mut lsm = vec![0.0f64; rows * cols];
            let mut gsm = vec![0.0f64; rows * cols];
            let mut glsm = vec![0.0f64; rows * cols];
            for r in 0..rows {
                let xr: Vec<f64> = x[r * cols..(r + 1) * cols].iter().map(|&v| v as f64).collect();
                let m = xr.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = xr.iter().map(|v| (v - m).exp()).sum();
                for c in 0..cols {
                    sm[r * cols + c] = (xr[c] - m).exp() / s;
                    lsm[r * cols + c] = xr[c] - m - s.ln();
                }
                let dot: f64 = (0..cols).map(|c| sm[r * cols + c] * go[r * cols + c] as f64).sum();
                let gsum: f64 = (0..cols).map(|c| go[r * cols + c] as f64).sum();
                for c in 0..cols {
                    let i = r * cols + c;
                    gsm[i] = sm[i] * (go[i] as f64 - dot);
                    glsm[i] = go[i] as f64 - sm[i] * gsum;
                }
            }
            let mut y = vec![0.0; rows * cols];
            let mut gi = vec![0.0; rows * cols];
            softmax_forward(rows, cols, &x, &mut y);
            assert_close(&y, &sm, 1e-6);
            softmax_backward(rows, cols, &y, &go, &mut gi);
            assert_close(&gi, &gsm, 1e-5);
            log_softmax_forward(rows, cols, &x, &mut y);
            assert_close(&y, &lsm, 1e-6);
            log_softmax_backward(rows, cols, &y, &go, &mut gi);
            assert_close(&gi, &glsm, 1e-5);
        }
    }
}
