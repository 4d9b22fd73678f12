//! Wire encodings: bfloat16 and IEEE binary16, round to nearest even, NaN stays NaN
//! (made quiet), overflow to infinity, binary16 subnormals kept. The scalar paths are the
//! definition; on x86-64 with F16C (detected at run time) the binary16 conversions use
//! VCVTPS2PH / VCVTPH2PS, which the tests check bit for bit against the scalar code.

#[inline(always)]
fn bf16_from(x: f32) -> u16 {
    let b = x.to_bits();
    if b & 0x7fff_ffff > 0x7f80_0000 {
        // NaN: truncate, force the quiet bit so the payload cannot round to infinity.
        ((b >> 16) | 0x0040) as u16
    } else {
        (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
    }
}

pub fn f32_to_bf16(src: &[f32], dst: &mut [u16]) {
    debug_assert_eq!(src.len(), dst.len());
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = bf16_from(s);
    }
}

pub fn bf16_to_f32(src: &[u16], dst: &mut [f32]) {
    debug_assert_eq!(src.len(), dst.len());
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32::from_bits((s as u32) << 16);
    }
}

/// f32 -> binary16, round to nearest even (the reference definition).
#[inline]
pub(crate) fn f16_from(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let a = b & 0x7fff_ffff;
    if a >= 0x7f80_0000 {
        // Inf stays inf; NaN keeps its top payload bits and becomes quiet.
        return sign | if a > 0x7f80_0000 { 0x7e00 | ((a >> 13) & 0x03ff) as u16 } else { 0x7c00 };
    }
    if a >= 0x477f_f000 {
        // >= 65520 (half-way between 65504 and 2^16) rounds to infinity.
        return sign | 0x7c00;
    }
    if a < 0x3880_0000 {
        // Below 2^-14: subnormal or zero. Adding 0.5 puts the f32 ulp at 2^-24, the binary16
        // subnormal step, so the FPU's round-to-nearest-even does the rounding; 2^-14 itself
        // comes out as 0x400, the smallest normal.
        let f = f32::from_bits(a) + 0.5;
        return sign | (f.to_bits() - 0x3f00_0000) as u16;
    }
    // Normal: re-bias the exponent (127 -> 15) and round the 13 dropped bits to nearest even;
    // a carry out of the mantissa correctly bumps the exponent.
    let odd = (a >> 13) & 1;
    sign | (a.wrapping_sub(0x3800_0000).wrapping_add(0x0fff + odd) >> 13) as u16
}

/// binary16 -> f32 (exact; a NaN is returned quiet).
#[inline]
pub(crate) fn f16_to(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let e = (h >> 10) & 0x1f;
    let m = h & 0x03ff;
    let bits = match e {
        0 => (m as f32 * (1.0 / 16_777_216.0)).to_bits(),
        31 if m == 0 => 0x7f80_0000,
        31 => 0x7fc0_0000 | (m << 13),
        _ => ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(sign | bits)
}

fn f32_to_f16_scalar(src: &[f32], dst: &mut [u16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f16_from(s);
    }
}

fn f16_to_f32_scalar(src: &[u16], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f16_to(s);
    }
}

#[cfg(target_arch = "x86_64")]
mod f16c {
    use std::arch::x86_64::*;

    pub fn available() -> bool {
        std::is_x86_feature_detected!("avx") && std::is_x86_feature_detected!("f16c")
    }

    #[target_feature(enable = "avx,f16c")]
    pub fn encode(src: &[f32], dst: &mut [u16]) {
        let mut s = src.chunks_exact(8);
        let mut d = dst.chunks_exact_mut(8);
        for (si, di) in (&mut s).zip(&mut d) {
            // SAFETY: si and di are exactly 8 elements long; loadu/storeu need no alignment.
            unsafe {
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(si.as_ptr()));
                _mm_storeu_si128(di.as_mut_ptr().cast::<__m128i>(), h);
            }
        }
        super::f32_to_f16_scalar(s.remainder(), d.into_remainder());
    }

    #[target_feature(enable = "avx,f16c")]
    pub fn decode(src: &[u16], dst: &mut [f32]) {
        let mut s = src.chunks_exact(8);
        let mut d = dst.chunks_exact_mut(8);
        for (si, di) in (&mut s).zip(&mut d) {
            // SAFETY: si and di are exactly 8 elements long; loadu/storeu need no alignment.
            unsafe {
                let v = _mm256_cvtph_ps(_mm_loadu_si128(si.as_ptr().cast::<__m128i>()));
                _mm256_storeu_ps(di.as_mut_ptr(), v);
            }
        }
        super::f16_to_f32_scalar(s.remainder(), d.into_remainder());
    }
}

