//! SGEMM with a provider chosen at run time: MKL or OpenBLAS through dlopen, or the
//! built-in Rust GEMM.
//!
//! Selection, first match wins:
//! 1. `SQUALL_BLAS=mkl|openblas|builtin` (an error if the named one cannot load): "env";
//! 2. a calibration, cached per machine and configuration in `$SQUALL_CACHE_DIR` (default
//!    `~/.cache/squall`) as `blas-<cpu hash>.json`: "calibration" (`SQUALL_BLAS_CALIBRATE=0`
//!    skips it, `SQUALL_BLAS_RECALIBRATE=1` measures again and overwrites the cached entry).
//!    The providers take turns on a 1024^3 sgemm in rounds (A B C, B C A, ...), about a
//!    second in all; the fastest by median wins unless another is within 5% of it round by
//!    round (a tie), which earns the tied ones more rounds, and a tie that remains goes to
//!    the per-CPU table's order. The cache entry records the rounds, the tie and the
//!    OpenBLAS kernel that was loaded;
//! 3. a per-CPU table (Intel: MKL; others: the built-in GEMM when it has AVX2/AVX-512):
//!    "table";
//! 4. only the built-in GEMM is available: "default".
//!
//! `select()` switches provider afterwards (benchmarks): "manual".
//!
//! In the deterministic mode (`crate::determinism`) no timing chooses: `SQUALL_BLAS`, else
//! the built-in GEMM ("deterministic"); MKL runs under its CNR control (see `reproducibility`).
//!
//! Threads: the pool's count (`parallel::threads()`) is applied to the provider before each
//! top-level call; inside a pool task a call runs on one thread (MKL: a thread-local
//! setting; OpenBLAS: its global setting, which only changes under the pool's gate).
//! OPENBLAS_CORETYPE and the other OPENBLAS_* variables are left exactly as the
//! environment set them.

pub mod builtin;
mod dl;

use std::ffi::{c_char, c_int, CStr};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::{cpu, determinism, json, parallel};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Mkl,
    OpenBlas,
    Builtin,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Mkl, Provider::OpenBlas, Provider::Builtin];
    pub fn name(self) -> &'static str {
        match self {
            Provider::Mkl => "mkl",
            Provider::OpenBlas => "openblas",
            Provider::Builtin => "builtin",
        }
    }
    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name.trim().to_ascii_lowercase())
    }
    fn code(self) -> u8 {
        match self {
            Provider::Mkl => 1,
            Provider::OpenBlas => 2,
            Provider::Builtin => 3,
        }
    }
    fn from_code(c: u8) -> Option<Provider> {
        match c {
            1 => Some(Provider::Mkl),
            2 => Some(Provider::OpenBlas),
            3 => Some(Provider::Builtin),
            _ => None,
        }
    }
    fn library(self) -> Option<&'static str> {
        match self {
            Provider::Mkl => Some("libmkl_rt.so"),
            Provider::OpenBlas => Some("libopenblas.so.0"),
            Provider::Builtin => None,
        }
    }
}

// ---- external providers -----------------------------------------------------------------

type CblasSgemm = unsafe extern "C" fn(c_int, c_int, c_int, c_int, c_int, c_int, f32, *const f32, c_int, *const f32,
                                       c_int, f32, *mut f32, c_int);
type SetThreads = unsafe extern "C" fn(c_int);
type SetThreadsLocal = unsafe extern "C" fn(c_int) -> c_int;
type CbwrSet = unsafe extern "C" fn(c_int) -> c_int;
type CbwrGetAutoBranch = unsafe extern "C" fn() -> c_int;

const CBLAS_ROW_MAJOR: c_int = 101;
const CBLAS_NO_TRANS: c_int = 111;
const CBLAS_TRANS: c_int = 112;
/// MKL_Set_Threading_Layer code of the GNU OpenMP layer (mkl_service.h: INTEL 0,
/// SEQUENTIAL 1, PGI 2, GNU 3, TBB 4).
const MKL_THREADING_GNU: c_int = 3;
/// mkl_service.h: CNR flag and branch codes.
const MKL_CBWR_STRICT: c_int = 0x10000;
const MKL_CBWR_SUCCESS: c_int = 0;

fn cbwr_branch_name(b: c_int) -> String {
    match b {
        3 => "COMPATIBLE".into(),
        4 => "SSE2".into(),
        6 => "SSSE3".into(),
        7 => "SSE4_1".into(),
        8 => "SSE4_2".into(),
        9 => "AVX".into(),
        10 => "AVX2".into(),
        11 => "AVX512_MIC".into(),
        12 => "AVX512".into(),
        13 => "AVX512_MIC_E1".into(),
        14 => "AVX512_E1".into(),
        other => format!("branch {other}"),
    }
}

/// MKL's conditional-numerical-reproducibility controls and what was applied.
struct Cnr {
    set: CbwrSet,
    auto_branch: CbwrGetAutoBranch,
    /// What was applied: None until CNR is on; then the branch and whether STRICT took.
    applied: Mutex<Option<(c_int, bool)>>,
}

