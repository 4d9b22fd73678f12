//! LRN, softmax / log-softmax, batch normalisation.

use super::dims;
use crate::kernels::shapes::{BatchNormShape, LrnShape};
use crate::kernels::{batchnorm, lrn, softmax};
use crate::napi::sys::napi_value;
use crate::napi::{Ctx, JsResult};

/// LrnShape fields: batch, channels, height, width, size, alpha, beta, k.
fn lrn_shape(ctx: &Ctx) -> JsResult<(LrnShape, usize, String)> {
    let s = LrnShape {
        batch: ctx.size(0, "batch")?,
        channels: ctx.size(1, "channels")?,
        height: ctx.size(2, "height")?,
        width: ctx.size(3, "width")?,
        size: ctx.size(4, "size")?,
        alpha: ctx.f32(5, "alpha")?,
        beta: ctx.f32(6, "beta")?,
        k: ctx.f32(7, "k")?,
    };
    s.validate().map_err(|e| ctx.range_error(e))?;
    let len = ctx.product(&[s.batch, s.channels, s.height, s.width])?;
    Ok((s, len, dims("batch, channels, height, width", &[s.batch, s.channels, s.height, s.width])))
}

pub fn lrn_forward(ctx: &Ctx) -> JsResult<napi_value> {
    let (s, len, d) = lrn_shape(ctx)?;
    let input = ctx.f32_array(8, "input")?;
    let output = ctx.f32_array(9, "output")?;
    let scale = ctx.f32_array(10, "scale")?;
    for b in [&input, &output, &scale] {
        ctx.expect_len(b, len, &d)?;
    }
    ctx.no_overlap(&[&output, &scale], &[&input])?;
    let (i, o, sc) = (input.f32(), output.f32(), scale.f32());
    ctx.run(move || {
        // SAFETY: lengths checked, outputs overlap nothing else, arrays live for this call.
        let (i, o, sc) = unsafe { (i.slice(), o.slice_mut(), sc.slice_mut()) };
        lrn::lrn_forward(&s, i, o, sc);
    })
}

pub fn lrn_backward(ctx: &Ctx) -> JsResult<napi_value> {
    let (s, len, d) = lrn_shape(ctx)?;
    let input = ctx.f32_array(8, "input")?;
    let output = ctx.f32_array(9, "output")?;
    let scale = ctx.f32_array(10, "scale")?;
    let grad_output = ctx.f32_array(11, "gradOutput")?;
    let grad_input = ctx.f32_array(12, "gradInput")?;
    for b in [&input, &output, &scale, &grad_output, &grad_input] {
        ctx.expect_len(b, len, &d)?;
    }
    ctx.no_overlap(&[&grad_input], &[&input, &output, &scale, &grad_output])?;
    let (i, o, sc, go, gi) = (input.f32(), output.f32(), scale.f32(), grad_output.f32(), grad_input.f32());
    ctx.run(move || {
        // SAFETY: lengths checked, gradInput overlaps nothing else, arrays live for this call.
        let (i, o, sc, go, gi) = unsafe { (i.slice(), o.slice(), sc.slice(), go.slice(), gi.slice_mut()) };
        lrn::lrn_backward(&s, i, o, sc, go, gi);
    })
}

fn rows_cols(ctx: &Ctx) -> JsResult<(usize, usize, usize, String)> {
    let rows = ctx.size(0, "rows")?;
    let cols = ctx.size(1, "cols")?;
    Ok((rows, cols, ctx.product(&[rows, cols])?, dims("rows, cols", &[rows, cols])))
}

fn softmax_fwd(ctx: &Ctx, f: fn(usize, usize, &[f32], &mut [f32])) -> JsResult<napi_value> {
    let (rows, cols, len, d) = rows_cols(ctx)?;
    let x = ctx.f32_array(2, "x")?;
    let y = ctx.f32_array(3, "y")?;
    ctx.expect_len(&x, len, &d)?;
    ctx.expect_len(&y, len, &d)?;
    ctx.no_overlap(&[&y], &[&x])?;
    let (xr, yr) = (x.f32(), y.f32());
    ctx.run(move || {
        // SAFETY: lengths checked, y overlaps x nowhere, arrays live for this call.
        let (x, y) = unsafe { (xr.slice(), yr.slice_mut()) };
        f(rows, cols, x, y);
    })
}

fn softmax_bwd(ctx: &Ctx, f: fn(usize, usize, &[f32], &[f32], &mut [f32])) -> JsResult<napi_value> {
    let (rows, cols, len, d) = rows_cols(ctx)?;
    let y = ctx.f32_array(2, "y")?;
    let go = ctx.f32_array(3, "gradOutput")?;
    let gi = ctx.f32_array(4, "gradInput")?;
    for b in [&y, &go, &gi] {
        ctx.expect_len(b, len, &d)?;
    }
    ctx.no_overlap(&[&gi], &[&y, &go])?;
    let (yr, gor, gir) = (y.f32(), go.f32(), gi.f32());
    ctx.run(move || {
        // SAFETY: lengths checked, gradInput overlaps nothing else, arrays live for this call.
        let (y, go, gi) = unsafe { (yr.slice(), gor.slice(), gir.slice_mut()) };
        f(rows, cols, y, go, gi);
    })
}