pub fn f32_to_f16(src: &[f32], dst: &mut [u16]) {
    debug_assert_eq!(src.len(), dst.len());
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    #[cfg(target_arch = "x86_64")]
    if f16c::available() {
        // SAFETY: the avx and f16c features were detected at run time.
        unsafe { f16c::encode(src, dst) };
        return;
    }
    f32_to_f16_scalar(src, dst);
}

pub fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    debug_assert_eq!(src.len(), dst.len());
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    #[cfg(target_arch = "x86_64")]
    if f16c::available() {
        // SAFETY: the avx and f16c features were detected at run time.
        unsafe { f16c::decode(src, dst) };
        return;
    }
    f16_to_f32_scalar(src, dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Round-to-nearest-even reference in f64 for a finite f32 value (binary16 grid).
    fn f16_ref(x: f32) -> u16 {
        let sign = if x.is_sign_negative() { 0x8000u16 } else { 0 };
        let a = (x as f64).abs();
        if a >= 65520.0 {
            return sign | 0x7c00;
        }
        // Grid step: 2^(e-10) for normals (e >= -14), 2^-24 below.
        let e = if a < 2f64.powi(-14) { -14 } else { a.log2().floor() as i32 };
        let step = 2f64.powi(e - 10);
        let q = a / step;
        let mut r = q.floor();
        let frac = q - r;
        if frac > 0.5 || (frac == 0.5 && r % 2.0 == 1.0) {
            r += 1.0;
        }
        let v = r * step; // the rounded magnitude, exactly representable in binary16
        if v == 0.0 {
            return sign;
        }
        let (ev, mv) = if v < 2f64.powi(-14) { (0u16, (v / 2f64.powi(-24)) as u16) } else {
            let ev = v.log2().floor() as i32;
            ((ev + 15) as u16, ((v / 2f64.powi(ev) - 1.0) * 1024.0) as u16)
        };
        sign | (ev << 10) | mv
    }

    #[test]
    fn bf16_edges() {
        let cases: &[(u32, u16)] = &[
            (0x3f80_0000, 0x3f80),           // 1.0
            (0x3f80_8000, 0x3f80),           // tie, even stays
            (0x3f81_8000, 0x3f82),           // tie, odd rounds up
            (0x3f80_8001, 0x3f81),           // above tie
            (0x7f7f_ffff, 0x7f80),           // max f32 rounds to inf
            (0xff80_0000, 0xff80),           // -inf
            (0x0000_0001, 0x0000),           // smallest subnormal -> 0
            (0x0000_8000, 0x0000),           // tie at subnormal -> even 0
            (0x0001_8000, 0x0002),           // tie odd -> up
            (0x8000_0000, 0x8000),           // -0
            (0x7f80_0001, 0x7fc0),           // sNaN with low payload: stays NaN (quiet)
            (0xffc0_0000, 0xffc0),           // -qNaN
        ];
        let src: Vec<f32> = cases.iter().map(|&(b, _)| f32::from_bits(b)).collect();
        let mut dst = vec![0u16; src.len()];
        f32_to_bf16(&src, &mut dst);
        for (i, &(b, want)) in cases.iter().enumerate() {
            assert_eq!(dst[i], want, "bf16 of {b:#010x}");
        }
        let mut back = vec![0.0; dst.len()];
        bf16_to_f32(&dst, &mut back);
        assert!(back[10].is_nan() && back[11].is_nan());
        assert_eq!(back[0], 1.0);
        // Every bf16 round-trips exactly.
        let all: Vec<u16> = (0..=u16::MAX).collect();
        let mut f = vec![0.0; all.len()];
        bf16_to_f32(&all, &mut f);
        let mut again = vec![0u16; all.len()];
        f32_to_bf16(&f, &mut again);
        for (&h, &g) in all.iter().zip(&again) {
            if f32::from_bits((h as u32) << 16).is_nan() {
                assert!(f32::from_bits((g as u32) << 16).is_nan());
            } else {
                assert_eq!(h, g);
            }
        }
    }

    #[test]
    fn f16_edges() {
        let cases: &[(f32, u16)] = &[
            (1.0, 0x3c00),
            (-2.0, 0xc000),
            (65504.0, 0x7bff),                       // max
            (65519.99, 0x7bff),                      // just below the tie to inf
            (65520.0, 0x7c00),                       // tie -> even = inf
            (1e6, 0x7c00),                           // overflow
            (f32::INFINITY, 0x7c00),
            (f32::NEG_INFINITY, 0xfc00),
            (6.103_515_6e-5, 0x0400),                // 2^-14 smallest normal
            (5.960_464_5e-8, 0x0001),                // 2^-24 smallest subnormal
            (2.980_232_2e-8, 0x0000),                // 2^-25 tie -> even 0
            (4.470_348_4e-8, 0x0001),                // 1.5 * 2^-25: rounds up to 2^-24
            (8.940_697e-8, 0x0002),                  // 1.5 * 2^-24 tie -> even 2
            (-0.0, 0x8000),
            (1.0 + 1.0 / 2048.0, 0x3c00),            // tie even
            (1.0 + 3.0 / 2048.0, 0x3c02),            // tie odd -> up
            (6.1e-5, 0x03ff),                        // subnormal rounding to the top
        ];
        let src: Vec<f32> = cases.iter().map(|&(v, _)| v).collect();
        let mut dst = vec![0u16; src.len()];
        f32_to_f16(&src, &mut dst);
        let mut scalar = vec![0u16; src.len()];
        f32_to_f16_scalar(&src, &mut scalar);
        for (i, &(v, want)) in cases.iter().enumerate() {
            assert_eq!(dst[i], want, "f16 of {v:e}");
            assert_eq!(scalar[i], want, "scalar f16 of {v:e}");
            assert_eq!(f16_ref(v), want, "reference f16 of {v:e}");
        }
        let nans = [f32::NAN, -f32::NAN, f32::from_bits(0x7f80_0001), f32::from_bits(0x7fbf_ffff)];
        let mut h = [0u16; 4];
        f32_to_f16(&nans, &mut h);
        for &x in &h {
            assert!(x & 0x7c00 == 0x7c00 && x & 0x3ff != 0, "{x:#06x} not NaN");
        }
        let mut back = [0.0f32; 4];
        f16_to_f32(&h, &mut back);
        assert!(back.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn f16_decode_all_and_round_trip() {
        let all: Vec<u16> = (0..=u16::MAX).collect();
        let mut f = vec![0.0; all.len()];
        f16_to_f32(&all, &mut f);
        let mut s = vec![0.0; all.len()];
        f16_to_f32_scalar(&all, &mut s);
        for (i, (&a, &b)) in f.iter().zip(&s).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "decode {i:#06x}");
        }
        let mut again = vec![0u16; all.len()];
        f32_to_f16(&f, &mut again);
        for (&h, &g) in all.iter().zip(&again) {
            if h & 0x7c00 == 0x7c00 && h & 0x3ff != 0 {
                assert_eq!(g, h | 0x200, "NaN {h:#06x} comes back quiet");
            } else {
                assert_eq!(h, g);
            }
        }
    }

    #[test]
    fn f16_encode_simd_matches_scalar_and_reference() {
        // A stride through all f32 bit patterns plus every pattern near the interesting edges.
        let mut bits: Vec<u32> = (0..=u32::MAX).step_by(4099).collect();
        for base in [0x3300_0000u32, 0x3380_0000, 0x3880_0000, 0x477f_f000, 0x7f80_0000, 0x3f80_0000] {
            for d in 0..8192u32 {
                bits.push(base.wrapping_add(d).wrapping_sub(4096));
                bits.push((base.wrapping_add(d).wrapping_sub(4096)) | 0x8000_0000);
            }
        }
        let src: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        let mut fast = vec![0u16; src.len()];
        let mut slow = vec![0u16; src.len()];
        f32_to_f16(&src, &mut fast);
        f32_to_f16_scalar(&src, &mut slow);
        for (i, &x) in src.iter().enumerate() {
            assert_eq!(fast[i], slow[i], "simd vs scalar for {:#010x}", bits[i]);
            if x.is_finite() {
                assert_eq!(slow[i], f16_ref(x), "scalar vs reference for {:#010x}", bits[i]);
            }
        }
    }
}