impl Cnr {
    /// Pins MKL to this CPU's code path, STRICT when MKL accepts it (then GEMM results do
    /// not depend on the thread count either).
    fn apply(&self) -> Result<(c_int, bool), String> {
        let mut g = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = *g {
            return Ok(a);
        }
        // SAFETY: `int MKL_CBWR_Get_Auto_Branch(void)` (mkl_service.h).
        let auto = unsafe { (self.auto_branch)() };
        // MKL names a branch for Intel CPUs; on others it answers AUTO, and the widest branch
        // it accepts is the one it would dispatch to.
        let tries: Vec<c_int> = if auto >= 3 { vec![auto] } else { vec![12, 10, 9, 8, 7, 6, 4, 3] };
        let mut applied = None;
        let mut codes = Vec::new();
        'strictness: for strict in [true, false] {
            for &branch in &tries {
                // SAFETY: `int MKL_CBWR_Set(int)`; a value MKL does not accept returns an error code.
                let rc = unsafe { (self.set)(branch | if strict { MKL_CBWR_STRICT } else { 0 }) };
                if rc == MKL_CBWR_SUCCESS {
                    applied = Some((branch, strict));
                    break 'strictness;
                }
                codes.push(format!("{}{}: {rc}", cbwr_branch_name(branch), if strict { " strict" } else { "" }));
            }
        }
        let Some(applied) = applied else {
            return Err(format!("MKL_CBWR_Set accepted no branch ({})", codes.join(", ")));
        };
        *g = Some(applied);
        Ok(applied)
    }
    fn applied(&self) -> Option<(c_int, bool)> {
        *self.applied.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct External {
    description: String,
    /// OpenBLAS only: the kernel it loaded (openblas_get_corename), which OPENBLAS_CORETYPE can force.
    core: Option<String>,
    sgemm: CblasSgemm,
    set_threads: SetThreads,
    set_threads_local: Option<SetThreadsLocal>,
    /// MKL only.
    cnr: Option<Cnr>,
    /// Whether sgemm has run on this provider (MKL's CNR mode must be set before that).
    computed: std::sync::atomic::AtomicBool,
    /// Thread count last applied through set_threads (0: never).
    applied: AtomicUsize,
    applied_lock: Mutex<()>,
}

impl External {
    fn apply_threads(&self, n: usize) {
        if self.applied.load(Ordering::Acquire) == n {
            return;
        }
        let _g = self.applied_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.applied.load(Ordering::Acquire) != n {
            // SAFETY: set_threads was resolved from the provider with this signature.
            unsafe { (self.set_threads)(n.min(i32::MAX as usize) as c_int) };
            self.applied.store(n, Ordering::Release);
        }
    }
}

fn c_string(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the providers return NUL-terminated static strings.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().trim().to_string()
}

fn load_mkl() -> Result<External, String> {
    // MKL's default (Intel) threading layer needs libiomp5; use the GNU layer over libgomp,
    // which must be loaded globally before MKL resolves its OpenMP symbols.
    dl::Library::open("libgomp.so.1", dl::RTLD_NOW | dl::RTLD_GLOBAL)
        .map_err(|e| format!("MKL needs libgomp.so.1 for its GNU threading layer: {e}"))?;
    let lib = dl::Library::open("libmkl_rt.so", dl::RTLD_NOW | dl::RTLD_LOCAL)
        .or_else(|_| dl::Library::open("libmkl_rt.so.1", dl::RTLD_NOW | dl::RTLD_LOCAL))
        .or_else(|_| dl::Library::open("libmkl_rt.so.2", dl::RTLD_NOW | dl::RTLD_LOCAL))?;
    let sym = |name: &str| lib.symbol(name).ok_or_else(|| format!("libmkl_rt has no symbol {name}"));
    // SAFETY: MKL_Set_Threading_Layer is `int (int)` (mkl_service.h).
    let set_layer: SetThreadsLocal = unsafe { dl::as_fn(sym("MKL_Set_Threading_Layer")?) };
    // SAFETY: called before any other MKL function, as MKL requires.
    unsafe { set_layer(MKL_THREADING_GNU) };
    // SAFETY: `void MKL_Get_Version_String(char*, int)`.
    let version: unsafe extern "C" fn(*mut c_char, c_int) = unsafe { dl::as_fn(sym("MKL_Get_Version_String")?) };
    let mut buf = [0 as c_char; 256];
    // SAFETY: buf holds 256 bytes and MKL writes at most len bytes, NUL-terminated.
    unsafe { version(buf.as_mut_ptr(), buf.len() as c_int) };
    let full = c_string(buf.as_ptr());
    let cnr = Cnr {
        // SAFETY: `int MKL_CBWR_Set(int)` (mkl_service.h).
        set: unsafe { dl::as_fn(sym("MKL_CBWR_Set")?) },
        // SAFETY: `int MKL_CBWR_Get_Auto_Branch(void)`.
        auto_branch: unsafe { dl::as_fn(sym("MKL_CBWR_Get_Auto_Branch")?) },
        applied: Mutex::new(None),
    };
    if determinism::enabled() {
        // Before MKL computes anything, as CNR requires.
        cnr.apply().map_err(|e| format!("the deterministic mode needs MKL's CNR control: {e}"))?;
    }
    let ver = full
        .split_whitespace()
        .skip_while(|w| *w != "Version")
        .nth(1)
        .unwrap_or(full.as_str())
        .to_string();
    Ok(External {
        description: format!("mkl {ver} (gnu threading)"),
        core: None,
        // SAFETY: cblas_sgemm has the CBLAS signature (mkl_cblas.h, LP64 interface).
        sgemm: unsafe { dl::as_fn(sym("cblas_sgemm")?) },
        // SAFETY: `void MKL_Set_Num_Threads(int)`.
        set_threads: unsafe { dl::as_fn(sym("MKL_Set_Num_Threads")?) },
        // SAFETY: `int MKL_Set_Num_Threads_Local(int)`.
        set_threads_local: Some(unsafe { dl::as_fn(sym("MKL_Set_Num_Threads_Local")?) }),
        cnr: Some(cnr),
        computed: std::sync::atomic::AtomicBool::new(false),
        applied: AtomicUsize::new(0),
        applied_lock: Mutex::new(()),
    })
}

fn load_openblas() -> Result<External, String> {
    let lib = dl::Library::open("libopenblas.so.0", dl::RTLD_NOW | dl::RTLD_LOCAL)
        .or_else(|_| dl::Library::open("libopenblas.so", dl::RTLD_NOW | dl::RTLD_LOCAL))?;
    let sym = |name: &str| lib.symbol(name).ok_or_else(|| format!("libopenblas has no symbol {name}"));
    // SAFETY: `char* openblas_get_config(void)`, `char* openblas_get_corename(void)`.
    let config: unsafe extern "C" fn() -> *const c_char = unsafe { dl::as_fn(sym("openblas_get_config")?) };
    // SAFETY: as above.
    let corename: unsafe extern "C" fn() -> *const c_char = unsafe { dl::as_fn(sym("openblas_get_corename")?) };
    // SAFETY: both return static strings.
    let (cfg, core) = unsafe { (c_string(config()), c_string(corename())) };
    let ver = cfg.split_whitespace().nth(1).unwrap_or("?").to_string();
    Ok(External {
        description: format!("openblas {ver} ({core})"),
        core: Some(core.clone()),
        // SAFETY: cblas_sgemm has the CBLAS signature (cblas.h, 32-bit blasint in libopenblas.so.0).
        sgemm: unsafe { dl::as_fn(sym("cblas_sgemm")?) },
        // SAFETY: `void openblas_set_num_threads(int)`.
        set_threads: unsafe { dl::as_fn(sym("openblas_set_num_threads")?) },
        set_threads_local: None,
        cnr: None,
        computed: std::sync::atomic::AtomicBool::new(false),
        applied: AtomicUsize::new(0),
        applied_lock: Mutex::new(()),
    })
}

static MKL: OnceLock<Result<External, String>> = OnceLock::new();
static OPENBLAS: OnceLock<Result<External, String>> = OnceLock::new();

fn external(p: Provider) -> Result<&'static External, String> {
    let slot = match p {
        Provider::Mkl => MKL.get_or_init(load_mkl),
        Provider::OpenBlas => OPENBLAS.get_or_init(load_openblas),
        Provider::Builtin => return Err("builtin is not an external provider".into()),
    };
    slot.as_ref().map_err(|e| format!("cannot load {}: {e}", p.name()))
}

