// Dropout and the optimiser updates on one flat slice.

/**
 * The counter-based dropout generator of engine/backends/backend.ts (dropoutUniform), bit
 * for bit: lowbias32 of (index + seed * 0x9E3779B9) mod 2^32, top 24 bits. Element i is
 * dropped when u < p; kept elements are scaled by keepScale = 1 / (1 - p).
 */
export function dropoutForward(n: i32, p: f64, seed: u32, keepScale: f32, x: usize, y: usize, mask: usize): void {
  const s = seed * 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    let h: u32 = <u32>i + s;
    h ^= h >> 16;
    h *= 0x7feb352d;
    h ^= h >> 15;
    h *= 0x846ca68b;
    h ^= h >> 16;
    const u = <f64>(h >> 8) * (1.0 / 16777216.0);
    const m: f32 = u < p ? 0 : keepScale;
    const o = <usize>i << 2;
    store<f32>(mask + o, m);
    store<f32>(y + o, load<f32>(x + o) * m);
  }
}

export function mul(n: i32, a: usize, b: usize, out: usize): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.mul(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(a + o) * load<f32>(b + o));
  }
}

/**
 * PyTorch SGD: g = grad + wd * p; buf = first ? g : momentum * buf + (1 - dampening) * g;
 * step = nesterov ? g + momentum * buf : buf (g when momentum == 0, buf untouched); p -= lr * step.
 */
export function sgdUpdate(n: i32, lr: f32, momentum: f32, dampening: f32, weightDecay: f32, nesterov: bool,
                          firstStep: bool, params: usize, grads: usize, buf: usize): void {
  const keep: f32 = 1 - dampening;
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 2;
    const p = load<f32>(params + o);
    let g = load<f32>(grads + o);
    if (weightDecay != 0) g += weightDecay * p;
    let step = g;
    if (momentum != 0) {
      let b: f32;
      if (firstStep) b = g;
      else b = momentum * load<f32>(buf + o) + keep * g;
      store<f32>(buf + o, b);
      step = nesterov ? g + momentum * b : b;
    }
    store<f32>(params + o, p - lr * step);
  }
}

/**
 * torch.optim.Adam: g = grad + wd * p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= stepSize * m / (sqrt(v) / sqrtBc2 + eps), stepSize = lr / (1 - b1^t), sqrtBc2 = sqrt(1 - b2^t).
 */
export function adamUpdate(n: i32, stepSize: f32, beta1: f32, beta2: f32, eps: f32, weightDecay: f32, sqrtBc2: f32,
                           params: usize, grads: usize, m: usize, v: usize): void {
  const k1: f32 = 1 - beta1;
  const k2: f32 = 1 - beta2;
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 2;
    const p = load<f32>(params + o);
    let g = load<f32>(grads + o);
    if (weightDecay != 0) g += weightDecay * p;
    const mi = beta1 * load<f32>(m + o) + k1 * g;
    const vi = beta2 * load<f32>(v + o) + k2 * g * g;
    store<f32>(m + o, mi);
    store<f32>(v + o, vi);
    const denom = Mathf.sqrt(vi) / sqrtBc2 + eps;
    store<f32>(params + o, p - stepSize * (mi / denom));
  }
}
