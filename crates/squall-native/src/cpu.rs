//! What the CPU is and what it can do: model name, vendor and the SIMD features the
//! kernels care about.

use std::sync::OnceLock;

#[derive(Clone, Debug)]
pub struct CpuInfo {
    /// "model name" from /proc/cpuinfo (or the CPUID brand string).
    pub model: String,
    /// "vendor_id": GenuineIntel, AuthenticAMD, ...
    pub vendor: String,
    /// "cpu family" and "model" numbers, when known.
    pub family: Option<u32>,
    pub model_number: Option<u32>,
    /// Detected features, in a fixed order.
    pub features: Vec<&'static str>,
}

pub fn info() -> &'static CpuInfo {
    static INFO: OnceLock<CpuInfo> = OnceLock::new();
    INFO.get_or_init(detect)
}

fn detect() -> CpuInfo {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| -> Option<String> {
        text.lines()
            .find(|l| l.split(':').next().map(|k| k.trim() == name).unwrap_or(false))
            .and_then(|l| l.split_once(':').map(|(_, v)| v.trim().to_string()))
    };
    let model = field("model name").filter(|s| !s.is_empty()).unwrap_or_else(brand_string);
    CpuInfo {
        model,
        vendor: field("vendor_id").unwrap_or_default(),
        family: field("cpu family").and_then(|v| v.parse().ok()),
        model_number: field("model").and_then(|v| v.parse().ok()),
        features: features(),
    }
}

#[cfg(target_arch = "x86_64")]
fn brand_string() -> String {
    use std::arch::x86_64::__cpuid;
    // CPUID exists on every x86_64 CPU; leaves above the maximum are not queried.
    let max = __cpuid(0x8000_0000).eax;
    if max < 0x8000_0004 {
        return "unknown x86_64".to_string();
    }
    let mut bytes = Vec::with_capacity(48);
    for leaf in 0x8000_0002u32..=0x8000_0004 {
        let r = __cpuid(leaf);
        for w in [r.eax, r.ebx, r.ecx, r.edx] {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
    }
    String::from_utf8_lossy(&bytes).trim_matches(char::from(0)).trim().to_string()
}

#[cfg(not(target_arch = "x86_64"))]
fn brand_string() -> String {
    std::env::consts::ARCH.to_string()
}

#[cfg(target_arch = "x86_64")]
fn features() -> Vec<&'static str> {
    let mut v = Vec::new();
    macro_rules! probe {
        ($($f:tt),*) => { $( if is_x86_feature_detected!($f) { v.push($f); } )* };
    }
    probe!("sse4.1", "sse4.2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512cd", "avx512dq", "avx512bw",
           "avx512vl", "avx512ifma", "avx512vbmi", "avx512vbmi2", "avx512vnni", "avx512bitalg", "avx512vpopcntdq",
           "avx512bf16", "avx512fp16", "avxvnni", "gfni", "vaes", "vpclmulqdq");
    v
}

#[cfg(target_arch = "aarch64")]
fn features() -> Vec<&'static str> {
    let mut v = Vec::new();
    if std::arch::is_aarch64_feature_detected!("neon") {
        v.push("neon");
    }
    if std::arch::is_aarch64_feature_detected!("fp16") {
        v.push("fp16");
    }
    v
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn features() -> Vec<&'static str> {
    Vec::new()
}

/// A short stable hash (FNV-1a 64) of the CPU's identity: model, vendor and features.
pub fn identity_hash() -> String {
    let i = info();
    let s = format!("{}|{}|{:?}|{:?}|{}", i.model, i.vendor, i.family, i.model_number, i.features.join(","));
    format!("{:016x}", fnv1a(s.as_bytes()))
}

pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn has_a_model() {
        let i = super::info();
        assert!(!i.model.is_empty());
        assert_eq!(super::identity_hash().len(), 16);
    }
}