/// Loads a provider (no-op for builtin); Err says why it cannot be used.
pub fn load(p: Provider) -> Result<(), String> {
    match p {
        Provider::Builtin => Ok(()),
        _ => external(p).map(|_| ()),
    }
}

/// Whether the provider's library file is present (without loading it).
fn present(p: Provider) -> bool {
    let Some(lib) = p.library() else { return true };
    let slot = match p {
        Provider::Mkl => MKL.get(),
        Provider::OpenBlas => OPENBLAS.get(),
        Provider::Builtin => None,
    };
    if let Some(r) = slot {
        return r.is_ok();
    }
    let mut dirs: Vec<PathBuf> = std::env::var("LD_LIBRARY_PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect();
    for d in ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib",
              "/opt/intel/mkl/lib/intel64", "/opt/intel/oneapi/mkl/latest/lib/intel64", "/opt/intel/oneapi/mkl/latest/lib"] {
        dirs.push(PathBuf::from(d));
    }
    let names: &[&str] = match p {
        Provider::Mkl => &["libmkl_rt.so", "libmkl_rt.so.1", "libmkl_rt.so.2"],
        _ => &[lib, "libopenblas.so"],
    };
    dirs.iter().any(|d| names.iter().any(|n| d.join(n).exists()))
}

/// The kernel OpenBLAS loaded (e.g. "Haswell", "Cooperlake"), if OpenBLAS has been loaded.
pub fn openblas_core() -> Option<String> {
    OPENBLAS.get().and_then(|r| r.as_ref().ok()).and_then(|e| e.core.clone())
}

/// Providers usable here: builtin, plus each external one whose library is present and
/// has not failed to load.
pub fn available() -> Vec<Provider> {
    Provider::ALL.into_iter().filter(|&p| present(p)).collect()
}

// ---- selection ----------------------------------------------------------------------------

static CURRENT: AtomicU8 = AtomicU8::new(0);

#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub selected_by: String,
    /// GFLOP/s per provider measured by the calibration (from the cache or now).
    pub calibration: Vec<(String, f64)>,
    pub cache_file: Option<String>,
    /// Anything the user should know (a provider that failed to load, a cache error).
    pub notes: Vec<String>,
}

static SELECTION: Mutex<Option<Result<Selection, String>>> = Mutex::new(None);

/// The provider in use, choosing it on first call (see the module docs).
pub fn ensure_selected() -> Result<Provider, String> {
    if let Some(p) = Provider::from_code(CURRENT.load(Ordering::Acquire)) {
        return Ok(p);
    }
    let mut sel = SELECTION.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = Provider::from_code(CURRENT.load(Ordering::Acquire)) {
        return Ok(p);
    }
    if let Some(Err(e)) = sel.as_ref() {
        return Err(e.clone());
    }
    if parallel::in_pool_task() {
        // A first GEMM from inside a pool task (a kernel called from Rust): timings taken
        // here would be single-threaded and contended, so choose by the table for this call
        // only and leave the real choice to the first top-level call. (The exports always
        // select on the JavaScript thread before any job runs.)
        let mut s = Selection::default();
        return Ok(table_choice(&available(), &mut s));
    }
    match choose() {
        Ok((p, s)) => {
            CURRENT.store(p.code(), Ordering::Release);
            *sel = Some(Ok(s));
            Ok(p)
        }
        Err(e) => {
            *sel = Some(Err(e.clone()));
            Err(e)
        }
    }
}

/// Switches to `name` for the rest of the process (benchmarks compare providers this way).
pub fn select(name: &str) -> Result<Provider, String> {
    let p = Provider::parse(name)
        .ok_or_else(|| format!("unknown BLAS provider '{name}'; choose one of mkl, openblas, builtin"))?;
    load(p)?;
    if determinism::enabled() {
        mkl_reproducible(p)?;
    }
    let mut sel = SELECTION.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = match sel.take() {
        Some(Ok(s)) => s,
        _ => Selection::default(),
    };
    s.selected_by = "manual".into();
    *sel = Some(Ok(s));
    CURRENT.store(p.code(), Ordering::Release);
    Ok(p)
}

/// For MKL: puts it in CNR mode, or says why it cannot be (it already computed without
/// it in this process). Other providers need nothing.
fn mkl_reproducible(p: Provider) -> Result<(), String> {
    if p != Provider::Mkl {
        return Ok(());
    }
    let e = external(p)?;
    let Some(cnr) = e.cnr.as_ref() else { return Ok(()) };
    if cnr.applied().is_some() {
        return Ok(());
    }
    if e.computed.load(Ordering::Acquire) {
        return Err("MKL already computed in this process without its reproducibility (CNR) control, which it \
                    only accepts before its first call: start the process in the deterministic mode \
                    (SQUALL_DETERMINISTIC=1 or --deterministic), or use SQUALL_BLAS=builtin"
            .into());
    }
    cnr.apply().map(|_| ())
}

/// Called by `determinism::set` before the mode changes. Turning it on puts MKL (if it is
/// the provider) under CNR and moves a provider chosen by timing or table to the built-in
/// GEMM; turning it off keeps the provider (MKL stays in CNR mode: it cannot leave it).
pub(crate) fn on_determinism_change(on: bool) -> Result<(), String> {
    if !on {
        return Ok(());
    }
    let mut sel = SELECTION.lock().unwrap_or_else(|e| e.into_inner());
    let Some(current) = Provider::from_code(CURRENT.load(Ordering::Acquire)) else {
        return Ok(()); // nothing chosen yet: the choice will follow the mode
    };
    let chosen_by_user = matches!(sel.as_ref(), Some(Ok(s)) if s.selected_by == "env" || s.selected_by == "manual");
    if chosen_by_user {
        return mkl_reproducible(current);
    }
    let mut s = match sel.take() {
        Some(Ok(s)) => s,
        _ => Selection::default(),
    };
    s.selected_by = "deterministic".into();
    s.notes.push("deterministic mode: the built-in GEMM, not a timing, unless SQUALL_BLAS names another".into());
    *sel = Some(Ok(s));
    CURRENT.store(Provider::Builtin.code(), Ordering::Release);
    Ok(())
}

/// What the current mode and provider promise about bit-identical results.
#[derive(Clone, Debug)]
pub struct Reproducibility {
    pub deterministic: bool,
    /// Bit-identical across runs, processes and buffer alignments on this machine.
    pub reproducible: bool,
    /// ... and across thread counts.
    pub thread_independent: bool,
    pub reason: String,
}

