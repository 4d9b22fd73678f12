//! One export per method of the Backend interface (engine/backends/backend.ts), same
//! camelCase names and positional arguments; shape and option objects are flattened into
//! positional numbers/booleans in the field order of their TypeScript interfaces. Beyond
//! the Backend: system (info, threads, BLAS, convolution algorithm) and checksum (crc32).

mod activation;
mod checksum;
mod conv;
mod elementwise;
mod gemm;
mod norm;
mod optim;
mod pool;
mod system;

use crate::blas;
use crate::napi::{Ctx, Export, JsResult};

macro_rules! export {
    ($name:literal, $argc:expr, $handler:path) => {
        Export { name: $name, argc: $argc, handler: $handler }
    };
}

pub static EXPORTS: &[Export] = &[
    export!("info", Some(0), system::info),
    export!("setThreads", Some(1), system::set_threads),
    export!("getThreads", Some(0), system::get_threads),
    export!("selectBlas", Some(1), system::select_blas),
    export!("setConvAlgorithm", Some(1), system::set_conv_algorithm),
    export!("getConvAlgorithm", Some(0), system::get_conv_algorithm),
    export!("setDeterministic", Some(1), system::set_deterministic),
    export!("getDeterministic", Some(0), system::get_deterministic),
    export!("noop", Some(1), system::noop),
    export!("crc32", Some(2), checksum::crc32),
    export!("crc32Kernel", Some(0), checksum::crc32_kernel),
    export!("sgemm", Some(13), gemm::sgemm),
    export!("sgemmAsync", Some(13), gemm::sgemm_async),
    export!("conv2dForward", Some(18), conv::forward),
    export!("conv2dForwardAsync", Some(18), conv::forward_async),
    export!("conv2dBackwardData", Some(17), conv::backward_data),
    export!("conv2dBackwardDataAsync", Some(17), conv::backward_data_async),
    export!("conv2dBackwardFilter", Some(18), conv::backward_filter),
    export!("conv2dBackwardFilterAsync", Some(18), conv::backward_filter_async),
    export!("maxPool2dForward", Some(15), pool::max_forward),
    export!("maxPool2dBackward", Some(15), pool::max_backward),
    export!("avgPool2dForward", Some(14), pool::avg_forward),
    export!("avgPool2dBackward", Some(14), pool::avg_backward),
    export!("relu", Some(2), activation::relu),
    export!("reluBackward", Some(3), activation::relu_backward),
    export!("tanh", Some(2), activation::tanh),
    export!("tanhBackward", Some(3), activation::tanh_backward),
    export!("sigmoid", Some(2), activation::sigmoid),
    export!("sigmoidBackward", Some(3), activation::sigmoid_backward),
    export!("lrnForward", Some(11), norm::lrn_forward),
    export!("lrnBackward", Some(13), norm::lrn_backward),
    export!("softmaxForward", Some(4), norm::softmax_forward),
    export!("softmaxBackward", Some(5), norm::softmax_backward),
    export!("logSoftmaxForward", Some(4), norm::log_softmax_forward),
    export!("logSoftmaxBackward", Some(5), norm::log_softmax_backward),
    export!("batchNormForward", Some(14), norm::batch_norm_forward),
    export!("batchNormBackward", Some(12), norm::batch_norm_backward),
    export!("dropoutForward", Some(5), elementwise::dropout_forward),
    export!("dropoutBackward", Some(3), elementwise::dropout_backward),
    export!("add", Some(3), elementwise::add),
    export!("scale", Some(3), elementwise::scale),
    export!("axpy", Some(3), elementwise::axpy),
    export!("sumSlices", Some(2), elementwise::sum_slices),
    export!("f32ToBf16", Some(2), elementwise::f32_to_bf16),
    export!("bf16ToF32", Some(2), elementwise::bf16_to_f32),
    export!("f32ToF16", Some(2), elementwise::f32_to_f16),
    export!("f16ToF32", Some(2), elementwise::f16_to_f32),
    export!("sgdUpdate", Some(9), optim::sgd_update),
    export!("adamUpdate", Some(10), optim::adam_update),
];

/// Chooses the BLAS provider (on the JavaScript thread, before any job runs), so a bad
/// SQUALL_BLAS surfaces as a clear Error from the first GEMM-backed call.
fn blas_ready(ctx: &Ctx) -> JsResult<()> {
    blas::ensure_selected().map(|_| ()).map_err(|e| ctx.error(e))
}

/// Formats "[n, c, h, w] = [2, 3, 4, 5]" for length messages.
fn dims(names: &str, values: &[usize]) -> String {
    let v: Vec<String> = values.iter().map(|x| x.to_string()).collect();
    format!("[{names}] = [{}]", v.join(", "))
}
