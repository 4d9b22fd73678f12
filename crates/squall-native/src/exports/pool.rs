//! Max and average pooling. Arguments: the 12 Pool2dShape fields (batch, channels, inH,
//! inW, kH, kW, strideH, strideW, padH, padW, ceilMode, countIncludePad), then the arrays.

use super::dims;
use crate::kernels::pool;
use crate::kernels::shapes::Pool2dShape;
use crate::napi::sys::napi_value;
use crate::napi::{Ctx, JsResult};

struct Geometry {
    s: Pool2dShape,
    input: usize,
    output: usize,
    input_dims: String,
    output_dims: String,
}

fn geometry(ctx: &Ctx) -> JsResult<Geometry> {
    let names = ["batch", "channels", "inH", "inW", "kH", "kW", "strideH", "strideW", "padH", "padW"];
    let mut v = [0usize; 10];
    for (i, name) in names.iter().enumerate() {
        v[i] = ctx.size(i, name)?;
    }
    let s = Pool2dShape {
        batch: v[0], channels: v[1], in_h: v[2], in_w: v[3], k_h: v[4], k_w: v[5], stride_h: v[6], stride_w: v[7],
        pad_h: v[8], pad_w: v[9], ceil_mode: ctx.boolean(10, "ceilMode")?, count_include_pad: ctx.boolean(11, "countIncludePad")?,
    };
    s.validate().map_err(|e| ctx.range_error(e))?;
    let (oh, ow) = (s.out_h(), s.out_w());
    Ok(Geometry {
        input: ctx.product(&[s.batch, s.channels, s.in_h, s.in_w])?,
        output: ctx.product(&[s.batch, s.channels, oh, ow])?,
        input_dims: dims("batch, channels, inH, inW", &[s.batch, s.channels, s.in_h, s.in_w]),
        output_dims: dims("batch, channels, outH, outW", &[s.batch, s.channels, oh, ow]),
        s,
    })
}

pub fn max_forward(ctx: &Ctx) -> JsResult<napi_value> {
    let g = geometry(ctx)?;
    let input = ctx.f32_array(12, "input")?;
    let output = ctx.f32_array(13, "output")?;
    let indices = ctx.i32_array(14, "indices")?;
    ctx.expect_len(&input, g.input, &g.input_dims)?;
    ctx.expect_len(&output, g.output, &g.output_dims)?;
    ctx.expect_len(&indices, g.output, &g.output_dims)?;
    ctx.no_overlap(&[&output, &indices], &[&input])?;
    let s = g.s;
    let (i, o, ix) = (input.f32(), output.f32(), indices.i32());
    ctx.run(move || {
        // SAFETY: lengths checked, outputs overlap nothing else, arrays live for this call.
        let (i, o, ix) = unsafe { (i.slice(), o.slice_mut(), ix.slice_mut()) };
        pool::max_pool2d_forward(&s, i, o, ix);
    })
}

pub fn max_backward(ctx: &Ctx) -> JsResult<napi_value> {
    let g = geometry(ctx)?;
    let grad_output = ctx.f32_array(12, "gradOutput")?;
    let indices = ctx.i32_array(13, "indices")?;
    let grad_input = ctx.f32_array(14, "gradInput")?;
    ctx.expect_len(&grad_output, g.output, &g.output_dims)?;
    ctx.expect_len(&indices, g.output, &g.output_dims)?;
    ctx.expect_len(&grad_input, g.input, &g.input_dims)?;
    ctx.no_overlap(&[&grad_input], &[&grad_output, &indices])?;
    // An index outside its input plane would address another plane (or nothing).
    let plane = g.s.in_h * g.s.in_w;
    let ix_raw = indices.i32();
    // SAFETY: the Int32Array is live for this call and only read here.
    let ix_slice = unsafe { ix_raw.slice() };
    if let Some((pos, &bad)) = ix_slice.iter().enumerate().find(|(_, &v)| v < 0 || v as usize >= plane) {
        return Err(ctx.range_error(format_args!("'indices'[{pos}] is {bad}, outside its input plane of {plane} cells")));
    }
    let s = g.s;
    let (go, gi) = (grad_output.f32(), grad_input.f32());
    ctx.run(move || {
        // SAFETY: lengths checked, gradInput overlaps nothing else, arrays live for this call.
        let (go, ix, gi) = unsafe { (go.slice(), ix_raw.slice(), gi.slice_mut()) };
        pool::max_pool2d_backward(&s, go, ix, gi);
    })
}

pub fn avg_forward(ctx: &Ctx) -> JsResult<napi_value> {
    let g = geometry(ctx)?;
    let input = ctx.f32_array(12, "input")?;
    let output = ctx.f32_array(13, "output")?;
    ctx.expect_len(&input, g.input, &g.input_dims)?;
    ctx.expect_len(&output, g.output, &g.output_dims)?;
    ctx.no_overlap(&[&output], &[&input])?;
    let s = g.s;
    let (i, o) = (input.f32(), output.f32());
    ctx.run(move || {
        // SAFETY: lengths checked, output overlaps nothing else, arrays live for this call.
        let (i, o) = unsafe { (i.slice(), o.slice_mut()) };
        pool::avg_pool2d_forward(&s, i, o);
    })
}

pub fn avg_backward(ctx: &Ctx) -> JsResult<napi_value> {
    let g = geometry(ctx)?;
    let grad_output = ctx.f32_array(12, "gradOutput")?;
    let grad_input = ctx.f32_array(13, "gradInput")?;
    ctx.expect_len(&grad_output, g.output, &g.output_dims)?;
    ctx.expect_len(&grad_input, g.input, &g.input_dims)?;
    ctx.no_overlap(&[&grad_input], &[&grad_output])?;
    let s = g.s;
    let (go, gi) = (grad_output.f32(), grad_input.f32());
    ctx.run(move || {
        // SAFETY: lengths checked, gradInput overlaps nothing else, arrays live for this call.
        let (go, gi) = unsafe { (go.slice(), gi.slice_mut()) };
        pool::avg_pool2d_backward(&s, go, gi);
    })
}
