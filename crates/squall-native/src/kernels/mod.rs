//! Pure-Rust kernels over slices (no FFI here). Semantics: engine/backends/backend.ts.
//!
//! Lengths are validated by the FFI layer; kernels re-check them with debug assertions and
//! only ever index through slices, so a bug panics instead of writing out of bounds.
pub mod shapes;

pub mod activation;
pub mod batchnorm;
pub mod conv;
mod conv_batched;
pub mod convert;
pub mod dropout;
pub mod elementwise;
pub mod lrn;
pub mod optim;
pub mod pool;
pub mod softmax;
pub mod winograd;

mod im2col;
mod par;
#[cfg(test)]
mod testutil;

pub use elementwise::In;
