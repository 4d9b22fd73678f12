//! sgemm / sgemmAsync.

use super::blas_ready;
use crate::blas;
use crate::napi::sys::napi_value;
use crate::napi::{Buf, Ctx, JsResult};

pub fn sgemm(ctx: &Ctx) -> JsResult<napi_value> {
    run(ctx, false)
}

pub fn sgemm_async(ctx: &Ctx) -> JsResult<napi_value> {
    run(ctx, true)
}

/// Checks a stored matrix: ld >= cols and at least (rows - 1) * ld + cols elements.
fn check_matrix(ctx: &Ctx, b: &Buf, ld_name: &str, ld: usize, rows: usize, cols: usize, how: &str) -> JsResult<()> {
    if ld < cols.max(1) {
        return Err(ctx.range_error(format_args!("'{ld_name}' is {ld}, must be >= {} (the row length of '{}', {how})",
                                                cols.max(1), b.arg)));
    }
    let need = if rows == 0 || cols == 0 {
        0
    } else {
        ctx.product(&[rows - 1, ld])?.checked_add(cols).ok_or_else(|| ctx.range_error("sizes too large"))?
    };
    if b.len < need {
        return Err(ctx.range_error(format_args!("'{}' has {} elements, needs at least {need} for a {rows} x {cols} matrix with {ld_name} {ld} ({how})",
                                                b.arg, b.len)));
    }
    Ok(())
}

fn run(ctx: &Ctx, async_: bool) -> JsResult<napi_value> {
    let trans_a = ctx.boolean(0, "transA")?;
    let trans_b = ctx.boolean(1, "transB")?;
    let m = ctx.size(2, "m")?;
    let n = ctx.size(3, "n")?;
    let k = ctx.size(4, "k")?;
    let alpha = ctx.number(5, "alpha")? as f32;
    let a = ctx.f32_array(6, "a")?;
    let lda = ctx.size(7, "lda")?;
    let b = ctx.f32_array(8, "b")?;
    let ldb = ctx.size(9, "ldb")?;
    let beta = ctx.number(10, "beta")? as f32;
    let c = ctx.f32_array(11, "c")?;
    let ldc = ctx.size(12, "ldc")?;
    let (ar, ac, ha) = if trans_a { (k, m, "k x m as transA is true") } else { (m, k, "m x k as transA is false") };
    let (br, bc, hb) = if trans_b { (n, k, "n x k as transB is true") } else { (k, n, "k x n as transB is false") };
    check_matrix(ctx, &a, "lda", lda, ar, ac, ha)?;
    check_matrix(ctx, &b, "ldb", ldb, br, bc, hb)?;
    check_matrix(ctx, &c, "ldc", ldc, m, n, "m x n")?;
    ctx.no_overlap(&[&c], &[&a, &b])?;
    blas_ready(ctx)?;
    let (ar_, br_, cr_) = (a.f32(), b.f32(), c.f32());
    ctx.run_or_queue(async_, &[&a, &b, &c], move || {
        // SAFETY: lengths checked above, C overlaps neither A nor B, arrays kept alive for the call.
        let (a, b, c) = unsafe { (ar_.slice(), br_.slice(), cr_.slice_mut()) };
        blas::sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    })
}
