//! crc32: the checksum of wire frames and checkpoints (engine/io/checkpoint/crc32.ts), on the
//! calling thread, reading the view in place. Touches neither the BLAS provider nor the
//! thread pool, so it is cheap to call from a process that runs no kernels.

use crate::crc32 as crc;
use crate::napi::sys::napi_value;
use crate::napi::{Ctx, JsResult};

/// crc32(data: ArrayBufferView, crc: uint32): the CRC-32 (IEEE, as zlib) of the bytes of
/// `data`, continuing from `crc` (0 to start).
pub fn crc32(ctx: &Ctx) -> JsResult<napi_value> {
    let data = ctx.bytes(0, "data")?;
    let running = ctx.u32(1, "crc")?;
    // SAFETY: the view is alive for this synchronous call and this thread's JavaScript cannot
    // run (or write to it) until the call returns; as for every export, a SharedArrayBuffer
    // written meanwhile by another worker is the caller's race.
    let bytes = unsafe { data.slice() };
    ctx.env.number(crc::crc32(running, bytes) as f64)
}

/// crc32Kernel(): "vpclmul", "pclmul" or "slicing-by-16": what crc32 uses here for inputs
/// of 128 bytes and more.
pub fn crc32_kernel(ctx: &Ctx) -> JsResult<napi_value> {
    ctx.env.string(crc::implementation())
}
