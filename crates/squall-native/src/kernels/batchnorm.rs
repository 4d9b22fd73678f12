//! Batch normalisation over x[n, c, spatial] (PyTorch semantics).
//!
//! Training: per channel, mean and biased variance over n * spatial values (two passes, f64);
//! save_mean = mean, save_inv_std = 1 / sqrt(var + eps); y = (x - mean) * inv_std * gamma + beta;
//! running = (1 - momentum) * running + momentum * batch, with the unbiased variance
//! var * N / (N - 1) for running_var (the biased one when N == 1, where PyTorch refuses).
//! Inference: the running statistics are used and save_* are not touched.
//! Backward (training mode), xhat = (x - mean) * inv_std, N = n * spatial:
//!   grad_beta += sum(go), grad_gamma += sum(go * xhat),
//!   gi = gamma * inv_std * (go - sum(go) / N - xhat * sum(go * xhat) / N).
//! Channel statistics are reduced in parallel over channels; the element-wise passes in
//! parallel over (n, c) planes.

use super::par::{collect, for_each_chunk, task_range, tasks_for};
use super::shapes::BatchNormShape;

/// Calls f(c) for every channel, split over the pool, returning the results in channel order.
fn per_channel<R: Send>(s: &BatchNormShape, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let tasks = tasks_for(s.c, s.len());
    collect(tasks, |t| task_range(s.c, tasks, t).map(&f).collect::<Vec<R>>()).into_iter().flatten().collect()
}

/// Applies f(c, plane) to every (n, c) plane of `out`, in parallel over planes.
fn per_plane(s: &BatchNormShape, out: &mut [f32], f: impl Fn(usize, usize, &mut [f32]) + Sync) {
    let planes = s.n * s.c;
    for_each_chunk(out, s.spatial, tasks_for(planes, s.len()), |r, chunk| {
        for (p, plane) in r.zip(chunk.chunks_exact_mut(s.spatial)) {
            f(p, p % s.c, plane);
        }
    });
}

/// A mean as an unevaluated f32 sum hi + lo, so x - mean is formed as (x - hi) - lo: exact
/// subtraction when x is near the mean (data far from zero keeps full relative precision).
fn split(mean: f64) -> (f32, f32) {
    let hi = mean as f32;
    (hi, (mean - hi as f64) as f32)
}

/// The values of channel c, plane by plane.
fn channel<'a>(s: &'a BatchNormShape, x: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
    (0..s.n).map(move |n| &x[(n * s.c + c) * s.spatial..(n * s.c + c + 1) * s.spatial])
}

#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward(s: &BatchNormShape, x: &[f32], y: &mut [f32], gamma: &[f32], beta: &[f32],
                          running_mean: &mut [f32], running_var: &mut [f32], save_mean: &mut [f32],
                          save_inv_std: &mut [f32], training: bool, momentum: f32) {
    debug_assert!(s.validate().is_ok());
    debug_assert_eq!(x.len(), s.len());
    debug_assert_eq!(y.len(), s.len());
    for v in [gamma, beta, &*running_mean, &*running_var] {
        debug_assert_eq!(v.len(), s.c);
    }
    if training {
        debug_assert_eq!(save_mean.len(), s.c);
        debug_assert_eq!(save_inv_std.len(), s.c);
    }
    // Per channel: (mean used, split, multiplier = inv_std * gamma).
    let coef: Vec<((f32, f32), f32)> = if training {
        let count = (s.n * s.spatial) as f64;
        let stats = per_channel(s, |c| {
            let sum: f64 = channel(s, x, c).map(|p| p.iter().map(|&v| v as f64).sum::<f64>()).sum();
            let mean = sum / count;
            let ss: f64 = channel(s, x, c).map(|p| p.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>()).sum();
            (mean, ss / count)
        });
        let m = momentum as f64;
        let unbias = if count > 1.0 { count / (count - 1.0) } else { 1.0 };
        stats
            .iter()
            .enumerate()
            .map(|(c, &(mean, var))| {
                let inv_std = 1.0 / (var + s.eps as f64).sqrt();
                save_mean[c] = mean as f32;
                save_inv_std[c] = inv_std as f32;
                running_mean[c] = ((1.0 - m) * running_mean[c] as f64 + m * mean) as f32;
                running_var[c] = ((1.0 - m) * running_var[c] as f64 + m * var * unbias) as f32;
                (split(mean), (inv_std * gamma[c] as f64) as f32)
            })
            .collect()
    } else {
        (0..s.c)
            .map(|c| ((running_mean[c], 0.0), (gamma[c] as f64 / (running_var[c] as f64 + s.eps as f64).sqrt()) as f32))
            .collect()
    };
    per_plane(s, y, |p, c, yp| {
        let ((hi, lo), a) = coef[c];
        let b = beta[c];
        for (o, &v) in yp.iter_mut().zip(&x[p * s.spatial..(p + 1) * s.spatial]) {
            *o = ((v - hi) - lo) * a + b;
        }
    });
}

