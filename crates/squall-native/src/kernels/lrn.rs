//! Cross-channel local response normalisation (Caffe / Torch SpatialCrossMapLRN):
//!   scale[c] = k + alpha / size * sum_{c' in [c - size/2, c + size/2], 0 <= c' < C} x[c']^2
//!   y[c]     = x[c] * scale[c]^-beta
//! Backward (the exact gradient; the window is symmetric, so c is in W(i) iff i is in W(c)):
//!   gi[c] = go[c] * scale[c]^-beta - 2 * alpha * beta / size * x[c] * sum_{i in W(c)} go[i] * y[i] / scale[i]
//! Work is split over (image, channel) planes; each plane is a vectorised loop over space.

use super::par::{for_each_chunk, for_each_chunk2, tasks_for};
use super::shapes::LrnShape;

/// s^-beta, with the common exponents done by square roots.
#[inline(always)]
fn neg_pow(s: f32, beta: f32) -> f32 {
    if beta == 0.75 {
        let r = 1.0 / s.sqrt();
        r * r.sqrt()
    } else if beta == 0.5 {
        1.0 / s.sqrt()
    } else if beta == 1.0 {
        1.0 / s
    } else {
        s.powf(-beta)
    }
}

fn window(s: &LrnShape, c: usize) -> std::ops::Range<usize> {
    let half = s.size / 2;
    c.saturating_sub(half)..(c + half + 1).min(s.channels)
}

fn tasks(s: &LrnShape) -> usize {
    let planes = s.batch * s.channels;
    tasks_for(planes, s.len() * s.size)
}

pub fn lrn_forward(s: &LrnShape, input: &[f32], output: &mut [f32], scale: &mut [f32]) {
    debug_assert!(s.validate().is_ok());
    debug_assert_eq!(input.len(), s.len());
    debug_assert_eq!(output.len(), s.len());
    debug_assert_eq!(scale.len(), s.len());
    let hw = s.height * s.width;
    let coef = s.alpha / s.size as f32;
    let (k, beta) = (s.k, s.beta);
    for_each_chunk2(output, hw, scale, hw, tasks(s), |planes, out, sc| {
        for ((p, y), sc) in planes.zip(out.chunks_exact_mut(hw)).zip(sc.chunks_exact_mut(hw)) {
            let (n, c) = (p / s.channels, p % s.channels);
            sc.fill(0.0);
            for cc in window(s, c) {
                let xs = &input[(n * s.channels + cc) * hw..(n * s.channels + cc + 1) * hw];
                for (a, &v) in sc.iter_mut().zip(xs) {
                    *a += v * v;
                }
            }
            let x = &input[p * hw..(p + 1) * hw];
            for ((yv, a), &xv) in y.iter_mut().zip(sc.iter_mut()).zip(x) {
                *a = k + coef * *a;
                *yv = xv * neg_pow(*a, beta);
            }
        }
    });
}

pub fn lrn_backward(s: &LrnShape, input: &[f32], output: &[f32], scale: &[f32], grad_output: &[f32],
                    grad_input: &mut [f32]) {
    debug_assert!(s.validate().is_ok());
    debug_assert_eq!(input.len(), s.len());
    debug_assert_eq!(output.len(), s.len());
    debug_assert_eq!(scale.len(), s.len());
    debug_assert_eq!(grad_output.len(), s.len());
    debug_assert_eq!(grad_input.len(), s.len());
    let hw = s.height * s.width;
    let coef = 2.0 * s.alpha * s.beta / s.size as f32;
    let beta = s.beta;
    for_each_chunk(grad_input, hw, tasks(s), |planes, gin| {
        for (p, gi) in planes.zip(gin.chunks_exact_mut(hw)) {
            let (n, c) = (p / s.channels, p % s.channels);
            // gi temporarily holds sum over the window of go * y / scale.
            gi.fill(0.0);
            for cc in window(s, c) {
                let q = (n * s.channels + cc) * hw..(n * s.channels + cc + 1) * hw;
                for (((a, &g), &y), &sc) in gi.iter_mut().zip(&grad_output[q.clone()]).zip(&output[q.clone()]).zip(&scale[q]) {
                    *a += g * y / sc;
                }
            }
            let q = p * hw..(p + 1) * hw;
            for (((a, &g), &x), &sc) in gi.iter_mut().zip(&grad_output[q.clone()]).zip(&input[q.clone()]).zip(&scale[q]) {
                *a = g * neg_pow(sc, beta) - coef * x * *a;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, Rng};

    fn forward_f64(s: &LrnShape, x: &[f64]) -> Vec<f64> {
        let hw = s.height * s.width;
        let mut y = vec![0.0; x.len()];
        for n in 0..s.batch {
            for c in 0..s.channels {
                for i in 0..hw {
                    let mut sum = 0.0;
                    for cc in 0..s.channels {
                        if (cc as isize - c as isize).unsigned_abs() <= s.size / 2 {
                            sum += x[(n * s.channels + cc) * hw + i].powi(2);
                        }
                    }
                    let scale = s.k as f64 + s.alpha as f64 / s.size as f64 * sum;
                    let j = (n * s.channels + c) * hw + i;
                    y[j] = x[j] * scale.powf(-(s.beta as f64));
                }
            }
        }
        y
    }

    fn check(s: &LrnShape, rng: &mut Rng) {
        let x = rng.vec(s.len(), -2.0, 2.0);
        let go = rng.vec(s.len(), -1.0, 1.0);
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let y_ref = forward_f64(s, &x64);
        let (mut y, mut scale) = (vec![f32::NAN; s.len()], vec![f32::NAN; s.len()]);
        lrn_forward(s, &x, &mut y, &mut scale);
        assert_close(&y, &y_ref, 1e-5);
        let mut gi = vec![f32::NAN; s.len()];
        lrn_backward(s, &x, &y, &scale, &go, &mut gi);
        // Central finite differences of L = sum(go * y) in f64.
        let h = 1e-6;
        let fd: Vec<f64> = (0..s.len())
            .map(|j| {
                let (mut xp, mut xm) = (x64.clone(), x64.clone());
                xp[j] += h;
                xm[j] -= h;
                let (yp, ym) = (forward_f64(s, &xp), forward_f64(s, &xm));
                (0..s.len()).map(|i| go[i] as f64 * (yp[i] - ym[i])).sum::<f64>() / (2.0 * h)
            })
            .collect();
        assert_close(&gi, &fd, 1e-5);
    }

    #[test]
    fn forward_and_backward_vs_finite_differences() {
        let mut rng = Rng::new(41);
        for &(size, beta, channels) in &[(5usize, 0.75f32, 7usize), (3, 0.6, 4), (1, 0.5, 3), (7, 1.0, 5), (5, 0.75, 2)] {
            let s = LrnShape { batch: 2, channels, height: 3, width: 5, size, alpha: 0.4, beta, k: 1.5 };
            check(&s, &mut rng);
        }
    }

    #[test]
    fn large_forward_matches() {
        // Parallel path: GoogLeNet-like layer.
        let mut rng = Rng::new(42);
        let s = LrnShape { batch: 2, channels: 16, height: 28, width: 28, size: 5, alpha: 1e-4, beta: 0.75, k: 1.0 };
        let x = rng.vec(s.len(), -50.0, 50.0);
        let y_ref = forward_f64(&s, &x.iter().map(|&v| v as f64).collect::<Vec<_>>());
        let (mut y, mut scale) = (vec![0.0; s.len()], vec![0.0; s.len()]);
        lrn_forward(&s, &x, &mut y, &mut scale);
        assert_close(&y, &y_ref, 1e-5);
    }
}
