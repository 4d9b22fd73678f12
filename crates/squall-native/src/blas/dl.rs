//! dlopen/dlsym, declared by hand (glibc exports them from libc.so.6).

use std::ffi::{c_char, c_int, c_void, CStr, CString};

pub const RTLD_NOW: c_int = 0x0002;
pub const RTLD_GLOBAL: c_int = 0x0100;
pub const RTLD_LOCAL: c_int = 0;

extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *mut c_char;
}

/// A library that stays loaded for the life of the process (never dlclose'd).
#[derive(Clone, Copy)]
pub struct Library {
    handle: *mut c_void,
}

// SAFETY: a dlopen handle is a process-wide token; dlsym is thread-safe.
unsafe impl Send for Library {}
// SAFETY: as above.
unsafe impl Sync for Library {}

fn last_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string owned by libc.
    let p = unsafe { dlerror() };
    if p.is_null() {
        "unknown dlopen error".to_string()
    } else {
        // SAFETY: non-null, NUL-terminated (checked above).
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

impl Library {
    pub fn open(name: &str, flags: c_int) -> Result<Library, String> {
        let c = CString::new(name).map_err(|_| format!("bad library name {name:?}"))?;
        // SAFETY: c is a valid C string; the handle is kept for the process lifetime.
        let handle = unsafe { dlopen(c.as_ptr(), flags) };
        if handle.is_null() {
            Err(last_error())
        } else {
            Ok(Library { handle })
        }
    }

    /// The address of `name`, or None.
    pub fn symbol(&self, name: &str) -> Option<*mut c_void> {
        let c = CString::new(name).ok()?;
        // SAFETY: handle came from dlopen; c is a valid C string.
        let p = unsafe { dlsym(self.handle, c.as_ptr()) };
        if p.is_null() { None } else { Some(p) }
    }
}

/// Reinterprets a symbol address as a function pointer of type F.
///
/// # Safety
/// The symbol must be a function with exactly the signature F.
pub unsafe fn as_fn<F: Copy>(p: *mut c_void) -> F {
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
    // SAFETY: the caller guarantees the signature; sizes checked above.
    unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) }
}
