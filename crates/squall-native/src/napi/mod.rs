//! A thin, hand-written layer over the Node-API C ABI: module registration, argument
//! parsing with clear errors, zero-copy typed arrays, and running a kernel either now (on
//! the JavaScript thread) or as async work on the libuv pool behind a Promise.
//!
//! Every export follows one pattern: parse and validate all arguments on the JavaScript
//! thread (throwing a TypeError/RangeError that names the argument), capture raw views of
//! the typed arrays in a job closure, then `run` it synchronously or `queue` it (the
//! typed arrays are held by napi references until the job has finished).

pub mod sys;

use std::any::Any;
use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{null, null_mut, NonNull};

use sys::*;

/// An error to throw into JavaScript.
#[derive(Debug)]
pub enum JsError {
    Type(String),
    Range(String),
    Error(String),
    /// A JavaScript exception is already pending (e.g. a getter threw): just return.
    Pending,
}

pub type JsResult<T> = Result<T, JsError>;

/// The message of a caught panic.
pub fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

fn c_str(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).expect("no NUL bytes left")
}

#[derive(Clone, Copy)]
pub struct Env(pub napi_env);

impl Env {
    fn check(self, status: napi_status, what: &str) -> JsResult<()> {
        match status {
            NAPI_OK => Ok(()),
            NAPI_PENDING_EXCEPTION => Err(JsError::Pending),
            s => Err(JsError::Error(format!("Node-API {what} failed (status {s})"))),
        }
    }

    pub fn undefined(self) -> JsResult<napi_value> {
        let mut v = null_mut();
        // SAFETY: valid env on the JavaScript thread; v is an out-pointer.
        self.check(unsafe { napi_get_undefined(self.0, &mut v) }, "napi_get_undefined")?;
        Ok(v)
    }

    pub fn null(self) -> JsResult<napi_value> {
        let mut v = null_mut();
        // SAFETY: as in undefined().
        self.check(unsafe { napi_get_null(self.0, &mut v) }, "napi_get_null")?;
        Ok(v)
    }

    pub fn boolean(self, b: bool) -> JsResult<napi_value> {
        let mut v = null_mut();
        // SAFETY: as in undefined().
        self.check(unsafe { napi_get_boolean(self.0, b, &mut v) }, "napi_get_boolean")?;
        Ok(v)
    }

    pub fn number(self, x: f64) -> JsResult<napi_value> {
        let mut v = null_mut();
        // SAFETY: as in undefined().
        self.check(unsafe { napi_create_double(self.0, x, &mut v) }, "napi_create_double")?;
        Ok(v)
    }

    pub fn string(self, s: &str) -> JsResult<napi_value> {
        let mut v = null_mut();
        // SAFETY: s points at s.len() bytes of UTF-8.
        self.check(unsafe { napi_create_string_utf8(self.0, s.as_ptr() as *const c_char, s.len(), &mut v) },
                   "napi_create_string_utf8")?;
        Ok(v)
    }

    pub fn object(self) -> JsResult<napi_value> {
        let mut v = null_mut();
        // SAFETY: as in undefined().
        self.check(unsafe { napi_create_object(self.0, &mut v) }, "napi_create_object")?;
        Ok(v)
    }

    pub fn set(self, object: napi_value, key: &str, value: napi_value) -> JsResult<()> {
        let k = c_str(key);
        // SAFETY: object and value are live handles of this scope; k is NUL-terminated.
        self.check(unsafe { napi_set_named_property(self.0, object, k.as_ptr(), value) }, "napi_set_named_property")
    }

    pub fn string_array(self, items: &[String]) -> JsResult<napi_value> {
        let mut arr = null_mut();
        // SAFETY: as in undefined().
        self.check(unsafe { napi_create_array_with_length(self.0, items.len(), &mut arr) }, "napi_create_array")?;
        for (i, s) in items.iter().enumerate() {
            let v = self.string(s)?;
            // SAFETY: arr and v are live handles.
            self.check(unsafe { napi_set_element(self.0, arr, i as u32, v) }, "napi_set_element")?;
        }
        Ok(arr)
    }

    fn error_value(self, msg: &str) -> JsResult<napi_value> {
        let m = self.string(msg)?;
        let mut v = null_mut();
        // SAFETY: m is a live string handle; no code.
        self.check(unsafe { napi_create_error(self.0, null_mut(), m, &mut v) }, "napi_create_error")?;
        Ok(v)
    }

