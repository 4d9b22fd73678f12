//! info, threads, BLAS provider and convolution algorithm selection, and a no-op for
//! measuring call overhead.

use crate::kernels::winograd::{self, ConvAlgorithm};
use crate::napi::sys::napi_value;
use crate::napi::{Ctx, JsResult};
use crate::{blas, cpu, determinism, parallel};

pub fn info(ctx: &Ctx) -> JsResult<napi_value> {
    let env = ctx.env;
    let provider = blas::ensure_selected().map_err(|e| ctx.error(e))?;
    let sel = blas::selection().unwrap_or_default();
    let o = env.object()?;
    env.set(o, "blas", env.string(&blas::describe(provider))?)?;
    env.set(o, "provider", env.string(provider.name())?)?;
    env.set(o, "threads", env.number(parallel::threads() as f64)?)?;
    let features: Vec<String> = cpu::info().features.iter().map(|s| s.to_string()).collect();
    env.set(o, "cpuFeatures", env.string_array(&features)?)?;
    let providers: Vec<String> = blas::available().iter().map(|p| p.name().to_string()).collect();
    env.set(o, "providers", env.string_array(&providers)?)?;
    env.set(o, "selectedBy", env.string(&sel.selected_by)?)?;
    env.set(o, "cpuModel", env.string(&cpu::info().model)?)?;
    let k = blas::builtin::kernel();
    env.set(o, "builtinKernel", env.string(&format!("{} {}x{} (kc {}, mc {}, nc {})", k.name, k.mr, k.nr, k.kc, k.mc, k.nc))?)?;
    let kernels: Vec<String> = blas::builtin::available_kernels().iter().map(|k| k.name.to_string()).collect();
    env.set(o, "builtinKernels", env.string_array(&kernels)?)?;
    let cal = env.object()?;
    for (name, gflops) in &sel.calibration {
        env.set(cal, name, env.number(*gflops)?)?;
    }
    env.set(o, "calibration", cal)?;
    env.set(o, "cacheFile", match &sel.cache_file {
        Some(f) => env.string(f)?,
        None => env.null()?,
    })?;
    env.set(o, "convAlgorithm", env.string(winograd::conv_algorithm().name())?)?;
    let rep = blas::reproducibility().map_err(|e| ctx.error(e))?;
    let r = env.object()?;
    env.set(r, "deterministic", env.boolean(rep.deterministic)?)?;
    env.set(r, "reproducible", env.boolean(rep.reproducible)?)?;
    env.set(r, "threadIndependent", env.boolean(rep.thread_independent)?)?;
    env.set(r, "reason", env.string(&rep.reason)?)?;
    env.set(o, "reproducibility", r)?;
    let mut notes = sel.notes.clone();
    notes.extend(determinism::env_note());
    notes.extend(winograd::env_note());
    env.set(o, "notes", env.string_array(&notes)?)?;
    let ct = std::env::var("OPENBLAS_CORETYPE").ok();
    env.set(o, "openblasCoretype", match ct {
        Some(v) => env.string(&v)?,
        None => env.null()?,
    })?;
    Ok(o)
}

pub fn set_threads(ctx: &Ctx) -> JsResult<napi_value> {
    let n = ctx.size(0, "threads")?;
    if !(1..=parallel::MAX_THREADS).contains(&n) {
        return Err(ctx.range_error(format_args!("argument 'threads' must be between 1 and {}, got {n}", parallel::MAX_THREADS)));
    }
    parallel::set_threads(n);
    ctx.undefined()
}

pub fn get_threads(ctx: &Ctx) -> JsResult<napi_value> {
    ctx.env.number(parallel::threads() as f64)
}

/// selectBlas(name): switches the provider; returns its description. Throws when the
/// name is unknown or the library cannot be loaded.
pub fn select_blas(ctx: &Ctx) -> JsResult<napi_value> {
    let name = ctx.string(0, "name")?;
    let p = blas::select(&name).map_err(|e| ctx.error(e))?;
    ctx.env.string(&blas::describe(p))
}

/// setConvAlgorithm(name): 'auto' | 'im2col' | 'winograd' for later convolution calls
/// (default: SQUALL_NATIVE_CONV, else auto). Throws a RangeError for any other name.
pub fn set_conv_algorithm(ctx: &Ctx) -> JsResult<napi_value> {
    let name = ctx.string(0, "algorithm")?;
    let a = ConvAlgorithm::parse(&name).ok_or_else(|| {
        ctx.range_error(format_args!("argument 'algorithm' must be one of auto, im2col, winograd, got '{name}'"))
    })?;
    winograd::set_conv_algorithm(a);
    ctx.undefined()
}

pub fn get_conv_algorithm(ctx: &Ctx) -> JsResult<napi_value> {
    ctx.env.string(winograd::conv_algorithm().name())
}

/// setDeterministic(on): the reproducibility mode for the rest of the process (see
/// crates/squall-native/src/determinism.rs). Throws when the BLAS provider cannot follow.
pub fn set_deterministic(ctx: &Ctx) -> JsResult<napi_value> {
    let on = ctx.boolean(0, "on")?;
    determinism::set(on).map_err(|e| ctx.error(e))?;
    ctx.undefined()
}

pub fn get_deterministic(ctx: &Ctx) -> JsResult<napi_value> {
    ctx.env.boolean(determinism::enabled())
}

/// noop(x: Float32Array): parses its argument like any kernel and does nothing.
pub fn noop(ctx: &Ctx) -> JsResult<napi_value> {
    let x = ctx.f32_array(0, "x")?;
    let _ = x.f32();
    ctx.undefined()
}
