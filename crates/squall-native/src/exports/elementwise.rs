//! add, scale, axpy, sumSlices, dropout, and the bf16/fp16 wire encodings.

use crate::kernels::{convert, dropout, elementwise as ew, In};
use crate::napi::sys::napi_value;
use crate::napi::{Ctx, JsResult};

/// add(a, b, out): out may be exactly a and/or b.
pub fn add(ctx: &Ctx) -> JsResult<napi_value> {
    let a = ctx.f32_array(0, "a")?;
    let b = ctx.f32_array(1, "b")?;
    let out = ctx.f32_array(2, "out")?;
    ctx.expect_len(&b, a.len, "the length of 'a'")?;
    ctx.expect_len(&out, a.len, "the length of 'a'")?;
    let (a_in_place, b_in_place) = (ctx.alias(&out, &a)?, ctx.alias(&out, &b)?);
    let (ar, br, or) = (a.f32(), b.f32(), out.f32());
    ctx.run(move || {
        // SAFETY: equal lengths; out is exactly a / b (read through In::Out) or disjoint from it.
        let (a, b, out) = unsafe {
            (if a_in_place { In::Out } else { In::Slice(ar.slice()) }, if b_in_place { In::Out } else { In::Slice(br.slice()) },
             or.slice_mut())
        };
        ew::add(a, b, out);
    })
}

/// scale(x, alpha, out): out may be exactly x.
pub fn scale(ctx: &Ctx) -> JsResult<napi_value> {
    let x = ctx.f32_array(0, "x")?;
    let alpha = ctx.number(1, "alpha")? as f32;
    let out = ctx.f32_array(2, "out")?;
    ctx.expect_len(&out, x.len, "the length of 'x'")?;
    let in_place = ctx.alias(&out, &x)?;
    let (xr, or) = (x.f32(), out.f32());
    ctx.run(move || {
        // SAFETY: equal lengths; out is exactly x (In::Out) or disjoint from it.
        let (x, out) = unsafe { (if in_place { In::Out } else { In::Slice(xr.slice()) }, or.slice_mut()) };
        ew::scale(x, alpha, out);
    })
}

/// axpy(alpha, x, y): y += alpha * x; y must not overlap x.
pub fn axpy(ctx: &Ctx) -> JsResult<napi_value> {
    let alpha = ctx.number(0, "alpha")? as f32;
    let x = ctx.f32_array(1, "x")?;
    let y = ctx.f32_array(2, "y")?;
    ctx.expect_len(&y, x.len, "the length of 'x'")?;
    ctx.no_overlap(&[&y], &[&x])?;
    let (xr, yr) = (x.f32(), y.f32());
    ctx.run(move || {
        // SAFETY: equal lengths, y disjoint from x, arrays live for this call.
        let (x, y) = unsafe { (xr.slice(), yr.slice_mut()) };
        ew::axpy(alpha, x, y);
    })
}

/// sumSlices(slices: Float32Array[], out): out = sum in array order.
pub fn sum_slices(ctx: &Ctx) -> JsResult<napi_value> {
    let slices = ctx.f32_array_list(0, "slices")?;
    let out = ctx.f32_array(1, "out")?;
    for s in &slices {
        ctx.expect_len(s, out.len, "the length of 'out'")?;
    }
    let inputs: Vec<_> = slices.iter().collect();
    ctx.no_overlap(&[&out], &inputs)?;
    let raws: Vec<_> = slices.iter().map(|s| s.f32()).collect();
    let or = out.f32();
    ctx.run(move || {
        // SAFETY: equal lengths, out overlaps no slice, arrays live for this call.
        let (ins, out): (Vec<&[f32]>, &mut [f32]) = unsafe { (raws.iter().map(|r| r.slice()).collect(), or.slice_mut()) };
        ew::sum_slices(&ins, out);
    })
}

