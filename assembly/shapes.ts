// Kernel geometry as the host writes it into linear memory (engine/backends/wasm/core.ts
// writes the same fields, in this order, as consecutive i32 values). Output sizes are
// computed once, by the host, with the rules of engine/backends/backend.ts.

@unmanaged
export class ConvShape {
  batch: i32;
  inC: i32;
  inH: i32;
  inW: i32;
  outC: i32;
  kH: i32;
  kW: i32;
  strideH: i32;
  strideW: i32;
  padH: i32;
  padW: i32;
  dilationH: i32;
  dilationW: i32;
  groups: i32;
  outH: i32;
  outW: i32;
  /**
   * Forward algorithm: 0 the kernels decide (the module default, see convSetWinograd),
   * 1 im2col + GEMM, 2 Winograd F(2x2, 3x3) where the shape allows it (else im2col).
   */
  algo: i32;
}

@unmanaged
export class PoolShape {
  batch: i32;
  channels: i32;
  inH: i32;
  inW: i32;
  kH: i32;
  kW: i32;
  strideH: i32;
  strideW: i32;
  padH: i32;
  padW: i32;
  ceilMode: i32;
  countIncludePad: i32;
  outH: i32;
  outW: i32;
}