pub fn softmax_forward(ctx: &Ctx) -> JsResult<napi_value> {
    softmax_fwd(ctx, softmax::softmax_forward)
}
pub fn softmax_backward(ctx: &Ctx) -> JsResult<napi_value> {
    softmax_bwd(ctx, softmax::softmax_backward)
}
pub fn log_softmax_forward(ctx: &Ctx) -> JsResult<napi_value> {
    softmax_fwd(ctx, softmax::log_softmax_forward)
}
pub fn log_softmax_backward(ctx: &Ctx) -> JsResult<napi_value> {
    softmax_bwd(ctx, softmax::log_softmax_backward)
}

/// BatchNormShape fields: n, c, spatial, eps.
fn bn_shape(ctx: &Ctx) -> JsResult<(BatchNormShape, usize, String)> {
    let s = BatchNormShape { n: ctx.size(0, "n")?, c: ctx.size(1, "c")?, spatial: ctx.size(2, "spatial")?, eps: ctx.f32(3, "eps")? };
    s.validate().map_err(|e| ctx.range_error(e))?;
    let len = ctx.product(&[s.n, s.c, s.spatial])?;
    Ok((s, len, dims("n, c, spatial", &[s.n, s.c, s.spatial])))
}

/// (n, c, spatial, eps, x, y, gamma, beta, runningMean, runningVar, saveMean, saveInvStd, training, momentum)
pub fn batch_norm_forward(ctx: &Ctx) -> JsResult<napi_value> {
    let (s, len, d) = bn_shape(ctx)?;
    let x = ctx.f32_array(4, "x")?;
    let y = ctx.f32_array(5, "y")?;
    let gamma = ctx.f32_array(6, "gamma")?;
    let beta = ctx.f32_array(7, "beta")?;
    let rm = ctx.f32_array(8, "runningMean")?;
    let rv = ctx.f32_array(9, "runningVar")?;
    let sm = ctx.f32_array(10, "saveMean")?;
    let sis = ctx.f32_array(11, "saveInvStd")?;
    let training = ctx.boolean(12, "training")?;
    let momentum = ctx.f32(13, "momentum")?;
    ctx.expect_len(&x, len, &d)?;
    ctx.expect_len(&y, len, &d)?;
    let dc = dims("c", &[s.c]);
    for b in [&gamma, &beta, &rm, &rv, &sm, &sis] {
        ctx.expect_len(b, s.c, &dc)?;
    }
    ctx.no_overlap(&[&y, &rm, &rv, &sm, &sis], &[&x, &gamma, &beta])?;
    let (xr, yr, gr, br, rmr, rvr, smr, sisr) =
        (x.f32(), y.f32(), gamma.f32(), beta.f32(), rm.f32(), rv.f32(), sm.f32(), sis.f32());
    ctx.run(move || {
        // SAFETY: lengths checked, outputs overlap nothing else, arrays live for this call.
        let (x, y, g, b, rm, rv, sm, sis) = unsafe {
            (xr.slice(), yr.slice_mut(), gr.slice(), br.slice(), rmr.slice_mut(), rvr.slice_mut(), smr.slice_mut(), sisr.slice_mut())
        };
        batchnorm::batch_norm_forward(&s, x, y, g, b, rm, rv, sm, sis, training, momentum);
    })
}

/// (n, c, spatial, eps, x, gamma, saveMean, saveInvStd, gradOutput, gradInput, gradGamma, gradBeta)
pub fn batch_norm_backward(ctx: &Ctx) -> JsResult<napi_value> {
    let (s, len, d) = bn_shape(ctx)?;
    let x = ctx.f32_array(4, "x")?;
    let gamma = ctx.f32_array(5, "gamma")?;
    let sm = ctx.f32_array(6, "saveMean")?;
    let sis = ctx.f32_array(7, "saveInvStd")?;
    let go = ctx.f32_array(8, "gradOutput")?;
    let gi = ctx.f32_array(9, "gradInput")?;
    let gg = ctx.f32_array(10, "gradGamma")?;
    let gb = ctx.f32_array(11, "gradBeta")?;
    let dc = dims("c", &[s.c]);
    for b in [&x, &go, &gi] {
        ctx.expect_len(b, len, &d)?;
    }
    for b in [&gamma, &sm, &sis, &gg, &gb] {
        ctx.expect_len(b, s.c, &dc)?;
    }
    ctx.no_overlap(&[&gi, &gg, &gb], &[&x, &gamma, &sm, &sis, &go])?;
    let (xr, gr, smr, sisr, gor, gir, ggr, gbr) =
        (x.f32(), gamma.f32(), sm.f32(), sis.f32(), go.f32(), gi.f32(), gg.f32(), gb.f32());
    ctx.run(move || {
        // SAFETY: lengths checked, outputs overlap nothing else, arrays live for this call.
        let (x, g, sm, sis, go, gi, gg, gb) = unsafe {
            (xr.slice(), gr.slice(), smr.slice(), sisr.slice(), gor.slice(), gir.slice_mut(), ggr.slice_mut(), gbr.slice_mut())
        };
        batchnorm::batch_norm_backward(&s, x, g, sm, sis, go, gi, gg, gb);
    })
}
