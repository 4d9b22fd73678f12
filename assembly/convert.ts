// Wire encodings: bf16 and IEEE fp16, both rounding to nearest even.

/** bf16: the top half of the f32 bits, rounded to nearest even; NaN stays a (quiet) NaN. */
export function f32ToBf16(n: i32, src: usize, dst: usize): void {
  for (let i = 0; i < n; i++) {
    const b = load<u32>(src + (<usize>i << 2));
    let h: u32;
    if ((b & 0x7fffffff) > 0x7f800000) h = (b >> 16) | 0x40;
    else h = (b + 0x7fff + ((b >> 16) & 1)) >> 16;
    store<u16>(dst + (<usize>i << 1), <u16>h);
  }
}

export function bf16ToF32(n: i32, src: usize, dst: usize): void {
  for (let i = 0; i < n; i++) {
    store<u32>(dst + (<usize>i << 2), (<u32>load<u16>(src + (<usize>i << 1))) << 16);
  }
}

/** IEEE binary16, round to nearest even, overflow to infinity, subnormals kept, NaN stays NaN. */
export function f32ToF16(n: i32, src: usize, dst: usize): void {
  const denormMagic: u32 = ((127 - 15) + (23 - 10) + 1) << 23;
  for (let i = 0; i < n; i++) {
    let f = load<u32>(src + (<usize>i << 2));
    const sign = f & 0x80000000;
    f ^= sign;
    let o: u32;
    if (f >= (<u32>(127 + 16) << 23)) {
      // Infinity, NaN, or too large for fp16: keep NaN a quiet NaN with the top payload bits.
      o = f > 0x7f800000 ? 0x7e00 | ((f >> 13) & 0x3ff) : 0x7c00;
    } else if (f < (<u32>113 << 23)) {
      // The result is subnormal or zero: let the FPU round by adding a magic number.
      const r = reinterpret<f32>(f) + reinterpret<f32>(denormMagic);
      o = reinterpret<u32>(r) - denormMagic;
    } else {
      const mantOdd = (f >> 13) & 1;
      f += (<u32>(15 - 127) << 23) + 0xfff;
      f += mantOdd;
      o = f >> 13;
    }
    store<u16>(dst + (<usize>i << 1), <u16>(o | (sign >> 16)));
  }
}

export function f16ToF32(n: i32, src: usize, dst: usize): void {
  for (let i = 0; i < n; i++) {
    const h = <u32>load<u16>(src + (<usize>i << 1));
    const sign = (h & 0x8000) << 16;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    let r: u32;
    if (e == 0) {
      r = sign | reinterpret<u32>(<f32>m * <f32>5.9604644775390625e-8); // m * 2^-24
    } else if (e == 31) {
      r = sign | 0x7f800000 | (m << 13);
    } else {
      r = sign | ((e + 112) << 23) | (m << 13);
    }
    store<u32>(dst + (<usize>i << 2), r);
  }
}
