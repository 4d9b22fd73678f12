// The float64 oracle of the optimiser tests (reference.ts) against steps worked out by hand.
import tap from 'tap';
import { RefAdam, RefSgd } from './reference.js';

tap.test('reference SGD by hand', (t) => {
  // momentum 0.5, dampening 0.5, wd 0.1, lr 1; p = 1, grads 1 then 2.
  // step 1: d = 1 + 0.1 = 1.1; buf = 1.1; p = 1 - 1.1 = -0.1
  // step 2: d = 2 - 0.01 = 1.99; buf = 0.55 + 0.995 = 1.545; p = -0.1 - 1.545 = -1.645
  const o = new RefSgd({ momentum: 0.5, dampening: 0.5, nesterov: false, weightDecay: 0.1 });
  const p = Float64Array.of(1);
  o.step(p, [1], 1);
  t.ok(Math.abs(p[0]! + 0.1) < 1e-12, 'first step');
  o.step(p, [2], 1);
  t.ok(Math.abs(p[0]! + 1.645) < 1e-12, 'second step');
  // Nesterov, momentum 0.9, lr 0.1, p = 0, grad 1 twice:
  // step 1: buf = 1, dir = 1 + 0.9 = 1.9, p = -0.19; step 2: buf = 1.9, dir = 1 + 1.71 = 2.71, p = -0.461
  const n = new RefSgd({ momentum: 0.9, dampening: 0, nesterov: true, weightDecay: 0 });
  const q = Float64Array.of(0);
  n.step(q, [1], 0.1);
  n.step(q, [1], 0.1);
  t.ok(Math.abs(q[0]! + 0.461) < 1e-12, 'nesterov');
  t.end();
});
tap.test('reference Adam by hand', (t) => {
  // The first bias-corrected step is lr * g / (|g| + eps) = lr * sign(g) when eps = 0.
  const o = new RefAdam({ beta1: 0.9, beta2: 0.999, eps: 0, weightDecay: 0 }, 2);
  const p = Float64Array.of(1, 1);
  o.step(p, [3, -0.5], 0.01);
  t.ok(Math.abs(p[0]! - 0.99) < 1e-12 && Math.abs(p[1]! - 1.01) < 1e-12, 'first step is lr * sign(g)');
  // A constant gradient keeps mHat = g and vHat = g^2 at every step.
  o.step(p, [3, -0.5], 0.01);
  t.ok(Math.abs(p[0]! - 0.98) < 1e-12 && Math.abs(p[1]! - 1.02) < 1e-12, 'constant gradient');
  t.end();
});