pub fn reproducibility() -> Result<Reproducibility, String> {
    let p = ensure_selected()?;
    let det = determinism::enabled();
    let r = |reproducible: bool, thread_independent: bool, reason: String| Reproducibility {
        deterministic: det,
        reproducible,
        thread_independent,
        reason,
    };
    Ok(match (det, p) {
        (true, Provider::Builtin) => r(true, true, "deterministic mode: built-in GEMM (packing makes it independent of \
            alignment; each element sums its K products in one fixed order whatever the thread split); kernels \
            partition work for a fixed 4 threads"
            .into()),
        (true, Provider::Mkl) => match external(p)?.cnr.as_ref().and_then(|c| c.applied()) {
            Some((b, strict)) => r(true, true, format!("deterministic mode: MKL CNR {}{} (one code path, independent of \
                alignment); every GEMM is cut into 4 fixed row blocks, each a single-threaded MKL call, so the thread count \
                does not matter; kernels partition work for a fixed 4 threads", cbwr_branch_name(b),
                if strict { " strict" } else { "" })),
            None => r(false, false, "MKL is not in CNR mode (it computed before the mode was set)".into()),
        },
        (true, Provider::OpenBlas) => r(true, true, format!("deterministic mode: {} packs its operands (independent of \
            alignment); every GEMM is cut into 4 fixed row blocks, each a single-threaded OpenBLAS call (its own threading \
            partitions by the thread count, which changes the bits), so the thread count does not matter; the bits depend \
            on the kernel OPENBLAS_CORETYPE selects; kernels partition work for a fixed 4 threads", describe(p))),
        (false, Provider::Mkl) => r(false, false, "default mode: MKL chooses its code path by buffer alignment and \
            threading; convolution filter gradients are summed per thread (use --deterministic)".into()),
        (false, _) => r(false, false, format!("default mode: {} is chosen by a timing, and convolution filter gradients \
            are summed per thread, so results can change with the load and the thread count (use --deterministic)",
            describe(p))),
    })
}

pub fn selection() -> Option<Selection> {
    SELECTION.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|r| r.as_ref().ok().cloned())
}

/// e.g. "openblas 0.3.21 (Cooperlake)", "mkl 2020.0.4 (gnu threading)", "builtin avx512 14x32".
pub fn describe(p: Provider) -> String {
    match p {
        Provider::Builtin => {
            let k = builtin::kernel();
            format!("builtin {} {}x{}", k.name, k.mr, k.nr)
        }
        _ => match external(p) {
            Ok(e) => match e.cnr.as_ref().and_then(|c| c.applied()) {
                Some((b, strict)) => format!("{}, CNR {}{}", e.description, cbwr_branch_name(b), if strict { " strict" } else { "" }),
                None => e.description.clone(),
            },
            Err(e) => e,
        },
    }
}

fn choose() -> Result<(Provider, Selection), String> {
    let mut s = Selection::default();
    if let Ok(want) = std::env::var("SQUALL_BLAS") {
        if !want.trim().is_empty() {
            let p = Provider::parse(&want).ok_or_else(|| {
                format!("SQUALL_BLAS='{want}' is not a BLAS provider; use mkl, openblas or builtin")
            })?;
            load(p).map_err(|e| format!("SQUALL_BLAS={}: {e}", p.name()))?;
            s.selected_by = "env".into();
            return Ok((p, s));
        }
    }
    if determinism::enabled() {
        s.selected_by = "deterministic".into();
        s.notes.push("deterministic mode: the built-in GEMM, not a timing, unless SQUALL_BLAS names another".into());
        return Ok((Provider::Builtin, s));
    }
    let candidates: Vec<Provider> = available();
    if candidates == [Provider::Builtin] {
        s.selected_by = "default".into();
        s.notes.push("no MKL or OpenBLAS library found; using the built-in GEMM".into());
        return Ok((Provider::Builtin, s));
    }
    // Unit tests run many things at once: their timings would be noise, so they use the table.
    let calibrate = !cfg!(test) && std::env::var("SQUALL_BLAS_CALIBRATE").map(|v| v.trim() != "0").unwrap_or(true);
    if calibrate {
        match calibrated(&candidates, &mut s) {
            Some(p) => {
                s.selected_by = "calibration".into();
                return Ok((p, s));
            }
            None => s.notes.push("calibration failed; using the per-CPU table".into()),
        }
    }
    let p = table_choice(&candidates, &mut s);
    s.selected_by = "table".into();
    Ok((p, s))
}

/// The per-CPU table's order of preference: Intel -> MKL first; otherwise the built-in GEMM
/// when it has a SIMD kernel (on AMD Zen MKL 2020 takes a slow generic path); else OpenBLAS.
/// It also settles a calibration tie.
fn table_order() -> &'static [Provider] {
    let simd = builtin::kernel().name != "scalar";
    if cpu::info().vendor == "GenuineIntel" {
        &[Provider::Mkl, Provider::OpenBlas, Provider::Builtin]
    } else if simd {
        &[Provider::Builtin, Provider::OpenBlas, Provider::Mkl]
    } else {
        &[Provider::OpenBlas, Provider::Mkl, Provider::Builtin]
    }
}

/// The first provider of the per-CPU table that loads.
fn table_choice(candidates: &[Provider], s: &mut Selection) -> Provider {
    for &p in table_order() {
        if candidates.contains(&p) {
            match load(p) {
                Ok(()) => return p,
                Err(e) => s.notes.push(e),
            }
        }
    }
    Provider::Builtin
}

fn cache_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("SQUALL_CACHE_DIR") {
        if !d.is_empty() {
            return Some(PathBuf::from(d));
        }
    }
    if let Ok(d) = std::env::var("XDG_CACHE_HOME") {
        if !d.is_empty() {
            return Some(PathBuf::from(d).join("squall"));
        }
    }
    std::env::var("HOME").ok().filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".cache").join("squall"))
}

/// What the calibration result depends on besides the CPU.
fn config_key(candidates: &[Provider]) -> String {
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| "-".into());
    format!(
        "threads={};providers={};gemm={};OPENBLAS_CORETYPE={};OPENBLAS_NUM_THREADS={};OPENBLAS_L2_SIZE={}",
        parallel::threads(),
        candidates.iter().map(|p| p.name()).collect::<Vec<_>>().join(","),
        builtin::kernel().name,
        env("OPENBLAS_CORETYPE"),
        env("OPENBLAS_NUM_THREADS"),
        env("OPENBLAS_L2_SIZE"),
    )
}