    fn exception_pending(self) -> bool {
        let mut b = false;
        // SAFETY: as in undefined().
        let s = unsafe { napi_is_exception_pending(self.0, &mut b) };
        s != NAPI_OK || b
    }

    /// Throws `e` unless an exception is already pending.
    pub fn throw(self, e: JsError) {
        if self.exception_pending() {
            return;
        }
        let throw_fn = match &e {
            JsError::Type(_) => napi_throw_type_error,
            JsError::Range(_) => napi_throw_range_error,
            JsError::Error(_) => napi_throw_error,
            JsError::Pending => return,
        };
        let (JsError::Type(m) | JsError::Range(m) | JsError::Error(m)) = e else { return };
        let msg = c_str(&m);
        // SAFETY: valid env on the JavaScript thread; NUL-terminated message; null code.
        unsafe { throw_fn(self.0, null(), msg.as_ptr()) };
    }

    fn type_of(self, v: napi_value) -> JsResult<napi_valuetype> {
        let mut t = 0;
        // SAFETY: v is a live handle.
        self.check(unsafe { napi_typeof(self.0, v, &mut t) }, "napi_typeof")?;
        Ok(t)
    }

    fn is_typedarray(self, v: napi_value) -> JsResult<bool> {
        let mut b = false;
        // SAFETY: v is a live handle.
        self.check(unsafe { napi_is_typedarray(self.0, v, &mut b) }, "napi_is_typedarray")?;
        Ok(b)
    }

    fn is_array(self, v: napi_value) -> JsResult<bool> {
        let mut b = false;
        // SAFETY: v is a live handle.
        self.check(unsafe { napi_is_array(self.0, v, &mut b) }, "napi_is_array")?;
        Ok(b)
    }

    fn is_dataview(self, v: napi_value) -> JsResult<bool> {
        let mut b = false;
        // SAFETY: v is a live handle.
        self.check(unsafe { napi_is_dataview(self.0, v, &mut b) }, "napi_is_dataview")?;
        Ok(b)
    }

    /// How a value reads in an error message: "Int32Array", "number", "null", "Array", ...
    fn describe(self, v: napi_value) -> JsResult<String> {
        Ok(match self.type_of(v)? {
            NAPI_UNDEFINED => "undefined".into(),
            NAPI_NULL => "null".into(),
            NAPI_BOOLEAN => "boolean".into(),
            NAPI_NUMBER => "number".into(),
            NAPI_STRING => "string".into(),
            NAPI_SYMBOL => "symbol".into(),
            NAPI_FUNCTION => "function".into(),
            NAPI_EXTERNAL => "external".into(),
            NAPI_BIGINT => "bigint".into(),
            _ => {
                if self.is_typedarray(v)? {
                    typed_array_name(self.typed_array(v)?.0).into()
                } else if self.is_array(v)? {
                    "Array".into()
                } else if self.is_dataview(v)? {
                    "DataView".into()
                } else {
                    "object".into()
                }
            }
        })
    }

    /// (type, length in elements, data pointer adjusted by the byte offset).
    fn typed_array(self, v: napi_value) -> JsResult<(napi_typedarray_type, usize, *mut c_void)> {
        let (mut t, mut len, mut data, mut ab, mut off) = (0, 0usize, null_mut(), null_mut(), 0usize);
        // SAFETY: v is a live typed array handle; all out-pointers are valid.
        self.check(unsafe { napi_get_typedarray_info(self.0, v, &mut t, &mut len, &mut data, &mut ab, &mut off) },
                   "napi_get_typedarray_info")?;
        Ok((t, len, data))
    }
}

/// Bytes per element of a typed array type (None for a type this module does not know).
pub fn typed_array_elem_size(t: napi_typedarray_type) -> Option<usize> {
    match t {
        0..=2 => Some(1),
        3 | 4 => Some(2),
        5..=7 => Some(4),
        8..=10 => Some(8),
        _ => None,
    }
}

pub fn typed_array_name(t: napi_typedarray_type) -> &'static str {
    match t {
        0 => "Int8Array",
        1 => "Uint8Array",
        2 => "Uint8ClampedArray",
        3 => "Int16Array",
        4 => "Uint16Array",
        5 => "Int32Array",
        6 => "Uint32Array",
        7 => "Float32Array",
        8 => "Float64Array",
        9 => "BigInt64Array",
        10 => "BigUint64Array",
        _ => "TypedArray",
    }
}

