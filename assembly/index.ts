// Squall's WebAssembly kernels: the entry point asc compiles (scripts/build-wasm.mjs).
//
// Every export takes byte offsets into linear memory plus sizes; nothing here allocates.
// The host (engine/backends/wasm/core.ts) validates arguments, lays tensors out in
// memory, copies data in and out and splits the heavy kernels (sgemm, conv2d*) over
// threads: those take (tid, nthreads, ..., ws, wsStride) and each thread works on a
// disjoint part of the output with its own workspace at ws + tid * wsStride.
export { sgemm, sgemmWorkspace, gemmSetBlocking } from './gemm';
export { conv2dForward, conv2dBackwardData, conv2dBackwardFilter, conv2dWorkspace, convSetFusedIm2col, convSetWinograd } from './conv';
export { maxPool2dForward, maxPool2dBackward, avgPool2dForward, avgPool2dBackward } from './pool';
export {
  relu, reluBackward, tanhForward, tanhBackward, sigmoidForward, sigmoidBackward,
  add, scale, axpy, sumSlices,
} from './elementwise';
export {
  lrnForward, lrnBackward, softmaxForward, softmaxBackward, logSoftmaxForward, logSoftmaxBackward,
  batchNormForward, batchNormBackward,
} from './norm';
export { dropoutForward, mul, sgdUpdate, adamUpdate } from './optim';
export { f32ToBf16, bf16ToF32, f32ToF16, f16ToF32 } from './convert';

/** First byte the host may use (after the module's static data). */
export function heapBase(): usize {
  return (__heap_base + 63) & ~(<usize>63);
}

/** 1 when this build uses relaxed SIMD (f32x4.relaxed_madd). */
export function relaxedSimd(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}