/// How entries are measured; an entry without this `method` (written by the older
/// best-of-3, one-provider-after-another timing) is measured again.
const CALIBRATION_METHOD: &str = "interleaved-medians";
/// Providers whose paired speed ratio to the fastest is below 1 + this are tied (this
/// shared machine's run-to-run noise on a 1024^3 GEMM is a few per cent).
const TIE_MARGIN: f64 = 0.05;
/// Rounds in which every provider runs once: at most `BASE_ROUNDS`, at least `MIN_ROUNDS`;
/// after `MIN_ROUNDS`, none starts once `BASE_BUDGET` of measuring has passed.
const BASE_ROUNDS: usize = 5;
const MIN_ROUNDS: usize = 3;
const BASE_BUDGET: Duration = Duration::from_millis(700);
/// On a tie, more rounds of the tied providers only: at most `EXTRA_ROUNDS`, at least
/// `MIN_EXTRA_ROUNDS`; after that none starts once `BUDGET` of measuring has passed (so the
/// whole calibration, loading the libraries included, stays under 2 s on this machine).
const EXTRA_ROUNDS: usize = 8;
const MIN_EXTRA_ROUNDS: usize = 2;
const BUDGET: Duration = Duration::from_millis(1200);
/// A rest before every timed call. A provider's idle threads keep spinning after its call
/// (MKL's libgomp team): measured here, the built-in GEMM at 2 threads ran ~1.4x slower
/// right after an MKL call, still slower 5 ms later, at its usual speed after 30 ms.
const PAUSE: Duration = Duration::from_millis(20);

/// GFLOP/s per calibration round of each provider (None: it did not run in that round).
type Samples = Vec<(Provider, Vec<Option<f64>>)>;

/// What a calibration's measurements say.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Verdict {
    /// The fastest provider (see `judge`).
    pub leader: Provider,
    /// The leader, then every provider it is not faster than by more than the margin (paired).
    pub tied: Vec<Provider>,
    /// The next by median, and the leader's paired speed ratio over it.
    pub runner_up: Option<(Provider, f64)>,
}

