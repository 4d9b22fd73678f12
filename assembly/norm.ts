// LRN, softmax / log-softmax and batch normalisation. Reductions accumulate in f64.

/**
 * Cross-channel LRN (Torch SpatialCrossMapLRN, Caffe ACROSS_CHANNELS):
 * scale = k + alpha / size * sum of x^2 over the size channels centred on c (clipped);
 * y = x * scale^-beta. size is odd (checked by the host).
 */
export function lrnForward(batch: i32, channels: i32, hw: i32, size: i32, alpha: f32, beta: f32, k: f32,
                           input: usize, output: usize, scale: usize): void {
  const half = (size - 1) / 2;
  const an: f32 = alpha / <f32>size;
  const planeB = <usize>hw << 2;
  for (let n = 0; n < batch; n++) {
    const base = <usize>(n * channels) * planeB;
    const x = input + base;
    const sc = scale + base;
    const y = output + base;
    // scale = k + alpha/size * sum of squares over the (clipped) window, summed directly
    // (no running sum: it would cancel badly when large values leave the window).
    for (let c = 0; c < channels; c++) {
      const lo = max(0, c - half);
      const hi = min(channels - 1, c + half);
      const sp = sc + <usize>c * planeB;
      for (let i = 0; i < hw; i++) {
        const o = <usize>i << 2;
        let acc: f32 = 0;
        for (let j = lo; j <= hi; j++) {
          const v = load<f32>(x + <usize>j * planeB + o);
          acc += v * v;
        }
        store<f32>(sp + o, k + an * acc);
      }
    }
    for (let c = 0; c < channels; c++) {
      const off = <usize>c * planeB;
      for (let i = 0; i < hw; i++) {
        const o = off + (<usize>i << 2);
        store<f32>(y + o, load<f32>(x + o) * Mathf.pow(load<f32>(sc + o), -beta));
      }
    }
  }
}

/**
 * gradInput = gradOutput * scale^-beta
 *           - 2 * alpha * beta / size * x * sum over the window of (gradOutput * y / scale).
 * work: hw * channels floats of scratch.
 */
export function lrnBackward(batch: i32, channels: i32, hw: i32, size: i32, alpha: f32, beta: f32, k: f32,
                            input: usize, output: usize, scale: usize, gradOutput: usize, gradInput: usize,
                            work: usize): void {
  const half = (size - 1) / 2;
  const ratio: f32 = <f32>2 * alpha * beta / <f32>size;
  const planeB = <usize>hw << 2;
  for (let n = 0; n < batch; n++) {
    const base = <usize>(n * channels) * planeB;
    const x = input + base;
    const y = output + base;
    const sc = scale + base;
    const go = gradOutput + base;
    const gi = gradInput + base;
    // work[c] = go * y / scale
    for (let c = 0; c < channels; c++) {
      const off = <usize>c * planeB;
      for (let i = 0; i < hw; i++) {
        const o = off + (<usize>i << 2);
        store<f32>(work + o, load<f32>(go + o) * load<f32>(y + o) / load<f32>(sc + o));
      }
    }
    for (let c = 0; c < channels; c++) {
      const lo = max(0, c - half);
      const hi = min(channels - 1, c + half);
      const off = <usize>c * planeB;
      for (let i = 0; i < hw; i++) {
        const o = <usize>i << 2;
        let acc: f32 = 0;
        for (let j = lo; j <= hi; j++) acc += load<f32>(work + <usize>j * planeB + o);
        const q = off + o;
        store<f32>(gi + q, load<f32>(go + q) * Mathf.pow(load<f32>(sc + q), -beta) - ratio * load<f32>(x + q) * acc);
      }
    }
  }
}

export function softmaxForward(rows: i32, cols: i32, x: usize, y: usize): void {
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>r * <usize>cols << 2);
    const yr = y + (<usize>r * <usize>cols << 2);
    let mx: f32 = -Infinity;
    for (let j = 0; j < cols; j++) mx = max(mx, load<f32>(xr + (<usize>j << 2)));
    let sum: f64 = 0;
    for (let j = 0; j < cols; j++) {
      const e = Mathf.exp(load<f32>(xr + (<usize>j << 2)) - mx);
      store<f32>(yr + (<usize>j << 2), e);
      sum += <f64>e;
    }
    const inv = <f32>(1.0 / sum);
    for (let j = 0; j < cols; j++) {
      const q = yr + (<usize>j << 2);
      store<f32>(q, load<f32>(q) * inv);
    }
  }
}

/** gradInput = y * (gradOutput - sum(gradOutput * y)). */
export function softmaxBackward(rows: i32, cols: i32, y: usize, gradOutput: usize, gradInput: usize): void {
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * <usize>cols << 2;
    let dot: f64 = 0;
    for (let j = 0; j < cols; j++) {
      const o = off + (<usize>j << 2);
      dot += <f64>load<f32>(gradOutput + o) * <f64>load<f32>(y + o);
    }
    const d = <f32>dot;
    for (let j = 0; j < cols; j++) {
      const o = off + (<usize>j << 2);
      store<f32>(gradInput + o, load<f32>(y + o) * (load<f32>(gradOutput + o) - d));
    }
  }
}

export function logSoftmaxForward(rows: i32, cols: i32, x: usize, y: usize): void {
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * <usize>cols << 2;
    let mx: f32 = -Infinity;
    for (let j = 0; j < cols; j++) mx = max(mx, load<f32>(x + off + (<usize>j << 2)));
    let sum: f64 = 0;
    for (let j = 0; j < cols; j++) sum += <f64>Mathf.exp(load<f32>(x + off + (<usize>j << 2)) - mx);
    const lse = <f64>mx + Math.log(sum);
    for (let j = 0; j < cols; j++) {
      const o = off + (<usize>j << 2);
      store<f32>(y + o, <f32>(<f64>load<f32>(x + o) - lse));
    }
  }
}