#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(s: &BatchNormShape, x: &[f32], gamma: &[f32], save_mean: &[f32], save_inv_std: &[f32],
                           go: &[f32], gi: &mut [f32], grad_gamma: &mut [f32], grad_beta: &mut [f32]) {
    debug_assert!(s.validate().is_ok());
    debug_assert_eq!(x.len(), s.len());
    debug_assert_eq!(go.len(), s.len());
    debug_assert_eq!(gi.len(), s.len());
    for v in [gamma, save_mean, save_inv_std, &*grad_gamma, &*grad_beta] {
        debug_assert_eq!(v.len(), s.c);
    }
    let count = (s.n * s.spatial) as f64;
    // Per channel: (sum go, sum go * xhat).
    let sums = per_channel(s, |c| {
        let (mean, inv) = (save_mean[c] as f64, save_inv_std[c] as f64);
        let mut sg = 0.0f64;
        let mut sgx = 0.0f64;
        for (xp, gp) in channel(s, x, c).zip(channel(s, go, c)) {
            for (&xv, &g) in xp.iter().zip(gp) {
                sg += g as f64;
                sgx += g as f64 * (xv as f64 - mean);
            }
        }
        (sg, sgx * inv)
    });
    // gi = k * (go - mg - (x - mean) * inv * mgx), k = gamma * inv.
    let coef: Vec<(f32, f32, f32, (f32, f32))> = sums
        .iter()
        .enumerate()
        .map(|(c, &(sg, sgx))| {
            grad_beta[c] += sg as f32;
            grad_gamma[c] += sgx as f32;
            let inv = save_inv_std[c] as f64;
            ((gamma[c] as f64 * inv) as f32, (sg / count) as f32, (inv * sgx / count) as f32, split(save_mean[c] as f64))
        })
        .collect();
    per_plane(s, gi, |p, c, gp| {
        let (k, mg, mgx, (hi, lo)) = coef[c];
        let r = p * s.spatial..(p + 1) * s.spatial;
        for ((o, &g), &xv) in gp.iter_mut().zip(&go[r.clone()]).zip(&x[r]) {
            *o = k * (g - mg - ((xv - hi) - lo) * mgx);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, Rng};

    #[test]
    fn training_forward_backward_and_running_stats() {
        let mut rng = Rng::new(61);
        for &(n, c, spatial, offset) in &[(4usize, 3usize, 5usize, 0.0f32), (6, 5, 1, 100.0), (3, 2, 300, 1000.0), (1, 2, 1, 0.0)] {
            let s = BatchNormShape { n, c, spatial, eps: 1e-5 };
            let x: Vec<f32> = rng.vec(s.len(), -2.0, 2.0).iter().map(|v| v + offset).collect();
            let gamma = rng.vec(c, 0.5, 1.5);
            let beta = rng.vec(c, -1.0, 1.0);
            let go = rng.vec(s.len(), -1.0, 1.0);
            let rm0 = rng.vec(c, -1.0, 1.0);
            let rv0 = rng.vec(c, 0.5, 2.0);
            let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
            let (mut sm, mut si) = (vec![0.0; c], vec![0.0; c]);
            let mut y = vec![0.0; s.len()];
            let mom = 0.1f32;
            batch_norm_forward(&s, &x, &mut y, &gamma, &beta, &mut rm, &mut rv, &mut sm, &mut si, true, mom);
            let mut gi = vec![0.0; s.len()];
            let (mut gg, mut gb) = (vec![0.5; c], vec![-0.5; c]);
            batch_norm_backward(&s, &x, &gamma, &sm, &si, &go, &mut gi, &mut gg, &mut gb);

            let cnt = (n * spatial) as f64;
            let at = |i: usize, cc: usize, k: usize| (i * c + cc) * spatial + k;
            let (mut y_ref, mut gi_ref) = (vec![0.0; s.len()], vec![0.0; s.len()]);
            let (mut rm_ref, mut rv_ref, mut sm_ref, mut si_ref, mut gg_ref, mut gb_ref) =
                (vec![0.0; c], vec![0.0; c], vec![0.0; c], vec![0.0; c], vec![0.0; c], vec![0.0; c]);
            for cc in 0..c {
                let vals: Vec<f64> = (0..n).flat_map(|i| (0..spatial).map(move |k| (i, k))).map(|(i, k)| x[at(i, cc, k)] as f64).collect();
                let mean = vals.iter().sum::<f64>() / cnt;
                let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / cnt;
                let inv = 1.0 / (var + 1e-5f32 as f64).sqrt();
                sm_ref[cc] = mean;
                si_ref[cc] = inv;
                rm_ref[cc] = 0.9f32 as f64 * rm0[cc] as f64 + 0.1f32 as f64 * mean;
                let unb = if cnt > 1.0 { var * cnt / (cnt - 1.0) } else { var };
                rv_ref[cc] = 0.9f32 as f64 * rv0[cc] as f64 + 0.1f32 as f64 * unb;
                for i in 0..n {
                    for k in 0..spatial {
                        let j = at(i, cc, k);
                        y_ref[j] = (x[j] as f64 - mean) * inv * gamma[cc] as f64 + beta[cc] as f64;
                    }
                }
                // Backward takes the saved (f32) statistics as its inputs.
                let (mean, inv) = (sm[cc] as f64, si[cc] as f64);
                let (mut sg, mut sgx) = (0.0, 0.0);
                for i in 0..n {
                    for k in 0..spatial {
                        let j = at(i, cc, k);
                        let xh = (x[j] as f64 - mean) * inv;
                        sg += go[j] as f64;
                        sgx += go[j] as f64 * xh;
                    }
                }
                gg_ref[cc] = 0.5 + sgx;
                gb_ref[cc] = -0.5 + sg;
                for i in 0..n {
                    for k in 0..spatial {
                        let j = at(i, cc, k);
                        let xh = (x[j] as f64 - mean) * inv;
                        gi_ref[j] = gamma[cc] as f64 * inv * (go[j] as f64 - sg / cnt - xh * sgx / cnt);
                    }
                }
            }
            let tol = 1e-5;
            assert_close(&y, &y_ref, tol);
            assert_close(&sm, &sm_ref, 1e-6);
            assert_close(&si, &si_ref, 1e-5);
            assert_close(&rm, &rm_ref, 1e-6);
            assert_close(&rv, &rv_ref, 1e-5);
            if n * spatial > 1 {
                assert_close(&gi, &gi_ref, tol);
            }
            assert_close(&gg, &gg_ref, 1e-5);
            assert_close(&gb, &gb_ref, 1e-5);
        }
    }

    #[test]
    fn inference_uses_running_stats() {
        let s = BatchNormShape { n: 2, c: 2, spatial: 3, eps: 0.0 };
        let x: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let (gamma, beta) = ([2.0, 1.0], [0.5, -0.5]);
        let (mut rm, mut rv) = ([1.0, 2.0], [4.0, 0.25]);
        let (mut sm, mut si) = ([9.0; 2], [9.0; 2]);
        let mut y = vec![0.0; 12];
        batch_norm_forward(&s, &x, &mut y, &gamma, &beta, &mut rm, &mut rv, &mut sm, &mut si, false, 0.1);
        assert_eq!((rm, rv, sm, si), ([1.0, 2.0], [4.0, 0.25], [9.0; 2], [9.0; 2]));
        for (j, &v) in y.iter().enumerate() {
            let c = (j / 3) % 2;
            let want = (x[j] - rm[c]) / rv[c].sqrt() * gamma[c] + beta[c];
            assert!((v - want).abs() < 1e-6, "{j}: {v} vs {want}");
        }
    }
}
