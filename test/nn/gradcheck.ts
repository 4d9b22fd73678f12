// Finite-difference checks of a module's backward, shared by the nn tests.
//
// The loss is L = sum_i w_i * y_i for a fixed random w, so dL/dy = w. For random
// directions v (on the input) and u (on the flat parameters) the central difference
// (L(x + h v) - L(x - h v)) / 2h must match the analytic directional derivative <grad, v>.
// Directional checks test every coordinate at once and average float32 rounding out, which
// per-coordinate differences of a float32 model cannot.
import type { Module } from '../../engine/nn/index.js';
import { Tensor } from '../../engine/tensor/tensor.js';
import { Rng, type Tap } from '../conformance/util.js';

export interface GradCheckOptions {
  h?: number;
  tol?: number;
  directions?: number;
  /** Called before every forward (e.g. to fix a dropout mask). */
  beforeForward?: () => void;
}

/**
 * Agreement within tol relative to the larger value, plus the rounding noise of the
 * difference quotient: L evaluated in float32 errs by a few float32 epsilons times
 * sum |w_i y_i|, which the quotient divides by h. (It matters when the directional
 * derivative is tiny, e.g. through batch norm, whose output ignores shifts of its input.)
 */
function agrees(a: number, b: number, tol: number, noise: number): boolean {
  return Math.abs(a - b) <= tol * Math.max(Math.abs(a), Math.abs(b)) + noise;
}

/** Asserts the module's input and parameter gradients against central differences. */
export async function gradCheck(t: Tap, m: Module, input: Tensor, rng: Rng, what: string, o: GradCheckOptions = {}): Promise<void> {
  const h = o.h ?? 1e-2;
  const tol = o.tol ?? 1e-2;
  const directions = o.directions ?? 3;
  const outShape = m.outputShape(input.shape);
  const w = Tensor.zeros(outShape);
  for (let i = 0; i < w.size; i++) w.data[i] = rng.uniform(-1, 1);
  const loss = async (x: Tensor): Promise<number> => {
    o.beforeForward?.();
    const y = await m.forward(x);
    let s = 0;
    for (let i = 0; i < y.size; i++) s += w.data[i]! * y.data[i]!;
    return s;
  };

  m.zeroGradParameters();
  o.beforeForward?.();
  const y = await m.forward(input);
  t.same(y.shape, outShape, `${what}: output shape ${JSON.stringify(outShape)} as outputShape() says`);
  const gx = (await m.backward(input, w)).clone();
  let l1 = 0;
  for (let i = 0; i < y.size; i++) l1 += Math.abs(w.data[i]! * y.data[i]!);
  const noise = (4e-7 * l1) / h;
  const flat = m.parameters().length > 0 ? m.flatParameters() : null;
  const gp = flat ? flat.grads.slice() : new Float32Array(0);

  for (let d = 0; d < directions; d++) {
    const v = Tensor.zeros(input.shape);
    for (let i = 0; i < v.size; i++) v.data[i] = rng.uniform(-1, 1);
    const plus = input.clone();
    const minus = input.clone();
    for (let i = 0; i < v.size; i++) {
      plus.data[i] = input.data[i]! + h * v.data[i]!;
      minus.data[i] = input.data[i]! - h * v.data[i]!;
    }
    const fd = ((await loss(plus)) - (await loss(minus))) / (2 * h);
    let an = 0;
    for (let i = 0; i < v.size; i++) an += gx.data[i]! * v.data[i]!;
    t.ok(agrees(fd, an, tol, noise), `${what}: input gradient, direction ${d}: analytic ${an.toPrecision(6)} vs finite difference ${fd.toPrecision(6)}`);
  }
  if (!flat) return;
  const p0 = flat.values.slice();
  for (let d = 0; d < directions; d++) {
    const u = new Float32Array(p0.length);
    for (let i = 0; i < u.length; i++) u[i] = rng.uniform(-1, 1);
    for (let i = 0; i < u.length; i++) flat.values[i] = p0[i]! + h * u[i]!;
    const lp = await loss(input);
    for (let i = 0; i < u.length; i++) flat.values[i] = p0[i]! - h * u[i]!;
    const lm = await loss(input);
    flat.values.set(p0);
    const fd = (lp - lm) / (2 * h);
    let an = 0;
    for (let i = 0; i < u.length; i++) an += gp[i]! * u[i]!;
    t.ok(agrees(fd, an, tol, noise), `${what}: parameter gradient, direction ${d}: analytic ${an.toPrecision(6)} vs finite difference ${fd.toPrecision(6)}`);
  }
}

export function randomTensor(rng: Rng, shape: number[], lo = -1, hi = 1): Tensor {
  const x = Tensor.zeros(shape);
  for (let i = 0; i < x.size; i++) x.data[i] = rng.uniform(lo, hi);
  return x;
}