// ---- typed arrays ---------------------------------------------------------------------------

/// A typed-array argument: its memory (zero-copy) and where it came from.
pub struct Buf {
    /// The argument's name, for messages.
    pub arg: String,
    value: napi_value,
    kind: napi_typedarray_type,
    ptr: *mut u8,
    /// Length in elements.
    pub len: usize,
    elem: usize,
}

impl Buf {
    fn bytes(&self) -> (usize, usize) {
        let start = self.ptr as usize;
        (start, start + self.len * self.elem)
    }
    /// True when the two arrays share at least one byte.
    pub fn overlaps(&self, other: &Buf) -> bool {
        let (a0, a1) = self.bytes();
        let (b0, b1) = other.bytes();
        self.len > 0 && other.len > 0 && a0 < b1 && b0 < a1
    }
    /// True when both views cover exactly the same bytes with the same element type.
    pub fn same(&self, other: &Buf) -> bool {
        self.bytes() == other.bytes() && self.kind == other.kind && self.len > 0
    }
    fn raw<T>(&self, kind: napi_typedarray_type) -> Raw<T> {
        assert_eq!(self.kind, kind, "typed array kind checked at parse time");
        let ptr = if self.len == 0 || self.ptr.is_null() {
            NonNull::<T>::dangling().as_ptr()
        } else {
            self.ptr as *mut T
        };
        Raw { ptr, len: self.len }
    }
    pub fn f32(&self) -> Raw<f32> {
        self.raw(NAPI_FLOAT32_ARRAY)
    }
    pub fn i32(&self) -> Raw<i32> {
        self.raw(NAPI_INT32_ARRAY)
    }
    pub fn u16(&self) -> Raw<u16> {
        self.raw(NAPI_UINT16_ARRAY)
    }
}

/// A raw view of typed-array memory that a job carries to another thread.
pub struct Raw<T> {
    ptr: *mut T,
    len: usize,
}

impl<T> Clone for Raw<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Raw<T> {}

// SAFETY: a Raw is only dereferenced while its typed array is kept alive (a napi reference
// for async jobs, the call frame for sync ones), and exports only create a mutable slice
// from one that overlaps no other view of the call.
unsafe impl<T: Send> Send for Raw<T> {}