fn median_of(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

/// Median GFLOP/s of each provider over the rounds it ran (providers that never ran left out).
fn medians(samples: &[(Provider, Vec<Option<f64>>)]) -> Vec<(Provider, f64)> {
    samples.iter().filter_map(|(p, v)| median_of(v.iter().flatten().copied().collect()).map(|m| (*p, m))).collect()
}

/// The median over the rounds both ran of a's GFLOP/s over b's: both saw the same machine
/// within a round, so a slow moment falls on both sides of each ratio.
fn paired_ratio(a: &[Option<f64>], b: &[Option<f64>]) -> Option<f64> {
    median_of(a.iter().zip(b).filter_map(|(x, y)| Some((*x)? / (*y)?)).collect())
}

/// The leader and who is tied with it (a pure function of the measurements). The leader is
/// the provider with the highest median, unless another beats it round by round by more
/// than the margin (then that one, and so on; noise can make medians and per-round ratios
/// disagree). Tied: every provider the leader does not beat round by round by more than
/// the margin.
pub(crate) fn judge(samples: &[(Provider, Vec<Option<f64>>)], margin: f64) -> Option<Verdict> {
    let mut meds = medians(samples);
    meds.sort_by(|a, b| b.1.total_cmp(&a.1));
    let series = |p: Provider| samples.iter().find(|(q, _)| *q == p).map(|(_, v)| v.as_slice()).unwrap_or(&[]);
    let median = |p: Provider| meds.iter().find(|(q, _)| *q == p).map(|(_, m)| *m).unwrap_or(0.0);
    // a's speed over b's: paired when they shared rounds, else the ratio of medians.
    let ratio = |a: Provider, b: Provider| paired_ratio(series(a), series(b)).unwrap_or(median(a) / median(b));
    let mut leader = meds.first()?.0;
    let mut seen = vec![leader];
    while let Some(&(p, _)) = meds.iter().find(|&&(p, _)| !seen.contains(&p) && ratio(p, leader) > 1.0 + margin) {
        leader = p;
        seen.push(p);
    }
    let mut v = Verdict { leader, tied: vec![leader], runner_up: None };
    for &(p, _) in meds.iter().filter(|(p, _)| *p != leader) {
        let r = ratio(leader, p);
        if v.runner_up.is_none() {
            v.runner_up = Some((p, r));
        }
        if r < 1.0 + margin {
            v.tied.push(p);
        }
    }
    Some(v)
}

/// The provider a verdict chooses: the leader, or, when others are tied with it, the tied
/// provider that comes first in the per-CPU table's `order`.
pub(crate) fn settle(v: &Verdict, order: &[Provider]) -> Provider {
    if v.tied.len() < 2 {
        return v.leader;
    }
    order.iter().copied().find(|p| v.tied.contains(p)).unwrap_or(v.leader)
}

/// The calibration's GEMM: 1024^3, row-major, at the current thread count.
struct Bench {
    n: usize,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

impl Bench {
    fn new(n: usize) -> Bench {
        let mut seed = 0x2545_f491u32;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let a: Vec<f32> = (0..n * n).map(|_| rnd()).collect();
        let b: Vec<f32> = (0..n * n).map(|_| rnd()).collect();
        Bench { n, a, b, c: vec![0.0; n * n] }
    }

    /// An untimed call of the timed size: loads the provider's code, starts its threads,
    /// sizes its buffers, touches C (a smaller warm-up left the first round ~1.5x slow).
    fn warm(&mut self, p: Provider) {
        let n = self.n;
        sgemm_on(p, false, false, n, n, n, 1.0, &self.a, n, &self.b, n, 0.0, &mut self.c, n);
    }

    /// GFLOP/s of one timed call on `p`, after the rest that lets the previous provider's threads idle.
    fn measure(&mut self, p: Provider) -> f64 {
        let n = self.n;
        std::thread::sleep(PAUSE);
        let t0 = Instant::now();
        sgemm_on(p, false, false, n, n, n, 1.0, &self.a, n, &self.b, n, 0.0, &mut self.c, n);
        2.0 * (n * n * n) as f64 / t0.elapsed().as_secs_f64().max(1e-9) / 1e9
    }

    /// Up to `rounds` rounds over `providers`, each in turn, the order rotating by one each
    /// round (A B C, B C A, C A B, ...) so each provider follows each; a round starts only
    /// before `deadline` (measured from `start`) once `min` rounds are done. Returns the rounds run.
    fn rounds(&mut self, providers: &[Provider], samples: &mut Samples, rounds: usize, min: usize, start: Instant,
              deadline: Duration) -> usize {
        let mut done = 0;
        while done < rounds && (done < min || start.elapsed() < deadline) {
            let r = samples.first().map(|(_, v)| v.len()).unwrap_or(0);
            for (_, v) in samples.iter_mut() {
                v.push(None);
            }
            for j in 0..providers.len() {
                let p = providers[(j + r) % providers.len()];
                let g = self.measure(p);
                if let Some((_, v)) = samples.iter_mut().find(|(q, _)| *q == p) {
                    v[r] = Some(g);
                }
            }
            done += 1;
        }
        done
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn names(ps: &[Provider]) -> String {
    ps.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
}

/// The fastest provider from the cache, or measured now (and cached): interleaved rounds,
/// medians, and a paired tie test with more rounds on a tie and the per-CPU table's order
/// if it stays tied (see `judge` and `settle`).
fn calibrated(candidates: &[Provider], s: &mut Selection) -> Option<Provider> {
    let key = config_key(candidates);
    let file = cache_dir().map(|d| d.join(format!("blas-{}.json", cpu::identity_hash())));
    s.cache_file = file.as_ref().map(|f| f.display().to_string());
    let mut doc = file
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|t| json::parse(&t).ok())
        .filter(|v| matches!(v, json::Value::Obj(_)))
        .unwrap_or_else(|| json::Value::Obj(vec![]));
    let recalibrate = std::env::var("SQUALL_BLAS_RECALIBRATE").map(|v| v.trim() == "1").unwrap_or(false);
    let cached = doc
        .get("entries")
        .and_then(|e| e.get(&key))
        .filter(|e| !recalibrate && e.get("method").and_then(|v| v.as_str()) == Some(CALIBRATION_METHOD));
    if let Some(entry) = cached {
        if let Some(p) = entry.get("provider").and_then(|v| v.as_str()).and_then(Provider::parse) {
            if candidates.contains(&p) && load(p).is_ok() {
                if let Some(json::Value::Obj(g)) = entry.get("gflops") {
                    s.calibration = g.iter().filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x))).collect();
                }
                if entry.get("tie") == Some(&json::Value::Bool(true)) {
                    if let Some(note) = entry.get("note").and_then(|v| v.as_str()) {
                        s.notes.push(format!("{note} (cached)"));
                    }
                }
                return Some(p);
            }
        }
    }
    // Measure.
    let mut loaded = Vec::new();
    for &p in candidates {
        match load(p) {
            Ok(()) => loaded.push(p),
            Err(e) => s.notes.push(e),
        }
    }
    if loaded.is_empty() {
        return None;
    }
    let start = Instant::now();
    let mut bench = Bench::new(1024);
    for &p in &loaded {
        bench.warm(p);
    }
    let mut samples: Samples = loaded.iter().map(|&p| (p, Vec::new())).collect();
    let base = bench.rounds(&loaded, &mut samples, BASE_ROUNDS, MIN_ROUNDS, start, BASE_BUDGET);
    let first = judge(&samples, TIE_MARGIN)?;
    let mut extra = 0;
    let mut verdict = first.clone();
    if first.tied.len() > 1 {
        extra = bench.rounds(&first.tied, &mut samples, EXTRA_ROUNDS, MIN_EXTRA_ROUNDS, start, BUDGET);
        verdict = judge(&samples, TIE_MARGIN)?;
    }
    let elapsed = start.elapsed();
    let tie = verdict.tied.len() > 1;
    let best = settle(&verdict, table_order());
    let meds = medians(&samples);
    s.calibration = meds.iter().map(|(p, g)| (p.name().to_string(), round1(*g))).collect();
    let lead = verdict.runner_up.map(|(p, r)| format!("{} {:.3}x {}", verdict.leader.name(), r, p.name())).unwrap_or_default();
    let note = if tie {
        format!("calibration tie: {} within {:.0}% of each other (paired median ratio {lead}) after {base} rounds and \
                 {extra} more; chose {} by the per-CPU table order", names(&verdict.tied), TIE_MARGIN * 100.0, best.name())
    } else if first.tied.len() > 1 {
        format!("calibration: {} looked tied after {base} rounds; {extra} more rounds separated them ({lead})", names(&first.tied))
    } else {
        format!("calibration: {lead} (paired median over {base} rounds)")
    };
    if tie || first.tied.len() > 1 {
        s.notes.push(note.clone());
    }
    // Cache it: the version-1 fields (provider, gflops, descriptions, measured) as before,
    // then what this method adds.
    if let Some(f) = file {
        use json::Value::{Arr, Bool, Null, Num, Obj, Str};
        let strs = |ps: &[Provider]| Arr(ps.iter().map(|p| Str(p.name().into())).collect());
        let mut entry = Obj(vec![
            ("provider".into(), Str(best.name().into())),
            ("gflops".into(), Obj(s.calibration.iter().map(|(k, v)| (k.clone(), Num(*v))).collect())),
            ("descriptions".into(), Obj(loaded.iter().map(|p| (p.name().to_string(), Str(describe(*p)))).collect())),
            ("measured".into(), Num(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as f64).unwrap_or(0.0))),
            ("method".into(), Str(CALIBRATION_METHOD.into())),
            ("shape".into(), Str("1024x1024x1024".into())),
            ("threads".into(), Num(parallel::threads() as f64)),
            ("rounds".into(), Num(base as f64)),
            ("extraRounds".into(), Num(extra as f64)),
            ("samples".into(), Obj(samples.iter().map(|(p, v)| (p.name().to_string(),
                Arr(v.iter().map(|x| x.map(|g| Num(round1(g))).unwrap_or(Null)).collect()))).collect())),
            ("tieMargin".into(), Num(TIE_MARGIN)),
            ("tiedAfterRounds".into(), strs(&first.tied)),
            ("tie".into(), Bool(tie)),
            ("tied".into(), strs(&verdict.tied)),
            ("decidedBy".into(), Str(if tie { "table order among tied" } else { "fastest" }.into())),
            ("tableOrder".into(), strs(table_order())),
            ("elapsedMs".into(), Num(elapsed.as_millis() as f64)),
            ("note".into(), Str(note)),
        ]);
        if let Some((p, r)) = verdict.runner_up {
            entry.set("lead", Obj(vec![("leader".into(), Str(verdict.leader.name().into())), ("over".into(), Str(p.name().into())),
                                       ("pairedRatio".into(), Num((r * 1000.0).round() / 1000.0))]));
        }
        if let Some(core) = openblas_core() {
            entry.set("openblasCore", Str(core));
        }
        doc.set("version", Num(1.0));
        doc.set("cpu", Str(cpu::info().model.clone()));
        let mut entries = doc.get("entries").cloned().filter(|e| matches!(e, Obj(_))).unwrap_or(Obj(vec![]));
        entries.set(&key, entry);
        doc.set("entries", entries);
        if let Err(e) = write_atomic(&f, &doc.to_json()) {
            s.notes.push(format!("could not write the calibration cache {}: {e}", f.display()));
        }
    }
    Some(best)
}