/** gradInput = gradOutput - exp(y) * sum(gradOutput). */
export function logSoftmaxBackward(rows: i32, cols: i32, y: usize, gradOutput: usize, gradInput: usize): void {
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * <usize>cols << 2;
    let sum: f64 = 0;
    for (let j = 0; j < cols; j++) sum += <f64>load<f32>(gradOutput + off + (<usize>j << 2));
    const s = <f32>sum;
    for (let j = 0; j < cols; j++) {
      const o = off + (<usize>j << 2);
      store<f32>(gradInput + o, load<f32>(gradOutput + o) - Mathf.exp(load<f32>(y + o)) * s);
    }
  }
}

/**
 * Batch normalisation over [n, c, spatial]. training: batch statistics, save* written,
 * running* updated (running = (1 - m) * running + m * batch; unbiased variance).
 * Otherwise running statistics are used and save* are not touched.
 */
export function batchNormForward(n: i32, c: i32, spatial: i32, eps: f32, x: usize, y: usize, gamma: usize,
                                 beta: usize, runningMean: usize, runningVar: usize, saveMean: usize,
                                 saveInvStd: usize, training: bool, momentum: f32): void {
  const count = n * spatial;
  const strideN = <usize>c * <usize>spatial << 2;
  for (let ch = 0; ch < c; ch++) {
    const co = <usize>ch << 2;
    const plane = <usize>ch * <usize>spatial << 2;
    let mean: f32;
    let invStd: f32;
    if (training) {
      let sum: f64 = 0;
      for (let b = 0; b < n; b++) {
        const p = x + <usize>b * strideN + plane;
        for (let i = 0; i < spatial; i++) sum += <f64>load<f32>(p + (<usize>i << 2));
      }
      const meanD = sum / <f64>count;
      let sq: f64 = 0;
      for (let b = 0; b < n; b++) {
        const p = x + <usize>b * strideN + plane;
        for (let i = 0; i < spatial; i++) {
          const d = <f64>load<f32>(p + (<usize>i << 2)) - meanD;
          sq += d * d;
        }
      }
      const varB = sq / <f64>count;
      const varU = count > 1 ? sq / <f64>(count - 1) : varB;
      mean = <f32>meanD;
      invStd = <f32>(1.0 / Math.sqrt(varB + <f64>eps));
      store<f32>(saveMean + co, mean);
      store<f32>(saveInvStd + co, invStd);
      const m = <f64>momentum;
      store<f32>(runningMean + co, <f32>((1 - m) * <f64>load<f32>(runningMean + co) + m * meanD));
      store<f32>(runningVar + co, <f32>((1 - m) * <f64>load<f32>(runningVar + co) + m * varU));
    } else {
      mean = load<f32>(runningMean + co);
      invStd = <f32>(1.0 / Math.sqrt(<f64>load<f32>(runningVar + co) + <f64>eps));
    }
    const g = load<f32>(gamma + co) * invStd;
    const sh = load<f32>(beta + co) - mean * g;
    for (let b = 0; b < n; b++) {
      const off = <usize>b * strideN + plane;
      for (let i = 0; i < spatial; i++) {
        const o = off + (<usize>i << 2);
        store<f32>(y + o, load<f32>(x + o) * g + sh);
      }
    }
  }
}

/** Training-mode backward: gradInput overwritten; gradGamma, gradBeta accumulated. */
export function batchNormBackward(n: i32, c: i32, spatial: i32, x: usize, gamma: usize, saveMean: usize,
                                  saveInvStd: usize, gradOutput: usize, gradInput: usize, gradGamma: usize,
                                  gradBeta: usize): void {
  const count = n * spatial;
  const strideN = <usize>c * <usize>spatial << 2;
  for (let ch = 0; ch < c; ch++) {
    const co = <usize>ch << 2;
    const plane = <usize>ch * <usize>spatial << 2;
    const mean = <f64>load<f32>(saveMean + co);
    const invStd = <f64>load<f32>(saveInvStd + co);
    let sumG: f64 = 0;
    let sumGX: f64 = 0;
    for (let b = 0; b < n; b++) {
      const off = <usize>b * strideN + plane;
      for (let i = 0; i < spatial; i++) {
        const o = off + (<usize>i << 2);
        const g = <f64>load<f32>(gradOutput + o);
        sumG += g;
        sumGX += g * (<f64>load<f32>(x + o) - mean);
      }
    }
    const dGamma = sumGX * invStd;
    store<f32>(gradGamma + co, <f32>(<f64>load<f32>(gradGamma + co) + dGamma));
    store<f32>(gradBeta + co, <f32>(<f64>load<f32>(gradBeta + co) + sumG));
    // gradInput = gamma * invStd / N * (N * g - sum(g) - xhat * sum(g * xhat))
    const cnt = <f64>count;
    const k1 = <f64>load<f32>(gamma + co) * invStd;
    const meanG = sumG / cnt;
    const proj = dGamma * invStd / cnt; // sum(g * xhat) / N * invStd
    for (let b = 0; b < n; b++) {
      const off = <usize>b * strideN + plane;
      for (let i = 0; i < spatial; i++) {
        const o = off + (<usize>i << 2);
        const xc = <f64>load<f32>(x + o) - mean;
        store<f32>(gradInput + o, <f32>(k1 * (<f64>load<f32>(gradOutput + o) - meanG - xc * proj)));
      }
    }
  }
}
