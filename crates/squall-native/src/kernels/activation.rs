//! ReLU, tanh, sigmoid and their gradients. ReLU and the backward passes are memory-bound
//! slice loops on the calling thread; tanh and sigmoid need an exponential per element
//! (compute-bound), so large arrays are split over the pool. The exponential is a
//! branch-free polynomial (exp_poly) rather than libm's expf, so the compiler vectorises
//! the whole map.

use super::elementwise::{map_in, zip_in, In};
use super::par::{for_each_chunk, tasks_for};

/// Transcendental element-wise maps are split over threads from this many elements.
const PAR_TRANSCENDENTAL: usize = 1 << 16;

fn par_map_in(x: In, y: &mut [f32], f: impl Fn(f32) -> f32 + Sync + Copy) {
    debug_assert_eq!(x.len_or(y.len()), y.len());
    let n = y.len();
    let tasks = if n >= PAR_TRANSCENDENTAL { tasks_for(n, n) } else { 1 };
    let wide = avx2_fma();
    for_each_chunk(y, 1, tasks, |r, chunk| {
        let x = match x {
            In::Slice(s) => In::Slice(&s[r]),
            In::Out => In::Out,
        };
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: avx2_fma() checked that this CPU has AVX2 and FMA.
            unsafe { map_in_avx2(x, chunk, f) };
            return;
        }
        let _ = wide;
        map_in(x, chunk, f);
    });
}

/// Whether the AVX2 + FMA build of the maps can run (twice the width of the baseline SSE2).
fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static W: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *W.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// map_in compiled for AVX2 + FMA: f is inlined into this body, so it vectorises 8 wide.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn map_in_avx2(x: In, out: &mut [f32], f: impl Fn(f32) -> f32) {
    map_in(x, out, f);
}

/// y = max(x, 0); NaN propagates (as PyTorch and Math.max do).
pub fn relu(x: In, y: &mut [f32]) {
    debug_assert_eq!(x.len_or(y.len()), y.len());
    map_in(x, y, |v| if v > 0.0 || v.is_nan() { v } else { 0.0 });
}

/// gi = go where x > 0, else 0 (x: the forward input).
pub fn relu_backward(x: &[f32], go: In, gi: &mut [f32]) {
    debug_assert_eq!(x.len(), gi.len());
    debug_assert_eq!(go.len_or(gi.len()), gi.len());
    zip_in(x, go, gi, |xv, g| if xv > 0.0 { g } else { 0.0 });
}

/// e^x as Cephes' expf (about 1 ulp): x = n ln2 + r with |r| <= ln2 / 2, a degree-6
/// polynomial for e^r, and 2^n built in the exponent bits. Below -87 the result is 0 and
/// above 88 it is +inf (so the denormal range is skipped); NaN stays NaN.
#[inline(always)]
#[allow(clippy::excessive_precision)]
fn exp_poly(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_375;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Round to nearest by adding and subtracting 1.5 * 2^23 (roundps is not in SSE2).
    const ROUND: f32 = 12_582_912.0;
    let xin = x;
    let x = x.max(-87.0).min(88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 5.000_000_1e-1)
        * r
        * r
        + r
        + 1.0;
    // 2^n from the bits of 2^23 + (n + 127), whose low mantissa bits hold n + 127: no
    // float-to-int conversion, which would keep the loop from vectorising.
    let biased = (n + (127.0 + 8_388_608.0)).to_bits() - 0x4B00_0000;
    let scale = f32::from_bits(biased << 23);
    let y = p * scale;
    let y = if xin < -87.0 { 0.0 } else { y };
    let y = if xin > 88.0 { f32::INFINITY } else { y };
    if xin.is_nan() {
        xin
    } else {
        y
    }
}

