//! Element-wise add / scale / axpy / sum of slices. Plain slice loops that the compiler
//! vectorises; they are memory-bound, so they stay on the calling thread.

/// An input operand of an element-wise kernel: a separate slice, or `Out` to read the
/// operand from the output buffer itself (in-place operation; this is how the FFI layer
/// expresses aliasing of input and output without two live references to one buffer).
#[derive(Clone, Copy, Debug)]
pub enum In<'a> {
    Slice(&'a [f32]),
    Out,
}

impl<'a> In<'a> {
    /// Length check helper for debug assertions.
    pub(crate) fn len_or(&self, out_len: usize) -> usize {
        match self {
            In::Slice(s) => s.len(),
            In::Out => out_len,
        }
    }
}

/// out[i] = f(x[i]) where x is `x` or `out` itself.
#[inline(always)]
pub(crate) fn map_in(x: In, out: &mut [f32], f: impl Fn(f32) -> f32) {
    match x {
        In::Slice(x) => {
            debug_assert_eq!(x.len(), out.len());
            for (o, &v) in out.iter_mut().zip(x) {
                *o = f(v);
            }
        }
        In::Out => {
            for o in out.iter_mut() {
                *o = f(*o);
            }
        }
    }
}

/// out[i] = f(a[i], b[i]) where b is `b` or `out` itself.
#[inline(always)]
pub(crate) fn zip_in(a: &[f32], b: In, out: &mut [f32], f: impl Fn(f32, f32) -> f32) {
    debug_assert_eq!(a.len(), out.len());
    match b {
        In::Slice(b) => {
            debug_assert_eq!(b.len(), out.len());
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
        }
        In::Out => {
            for (o, &x) in out.iter_mut().zip(a) {
                *o = f(x, *o);
            }
        }
    }
}

/// out = a + b.
pub fn add(a: In, b: In, out: &mut [f32]) {
    debug_assert_eq!(a.len_or(out.len()), out.len());
    debug_assert_eq!(b.len_or(out.len()), out.len());
    match (a, b) {
        (In::Slice(a), b) => zip_in(a, b, out, |x, y| x + y),
        (In::Out, In::Slice(b)) => {
            for (o, &y) in out.iter_mut().zip(b) {
                *o += y;
            }
        }
        (In::Out, In::Out) => {
            for o in out.iter_mut() {
                *o += *o;
            }
        }
    }
}

/// out = alpha * x.
pub fn scale(x: In, alpha: f32, out: &mut [f32]) {
    map_in(x, out, |v| alpha * v);
}

/// y += alpha * x.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (o, &v) in y.iter_mut().zip(x) {
        *o += alpha * v;
    }
}

/// out = slices[0] + slices[1] + ... added in slice order (zeros when there are none).
/// Works in L1-sized blocks so `out` is not streamed through memory once per slice.
pub fn sum_slices(slices: &[&[f32]], out: &mut [f32]) {
    for s in slices {
        debug_assert_eq!(s.len(), out.len());
    }
    const BLOCK: usize = 2048;
    let Some((first, rest)) = slices.split_first() else {
        out.fill(0.0);
        return;
    };
    for (bi, ob) in out.chunks_mut(BLOCK).enumerate() {
        let lo = bi * BLOCK;
        let hi = lo + ob.len();
        ob.copy_from_slice(&first[lo..hi]);
        for s in rest {
            for (o, &v) in ob.iter_mut().zip(&s[lo..hi]) {
                *o += v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::Rng;

    #[test]
    fn add_scale_axpy_all_aliasings() {
        let mut r = Rng::new(1);
        let n = 1037;
        let a = r.vec(n, -2.0, 2.0);
        let b = r.vec(n, -2.0, 2.0);
        let mut out = vec![0.0; n];
        add(In::Slice(&a), In::Slice(&b), &mut out);
        for i in 0..n {
            assert_eq!(out[i], a[i] + b[i]);
        }
        let mut out = b.clone();
        add(In::Slice(&a), In::Out, &mut out);
        for i in 0..n {
            assert_eq!(out[i], a[i] + b[i]);
        }
        let mut out = a.clone();
        add(In::Out, In::Slice(&b), &mut out);
        for i in 0..n {
            assert_eq!(out[i], a[i] + b[i]);
        }
        let mut out = a.clone();
        add(In::Out, In::Out, &mut out);
        for i in 0..n {
            assert_eq!(out[i], a[i] * 2.0);
        }
        let mut out = vec![0.0; n];
        scale(In::Slice(&a), -1.5, &mut out);
        for i in 0..n {
            assert_eq!(out[i], a[i] * -1.5);
        }
        let mut out = a.clone();
        scale(In::Out, 0.25, &mut out);
        for i in 0..n {
            assert_eq!(out[i], a[i] * 0.25);
        }
        let mut y = b.clone();
        axpy(0.5, &a, &mut y);
        for i in 0..n {
            assert_eq!(y[i], b[i] + 0.5 * a[i]);
        }
    }

    #[test]
    fn sum_slices_in_order() {
        let mut r = Rng::new(2);
        let n = 5000;
        let s: Vec<Vec<f32>> = (0..4).map(|_| r.vec(n, -1e3, 1e3)).collect();
        let refs: Vec<&[f32]> = s.iter().map(|v| v.as_slice()).collect();
        let mut out = vec![7.0; n];
        sum_slices(&refs, &mut out);
        for i in 0..n {
            assert_eq!(out[i], ((s[0][i] + s[1][i]) + s[2][i]) + s[3][i]);
        }
        sum_slices(&[], &mut out);
        assert!(out.iter().all(|&v| v == 0.0));
    }
}
