//! ReLU, tanh, sigmoid and their backwards. Forward: y may be x. Backward: gradInput may
//! be gradOutput (exactly the same array range); nothing else may overlap an output.

use crate::kernels::activation as act;
use crate::kernels::In;
use crate::napi::sys::napi_value;
use crate::napi::{Ctx, JsResult};

fn forward(ctx: &Ctx, f: fn(In, &mut [f32])) -> JsResult<napi_value> {
    let x = ctx.f32_array(0, "x")?;
    let y = ctx.f32_array(1, "y")?;
    ctx.expect_len(&y, x.len, "the length of 'x'")?;
    let in_place = ctx.alias(&y, &x)?;
    let (xr, yr) = (x.f32(), y.f32());
    ctx.run(move || {
        // SAFETY: equal lengths; y is either exactly x (read through In::Out) or disjoint from it.
        let (x, y) = unsafe { (if in_place { In::Out } else { In::Slice(xr.slice()) }, yr.slice_mut()) };
        f(x, y);
    })
}

/// (saved, gradOutput, gradInput): saved is x (ReLU) or y (tanh, sigmoid).
fn backward(ctx: &Ctx, saved: &str, f: fn(&[f32], In, &mut [f32])) -> JsResult<napi_value> {
    let s = ctx.f32_array(0, saved)?;
    let go = ctx.f32_array(1, "gradOutput")?;
    let gi = ctx.f32_array(2, "gradInput")?;
    ctx.expect_len(&go, s.len, format_args!("the length of '{saved}'"))?;
    ctx.expect_len(&gi, s.len, format_args!("the length of '{saved}'"))?;
    let in_place = ctx.alias(&gi, &go)?;
    ctx.no_overlap(&[&gi], &[&s])?;
    let (sr, gor, gir) = (s.f32(), go.f32(), gi.f32());
    ctx.run(move || {
        // SAFETY: equal lengths; gradInput is exactly gradOutput (In::Out) or disjoint, and disjoint from saved.
        let (s, go, gi) = unsafe { (sr.slice(), if in_place { In::Out } else { In::Slice(gor.slice()) }, gir.slice_mut()) };
        f(s, go, gi);
    })
}

pub fn relu(ctx: &Ctx) -> JsResult<napi_value> {
    forward(ctx, act::relu)
}
pub fn relu_backward(ctx: &Ctx) -> JsResult<napi_value> {
    backward(ctx, "x", act::relu_backward)
}
pub fn tanh(ctx: &Ctx) -> JsResult<napi_value> {
    forward(ctx, act::tanh)
}
pub fn tanh_backward(ctx: &Ctx) -> JsResult<napi_value> {
    backward(ctx, "y", act::tanh_backward)
}
pub fn sigmoid(ctx: &Ctx) -> JsResult<napi_value> {
    forward(ctx, act::sigmoid)
}
pub fn sigmoid_backward(ctx: &Ctx) -> JsResult<napi_value> {
    backward(ctx, "y", act::sigmoid_backward)
}