/// tanh as Cephes' tanhf (about 2 ulp): an odd polynomial below |x| = 0.625, else
/// 1 - 2 / (exp(2|x|) + 1) with the sign of x. Both branches are computed and one is
/// selected, which keeps the loop vectorisable.
#[inline(always)]
#[allow(clippy::excessive_precision)]
fn tanh1(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let p = (((-5.704_988_7e-3 * z + 2.063_908_9e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1) * z - 3.333_328_2e-1;
    let small = p * z * x + x;
    let e = exp_poly(2.0 * a);
    let large = (1.0 - 2.0 / (e + 1.0)).copysign(x);
    if a < 0.625 {
        small
    } else {
        large
    }
}

pub fn tanh(x: In, y: &mut [f32]) {
    par_map_in(x, y, tanh1);
}

/// gi = go * (1 - y^2) (y: the forward output).
pub fn tanh_backward(y: &[f32], go: In, gi: &mut [f32]) {
    debug_assert_eq!(y.len(), gi.len());
    debug_assert_eq!(go.len_or(gi.len()), gi.len());
    zip_in(y, go, gi, |yv, g| g * (1.0 - yv * yv));
}

/// y = 1 / (1 + exp(-x)).
pub fn sigmoid(x: In, y: &mut [f32]) {
    par_map_in(x, y, |v| 1.0 / (1.0 + exp_poly(-v)));
}

/// gi = go * y * (1 - y) (y: the forward output).
pub fn sigmoid_backward(y: &[f32], go: In, gi: &mut [f32]) {
    debug_assert_eq!(y.len(), gi.len());
    debug_assert_eq!(go.len_or(gi.len()), gi.len());
    zip_in(y, go, gi, |yv, g| g * yv * (1.0 - yv));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, Rng};

    #[test]
    fn forward_and_backward_vs_f64() {
        let mut r = Rng::new(3);
        let n = 70_001; // above the parallel threshold, odd
        let x = r.vec(n, -6.0, 6.0);
        let go = r.vec(n, -1.0, 1.0);
        let mut y = vec![0.0; n];
        let mut gi = vec![0.0; n];

        relu(In::Slice(&x), &mut y);
        assert_close(&y, &x.iter().map(|&v| (v as f64).max(0.0)).collect::<Vec<_>>(), 0.0);
        relu_backward(&x, In::Slice(&go), &mut gi);
        let want: Vec<f64> = x.iter().zip(&go).map(|(&a, &g)| if a > 0.0 { g as f64 } else { 0.0 }).collect();
        assert_close(&gi, &want, 0.0);
        let mut inplace = go.clone();
        relu_backward(&x, In::Out, &mut inplace);
        assert_eq!(inplace, gi);

        tanh(In::Slice(&x), &mut y);
        assert_close(&y, &x.iter().map(|&v| (v as f64).tanh()).collect::<Vec<_>>(), 1e-6);
        // Element-wise relative accuracy, including tiny and large arguments.
        for i in -2000..2000 {
            let v = (i as f32) * 0.0047 + if i % 2 == 0 { 1e-7 } else { 0.0 };
            for v in [v, v * 1e-5, v * 10.0] {
                let got = tanh1(v) as f64;
                let want = (v as f64).tanh();
                assert!((got - want).abs() <= 4e-7 * want.abs().max(1e-30), "tanh({v}) = {got}, want {want}");
            }
        }
        let mut inplace = x.clone();
        tanh(In::Out, &mut inplace);
        assert_eq!(inplace, y);
        tanh_backward(&y, In::Slice(&go), &mut gi);
        let want: Vec<f64> = y.iter().zip(&go).map(|(&a, &g)| g as f64 * (1.0 - a as f64 * a as f64)).collect();
        assert_close(&gi, &want, 1e-6);

        sigmoid(In::Slice(&x), &mut y);
        assert_close(&y, &x.iter().map(|&v| 1.0 / (1.0 + (-(v as f64)).exp())).collect::<Vec<_>>(), 1e-6);
        sigmoid_backward(&y, In::Slice(&go), &mut gi);
        let want: Vec<f64> = y.iter().zip(&go).map(|(&a, &g)| g as f64 * a as f64 * (1.0 - a as f64)).collect();
        assert_close(&gi, &want, 1e-6);
        let mut inplace = go.clone();
        sigmoid_backward(&y, In::Out, &mut inplace);
        assert_eq!(inplace, gi);
    }

    #[test]
    fn edge_values() {
        let x = [f32::NAN, -0.0, f32::INFINITY, f32::NEG_INFINITY, -100.0, 100.0];
        let mut y = [0.0; 6];
        relu(In::Slice(&x), &mut y);
        assert!(y[0].is_nan());
        assert_eq!(&y[1..], &[0.0, f32::INFINITY, 0.0, 0.0, 100.0]);
        sigmoid(In::Slice(&x), &mut y);
        assert_eq!(&y[2..], &[1.0, 0.0, 0.0, 1.0]);
        tanh(In::Slice(&x), &mut y);
        assert_eq!(&y[2..], &[1.0, -1.0, -1.0, 1.0]);
    }
}

#[cfg(test)]
mod bench {
    use super::*;
    use crate::kernels::elementwise::{add, axpy};
    use crate::parallel::{set_threads, threads};
    use std::time::Instant;

    /// Whether splitting element-wise work over the pool pays:
    /// `cargo test --release elementwise_threads -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn elementwise_threads() {
        let t0 = threads();
        for &n in &[1usize << 16, 1 << 20, 1 << 23] {
            let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 * 0.01 - 5.0).collect();
            let mut y = vec![0.0f32; n];
            let best = |f: &mut dyn FnMut()| {
                f();
                (0..5).map(|_| { let t = Instant::now(); f(); t.elapsed().as_secs_f64() }).fold(f64::MAX, f64::min) * 1e9 / n as f64
            };
            set_threads(1);
            let tanh1 = best(&mut || tanh(In::Slice(&x), &mut y));
            let sig1 = best(&mut || sigmoid(In::Slice(&x), &mut y));
            set_threads(t0.max(2));
            let tanh2 = best(&mut || tanh(In::Slice(&x), &mut y));
            let sig2 = best(&mut || sigmoid(In::Slice(&x), &mut y));
            let add1 = best(&mut || add(In::Slice(&x), In::Out, &mut y));
            let axpy1 = best(&mut || axpy(0.5, &x, &mut y));
            let relu1 = best(&mut || relu(In::Slice(&x), &mut y));
            println!("n {n:>8}: tanh {tanh1:.2} -> {tanh2:.2} ns/elem, sigmoid {sig1:.2} -> {sig2:.2} (1 -> {} threads); \
                      add {add1:.2}, axpy {axpy1:.2}, relu {relu1:.2} ns/elem on one thread", t0.max(2));
        }
        set_threads(t0);
    }
}