fn write_atomic(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

// ---- the entry point ---------------------------------------------------------------------

/// Row-major C = alpha * op(A) * op(B) + beta * C with the selected provider. Inside a
/// pool task it runs on the calling thread only. Panics when a slice is too short.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(trans_a: bool, trans_b: bool, m: usize, n: usize, k: usize, alpha: f32, a: &[f32], lda: usize,
             b: &[f32], ldb: usize, beta: f32, c: &mut [f32], ldc: usize) {
    let p = match ensure_selected() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    sgemm_on(p, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

/// `sgemm` with an explicit provider (it must load; builtin otherwise).
#[allow(clippy::too_many_arguments)]
pub fn sgemm_on(p: Provider, trans_a: bool, trans_b: bool, m: usize, n: usize, k: usize, alpha: f32, a: &[f32],
                lda: usize, b: &[f32], ldb: usize, beta: f32, c: &mut [f32], ldc: usize) {
    let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
    let (br, bc) = if trans_b { (n, k) } else { (k, n) };
    assert!(lda >= ac && ldb >= bc && ldc >= n, "sgemm: a leading dimension is smaller than its row");
    assert!(a.len() >= builtin::span(ar, ac, lda), "sgemm: a too short");
    assert!(b.len() >= builtin::span(br, bc, ldb), "sgemm: b too short");
    assert!(c.len() >= builtin::span(m, n, ldc), "sgemm: c too short");
    let fits = [m, n, k, lda, ldb, ldc].iter().all(|&v| v <= i32::MAX as usize);
    let ext = match p {
        Provider::Builtin => None,
        _ => external(p).ok(),
    };
    // Degenerate shapes never reach a provider (CBLAS rejects ld = 0 and prints errors).
    let ext = ext.filter(|_| fits && m > 0 && n > 0 && k > 0 && alpha != 0.0);
    let Some(e) = ext else {
        builtin::sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, parallel::threads());
        return;
    };
    e.computed.store(true, Ordering::Release);
    if determinism::enabled() {
        return sgemm_fixed_split(e, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
    let mut call = || {
        // SAFETY: sizes fit c_int, each slice spans its matrix (asserted above), C is a &mut disjoint from A and B.
        unsafe {
            (e.sgemm)(CBLAS_ROW_MAJOR, if trans_a { CBLAS_TRANS } else { CBLAS_NO_TRANS },
                      if trans_b { CBLAS_TRANS } else { CBLAS_NO_TRANS }, m as c_int, n as c_int, k as c_int, alpha,
                      a.as_ptr(), lda as c_int, b.as_ptr(), ldb as c_int, beta, c.as_mut_ptr(), ldc as c_int)
        }
    };
    if parallel::in_pool_task() {
        match e.set_threads_local {
            Some(local) => {
                // SAFETY: MKL_Set_Num_Threads_Local affects only the calling thread.
                let prev = unsafe { local(1) };
                call();
                // SAFETY: restores this thread's previous setting.
                unsafe { local(prev) };
            }
            None => {
                e.apply_threads(1);
                call();
            }
        }
    } else {
        parallel::exclusive(|| {
            e.apply_threads(parallel::threads());
            call();
        });
    }
}

/// The deterministic mode's external GEMM: C's rows are cut into `PLAN_THREADS` fixed
/// blocks (one block below the size where threads pay), and each block is one
/// single-threaded provider call, run on the pool. The provider's own threading, whose
/// partition (and so its edge-kernel summation order) follows the thread count, never
/// runs, so the result depends on the arguments alone.
#[allow(clippy::too_many_arguments)]
fn sgemm_fixed_split(e: &External, trans_a: bool, trans_b: bool, m: usize, n: usize, k: usize, alpha: f32, a: &[f32],
                     lda: usize, b: &[f32], ldb: usize, beta: f32, c: &mut [f32], ldc: usize) {
    let parts = if m.saturating_mul(n).saturating_mul(k) < builtin::PARALLEL_MIN_WORK { 1 } else { determinism::PLAN_THREADS };
    let rows = |i: usize| parallel::split_range(m, parts, 16, i);
    // Row block [r) of op(A) starts at row r.start (A stored m x k) or column r.start (A^T stored k x m).
    let block = |r: &Range<usize>, cblock: &mut [f32]| {
        if r.is_empty() {
            return;
        }
        let a_off = if trans_a { r.start } else { r.start * lda };
        let mut call = || {
            // SAFETY: sizes fit c_int (checked by the caller), the block's rows of A and C lie
            // inside the slices the caller bounds-checked, C's block is a &mut disjoint from A and B.
            unsafe {
                (e.sgemm)(CBLAS_ROW_MAJOR, if trans_a { CBLAS_TRANS } else { CBLAS_NO_TRANS },
                          if trans_b { CBLAS_TRANS } else { CBLAS_NO_TRANS }, r.len() as c_int, n as c_int, k as c_int,
                          alpha, a[a_off..].as_ptr(), lda as c_int, b.as_ptr(), ldb as c_int, beta, cblock.as_mut_ptr(),
                          ldc as c_int)
            }
        };
        match e.set_threads_local {
            Some(local) => {
                // SAFETY: MKL_Set_Num_Threads_Local affects only the calling thread.
                let prev = unsafe { local(1) };
                call();
                // SAFETY: restores this thread's previous setting.
                unsafe { local(prev) };
            }
            None => call(), // the global count was set to 1 under the pool's gate below
        }
    };
    // Disjoint row blocks of C (the last block ends at the matrix's last element).
    let mut blocks: Vec<(Range<usize>, &mut [f32])> = Vec::with_capacity(parts);
    let mut rest = &mut c[..builtin::span(m, n, ldc)];
    let mut taken = 0;
    for i in 0..parts {
        let r = rows(i);
        let len = if r.end == m { rest.len() } else { (r.end - taken) * ldc };
        let (head, tail) = rest.split_at_mut(len);
        taken = r.end.max(taken);
        blocks.push((r, head));
        rest = tail;
    }
    let blocks: Vec<Mutex<(Range<usize>, &mut [f32])>> = blocks.into_iter().map(Mutex::new).collect();
    parallel::exclusive(|| {
        if e.set_threads_local.is_none() {
            e.apply_threads(1);
        }
        parallel::parallel_for(parts, |i| {
            let mut g = blocks[i].lock().unwrap_or_else(|e| e.into_inner());
            let (r, cb) = &mut *g;
            block(r, cb);
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMD_SIMD: [Provider; 3] = [Provider::Builtin, Provider::OpenBlas, Provider::Mkl];
    const INTEL: [Provider; 3] = [Provider::Mkl, Provider::OpenBlas, Provider::Builtin];

    fn rounds(xs: &[f64]) -> Vec<Option<f64>> {
        xs.iter().map(|&x| Some(x)).collect()
    }

    #[test]
    fn calibration_picks_a_clear_winner_whatever_the_table_says() {
        // OpenBLAS 10% faster in every round: chosen even where the table prefers the built-in GEMM.
        let s = vec![
            (Provider::Mkl, rounds(&[80.0, 82.0, 79.0, 81.0, 80.0])),
            (Provider::OpenBlas, rounds(&[110.0, 99.0, 121.0, 110.0, 88.0])),
            (Provider::Builtin, rounds(&[100.0, 90.0, 110.0, 100.0, 80.0])),
        ];
        let v = judge(&s, 0.05).unwrap();
        assert_eq!(v.leader, Provider::OpenBlas);
        assert_eq!(v.tied, vec![Provider::OpenBlas]);
        let (p, r) = v.runner_up.unwrap();
        assert_eq!(p, Provider::Builtin);
        assert!((r - 1.1).abs() < 1e-9, "{r}");
        assert_eq!(settle(&v, &AMD_SIMD), Provider::OpenBlas);
        assert_eq!(settle(&v, &INTEL), Provider::OpenBlas);
    }

    #[test]
    fn calibration_tie_goes_to_the_table_order() {
        // Within 5% round by round: tied, whichever has the higher median.
        let s = vec![
            (Provider::OpenBlas, rounds(&[103.0, 60.0, 101.0, 104.0, 98.0])),
            (Provider::Builtin, rounds(&[100.0, 59.0, 100.0, 100.0, 100.0])),
            (Provider::Mkl, rounds(&[50.0, 30.0, 50.0, 50.0, 50.0])),
        ];
        let v = judge(&s, 0.05).unwrap();
        assert_eq!(v.leader, Provider::OpenBlas);
        assert_eq!(v.tied, vec![Provider::OpenBlas, Provider::Builtin]);
        assert_eq!(settle(&v, &AMD_SIMD), Provider::Builtin);
        assert_eq!(settle(&v, &INTEL), Provider::OpenBlas);
        // A tighter margin separates them.
        let v = judge(&s, 0.01).unwrap();
        assert_eq!(v.tied, vec![Provider::OpenBlas]);
        assert_eq!(settle(&v, &AMD_SIMD), Provider::OpenBlas);
    }

    #[test]
    fn calibration_ratios_are_paired_by_round() {
        // The machine halves its speed in alternate rounds. Medians alone put builtin 20%
        // ahead (it ran more of its rounds while the machine was fast); round by round it is
        // 2% ahead: a tie.
        let s = vec![
            (Provider::Builtin, rounds(&[102.0, 102.0, 102.0, 51.0, 51.0])),
            (Provider::OpenBlas, rounds(&[100.0, 50.0, 50.0, 50.0, 50.0])),
        ];
        let v = judge(&s, 0.05).unwrap();
        assert_eq!(v.leader, Provider::Builtin);
        assert_eq!(v.tied, vec![Provider::Builtin, Provider::OpenBlas]);
        assert_eq!(settle(&v, &[Provider::OpenBlas, Provider::Builtin]), Provider::OpenBlas);
    }

    #[test]
    fn calibration_trusts_rounds_over_medians() {
        // Medians put OpenBLAS ahead (its rounds fell on fast moments), but builtin beats it
        // by 10% in every round: builtin leads, untied, whatever the table's order.
        let s = vec![
            (Provider::OpenBlas, rounds(&[100.0, 100.0, 100.0, 50.0, 50.0])),
            (Provider::Builtin, rounds(&[110.0, 55.0, 110.0, 55.0, 55.0])),
        ];
        let v = judge(&s, 0.05).unwrap();
        assert_eq!(v.leader, Provider::Builtin);
        assert_eq!(v.tied, vec![Provider::Builtin]);
        assert_eq!(settle(&v, &[Provider::OpenBlas, Provider::Builtin]), Provider::Builtin);
    }

    #[test]
    fn calibration_extra_rounds_and_missing_providers() {
        // Extra rounds of the tied two only (MKL absent from them); a provider that never ran is left out.
        let mut s = vec![
            (Provider::Builtin, rounds(&[100.0, 100.0, 100.0, 104.0, 109.0, 110.0])),
            (Provider::OpenBlas, rounds(&[100.0, 100.0, 100.0, 100.0, 100.0, 100.0])),
            (Provider::Mkl, vec![Some(60.0), Some(61.0), Some(59.0), None, None, None]),
        ];
        let v = judge(&s, 0.05).unwrap();
        assert_eq!(v.leader, Provider::Builtin);
        assert_eq!(v.tied, vec![Provider::Builtin, Provider::OpenBlas]); // paired median ratio 1.02
        for g in [112.0, 113.0] {
            s[0].1.push(Some(g));
            s[1].1.push(Some(100.0));
            s[2].1.push(None);
        }
        // Now 1.065.
        let v = judge(&s, 0.05).unwrap();
        assert_eq!(v.tied, vec![Provider::Builtin]);
        let s = vec![(Provider::Mkl, vec![None, None]), (Provider::Builtin, rounds(&[5.0, 6.0]))];
        let v = judge(&s, 0.05).unwrap();
        assert_eq!((v.leader, v.tied.len(), v.runner_up), (Provider::Builtin, 1, None));
        assert!(judge(&[], 0.05).is_none());
    }

    #[test]
    fn every_provider_is_sane() {
        for p in available() {
            if load(p).is_err() {
                continue;
            }
            let (m, n, k) = (37, 29, 41);
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
            for &(ta, tb) in &[(false, false), (true, false), (false, true), (true, true)] {
                let (lda, ldb) = (if ta { m } else { k }, if tb { k } else { n });
                let mut c = vec![1.0f32; m * n];
                let mut want = vec![0.0f32; m * n];
                for i in 0..m {
                    for j in 0..n {
                        let mut s = 0.0f64;
                        for q in 0..k {
                            let av = if ta { a[q * lda + i] } else { a[i * lda + q] };
                            let bv = if tb { b[j * ldb + q] } else { b[q * ldb + j] };
                            s += (av * bv) as f64;
                        }
                        want[i * n + j] = (2.0 * s + 0.5) as f32;
                    }
                }
                sgemm_on(p, ta, tb, m, n, k, 2.0, &a, lda, &b, ldb, 0.5, &mut c, n);
                assert_eq!(c, want, "{} ({}) ta {ta} tb {tb}", p.name(), describe(p));
                // Inside a pool task too.
                let mut c2 = vec![1.0f32; m * n];
                let cell = std::sync::Mutex::new(&mut c2);
                parallel::parallel_for(2, |t| {
                    if t == 0 {
                        let mut g = cell.lock().unwrap();
                        sgemm_on(p, ta, tb, m, n, k, 2.0, &a, lda, &b, ldb, 0.5, &mut g, n);
                    }
                });
                assert_eq!(c2, want, "{} in a task", p.name());
            }
        }
    }
}
