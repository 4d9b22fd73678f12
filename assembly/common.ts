// Shared helpers for the kernels. All pointers are byte offsets into linear memory; the
// host lays tensors out and passes offsets, so nothing here allocates.

/** a * b + c, fused where the relaxed-SIMD build allows (f32x4.relaxed_madd). */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return f32x4.relaxed_madd(a, b, c);
  } else {
    return f32x4.add(c, f32x4.mul(a, b));
  }
}

/** [lo, hi) of `total` items for part `tid` of `parts`, in multiples of `unit` (the last part takes the rest). */
// @ts-ignore: decorator
@inline export function partLo(total: i32, unit: i32, tid: i32, parts: i32): i32 {
  const units = (total + unit - 1) / unit;
  const lo = <i32>(<i64>units * tid / parts) * unit;
  return lo < total ? lo : total;
}

/** Fills n floats at p with v. */
export function fill(p: usize, n: i32, v: f32): void {
  const vv = f32x4.splat(v);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(p + (<usize>i << 2), vv);
  for (; i < n; i++) store<f32>(p + (<usize>i << 2), v);
}

/** Copies n floats from src to dst (non-overlapping). */
export function copyF32(dst: usize, src: usize, n: i32): void {
  memory.copy(dst, src, <usize>n << 2);
}