/// dropoutForward(p, seed, x, y, mask): y may be exactly x; mask overlaps nothing.
pub fn dropout_forward(ctx: &Ctx) -> JsResult<napi_value> {
    let p = ctx.number(0, "p")?;
    if !(0.0..1.0).contains(&p) {
        return Err(ctx.range_error(format_args!("argument 'p' must be in [0, 1), got {p}")));
    }
    let seed_f = ctx.number(1, "seed")?;
    if !seed_f.is_finite() {
        return Err(ctx.range_error(format_args!("argument 'seed' must be a finite number, got {seed_f}")));
    }
    // ToUint32, as `seed >>> 0` in backend.ts.
    let seed = (seed_f.trunc().rem_euclid(4294967296.0)) as u32;
    let x = ctx.f32_array(2, "x")?;
    let y = ctx.f32_array(3, "y")?;
    let mask = ctx.f32_array(4, "mask")?;
    ctx.expect_len(&y, x.len, "the length of 'x'")?;
    ctx.expect_len(&mask, x.len, "the length of 'x'")?;
    let in_place = ctx.alias(&y, &x)?;
    ctx.no_overlap(&[&mask], &[&x, &y])?;
    let (xr, yr, mr) = (x.f32(), y.f32(), mask.f32());
    ctx.run(move || {
        // SAFETY: equal lengths; y is exactly x (In::Out) or disjoint; mask disjoint from both.
        let (x, y, m) = unsafe { (if in_place { In::Out } else { In::Slice(xr.slice()) }, yr.slice_mut(), mr.slice_mut()) };
        dropout::dropout_forward_f64(p, seed, x, y, m);
    })
}

/// dropoutBackward(mask, gradOutput, gradInput): gradInput may be exactly gradOutput.
pub fn dropout_backward(ctx: &Ctx) -> JsResult<napi_value> {
    let mask = ctx.f32_array(0, "mask")?;
    let go = ctx.f32_array(1, "gradOutput")?;
    let gi = ctx.f32_array(2, "gradInput")?;
    ctx.expect_len(&go, mask.len, "the length of 'mask'")?;
    ctx.expect_len(&gi, mask.len, "the length of 'mask'")?;
    let in_place = ctx.alias(&gi, &go)?;
    ctx.no_overlap(&[&gi], &[&mask])?;
    let (mr, gor, gir) = (mask.f32(), go.f32(), gi.f32());
    ctx.run(move || {
        // SAFETY: equal lengths; gradInput is exactly gradOutput (In::Out) or disjoint; disjoint from mask.
        let (m, go, gi) = unsafe { (mr.slice(), if in_place { In::Out } else { In::Slice(gor.slice()) }, gir.slice_mut()) };
        dropout::dropout_backward(m, go, gi);
    })
}

pub fn f32_to_bf16(ctx: &Ctx) -> JsResult<napi_value> {
    encode(ctx, convert::f32_to_bf16)
}
pub fn f32_to_f16(ctx: &Ctx) -> JsResult<napi_value> {
    encode(ctx, convert::f32_to_f16)
}
pub fn bf16_to_f32(ctx: &Ctx) -> JsResult<napi_value> {
    decode(ctx, convert::bf16_to_f32)
}
pub fn f16_to_f32(ctx: &Ctx) -> JsResult<napi_value> {
    decode(ctx, convert::f16_to_f32)
}

fn encode(ctx: &Ctx, f: fn(&[f32], &mut [u16])) -> JsResult<napi_value> {
    let src = ctx.f32_array(0, "src")?;
    let dst = ctx.u16_array(1, "dst")?;
    ctx.expect_len(&dst, src.len, "the length of 'src'")?;
    ctx.no_overlap(&[&dst], &[&src])?;
    let (s, d) = (src.f32(), dst.u16());
    ctx.run(move || {
        // SAFETY: equal lengths, dst disjoint from src, arrays live for this call.
        let (s, d) = unsafe { (s.slice(), d.slice_mut()) };
        f(s, d);
    })
}

fn decode(ctx: &Ctx, f: fn(&[u16], &mut [f32])) -> JsResult<napi_value> {
    let src = ctx.u16_array(0, "src")?;
    let dst = ctx.f32_array(1, "dst")?;
    ctx.expect_len(&dst, src.len, "the length of 'src'")?;
    ctx.no_overlap(&[&dst], &[&src])?;
    let (s, d) = (src.u16(), dst.f32());
    ctx.run(move || {
        // SAFETY: equal lengths, dst disjoint from src, arrays live for this call.
        let (s, d) = unsafe { (s.slice(), d.slice_mut()) };
        f(s, d);
    })
}
