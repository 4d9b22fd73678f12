//! CRC-32 (IEEE 802.3 as zlib, PNG and gzip: reflected polynomial 0xEDB88320, initial value
//! and final XOR 0xFFFFFFFF): the checksum of the wire frames (transport/frame.ts) and of
//! checkpoints (engine/io/checkpoint/crc32.ts). `crc32(crc, data)` is exactly zlib's
//! `crc32(crc, buf, len)`, continuation included: crc32(crc32(0, a), b) == crc32(0, a ++ b).
//!
//! Three kernels for one update of the raw (non-inverted) CRC register, the best the CPU
//! runs chosen at run time (`Kernel::best`):
//! - `Vpclmul`: the folding below on 256-bit registers (VPCLMULQDQ + AVX2): four lanes of
//!   two 128-bit halves, 128 bytes a step, then as Pclmul;
//! - `Pclmul`: carry-less-multiply folding (Intel, "Fast CRC Computation for Generic
//!   Polynomials Using PCLMULQDQ Instruction", 2009): four 128-bit lanes folded 64 bytes at
//!   a time, folded to one lane, reduced 128 -> 64 -> 32 bits (Barrett); needs PCLMULQDQ
//!   and SSE4.1;
//! - `Table`: slicing-by-16 (tables built at compile time), for other CPUs, for inputs
//!   shorter than FOLD_MIN and for the last 0..15 bytes after folding.
//!
//! The SIMD kernels fold the multiple-of-16 bulk of the input; loads are unaligned, so any
//! alignment works.

/// The bit-reflected IEEE 802.3 polynomial (x^32 + x^26 + ... + 1 without the x^32 term).
const POLY: u32 = 0xEDB8_8320;

/// Inputs shorter than this use the tables (the folding's fixed reduction cost does not pay
/// below a few blocks).
pub const FOLD_MIN: usize = 128;

/// TABLES[0][b]: the register after one byte b (from 0); TABLES[k][b]: after b and k zero
/// bytes. Slicing-by-16 looks up each of 16 bytes in the table of its distance to the end.
static TABLES: [[u32; 256]; 16] = make_tables();

const fn make_tables() -> [[u32; 256]; 16] {
    let mut t = [[0u32; 256]; 16];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[0][n] = c;
        n += 1;
    }
    let mut k = 1;
    while k < 16 {
        let mut n = 0;
        while n < 256 {
            let prev = t[k - 1][n];
            t[k][n] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            n += 1;
        }
        k += 1;
    }
    t
}

/// A CRC-32 implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Vpclmul,
    Pclmul,
    Table,
}

impl Kernel {
    pub const ALL: [Kernel; 3] = [Kernel::Vpclmul, Kernel::Pclmul, Kernel::Table];

    /// "vpclmul", "pclmul" or "slicing-by-16".
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Vpclmul => "vpclmul",
            Kernel::Pclmul => "pclmul",
            Kernel::Table => "slicing-by-16",
        }
    }

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Vpclmul => fold::wide_available(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Pclmul => fold::available(),
            Kernel::Table => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The fastest kernel this CPU runs (detected once).
    pub fn best() -> Kernel {
        static BEST: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Kernel::ALL.into_iter().find(|k| k.available()).unwrap_or(Kernel::Table))
    }
}

/// CRC-32 of `data` continuing from `crc` (the CRC-32 of what came before; 0 to start), by
/// the best kernel for its size on this CPU.
pub fn crc32(crc: u32, data: &[u8]) -> u32 {
    let k = if data.len() < FOLD_MIN { Kernel::Table } else { Kernel::best() };
    !update(k, !crc, data)
}

/// CRC-32 by one kernel, on every input it can take (the SIMD kernels from 128 and 64 bytes;
/// tables for shorter inputs and tails), or None when this CPU cannot run it (for tests and
/// comparisons).
pub fn crc32_with(kernel: Kernel, crc: u32, data: &[u8]) -> Option<u32> {
    kernel.available().then(|| !update(kernel, !crc, data))
}

/// Which kernel `crc32` uses for large inputs on this CPU: "vpclmul", "pclmul" or "slicing-by-16".
pub fn implementation() -> &'static str {
    Kernel::best().name()
}

