//! conv2dForward / conv2dBackwardData / conv2dBackwardFilter, sync and async.
//! Arguments: the 14 Conv2dShape fields (batch, inC, inH, inW, outC, kH, kW, strideH,
//! strideW, padH, padW, dilationH, dilationW, groups), then the arrays.

use super::{blas_ready, dims};
use crate::kernels::conv;
use crate::kernels::shapes::Conv2dShape;
use crate::napi::sys::napi_value;
use crate::napi::{Ctx, JsResult};

const FIELDS: [&str; 14] = ["batch", "inC", "inH", "inW", "outC", "kH", "kW", "strideH", "strideW", "padH", "padW",
                            "dilationH", "dilationW", "groups"];

/// The shape and its (input, weight, output) lengths, all checked.
struct Geometry {
    s: Conv2dShape,
    input: usize,
    weight: usize,
    output: usize,
    input_dims: String,
    weight_dims: String,
    output_dims: String,
}

fn geometry(ctx: &Ctx) -> JsResult<Geometry> {
    let mut v = [0usize; 14];
    for (i, name) in FIELDS.iter().enumerate() {
        v[i] = ctx.size(i, name)?;
    }
    let s = Conv2dShape {
        batch: v[0], in_c: v[1], in_h: v[2], in_w: v[3], out_c: v[4], k_h: v[5], k_w: v[6], stride_h: v[7],
        stride_w: v[8], pad_h: v[9], pad_w: v[10], dilation_h: v[11], dilation_w: v[12], groups: v[13],
    };
    s.validate().map_err(|e| ctx.range_error(e))?;
    let (oh, ow) = (s.out_h(), s.out_w());
    let cg = s.in_c / s.groups;
    Ok(Geometry {
        input: ctx.product(&[s.batch, s.in_c, s.in_h, s.in_w])?,
        weight: ctx.product(&[s.out_c, cg, s.k_h, s.k_w])?,
        output: ctx.product(&[s.batch, s.out_c, oh, ow])?,
        input_dims: dims("batch, inC, inH, inW", &[s.batch, s.in_c, s.in_h, s.in_w]),
        weight_dims: dims("outC, inC/groups, kH, kW", &[s.out_c, cg, s.k_h, s.k_w]),
        output_dims: dims("batch, outC, outH, outW", &[s.batch, s.out_c, oh, ow]),
        s,
    })
}

pub fn forward(ctx: &Ctx) -> JsResult<napi_value> {
    forward_impl(ctx, false)
}
pub fn forward_async(ctx: &Ctx) -> JsResult<napi_value> {
    forward_impl(ctx, true)
}
pub fn backward_data(ctx: &Ctx) -> JsResult<napi_value> {
    backward_data_impl(ctx, false)
}
pub fn backward_data_async(ctx: &Ctx) -> JsResult<napi_value> {
    backward_data_impl(ctx, true)
}
pub fn backward_filter(ctx: &Ctx) -> JsResult<napi_value> {
    backward_filter_impl(ctx, false)
}
pub fn backward_filter_async(ctx: &Ctx) -> JsResult<napi_value> {
    backward_filter_impl(ctx, true)
}

fn forward_impl(ctx: &Ctx, async_: bool) -> JsResult<napi_value> {
    let g = geometry(ctx)?;
    let input = ctx.f32_array(14, "input")?;
    let weight = ctx.f32_array(15, "weight")?;
    let bias = ctx.opt_f32_array(16, "bias")?;
    let output = ctx.f32_array(17, "output")?;
    ctx.expect_len(&input, g.input, &g.input_dims)?;
    ctx.expect_len(&weight, g.weight, &g.weight_dims)?;
    if let Some(b) = &bias {
        ctx.expect_len(b, g.s.out_c, dims("outC", &[g.s.out_c]))?;
    }
    ctx.expect_len(&output, g.output, &g.output_dims)?;
    let mut inputs = vec![&input, &weight];
    inputs.extend(bias.as_ref());
    ctx.no_overlap(&[&output], &inputs)?;
    blas_ready(ctx)?;
    let s = g.s;
    let (i, w, b, o) = (input.f32(), weight.f32(), bias.as_ref().map(|b| b.f32()), output.f32());
    let mut keep = vec![&input, &weight, &output];
    keep.extend(bias.as_ref());
    ctx.run_or_queue(async_, &keep, move || {
        // SAFETY: lengths checked, the output overlaps no input, arrays kept alive for the call.
        let (i, w, b, o) = unsafe { (i.slice(), w.slice(), b.map(|b| b.slice()), o.slice_mut()) };
        conv::conv2d_forward(&s, i, w, b, o);
    })
}

fn backward_data_impl(ctx: &Ctx, async_: bool) -> JsResult<napi_value> {
    let g = geometry(ctx)?;
    let grad_output = ctx.f32_array(14, "gradOutput")?;
    let weight = ctx.f32_array(15, "weight")?;
    let grad_input = ctx.f32_array(16, "gradInput")?;
    ctx.expect_len(&grad_output, g.output, &g.output_dims)?;
    ctx.expect_len(&weight, g.weight, &g.weight_dims)?;
    ctx.expect_len(&grad_input, g.input, &g.input_dims)?;
    ctx.no_overlap(&[&grad_input], &[&grad_output, &weight])?;
    blas_ready(ctx)?;
    let s = g.s;
    let (go, w, gi) = (grad_output.f32(), weight.f32(), grad_input.f32());
    ctx.run_or_queue(async_, &[&grad_output, &weight, &grad_input], move || {
        // SAFETY: lengths checked, gradInput overlaps no input, arrays kept alive for the call.
        let (go, w, gi) = unsafe { (go.slice(), w.slice(), gi.slice_mut()) };
        conv::conv2d_backward_data(&s, go, w, gi);
    })
}

fn backward_filter_impl(ctx: &Ctx, async_: bool) -> JsResult<napi_value> {
    let g = geometry(ctx)?;
    let input = ctx.f32_array(14, "input")?;
    let grad_output = ctx.f32_array(15, "gradOutput")?;
    let grad_weight = ctx.f32_array(16, "gradWeight")?;
    let grad_bias = ctx.opt_f32_array(17, "gradBias")?;
    ctx.expect_len(&input, g.input, &g.input_dims)?;
    ctx.expect_len(&grad_output, g.output, &g.output_dims)?;
    ctx.expect_len(&grad_weight, g.weight, &g.weight_dims)?;
    if let Some(b) = &grad_bias {
        ctx.expect_len(b, g.s.out_c, dims("outC", &[g.s.out_c]))?;
    }
    let mut outputs = vec![&grad_weight];
    outputs.extend(grad_bias.as_ref());
    ctx.no_overlap(&outputs, &[&input, &grad_output])?;
    blas_ready(ctx)?;
    let s = g.s;
    let (i, go, gw, gb) = (input.f32(), grad_output.f32(), grad_weight.f32(), grad_bias.as_ref().map(|b| b.f32()));
    let mut keep = vec![&input, &grad_output, &grad_weight];
    keep.extend(grad_bias.as_ref());
    ctx.run_or_queue(async_, &keep, move || {
        // SAFETY: lengths checked, outputs overlap nothing else, arrays kept alive for the call.
        let (i, go, gw, gb) = unsafe { (i.slice(), go.slice(), gw.slice_mut(), gb.map(|b| b.slice_mut())) };
        conv::conv2d_backward_filter(&s, i, go, gw, gb);
    })
}
