//! Inverted dropout with the counter-based generator of backend.ts (`dropoutUniform`), so
//! one seed gives one mask on every backend and in every peer's process.

use super::elementwise::{zip_in, In};

/// lowbias32 of (index + seed * 0x9E3779B9) mod 2^32, top 24 bits scaled to [0, 1):
/// bit-identical to backend.ts's dropoutUniform (the value is a multiple of 2^-24, exact in f32).
#[inline(always)]
pub fn dropout_uniform(seed: u32, index: u32) -> f32 {
    hash24(seed, index) as f32 * (1.0 / 16_777_216.0)
}

/// The top 24 bits of the hash: dropout_uniform * 2^24.
#[inline(always)]
fn hash24(seed: u32, index: u32) -> u32 {
    let mut x = index.wrapping_add(seed.wrapping_mul(0x9E37_79B9));
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^= x >> 16;
    x >> 8
}

/// mask[i] = 0 if dropout_uniform(seed, i) < p else 1 / (1 - p); y = x * mask. p in [0, 1).
///
/// `p` is compared as an f32. backend.ts compares the uniform with a JS double, so for a p
/// that is not an f32 (e.g. 0.7) the two can disagree on the element whose uniform equals
/// f32(p) when f32 rounding went down; `dropout_forward_f64` takes p as the JS double and
/// matches the TypeScript definition exactly (the mask value is 1/(1-p) computed in f64, then
/// rounded to f32, as a Float32Array store does).
pub fn dropout_forward(p: f32, seed: u32, x: In, y: &mut [f32], mask: &mut [f32]) {
    dropout_forward_f64(p as f64, seed, x, y, mask)
}

/// As `dropout_forward`, with p exactly as the JavaScript number the caller passed.
pub fn dropout_forward_f64(p: f64, seed: u32, x: In, y: &mut [f32], mask: &mut [f32]) {
    debug_assert_eq!(mask.len(), y.len());
    debug_assert_eq!(x.len_or(y.len()), y.len());
    debug_assert!((0.0..1.0).contains(&p));
    // u < p  <=>  (u * 2^24) < ceil(p * 2^24) for u a multiple of 2^-24 (p * 2^24 is exact).
    let threshold = (p * 16_777_216.0).ceil().clamp(0.0, 16_777_216.0) as u32;
    let keep = (1.0 / (1.0 - p)) as f32;
    for (i, m) in mask.iter_mut().enumerate() {
        *m = if hash24(seed, i as u32) < threshold { 0.0 } else { keep };
    }
    zip_in(mask, x, y, |m, v| v * m);
}

/// gi = go * mask.
pub fn dropout_backward(mask: &[f32], go: In, gi: &mut [f32]) {
    debug_assert_eq!(mask.len(), gi.len());
    debug_assert_eq!(go.len_or(gi.len()), gi.len());
    zip_in(mask, go, gi, |m, g| g * m);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The backend.ts function transcribed with u64 arithmetic and explicit mod 2^32, as JS
    /// evaluates it (Math.imul then >>> 0).
    fn js_uniform(seed: u32, index: u32) -> f64 {
        let m = 1u64 << 32;
        let imul = |a: u64, b: u64| (a * b) % m;
        let mut x = (index as u64 + imul(seed as u64, 0x9e3779b9)) % m;
        x ^= x >> 16;
        x = imul(x, 0x7feb352d);
        x ^= x >> 15;
        x = imul(x, 0x846ca68b);
        x ^= x >> 16;
        (x >> 8) as f64 * (1.0 / 16777216.0)
    }

    #[test]
    fn known_values() {
        // Hand-computed: seed 0, index 0 hashes 0 -> 0; seed 0, index 1:
        // x=1; x^=x>>16 -> 1; x*=0x7feb352d -> 0x7feb352d; x^=x>>15 (0xffd6) -> 0x7feb_cafb;
        // x*=0x846ca68b mod 2^32 -> computed below by the transcription; the known prefix checks the order.
        assert_eq!(dropout_uniform(0, 0), 0.0);
        let x1 = 0x7feb352du32 ^ (0x7feb352du32 >> 15);
        assert_eq!(x1, 0x7feb_cafb);
        let x2 = x1.wrapping_mul(0x846c_a68b);
        let x3 = x2 ^ (x2 >> 16);
        assert_eq!(dropout_uniform(0, 1), (x3 >> 8) as f32 / 16_777_216.0);
        // Values computed independently (Python, arbitrary-precision ints mod 2^32).
        for &(seed, index, top24) in &[(0u32, 1u32, 6_850_960u32), (1, 0, 130_277), (42, 12_345, 10_483_239),
                                       (u32::MAX, u32::MAX, 3_531_235)] {
            assert_eq!(dropout_uniform(seed, index), top24 as f32 / 16_777_216.0);
        }
        for &(seed, index) in &[(0u32, 1u32), (1, 0), (42, 12345), (u32::MAX, u32::MAX), (0x9E37_79B9, 7), (123456789, 987654321)] {
            assert_eq!(dropout_uniform(seed, index) as f64, js_uniform(seed, index), "seed {seed} index {index}");
        }
        for i in 0..10_000u32 {
            let u = dropout_uniform(7, i);
            assert!((0.0..1.0).contains(&u));
            assert_eq!(u as f64, js_uniform(7, i));
        }
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn forward_backward_and_rate() {
        let n = 100_000;
        let x: Vec<f32> = (0..n).map(|i| (i % 13) as f32 - 6.0).collect();
        for &p in &[0.0f32, 0.1, 0.5, 0.7] {
            let (mut y, mut mask) = (vec![0.0; n], vec![0.0; n]);
            dropout_forward(p, 99, In::Slice(&x), &mut y, &mut mask);
            let keep = (1.0 / (1.0 - p as f64)) as f32;
            let mut dropped = 0;
            for i in 0..n {
                let want = if js_uniform(99, i as u32) < p as f64 { 0.0 } else { keep };
                assert_eq!(mask[i], want);
                assert_eq!(y[i], x[i] * mask[i]);
                dropped += usize::from(mask[i] == 0.0);
            }
            assert!((dropped as f64 / n as f64 - p as f64).abs() < 0.01);
            let mut inplace = x.clone();
            let mut mask2 = vec![0.0; n];
            dropout_forward(p, 99, In::Out, &mut inplace, &mut mask2);
            assert_eq!((inplace, mask2), (y.clone(), mask.clone()));
            let mut gi = vec![0.0; n];
            dropout_backward(&mask, In::Slice(&x), &mut gi);
            assert_eq!(gi, y);
        }
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn f64_threshold_matches_js_comparison() {
        // 0.7 is not an f32; compare exactly as JS would with the double.
        let p = 0.7f64;
        let n = 50_000;
        let x = vec![1.0f32; n];
        let (mut y, mut mask) = (vec![0.0; n], vec![0.0; n]);
        dropout_forward_f64(p, 3, In::Slice(&x), &mut y, &mut mask);
        for i in 0..n {
            assert_eq!(mask[i] == 0.0, js_uniform(3, i as u32) < p);
        }
        assert_eq!(mask.iter().find(|&&m| m != 0.0).copied(), Some((1.0 / (1.0 - p)) as f32));
    }
}
