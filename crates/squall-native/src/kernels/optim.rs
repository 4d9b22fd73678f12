//! Optimiser updates on one flat slice of parameters (torch.optim semantics).

use super::shapes::{AdamOptions, SgdOptions};

/// PyTorch SGD: g = grad + wd * p; with momentum, buf = first ? g : momentum * buf +
/// (1 - dampening) * g and step = nesterov ? g + momentum * buf : buf; without momentum
/// step = g (buf untouched); p -= lr * step.
pub fn sgd_update(o: &SgdOptions, params: &mut [f32], grads: &[f32], buf: &mut [f32]) {
    debug_assert_eq!(grads.len(), params.len());
    let (lr, mom, damp, wd) = (o.lr, o.momentum, 1.0 - o.dampening, o.weight_decay);
    if mom == 0.0 {
        for (p, &g) in params.iter_mut().zip(grads) {
            let g = if wd != 0.0 { g + wd * *p } else { g };
            *p -= lr * g;
        }
        return;
    }
    debug_assert_eq!(buf.len(), params.len());
    let first = o.first_step;
    let nesterov = o.nesterov;
    for ((p, &g), b) in params.iter_mut().zip(grads).zip(buf.iter_mut()) {
        let g = if wd != 0.0 { g + wd * *p } else { g };
        *b = if first { g } else { mom * *b + damp * g };
        let step = if nesterov { g + mom * *b } else { *b };
        *p -= lr * step;
    }
}

/// torch.optim.Adam (amsgrad off): g = grad + wd * p; m = lerp(m, g, 1 - beta1);
/// v = beta2 * v + (1 - beta2) * g^2; p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
pub fn adam_update(o: &AdamOptions, params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32]) {
    debug_assert_eq!(grads.len(), params.len());
    debug_assert_eq!(m.len(), params.len());
    debug_assert_eq!(v.len(), params.len());
    let t = o.step.max(1) as f64;
    let bc1 = 1.0 - (o.beta1 as f64).powf(t);
    let bc2 = 1.0 - (o.beta2 as f64).powf(t);
    let step_size = (o.lr as f64 / bc1) as f32;
    let inv_bc2_sqrt = (1.0 / bc2.sqrt()) as f32;
    let (w1, b2, w2, eps, wd) = (1.0 - o.beta1, o.beta2, 1.0 - o.beta2, o.eps, o.weight_decay);
    for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = if wd != 0.0 { g + wd * *p } else { g };
        *m += w1 * (g - *m);
        *v = b2 * *v + w2 * g * g;
        let denom = v.sqrt() * inv_bc2_sqrt + eps;
        *p -= step_size * (*m / denom);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, Rng};

    #[test]
    fn sgd_matches_pytorch_formula() {
        let mut rng = Rng::new(71);
        let n = 1001;
        for &(mom, damp, wd, nesterov) in &[(0.0f32, 0.0f32, 0.0f32, false), (0.0, 0.0, 1e-2, false), (0.9, 0.0, 5e-4, false),
                                           (0.9, 0.1, 1e-3, false), (0.9, 0.0, 1e-4, true)] {
            let mut p = rng.vec(n, -1.0, 1.0);
            let mut buf = vec![7.0f32; n];
            let mut p64: Vec<f64> = p.iter().map(|&x| x as f64).collect();
            let mut b64 = vec![7.0f64; n];
            for step in 0..3 {
                let g = rng.vec(n, -1.0, 1.0);
                let o = SgdOptions { lr: 0.05, momentum: mom, dampening: damp, weight_decay: wd, nesterov, first_step: step == 0 };
                sgd_update(&o, &mut p, &g, &mut buf);
                for i in 0..n {
                    let gi = g[i] as f64 + wd as f64 * p64[i];
                    let stepv = if mom != 0.0 {
                        b64[i] = if step == 0 { gi } else { mom as f64 * b64[i] + (1.0 - damp as f64) * gi };
                        if nesterov { gi + mom as f64 * b64[i] } else { b64[i] }
                    } else {
                        gi
                    };
                    p64[i] -= 0.05f32 as f64 * stepv;
                }
                assert_close(&p, &p64, 1e-5);
                if mom != 0.0 {
                    assert_close(&buf, &b64, 1e-5);
                } else {
                    assert!(buf.iter().all(|&b| b == 7.0));
                }
            }
        }
    }

    #[test]
    fn adam_matches_pytorch_formula() {
        let mut rng = Rng::new(72);
        let n = 777;
        for &wd in &[0.0f32, 1e-2] {
            let mut p = rng.vec(n, -1.0, 1.0);
            let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
            let mut p64: Vec<f64> = p.iter().map(|&x| x as f64).collect();
            let (mut m64, mut v64) = (vec![0.0f64; n], vec![0.0f64; n]);
            let (b1, b2, eps, lr) = (0.9f64, 0.999f64, 1e-8f64, 1e-3f64);
            for step in 1..=5u32 {
                let g = rng.vec(n, -1.0, 1.0);
                let o = AdamOptions { lr: lr as f32, beta1: b1 as f32, beta2: b2 as f32, eps: eps as f32, weight_decay: wd, step };
                adam_update(&o, &mut p, &g, &mut m, &mut v);
                let (b1f, b2f) = (b1 as f32 as f64, b2 as f32 as f64);
                for i in 0..n {
                    let gi = g[i] as f64 + wd as f64 * p64[i];
                    m64[i] = b1f * m64[i] + (1.0 - b1f) * gi;
                    v64[i] = b2f * v64[i] + (1.0 - b2f) * gi * gi;
                    let mhat = m64[i] / (1.0 - b1f.powi(step as i32));
                    let vhat = v64[i] / (1.0 - b2f.powi(step as i32));
                    p64[i] -= lr as f32 as f64 * mhat / (vhat.sqrt() + eps as f32 as f64);
                }
                assert_close(&p, &p64, 1e-5);
                assert_close(&m, &m64, 1e-5);
                assert_close(&v, &v64, 1e-5);
            }
        }
    }
}
