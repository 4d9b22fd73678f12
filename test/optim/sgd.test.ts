// SGD over several steps against the float64 PyTorch reference (momentum, dampening,
// Nesterov, weight decay), on every backend, and its option rules.
import t from 'tap';
import type { Backend } from '../../engine/backends/backend.js';
import { SGD, type SgdConfig } from '../../engine/optim/index.js';
import { Rng, close, expectError, forEachBackend, randArray, toF64, type Tap } from '../conformance/util.js';
import { RefSgd } from './reference.js';

const STEPS = 6;
const lengths = [1, 7, 1000, 4099];
/** Relative to max(1, |reference|), as the conformance suite measures. */
const TOL = 1e-5;
/** The displacement p_T - p_0 relative to its own largest element. */
const TOL_DISPLACEMENT = 1e-4;

const configs: (SgdConfig & { lr: number })[] = [
  { lr: 0.1 },
  { lr: 0.05, weightDecay: 0.01 },
  { lr: 0.1, momentum: 0.9 },
  { lr: 0.1, momentum: 0.9, dampening: 0.3, weightDecay: 5e-4 },
  { lr: 0.2, momentum: 0.9, nesterov: true, weightDecay: 1e-2 },
  { lr: 0.01, momentum: 0.5, nesterov: true },
  { lr: 0.03, momentum: 1.2, dampening: 1 },
];

function describeConfig(c: SgdConfig): string {
  return Object.entries(c).map(([k, v]) => `${k}=${v}`).join(' ');
}

function trajectory(t: Tap, be: Backend, rng: Rng, cfg: SgdConfig & { lr: number }, n: number): void {
  const opt = new SGD(be, n, cfg);
  const ref = new RefSgd({ momentum: cfg.momentum ?? 0, dampening: cfg.dampening ?? 0, nesterov: cfg.nesterov ?? false,
    weightDecay: cfg.weightDecay ?? 0 });
  const params = randArray(rng, n);
  const p0 = toF64(params);
  const want = p0.slice();
  for (let s = 0; s < STEPS; s++) {
    const grads = randArray(rng, n);
    ref.step(want, grads, cfg.lr);
    opt.step(params, grads);
  }
  const name = `${describeConfig(cfg)} n=${n}, ${STEPS} steps`;
  close(t, params, want, `params ${name}`, TOL);
  close(t, params.map((v, i) => v - p0[i]!), want.map((v, i) => v - p0[i]!), `displacement ${name}`, TOL_DISPLACEMENT, 0);
  const buf = opt.state().buffers.momentum;
  if (ref.buf) {
    t.ok(buf, `momentum buffer kept ${name}`);
    if (buf) close(t, buf, ref.buf, `momentum buffer ${name}`, TOL);
  } else {
    t.equal(buf, undefined, `no momentum buffer without momentum ${name}`);
  }
  t.equal(opt.iteration, STEPS, 'iteration counts the steps');
}

forEachBackend(t, (t, be) => {
  const rng = new Rng(101);
  t.test('trajectories match float64 PyTorch SGD', (t) => {
    for (const cfg of configs) for (const n of lengths) trajectory(t, be, rng, cfg, n);
    t.end();
  });

  t.test('the first step sets the momentum buffer to the gradient (dampening not applied)', (t) => {
    const opt = new SGD(be, 2, { lr: 0.5, momentum: 0.9, dampening: 0.7, weightDecay: 0.1 });
    t.same(Object.keys(opt.state().buffers), [], 'no momentum buffer before the first step');
    const p = Float32Array.of(1, -2);
    opt.step(p, Float32Array.of(0.5, 0.25));
    // With weight decay, d = g + 0.1 p: buffer = d, and p moves by lr * d.
    const d = [0.5 + 0.1 * 1, 0.25 + 0.1 * -2];
    close(t, opt.state().buffers.momentum!, d, 'buffer = d', 1e-6);
    close(t, p, [1 - 0.5 * d[0]!, -2 - 0.5 * d[1]!], 'params', 1e-6);
    t.end();
  });
});

t.test('defaults are those of torch.optim.SGD', (t) => {
  const opt = new SGD({ sgdUpdate: () => {} } as unknown as Backend, 3);
  t.same(opt.state().hyper, { lr: 1e-3, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0 });
  t.equal(opt.learningRate(), 1e-3);
  t.equal(opt.name, 'sgd');
  t.equal(opt.sliceLength, 3);
  t.end();
});

t.test('option rules', async (t) => {
  const be = { sgdUpdate: () => {} } as unknown as Backend;
  await expectError(t, () => new SGD(be, 4, { lr: 0.1, nesterov: true }), RangeError, ['nesterov'],
    'nesterov without momentum');
  await expectError(t, () => new SGD(be, 4, { lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true }), RangeError,
    ['nesterov'], 'nesterov with dampening');
  await expectError(t, () => new SGD(be, 4, { lr: -0.1 }), RangeError, ['lr'], 'negative lr');
  await expectError(t, () => new SGD(be, 4, { lr: NaN }), TypeError, ['lr'], 'NaN lr');
  await expectError(t, () => new SGD(be, 4, { momentum: -1 }), RangeError, ['momentum'], 'negative momentum');
  await expectError(t, () => new SGD(be, 4, { dampening: 1.5 }), RangeError, ['dampening'], 'dampening > 1');
  await expectError(t, () => new SGD(be, 4, { weightDecay: -1e-4 }), RangeError, ['weightDecay'], 'negative weight decay');
  await expectError(t, () => new SGD(be, 4, { nesterov: 1 as unknown as boolean }), TypeError, ['nesterov'],
    'nesterov not a boolean');
  await expectError(t, () => new SGD(be, 4, { momentun: 0.9 } as SgdConfig), TypeError, ['momentun'], 'misspelt option');
  await expectError(t, () => new SGD(be, 4, { beta1: 0.9 } as SgdConfig), TypeError, ['beta1'], "Adam's option");
  await expectError(t, () => new SGD(be, -1), RangeError, ['sliceLength'], 'negative slice length');
  await expectError(t, () => new SGD(be, 2.5), RangeError, ['sliceLength'], 'fractional slice length');
  await expectError(t, () => new SGD({} as Backend, 4), TypeError, ['backend'], 'not a backend');
});
