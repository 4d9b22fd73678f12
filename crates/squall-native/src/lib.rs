//! Squall's native kernels, exposed to Node through the raw Node-API C ABI.
//!
//! - `kernels`: pure-Rust kernels over slices (no FFI);
//! - `crc32`: the CRC-32 of wire frames and checkpoints ((V)PCLMULQDQ folding, slicing-by-16 tables);
//! - `blas`: SGEMM through MKL / OpenBLAS (dlopen) or the built-in GEMM;
//! - `parallel`: the thread pool the kernels share;
//! - `determinism`: the reproducibility mode (fixed work partitioning, fixed provider, MKL CNR);
//! - `napi` + `exports`: the Node-API layer, one export per Backend method.
pub mod blas;
pub mod cpu;
pub mod crc32;
pub mod determinism;
mod exports;
pub mod json;
pub mod kernels;
mod napi;
pub mod parallel;

/// Node-API module entry point (Node looks this symbol up when it loads the addon).
///
/// # Safety
/// Called by Node with a valid environment and exports object.
#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: napi::sys::napi_env, exports: napi::sys::napi_value)
                                                 -> napi::sys::napi_value {
    // SAFETY: forwarded unchanged from Node.
    unsafe { napi::register(env, exports, exports::EXPORTS) }
}

/// The Node-API version this module is written against.
#[no_mangle]
pub extern "C" fn node_api_module_get_api_version_v1() -> i32 {
    8
}