impl<T> Raw<T> {
    /// # Safety
    /// The typed array must stay alive and unmodified by others for 'a.
    pub unsafe fn slice<'a>(self) -> &'a [T] {
        // SAFETY: pointer valid and aligned (typed array data, or dangling for length 0).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
    /// # Safety
    /// As `slice`, and no other live slice may cover any of this memory.
    pub unsafe fn slice_mut<'a>(self) -> &'a mut [T] {
        // SAFETY: as above, plus exclusivity guaranteed by the caller.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

// ---- call context -----------------------------------------------------------------------------

/// Largest argument count of any export.
const MAX_ARGS: usize = 24;

/// One JavaScript call of an export: its environment, name and arguments.
pub struct Ctx {
    pub env: Env,
    pub name: &'static str,
    args: [napi_value; MAX_ARGS],
}

impl Ctx {
    pub fn type_error(&self, msg: impl std::fmt::Display) -> JsError {
        JsError::Type(format!("{}: {msg}", self.name))
    }
    pub fn range_error(&self, msg: impl std::fmt::Display) -> JsError {
        JsError::Range(format!("{}: {msg}", self.name))
    }
    pub fn error(&self, msg: impl std::fmt::Display) -> JsError {
        JsError::Error(format!("{}: {msg}", self.name))
    }

    fn arg(&self, i: usize) -> napi_value {
        self.args[i]
    }

    fn expect_type(&self, i: usize, arg: &str, want: napi_valuetype, what: &str) -> JsResult<()> {
        let v = self.arg(i);
        if self.env.type_of(v)? != want {
            return Err(self.type_error(format_args!("argument '{arg}' must be {what}, got {}", self.env.describe(v)?)));
        }
        Ok(())
    }

    /// Any JavaScript number (NaN and infinities included).
    pub fn number(&self, i: usize, arg: &str) -> JsResult<f64> {
        self.expect_type(i, arg, NAPI_NUMBER, "a number")?;
        let mut x = 0.0;
        // SAFETY: the argument is a number (checked above).
        self.env.check(unsafe { napi_get_value_double(self.env.0, self.arg(i), &mut x) }, "napi_get_value_double")?;
        Ok(x)
    }

    /// A finite number, as f32.
    pub fn f32(&self, i: usize, arg: &str) -> JsResult<f32> {
        let x = self.number(i, arg)?;
        if !x.is_finite() {
            return Err(self.range_error(format_args!("argument '{arg}' must be a finite number, got {x}")));
        }
        Ok(x as f32)
    }

    /// A non-negative integer below 2^31 (sizes, strides, counts).
    pub fn size(&self, i: usize, arg: &str) -> JsResult<usize> {
        let x = self.number(i, arg)?;
        if !(x >= 0.0 && x.fract() == 0.0 && x < 2147483648.0) {
            return Err(self.range_error(format_args!("argument '{arg}' must be a non-negative integer (below 2^31), got {x}")));
        }
        Ok(x as usize)
    }

    /// A JavaScript boolean.
    pub fn boolean(&self, i: usize, arg: &str) -> JsResult<bool> {
        self.expect_type(i, arg, NAPI_BOOLEAN, "a boolean")?;
        let mut b = false;
        // SAFETY: the argument is a boolean (checked above).
        self.env.check(unsafe { napi_get_value_bool(self.env.0, self.arg(i), &mut b) }, "napi_get_value_bool")?;
        Ok(b)
    }

    pub fn string(&self, i: usize, arg: &str) -> JsResult<String> {
        self.expect_type(i, arg, NAPI_STRING, "a string")?;
        let v = self.arg(i);
        let mut len = 0usize;
        // SAFETY: null buffer asks for the length in bytes.
        self.env.check(unsafe { napi_get_value_string_utf8(self.env.0, v, null_mut(), 0, &mut len) }, "napi_get_value_string_utf8")?;
        let mut buf = vec![0u8; len + 1];
        let mut got = 0usize;
        // SAFETY: buf holds len + 1 bytes (room for the NUL).
        self.env.check(unsafe { napi_get_value_string_utf8(self.env.0, v, buf.as_mut_ptr() as *mut c_char, buf.len(), &mut got) },
                       "napi_get_value_string_utf8")?;
        buf.truncate(got);
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn typed(&self, v: napi_value, arg: &str, kind: napi_typedarray_type, elem: usize) -> JsResult<Buf> {
        if !self.env.is_typedarray(v)? {
            return Err(self.type_error(format_args!("argument '{arg}' must be a {}, got {}", typed_array_name(kind),
                                                     self.env.describe(v)?)));
        }
        let (t, len, data) = self.env.typed_array(v)?;
        if t != kind {
            return Err(self.type_error(format_args!("argument '{arg}' must be a {}, got {}", typed_array_name(kind),
                                                     typed_array_name(t))));
        }
        if len > 0 && data.is_null() {
            return Err(self.type_error(format_args!("argument '{arg}' has no memory (detached ArrayBuffer?)")));
        }
        if !(data as usize).is_multiple_of(elem) {
            return Err(self.range_error(format_args!("argument '{arg}' is not aligned to its element size")));
        }
        Ok(Buf { arg: arg.to_string(), value: v, kind, ptr: data as *mut u8, len, elem })
    }

    pub fn f32_array(&self, i: usize, arg: &str) -> JsResult<Buf> {
        self.typed(self.arg(i), arg, NAPI_FLOAT32_ARRAY, 4)
    }
    pub fn i32_array(&self, i: usize, arg: &str) -> JsResult<Buf> {
        self.typed(self.arg(i), arg, NAPI_INT32_ARRAY, 4)
    }
    pub fn u16_array(&self, i: usize, arg: &str) -> JsResult<Buf> {
        self.typed(self.arg(i), arg, NAPI_UINT16_ARRAY, 2)
    }

    /// An integer in 0..=0xFFFFFFFF (a uint32, e.g. a running checksum).
    pub fn u32(&self, i: usize, arg: &str) -> JsResult<u32> {
        let x = self.number(i, arg)?;
        if !(x >= 0.0 && x.fract() == 0.0 && x <= 4294967295.0) {
            return Err(self.range_error(format_args!("argument '{arg}' must be an integer between 0 and 4294967295 (a uint32), got {x}")));
        }
        Ok(x as u32)
    }

    /// The bytes an ArrayBufferView covers (any typed array, a Buffer, a DataView: byteOffset to
    /// byteOffset + byteLength of its ArrayBuffer), read in place.
    pub fn bytes(&self, i: usize, arg: &str) -> JsResult<Raw<u8>> {
        let v = self.arg(i);
        let (data, len) = if self.env.is_typedarray(v)? {
            let (t, len, data) = self.env.typed_array(v)?;
            let elem = typed_array_elem_size(t).ok_or_else(|| {
                self.type_error(format_args!("argument '{arg}' is a typed array of unsupported type {t}"))
            })?;
            (data, len * elem)
        } else if self.env.is_dataview(v)? {
            let (mut len, mut data, mut ab, mut off) = (0usize, null_mut(), null_mut(), 0usize);
            // SAFETY: v is a live DataView handle; all out-pointers are valid.
            self.env.check(unsafe { napi_get_dataview_info(self.env.0, v, &mut len, &mut data, &mut ab, &mut off) },
                           "napi_get_dataview_info")?;
            (data, len)
        } else {
            return Err(self.type_error(format_args!("argument '{arg}' must be an ArrayBufferView (a typed array, Buffer or DataView), got {}",
                                                     self.env.describe(v)?)));
        };
        if len > 0 && data.is_null() {
            return Err(self.type_error(format_args!("argument '{arg}' has no memory (detached ArrayBuffer?)")));
        }
        let ptr = if len == 0 { NonNull::<u8>::dangling().as_ptr() } else { data as *mut u8 };
        Ok(Raw { ptr, len })
    }

    /// A Float32Array, or None for null/undefined.
    pub fn opt_f32_array(&self, i: usize, arg: &str) -> JsResult<Option<Buf>> {
        match self.env.type_of(self.arg(i))? {
            NAPI_NULL | NAPI_UNDEFINED => Ok(None),
            _ => {
                let v = self.arg(i);
                if !self.env.is_typedarray(v)? {
                    return Err(self.type_error(format_args!("argument '{arg}' must be a Float32Array or null, got {}",
                                                             self.env.describe(v)?)));
                }
                self.f32_array(i, arg).map(Some)
            }
        }
    }

    /// A JavaScript array of Float32Array; elements are named "arg[k]".
    pub fn f32_array_list(&self, i: usize, arg: &str) -> JsResult<Vec<Buf>> {
        let v = self.arg(i);
        if !self.env.is_array(v)? {
            return Err(self.type_error(format_args!("argument '{arg}' must be an Array of Float32Array, got {}",
                                                     self.env.describe(v)?)));
        }
        let mut n = 0u32;
        // SAFETY: v is an array (checked above).
        self.env.check(unsafe { napi_get_array_length(self.env.0, v, &mut n) }, "napi_get_array_length")?;
        let mut out = Vec::with_capacity(n as usize);
        for k in 0..n {
            let mut e = null_mut();
            // SAFETY: k < length; e is an out-pointer.
            self.env.check(unsafe { napi_get_element(self.env.0, v, k, &mut e) }, "napi_get_element")?;
            out.push(self.typed(e, &format!("{arg}[{k}]"), NAPI_FLOAT32_ARRAY, 4)?);
        }
        Ok(out)
    }

    /// RangeError unless `b` has exactly `want` elements.
    pub fn expect_len(&self, b: &Buf, want: usize, what: impl std::fmt::Display) -> JsResult<()> {
        if b.len != want {
            return Err(self.range_error(format_args!("'{}' has {} elements, expected {want} for {what}", b.arg, b.len)));
        }
        Ok(())
    }

    /// RangeError when an output shares memory with an input or with another output.
    pub fn no_overlap(&self, outputs: &[&Buf], inputs: &[&Buf]) -> JsResult<()> {
        for (k, o) in outputs.iter().enumerate() {
            for other in outputs[k + 1..].iter().chain(inputs.iter()) {
                if o.overlaps(other) {
                    return Err(self.range_error(format_args!("'{}' overlaps '{}' (outputs must not share memory with other arguments)",
                                                             o.arg, other.arg)));
                }
            }
        }
        Ok(())
    }

    /// Whether output `out` is exactly input `inp` (allowed in-place operation); RangeError
    /// when they overlap only in part.
    pub fn alias(&self, out: &Buf, inp: &Buf) -> JsResult<bool> {
        if out.same(inp) {
            return Ok(true);
        }
        if out.overlaps(inp) {
            return Err(self.range_error(format_args!("'{}' partially overlaps '{}' (in-place use needs exactly the same array range)",
                                                     out.arg, inp.arg)));
        }
        Ok(false)
    }

    /// Checked product of dimensions (RangeError when it does not fit).
    pub fn product(&self, dims: &[usize]) -> JsResult<usize> {
        dims.iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= isize::MAX as usize / 8)
            .ok_or_else(|| self.range_error(format_args!("sizes {dims:?} are too large")))
    }

    pub fn undefined(&self) -> JsResult<napi_value> {
        self.env.undefined()
    }

    /// Runs the job now on this thread; a panic becomes an Error.
    pub fn run(&self, job: impl FnOnce()) -> JsResult<napi_value> {
        catch_unwind(AssertUnwindSafe(job)).map_err(|p| self.error(format_args!("internal error: {}", panic_message(&*p))))?;
        self.undefined()
    }

    /// Runs the job now (`async_ == false`) or queues it on the libuv pool and returns a
    /// Promise, holding a reference to each of `keep` until it settles.
    pub fn run_or_queue(&self, async_: bool, keep: &[&Buf], job: impl FnOnce() + Send + 'static) -> JsResult<napi_value> {
        if async_ { self.queue(keep, Box::new(job)) } else { self.run(job) }
    }

    /// Queues the job as async work and returns a Promise.
    pub fn queue(&self, keep: &[&Buf], job: Box<dyn FnOnce() + Send>) -> JsResult<napi_value> {
        let env = self.env;
        let mut call = Box::new(AsyncCall { name: self.name, job: Some(job), outcome: None, deferred: null_mut(),
                                            work: null_mut(), refs: Vec::with_capacity(keep.len()) });
        let release = |call: &mut AsyncCall| {
            for r in call.refs.drain(..) {
                // SAFETY: r was created by napi_create_reference in this env.
                unsafe { napi_delete_reference(env.0, r) };
            }
        };
        for b in keep {
            let mut r = null_mut();
            // SAFETY: b.value is a live handle of this call's scope.
            let s = unsafe { napi_create_reference(env.0, b.value, 1, &mut r) };
            if let Err(e) = env.check(s, "napi_create_reference") {
                release(&mut call);
                return Err(e);
            }
            call.refs.push(r);
        }
        let name = match env.string(self.name) {
            Ok(n) => n,
            Err(e) => {
                release(&mut call);
                return Err(e);
            }
        };
        let raw = Box::into_raw(call);
        let mut work = null_mut();
        // SAFETY: raw stays valid until `complete` reclaims it; callbacks have the right ABI.
        let s = unsafe { napi_create_async_work(env.0, null_mut(), name, Some(execute), Some(complete), raw as *mut c_void, &mut work) };
        if let Err(e) = env.check(s, "napi_create_async_work") {
            // SAFETY: the work was not created, so raw is still exclusively ours.
            let mut call = unsafe { Box::from_raw(raw) };
            release(&mut call);
            return Err(e);
        }
        let (mut deferred, mut promise) = (null_mut(), null_mut());
        // SAFETY: out-pointers valid.
        let s = unsafe { napi_create_promise(env.0, &mut deferred, &mut promise) };
        let s = if s == NAPI_OK {
            // SAFETY: the work is not queued yet, so nothing else touches *raw.
            unsafe {
                (*raw).deferred = deferred;
                (*raw).work = work;
            }
            // SAFETY: work was created above in this env.
            unsafe { napi_queue_async_work(env.0, work) }
        } else {
            s
        };
        if s != NAPI_OK {
            // SAFETY: the work never ran; reclaim everything.
            unsafe { napi_delete_async_work(env.0, work) };
            // SAFETY: as above.
            let mut call = unsafe { Box::from_raw(raw) };
            release(&mut call);
            if !deferred.is_null() {
                if let Ok(err) = env.error_value("could not queue the async work") {
                    // SAFETY: deferred came from napi_create_promise.
                    unsafe { napi_reject_deferred(env.0, deferred, err) };
                }
            }
            return Err(env.check(s, "napi_queue_async_work").err().unwrap_or(JsError::Error("queue failed".into())));
        }
        Ok(promise)
    }
}

struct AsyncCall {
    name: &'static str,
    job: Option<Box<dyn FnOnce() + Send>>,
    outcome: Option<Result<(), String>>,
    deferred: napi_deferred,
    work: napi_async_work,
    refs: Vec<napi_ref>,
}

/// Runs on a libuv worker thread: no Node-API calls here.
unsafe extern "C" fn execute(_env: napi_env, data: *mut c_void) {
    // SAFETY: data is the AsyncCall leaked by `queue`; only this callback touches it now.
    let call = unsafe { &mut *(data as *mut AsyncCall) };
    if let Some(job) = call.job.take() {
        call.outcome = Some(catch_unwind(AssertUnwindSafe(job)).map_err(|p| panic_message(&*p)));
    }
}

/// Runs on the JavaScript thread once the job is done (or cancelled).
unsafe extern "C" fn complete(env: napi_env, status: napi_status, data: *mut c_void) {
    // SAFETY: data is the AsyncCall leaked by `queue`; execute has finished with it.
    let call = unsafe { Box::from_raw(data as *mut AsyncCall) };
    let _ = catch_unwind(AssertUnwindSafe(|| finish(Env(env), status, *call)));
}

fn finish(env: Env, status: napi_status, mut call: AsyncCall) {
    for r in call.refs.drain(..) {
        // SAFETY: r was created in this env by `queue`.
        unsafe { napi_delete_reference(env.0, r) };
    }
    // SAFETY: the work has completed; deleting it is the documented last step.
    unsafe { napi_delete_async_work(env.0, call.work) };
    let outcome = match status {
        NAPI_OK => call.outcome.take().unwrap_or_else(|| Err("the job did not run".into())),
        NAPI_CANCELLED => Err("cancelled".into()),
        s => Err(format!("async work failed (status {s})")),
    };
    let value = match outcome {
        Ok(()) => env.undefined().map(|v| (true, v)),
        Err(msg) => env.error_value(&format!("{}: internal error: {msg}", call.name)).map(|v| (false, v)),
    };
    if let Ok((ok, v)) = value {
        // SAFETY: deferred came from napi_create_promise and is settled exactly once.
        unsafe {
            if ok {
                napi_resolve_deferred(env.0, call.deferred, v);
            } else {
                napi_reject_deferred(env.0, call.deferred, v);
            }
        }
    }
}

// ---- registration ---------------------------------------------------------------------------------

pub type Handler = fn(&Ctx) -> JsResult<napi_value>;

/// One exported function: its JavaScript name, its exact argument count (None: any) and
/// its handler.
pub struct Export {
    pub name: &'static str,
    pub argc: Option<usize>,
    pub handler: Handler,
}

unsafe extern "C" fn trampoline(env: napi_env, info: napi_callback_info) -> napi_value {
    let env = Env(env);
    let result = catch_unwind(AssertUnwindSafe(|| -> JsResult<napi_value> {
        let mut argc = MAX_ARGS;
        let mut args = [null_mut(); MAX_ARGS];
        let mut data = null_mut();
        // SAFETY: args holds MAX_ARGS slots; argc tells napi so.
        env.check(unsafe { napi_get_cb_info(env.0, info, &mut argc, args.as_mut_ptr(), null_mut(), &mut data) },
                  "napi_get_cb_info")?;
        // SAFETY: data is the &'static Export given to napi_create_function.
        let export = unsafe { &*(data as *const Export) };
        if let Some(want) = export.argc {
            if argc != want {
                return Err(JsError::Type(format!("{}: expected {want} arguments, got {argc}", export.name)));
            }
        }
        let ctx = Ctx { env, name: export.name, args };
        (export.handler)(&ctx)
    }));
    match result {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            env.throw(e);
            null_mut()
        }
        Err(p) => {
            env.throw(JsError::Error(format!("squall native: internal error: {}", panic_message(&*p))));
            null_mut()
        }
    }
}

/// Adds every export to the module's `exports` object.
///
/// # Safety
/// Called by Node with a valid env and exports object.
pub unsafe fn register(env: napi_env, exports: napi_value, table: &'static [Export]) -> napi_value {
    let env = Env(env);
    let r = catch_unwind(AssertUnwindSafe(|| -> JsResult<()> {
        for e in table {
            let mut f = null_mut();
            // SAFETY: the name is e.name.len() bytes of UTF-8; data is a &'static Export.
            env.check(unsafe { napi_create_function(env.0, e.name.as_ptr() as *const c_char, e.name.len(), Some(trampoline),
                                                    e as *const Export as *mut c_void, &mut f) },
                      "napi_create_function")?;
            env.set(exports, e.name, f)?;
        }
        Ok(())
    }));
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => env.throw(e),
        Err(p) => env.throw(JsError::Error(format!("squall native: cannot initialise: {}", panic_message(&*p)))),
    }
    exports
}
