// Activations and element-wise arithmetic over n floats. Output may alias an input
// (the host passes separate regions anyway).

export function relu(n: i32, x: usize, y: usize): void {
  const z = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(x + o);
    // v where v > 0 or v is NaN, else 0 (NaN propagates; -0 becomes 0).
    const keep = v128.or(f32x4.gt(v, z), f32x4.ne(v, v));
    v128.store(y + o, v128.and(v, keep));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(x + o);
    store<f32>(y + o, v > 0 || v != v ? v : 0);
  }
}

export function reluBackward(n: i32, x: usize, gradOutput: usize, gradInput: usize): void {
  const z = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(gradInput + o, v128.and(v128.load(gradOutput + o), f32x4.gt(v128.load(x + o), z)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(gradInput + o, load<f32>(x + o) > 0 ? load<f32>(gradOutput + o) : 0);
  }
}

export function tanhForward(n: i32, x: usize, y: usize): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, Mathf.tanh(load<f32>(x + o)));
  }
}

export function tanhBackward(n: i32, y: usize, gradOutput: usize, gradInput: usize): void {
  const one = f32x4.splat(1);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(y + o);
    v128.store(gradInput + o, f32x4.mul(v128.load(gradOutput + o), f32x4.sub(one, f32x4.mul(v, v))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(y + o);
    store<f32>(gradInput + o, load<f32>(gradOutput + o) * (1 - v * v));
  }
}

export function sigmoidForward(n: i32, x: usize, y: usize): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, <f32>1 / (<f32>1 + Mathf.exp(-load<f32>(x + o))));
  }
}

export function sigmoidBackward(n: i32, y: usize, gradOutput: usize, gradInput: usize): void {
  const one = f32x4.splat(1);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(y + o);
    v128.store(gradInput + o, f32x4.mul(f32x4.mul(v128.load(gradOutput + o), v), f32x4.sub(one, v)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(y + o);
    store<f32>(gradInput + o, load<f32>(gradOutput + o) * v * (1 - v));
  }
}

export function add(n: i32, a: usize, b: usize, out: usize): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(a + o) + load<f32>(b + o));
  }
}

export function scale(n: i32, x: usize, alpha: f32, out: usize): void {
  const va = f32x4.splat(alpha);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.mul(va, v128.load(x + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, alpha * load<f32>(x + o));
  }
}

/** y += alpha * x (multiply then add, no fusion, as the native backend). */
export function axpy(n: i32, alpha: f32, x: usize, y: usize): void {
  const va = f32x4.splat(alpha);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.add(v128.load(y + o), f32x4.mul(va, v128.load(x + o))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(y + o) + alpha * load<f32>(x + o));
  }
}

/**
 * out = slices[0] + slices[1] + ... in slice order (zeros when count is 0). ptrs: count
 * u32 offsets. Works in blocks so out is not streamed through memory once per slice.
 */
export function sumSlices(n: i32, count: i32, ptrs: usize, out: usize): void {
  if (count == 0) {
    memory.fill(out, 0, <usize>n << 2);
    return;
  }
  const BLOCK = 2048;
  for (let lo = 0; lo < n; lo += BLOCK) {
    const len = min(BLOCK, n - lo);
    const ob = out + (<usize>lo << 2);
    memory.copy(ob, <usize>load<u32>(ptrs) + (<usize>lo << 2), <usize>len << 2);
    for (let s = 1; s < count; s++) {
      const src = <usize>load<u32>(ptrs + (<usize>s << 2)) + (<usize>lo << 2);
      let i = 0;
      for (; i + 4 <= len; i += 4) {
        const o = <usize>i << 2;
        v128.store(ob + o, f32x4.add(v128.load(ob + o), v128.load(src + o)));
      }
      for (; i < len; i++) {
        const o = <usize>i << 2;
        store<f32>(ob + o, load<f32>(ob + o) + load<f32>(src + o));
      }
    }
  }
}
