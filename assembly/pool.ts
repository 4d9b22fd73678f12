// Max and average pooling, NCHW (shape: PoolShape, output size from the host with Torch's
// ceil-mode rule). Windows are clipped to the input; a window never lies entirely in the
// padding (the host's output-size rule and pad <= k/2 guarantee it).
import { PoolShape } from './shapes';

/** indices: per output cell, h * inW + w of the first maximum of its window (NaN wins, as in PyTorch). */
export function maxPool2dForward(shape: usize, input: usize, output: usize, indices: usize): void {
  const s = changetype<PoolShape>(shape);
  const H = s.inH;
  const W = s.inW;
  const planes = s.batch * s.channels;
  let out = output;
  let idx = indices;
  for (let pl = 0; pl < planes; pl++) {
    const plane = input + (<usize>pl * <usize>(H * W) << 2);
    for (let oy = 0; oy < s.outH; oy++) {
      const h0 = oy * s.strideH - s.padH;
      const ha = max(h0, 0);
      const hb = min(h0 + s.kH, H);
      for (let ox = 0; ox < s.outW; ox++) {
        const w0 = ox * s.strideW - s.padW;
        const wa = max(w0, 0);
        const wb = min(w0 + s.kW, W);
        let best: f32 = -Infinity;
        let bi = ha * W + wa;
        for (let h = ha; h < hb; h++) {
          const row = plane + (<usize>(h * W) << 2);
          for (let w = wa; w < wb; w++) {
            const v = load<f32>(row + (<usize>w << 2));
            if (v > best || (v != v && best == best)) {
              best = v;
              bi = h * W + w;
            }
          }
        }
        store<f32>(out, best);
        store<i32>(idx, bi);
        out += 4;
        idx += 4;
      }
    }
  }
}

/**
 * gradInput (overwritten) gets each gradOutput cell added at its recorded index. Returns
 * -1, or the position of the first index outside its plane (then gradInput is garbage and
 * the host reports the error without copying it out).
 */
export function maxPool2dBackward(shape: usize, gradOutput: usize, indices: usize, gradInput: usize): i32 {
  const s = changetype<PoolShape>(shape);
  const HW = s.inH * s.inW;
  const planes = s.batch * s.channels;
  const ohw = s.outH * s.outW;
  memory.fill(gradInput, 0, <usize>planes * <usize>HW << 2);
  for (let pl = 0; pl < planes; pl++) {
    const gi = gradInput + (<usize>pl * <usize>HW << 2);
    const go = gradOutput + (<usize>pl * <usize>ohw << 2);
    const ix = indices + (<usize>pl * <usize>ohw << 2);
    for (let i = 0; i < ohw; i++) {
      const j = load<i32>(ix + (<usize>i << 2));
      if (<u32>j >= <u32>HW) return pl * ohw + i;
      const q = gi + (<usize>j << 2);
      store<f32>(q, load<f32>(q) + load<f32>(go + (<usize>i << 2)));
    }
  }
  return -1;
}

/** The divisor of an average-pooling window (count_include_pad or real cells only). */
// @ts-ignore: decorator
@inline function divisor(s: PoolShape, h0: i32, w0: i32): f32 {
  if (s.countIncludePad) {
    const hb = min(h0 + s.kH, s.inH + s.padH);
    const wb = min(w0 + s.kW, s.inW + s.padW);
    return <f32>((hb - h0) * (wb - w0));
  }
  const ha = max(h0, 0);
  const wa = max(w0, 0);
  const hb = min(h0 + s.kH, s.inH);
  const wb = min(w0 + s.kW, s.inW);
  return <f32>((hb - ha) * (wb - wa));
}

export function avgPool2dForward(shape: usize, input: usize, output: usize): void {
  const s = changetype<PoolShape>(shape);
  const H = s.inH;
  const W = s.inW;
  const planes = s.batch * s.channels;
  let out = output;
  for (let pl = 0; pl < planes; pl++) {
    const plane = input + (<usize>pl * <usize>(H * W) << 2);
    for (let oy = 0; oy < s.outH; oy++) {
      const h0 = oy * s.strideH - s.padH;
      const ha = max(h0, 0);
      const hb = min(h0 + s.kH, H);
      for (let ox = 0; ox < s.outW; ox++) {
        const w0 = ox * s.strideW - s.padW;
        const wa = max(w0, 0);
        const wb = min(w0 + s.kW, W);
        let sum: f32 = 0;
        for (let h = ha; h < hb; h++) {
          const row = plane + (<usize>(h * W) << 2);
          for (let w = wa; w < wb; w++) sum += load<f32>(row + (<usize>w << 2));
        }
        store<f32>(out, sum / divisor(s, h0, w0));
        out += 4;
      }
    }
  }
}

export function avgPool2dBackward(shape: usize, gradOutput: usize, gradInput: usize): void {
  const s = changetype<PoolShape>(shape);
  const H = s.inH;
  const W = s.inW;
  const planes = s.batch * s.channels;
  memory.fill(gradInput, 0, <usize>planes * <usize>(H * W) << 2);
  let go = gradOutput;
  for (let pl = 0; pl < planes; pl++) {
    const plane = gradInput + (<usize>pl * <usize>(H * W) << 2);
    for (let oy = 0; oy < s.outH; oy++) {
      const h0 = oy * s.strideH - s.padH;
      const ha = max(h0, 0);
      const hb = min(h0 + s.kH, H);
      for (let ox = 0; ox < s.outW; ox++) {
        const w0 = ox * s.strideW - s.padW;
        const wa = max(w0, 0);
        const wb = min(w0 + s.kW, W);
        const g = load<f32>(go) / divisor(s, h0, w0);
        for (let h = ha; h < hb; h++) {
          const row = plane + (<usize>(h * W) << 2);
          for (let w = wa; w < wb; w++) {
            const q = row + (<usize>w << 2);
            store<f32>(q, load<f32>(q) + g);
          }
        }
        go += 4;
      }
    }
  }
}
