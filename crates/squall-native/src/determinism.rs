//! Reproducibility mode: the same inputs give bit-identical results across runs, processes
//! and buffer alignments, and (for the providers that allow it) across thread counts.
//!
//! What it changes, and why:
//! - Work partitioning. Kernels that reduce across tasks (the filter gradient of a
//!   convolution sums per-task partial gradients) or size their GEMM calls by the thread
//!   count plan as if the pool had `PLAN_THREADS` threads, whatever it really has; the
//!   planned tasks then run on the real pool. So the arithmetic, and its order, no longer
//!   depends on the thread count.
//! - The BLAS provider. It is never chosen by a timing (two processes could time
//!   differently): `SQUALL_BLAS` names it, else it is the built-in GEMM.
//! - MKL. Its kernels pick a code path per CPU, per buffer alignment and per thread count;
//!   its conditional numerical reproducibility (CNR) control pins the code path for this
//!   CPU and, with the STRICT flag, makes GEMM independent of alignment and thread count.
//!   It must be set before MKL computes anything, so it is applied when MKL loads.
//!
//! Set with `SQUALL_DETERMINISTIC=1` (read once, on first use) or `set(true)` (the
//! `setDeterministic` export). Turning it off again is allowed except after MKL was put
//! in CNR mode in this process (MKL cannot leave it; the call says so).

use std::sync::atomic::{AtomicU8, Ordering};

/// Threads kernels plan for in deterministic mode. 4 splits evenly over 1, 2 and 4
/// threads, and bounds the partial gradients a convolution keeps at 4 copies.
pub const PLAN_THREADS: usize = 4;

const UNSET: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(UNSET);

fn from_env() -> bool {
    match std::env::var("SQUALL_DETERMINISTIC") {
        Ok(v) => matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"),
        Err(_) => false,
    }
}

/// Whether the deterministic mode is on.
pub fn enabled() -> bool {
    match MODE.load(Ordering::Acquire) {
        ON => true,
        OFF => false,
        _ => {
            let want = if from_env() { ON } else { OFF };
            match MODE.compare_exchange(UNSET, want, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => want == ON,
                Err(cur) => cur == ON,
            }
        }
    }
}

/// Whether `SQUALL_DETERMINISTIC` holds a value that is not understood (a note for `info`).
pub fn env_note() -> Option<String> {
    let v = std::env::var("SQUALL_DETERMINISTIC").ok()?;
    let t = v.trim().to_ascii_lowercase();
    if matches!(t.as_str(), "" | "0" | "1" | "true" | "false" | "yes" | "no" | "on" | "off") {
        None
    } else {
        Some(format!("SQUALL_DETERMINISTIC='{v}' is not 0 or 1; the deterministic mode is off"))
    }
}

/// Turns the mode on or off for the rest of the process; the BLAS layer is told first, so a
/// provider that cannot follow (MKL already computing without CNR, or in CNR and asked to
/// leave it) refuses and nothing changes.
pub fn set(on: bool) -> Result<(), String> {
    crate::blas::on_determinism_change(on)?;
    MODE.store(if on { ON } else { OFF }, Ordering::Release);
    Ok(())
}

/// The thread count kernels plan their partitioning for: the pool's size, or the fixed
/// `PLAN_THREADS` in deterministic mode.
pub fn plan_threads() -> usize {
    if enabled() {
        PLAN_THREADS
    } else {
        crate::parallel::threads().max(1)
    }
}