/// One update of the raw register by `kernel` (available on this CPU: checked by the callers;
/// the SIMD entry points check again).
fn update(kernel: Kernel, c: u32, data: &[u8]) -> u32 {
    let bulk = data.len() & !15;
    #[cfg(target_arch = "x86_64")]
    {
        let folded = match kernel {
            Kernel::Vpclmul if bulk >= 128 => Some(fold::run_wide(c, &data[..bulk])),
            Kernel::Vpclmul | Kernel::Pclmul if bulk >= 64 => Some(fold::run(c, &data[..bulk])),
            _ => None,
        };
        if let Some(c) = folded {
            return update_table(c, &data[bulk..]);
        }
    }
    let _ = (kernel, bulk);
    update_table(c, data)
}

/// Slicing-by-16 update of the raw register.
fn update_table(mut c: u32, data: &[u8]) -> u32 {
    let t = &TABLES;
    let mut blocks = data.chunks_exact(16);
    for b in &mut blocks {
        let b: &[u8; 16] = b.try_into().expect("16-byte chunk");
        // The twelve lookups that do not depend on the register first, so that only four
        // lookups and three XORs are on the dependency chain from one block to the next.
        let rest = (t[11][b[4] as usize] ^ t[10][b[5] as usize] ^ t[9][b[6] as usize] ^ t[8][b[7] as usize])
            ^ (t[7][b[8] as usize] ^ t[6][b[9] as usize] ^ t[5][b[10] as usize] ^ t[4][b[11] as usize])
            ^ (t[3][b[12] as usize] ^ t[2][b[13] as usize] ^ t[1][b[14] as usize] ^ t[0][b[15] as usize]);
        let w = c ^ u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        c = rest
            ^ (t[15][(w & 0xff) as usize] ^ t[14][((w >> 8) & 0xff) as usize])
            ^ (t[13][((w >> 16) & 0xff) as usize] ^ t[12][(w >> 24) as usize]);
    }
    for &b in blocks.remainder() {
        c = t[0][((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    c
}

/// Folding constants for the reflected polynomial. Each K is (x^T mod P) bit-reflected over
/// 33 bits (bit i holds the coefficient of x^(32-i)), the form the reflected carry-less
/// products need; the tests derive every one of them bitwise.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
mod k {
    /// x^(8*128+32) mod P: folds a 256-bit lane's halves' low 64 bits 1024 bits ahead.
    pub const K1_WIDE: u64 = 0x1_e88e_f372;
    /// x^(8*128-32) mod P: the same for the high 64 bits.
    pub const K2_WIDE: u64 = 0x1_4a7f_e880;
    /// x^(4*128+32) mod P: folds a lane's low 64 bits 512 bits ahead.
    pub const K1: u64 = 0x1_5444_2bd4;
    /// x^(4*128-32) mod P: folds a lane's high 64 bits 512 bits ahead.
    pub const K2: u64 = 0x1_c6e4_1596;
    /// x^(128+32) mod P: folds the low 64 bits 128 bits ahead.
    pub const K3: u64 = 0x1_7519_97d0;
    /// x^(128-32) mod P: folds the high 64 bits 128 bits ahead.
    pub const K4: u64 = 0x0_ccaa_009e;
    /// x^64 mod P: 96 -> 64 bits.
    pub const K5: u64 = 0x1_63cd_6124;
    /// floor(x^64 / P), reflected: the Barrett quotient estimate.
    pub const MU: u64 = 0x1_f701_1641;
    /// P itself, reflected over 33 bits.
    pub const P: u64 = 0x1_db71_0641;
}

#[cfg(target_arch = "x86_64")]
mod fold {
    use super::k::*;
    use std::arch::x86_64::*;

    pub fn available() -> bool {
        std::is_x86_feature_detected!("pclmulqdq") && std::is_x86_feature_detected!("sse4.1")
    }

    pub fn wide_available() -> bool {
        available() && std::is_x86_feature_detected!("vpclmulqdq") && std::is_x86_feature_detected!("avx2")
    }

    /// Folds `bulk` (64 + 16k bytes) into the raw register on 128-bit registers. Panics on a
    /// CPU without PCLMULQDQ and SSE4.1.
    pub fn run(crc: u32, bulk: &[u8]) -> u32 {
        assert!(available(), "crc32: this CPU has no PCLMULQDQ / SSE4.1");
        // SAFETY: the CPU has PCLMULQDQ and SSE4.1 (checked just above).
        unsafe { fold128(crc, bulk) }
    }

    /// Folds `bulk` (128 + 16k bytes) into the raw register on 256-bit registers. Panics on a
    /// CPU without VPCLMULQDQ, AVX2, PCLMULQDQ and SSE4.1.
    pub fn run_wide(crc: u32, bulk: &[u8]) -> u32 {
        assert!(wide_available(), "crc32: this CPU has no VPCLMULQDQ / AVX2");
        // SAFETY: the CPU has VPCLMULQDQ, AVX2, PCLMULQDQ and SSE4.1 (checked just above).
        unsafe { fold256(crc, bulk) }
    }

    /// 16 bytes, little-endian, into a register (SSE2: baseline on x86_64).
    #[inline(always)]
    fn load(b: &[u8]) -> __m128i {
        let b: &[u8; 16] = b[..16].try_into().expect("16 bytes");
        // SAFETY: b is 16 readable bytes; loadu needs no alignment.
        unsafe { _mm_loadu_si128(b.as_ptr().cast::<__m128i>()) }
    }

    /// 32 bytes, little-endian, into a register.
    #[inline]
    #[target_feature(enable = "avx")]
    fn load256(b: &[u8]) -> __m256i {
        let b: &[u8; 32] = b[..32].try_into().expect("32 bytes");
        // SAFETY: b is 32 readable bytes; loadu needs no alignment.
        unsafe { _mm256_loadu_si256(b.as_ptr().cast::<__m256i>()) }
    }

    /// x carried as many bits ahead as `k` encodes (low qword times k's low, high times k's
    /// high), plus the next 128 bits of data.
    #[inline]
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    fn step(x: __m128i, k: __m128i, next: __m128i) -> __m128i {
        let lo = _mm_clmulepi64_si128::<0x00>(x, k);
        let hi = _mm_clmulepi64_si128::<0x11>(x, k);
        _mm_xor_si128(_mm_xor_si128(lo, hi), next)
    }

    /// `step` on both 128-bit halves at once.
    #[inline]
    #[target_feature(enable = "avx2,vpclmulqdq")]
    fn step256(y: __m256i, k: __m256i, next: __m256i) -> __m256i {
        let lo = _mm256_clmulepi64_epi128::<0x00>(y, k);
        let hi = _mm256_clmulepi64_epi128::<0x11>(y, k);
        _mm256_xor_si256(_mm256_xor_si256(lo, hi), next)
    }

    /// Folds the remaining 16-byte blocks of `tail` into x, then reduces it to the register.
    #[inline]
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    fn finish(mut x: __m128i, tail: &[u8]) -> u32 {
        let k3k4 = _mm_set_epi64x(K4 as i64, K3 as i64);
        for b in tail.chunks_exact(16) {
            x = step(x, k3k4, load(b));
        }
        // 128 -> 96 bits: the low 64 bits times x^(128-32) onto the high 64.
        let low32 = _mm_setr_epi32(!0, 0, !0, 0);
        x = _mm_xor_si128(_mm_srli_si128::<8>(x), _mm_clmulepi64_si128::<0x10>(x, k3k4));
        // 96 -> 64 bits: the low 32 bits times x^64 onto the rest.
        let k5 = _mm_set_epi64x(0, K5 as i64);
        x = _mm_xor_si128(_mm_srli_si128::<4>(x), _mm_clmulepi64_si128::<0x00>(_mm_and_si128(x, low32), k5));
        // Barrett reduction 64 -> 32 bits: q = floor(x / P) from mu, then x - q * P.
        let poly = _mm_set_epi64x(MU as i64, P as i64);
        let q = _mm_and_si128(_mm_clmulepi64_si128::<0x10>(_mm_and_si128(x, low32), poly), low32);
        x = _mm_xor_si128(x, _mm_clmulepi64_si128::<0x00>(q, poly));
        _mm_extract_epi32::<1>(x) as u32
    }

    /// Updates the raw register `crc` with `data` (at least 64 bytes, a multiple of 16).
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    fn fold128(crc: u32, data: &[u8]) -> u32 {
        assert!(data.len() >= 64 && data.len().is_multiple_of(16), "fold128 needs 64 + 16k bytes, got {}", data.len());
        let (first, rest) = data.split_at(64);
        let mut x0 = _mm_xor_si128(load(&first[0..]), _mm_cvtsi32_si128(crc as i32));
        let mut x1 = load(&first[16..]);
        let mut x2 = load(&first[32..]);
        let mut x3 = load(&first[48..]);

        // Four lanes, 64 bytes a step.
        let k1k2 = _mm_set_epi64x(K2 as i64, K1 as i64);
        let mut blocks = rest.chunks_exact(64);
        for b in &mut blocks {
            x0 = step(x0, k1k2, load(&b[0..]));
            x1 = step(x1, k1k2, load(&b[16..]));
            x2 = step(x2, k1k2, load(&b[32..]));
            x3 = step(x3, k1k2, load(&b[48..]));
        }

        // Four lanes into one, then the remaining 16-byte blocks.
        let k3k4 = _mm_set_epi64x(K4 as i64, K3 as i64);
        let mut x = step(x0, k3k4, x1);
        x = step(x, k3k4, x2);
        x = step(x, k3k4, x3);
        finish(x, blocks.remainder())
    }

    /// `fold128` on 256-bit registers (at least 128 bytes, a multiple of 16).
    #[target_feature(enable = "avx2,vpclmulqdq,pclmulqdq,sse4.1")]
    fn fold256(crc: u32, data: &[u8]) -> u32 {
        assert!(data.len() >= 128 && data.len().is_multiple_of(16), "fold256 needs 128 + 16k bytes, got {}", data.len());
        let (first, rest) = data.split_at(128);
        let mut y0 = _mm256_xor_si256(load256(&first[0..]), _mm256_set_epi32(0, 0, 0, 0, 0, 0, 0, crc as i32));
        let mut y1 = load256(&first[32..]);
        let mut y2 = load256(&first[64..]);
        let mut y3 = load256(&first[96..]);

        // Four lanes of two 128-bit halves, 128 bytes a step (each half moves 1024 bits).
        let k = _mm256_set_epi64x(K2_WIDE as i64, K1_WIDE as i64, K2_WIDE as i64, K1_WIDE as i64);
        let mut blocks = rest.chunks_exact(128);
        for b in &mut blocks {
            y0 = step256(y0, k, load256(&b[0..]));
            y1 = step256(y1, k, load256(&b[32..]));
            y2 = step256(y2, k, load256(&b[64..]));
            y3 = step256(y3, k, load256(&b[96..]));
        }

        // The eight halves into one, in message order.
        let k3k4 = _mm_set_epi64x(K4 as i64, K3 as i64);
        let mut x = _mm256_castsi256_si128(y0);
        x = step(x, k3k4, _mm256_extracti128_si256::<1>(y0));
        for y in [y1, y2, y3] {
            x = step(x, k3k4, _mm256_castsi256_si128(y));
            x = step(x, k3k4, _mm256_extracti128_si256::<1>(y));
        }
        finish(x, blocks.remainder())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one bit at a time.
    fn crc32_bitwise(crc: u32, data: &[u8]) -> u32 {
        let mut c = !crc;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            }
        }
        !c
    }

    /// xorshift64*: deterministic test data.
    fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    type Crc = fn(u32, &[u8]) -> u32;

    /// Every implementation there is on this machine, by name: crc32 (the dispatch) and each
    /// available kernel forced on every input it can take.
    fn implementations() -> Vec<(&'static str, Crc)> {
        let all: [(&'static str, Crc); 4] = [
            ("crc32", crc32),
            ("vpclmul", |c, d| crc32_with(Kernel::Vpclmul, c, d).unwrap()),
            ("pclmul", |c, d| crc32_with(Kernel::Pclmul, c, d).unwrap()),
            ("table", |c, d| crc32_with(Kernel::Table, c, d).unwrap()),
        ];
        let available = |name: &str| Kernel::ALL.iter().find(|k| k.name().starts_with(name)).is_none_or(|k| k.available());
        all.into_iter().filter(|(name, _)| *name == "crc32" || available(name)).collect()
    }

    // ---- the constants, derived bitwise ----

    /// The full polynomial P(x), bit i = coefficient of x^i.
    const P_FULL: u64 = 0x1_04C1_1DB7;

    /// x^n mod P (degree < 32), normal bit order.
    fn xpow_mod(n: u32) -> u64 {
        let mut r: u64 = 1;
        for _ in 0..n {
            r <<= 1;
            if r & (1 << 32) != 0 {
                r ^= P_FULL;
            }
        }
        r
    }

    /// floor(x^n / P), normal bit order (n <= 95).
    fn xpow_div(n: u32) -> u128 {
        let mut rem: u128 = 1 << n;
        let mut q: u128 = 0;
        for i in (32..=n).rev() {
            if rem & (1 << i) != 0 {
                q |= 1 << (i - 32);
                rem ^= (P_FULL as u128) << (i - 32);
            }
        }
        q
    }

    /// Reverses the low 33 bits (bit i <-> bit 32 - i).
    fn reflect33(v: u64) -> u64 {
        assert!(v < 1 << 33);
        (0..33).filter(|i| v & (1 << i) != 0).fold(0, |r, i| r | 1 << (32 - i))
    }

    #[test]
    fn fold_constants_derived_bitwise() {
        assert_eq!(k::K1_WIDE, reflect33(xpow_mod(8 * 128 + 32)), "K1_WIDE");
        assert_eq!(k::K2_WIDE, reflect33(xpow_mod(8 * 128 - 32)), "K2_WIDE");
        assert_eq!(k::K1, reflect33(xpow_mod(4 * 128 + 32)), "K1");
        assert_eq!(k::K2, reflect33(xpow_mod(4 * 128 - 32)), "K2");
        assert_eq!(k::K3, reflect33(xpow_mod(128 + 32)), "K3");
        assert_eq!(k::K4, reflect33(xpow_mod(128 - 32)), "K4");
        assert_eq!(k::K5, reflect33(xpow_mod(64)), "K5");
        let mu = xpow_div(64);
        assert!(mu < 1 << 33);
        assert_eq!(k::MU, reflect33(mu as u64), "MU");
        assert_eq!(k::P, reflect33(P_FULL), "P");
        assert_eq!(reflect33(P_FULL) >> 1, POLY as u64, "the table polynomial is P reflected");
    }

    #[test]
    fn tables_match_the_bitwise_definition() {
        for (k, table) in TABLES.iter().enumerate() {
            for b in 0..=255u8 {
                let mut msg = vec![0u8; k + 1];
                msg[0] = b;
                // The raw register after b then k zero bytes, from 0: undo the init and final XORs.
                let raw = !crc32_bitwise(0, &msg) ^ bitwise_raw_of_init(k + 1);
                assert_eq!(table[b as usize], raw, "table {k}, byte {b}");
            }
        }
    }

    /// The contribution of the initial 0xFFFFFFFF register after n zero bytes (raw).
    fn bitwise_raw_of_init(n: usize) -> u32 {
        !crc32_bitwise(0, &vec![0u8; n])
    }

    // ---- the checksum ----

    #[test]
    fn check_values() {
        for (name, f) in implementations() {
            assert_eq!(f(0, b""), 0, "{name}: empty");
            assert_eq!(f(0, b"123456789"), 0xcbf4_3926, "{name}: 123456789");
            assert_eq!(f(0, b"The quick brown fox jumps over the lazy dog"), 0x414f_a339, "{name}: fox");
            assert_eq!(f(0, &[0u8; 32]), 0x190a_55ad, "{name}: 32 zeros");
            assert_eq!(f(0, &[0xffu8; 32]), 0xff6c_ab0b, "{name}: 32 0xff");
            assert_eq!(f(0x1234_5678, b""), 0x1234_5678, "{name}: empty keeps the running value");
        }
    }

    #[test]
    fn the_simd_kernels_are_tested_here() {
        // The development machines are x86_64 with PCLMULQDQ (and mostly VPCLMULQDQ): say so
        // when a SIMD kernel cannot be tested here.
        for k in Kernel::ALL {
            eprintln!("crc32 kernel {}: {}", k.name(), if k.available() { "available, tested" } else { "NOT available here, not tested" });
        }
        if cfg!(target_arch = "x86_64") && std::env::var_os("SQUALL_CRC32_ALLOW_NO_PCLMUL").is_none() {
            assert!(Kernel::Pclmul.available(), "no PCLMULQDQ: set SQUALL_CRC32_ALLOW_NO_PCLMUL=1 to accept");
        }
        assert_eq!(implementation(), Kernel::best().name());
        assert!(Kernel::best().available());
    }

    #[test]
    fn every_length_and_alignment() {
        let data = random_bytes(300 + 16, 1);
        let ones = vec![0xffu8; 300 + 16];
        for buf in [&data, &ones] {
            for off in 0..16 {
                for len in 0..=300 {
                    let s = &buf[off..off + len];
                    let want = crc32_bitwise(0, s);
                    for (name, f) in implementations() {
                        assert_eq!(f(0, s), want, "{name}: offset {off}, length {len}");
                    }
                    let seed = 0x9e37_79b9u32.wrapping_mul(len as u32 + 1);
                    let want = crc32_bitwise(seed, s);
                    for (name, f) in implementations() {
                        assert_eq!(f(seed, s), want, "{name}: offset {off}, length {len}, running value {seed:#x}");
                    }
                }
            }
        }
    }

    #[test]
    fn large_inputs() {
        let n = (1 << 20) + 13;
        let data = random_bytes(n + 16, 2);
        let ones = vec![0xffu8; n + 16];
        let zeros = vec![0u8; n + 16];
        for (what, buf) in [("random", &data), ("0xff", &ones), ("zero", &zeros)] {
            for off in [0, 1, 7, 8, 15] {
                for len in [n, n - 13, 4096 * 3 + 5, 64 * 1000 + 63] {
                    let s = &buf[off..off + len];
                    let want = crc32_bitwise(0, s);
                    for (name, f) in implementations() {
                        assert_eq!(f(0, s), want, "{name}: {what}, offset {off}, length {len}");
                    }
                }
            }
        }
    }

    #[test]
    fn continuation() {
        let data = random_bytes(5000, 3);
        let whole = crc32_bitwise(0, &data);
        let mut cuts: Vec<usize> = (0..=300).collect();
        cuts.extend([511, 512, 513, 1000, 1023, 1024, 1025, 2047, 4095, 4096, 4097, 4999, 5000]);
        for (name, f) in implementations() {
            for &cut in &cuts {
                let (a, b) = data.split_at(cut);
                assert_eq!(f(f(0, a), b), whole, "{name}: split at {cut}");
            }
            // Many pieces of uneven sizes, mixing implementations piece by piece.
            let mut c = 0;
            let (mut i, mut step) = (0, 1);
            while i < data.len() {
                let j = (i + step).min(data.len());
                c = implementations()[(i + step) % implementations().len()].1(c, &data[i..j]);
                i = j;
                step = step * 7 % 613 + 1;
            }
            assert_eq!(c, whole, "{name}: uneven pieces");
        }
    }

    #[test]
    fn reflected_clmul_matches_the_folding_identity() {
        // Independent of the SIMD code: fold one 128-bit block with the constants using a
        // software carry-less multiply and compare with the table CRC of the same bytes.
        fn clmul(a: u64, b: u64) -> u128 {
            (0..64).filter(|i| b & (1 << i) != 0).fold(0u128, |r, i| r ^ ((a as u128) << i))
        }
        let data = random_bytes(32, 4);
        let x = u128::from_le_bytes(data[..16].try_into().unwrap());
        let next = u128::from_le_bytes(data[16..].try_into().unwrap());
        let folded = clmul(x as u64, k::K3) ^ clmul((x >> 64) as u64, k::K4) ^ next;
        // Folding preserves the CRC (from a zero register): crc(data) == crc(folded bytes).
        assert_eq!(update_table(0, &folded.to_le_bytes()), update_table(0, &data));
    }
}
