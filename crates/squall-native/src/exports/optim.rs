//! sgdUpdate / adamUpdate on one flat slice.

use crate::kernels::optim;
use crate::kernels::shapes::{AdamOptions, SgdOptions};
use crate::napi::sys::napi_value;
use crate::napi::{Ctx, JsResult};

/// (lr, momentum, dampening, weightDecay, nesterov, firstStep, params, grads, momentumBuf)
pub fn sgd_update(ctx: &Ctx) -> JsResult<napi_value> {
    let o = SgdOptions {
        lr: ctx.f32(0, "lr")?,
        momentum: ctx.f32(1, "momentum")?,
        dampening: ctx.f32(2, "dampening")?,
        weight_decay: ctx.f32(3, "weightDecay")?,
        nesterov: ctx.boolean(4, "nesterov")?,
        first_step: ctx.boolean(5, "firstStep")?,
    };
    let params = ctx.f32_array(6, "params")?;
    let grads = ctx.f32_array(7, "grads")?;
    let buf = ctx.f32_array(8, "momentumBuf")?;
    ctx.expect_len(&grads, params.len, "the length of 'params'")?;
    ctx.expect_len(&buf, params.len, "the length of 'params'")?;
    ctx.no_overlap(&[&params, &buf], &[&grads])?;
    let (p, g, b) = (params.f32(), grads.f32(), buf.f32());
    ctx.run(move || {
        // SAFETY: equal lengths, outputs overlap nothing else, arrays live for this call.
        let (p, g, b) = unsafe { (p.slice_mut(), g.slice(), b.slice_mut()) };
        optim::sgd_update(&o, p, g, b);
    })
}

/// (lr, beta1, beta2, eps, weightDecay, step, params, grads, m, v)
pub fn adam_update(ctx: &Ctx) -> JsResult<napi_value> {
    let step = ctx.size(5, "step")?;
    if step < 1 {
        return Err(ctx.range_error("argument 'step' must be >= 1 (1-based step count), got 0"));
    }
    let o = AdamOptions {
        lr: ctx.f32(0, "lr")?,
        beta1: ctx.f32(1, "beta1")?,
        beta2: ctx.f32(2, "beta2")?,
        eps: ctx.f32(3, "eps")?,
        weight_decay: ctx.f32(4, "weightDecay")?,
        step: step as u32,
    };
    let params = ctx.f32_array(6, "params")?;
    let grads = ctx.f32_array(7, "grads")?;
    let m = ctx.f32_array(8, "m")?;
    let v = ctx.f32_array(9, "v")?;
    ctx.expect_len(&grads, params.len, "the length of 'params'")?;
    ctx.expect_len(&m, params.len, "the length of 'params'")?;
    ctx.expect_len(&v, params.len, "the length of 'params'")?;
    ctx.no_overlap(&[&params, &m, &v], &[&grads])?;
    let (p, g, mr, vr) = (params.f32(), grads.f32(), m.f32(), v.f32());
    ctx.run(move || {
        // SAFETY: equal lengths, outputs overlap nothing else, arrays live for this call.
        let (p, g, m, v) = unsafe { (p.slice_mut(), g.slice(), mr.slice_mut(), vr.slice_mut()) };
        optim::adam_update(&o, p, g, m, v);
    })
}
