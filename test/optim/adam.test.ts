// Adam over several steps against the float64 PyTorch reference (bias correction, L2
// weight decay), on every backend, and its option rules.
import t from 'tap';
import type { Backend } from '../../engine/backends/backend.js';
import { Adam, type AdamConfig } from '../../engine/optim/index.js';
import { Rng, close, expectError, forEachBackend, randArray, toF64, type Tap } from '../conformance/util.js';
import { RefAdam } from './reference.js';

const STEPS = 6;
const lengths = [1, 7, 1000, 4099];
const TOL = 1e-5;
const TOL_DISPLACEMENT = 1e-4;

const configs: (AdamConfig & { lr: number })[] = [
  { lr: 0.01 },
  { lr: 0.01, weightDecay: 0.01 },
  { lr: 0.05, beta1: 0.8, beta2: 0.99, eps: 1e-3 },
  { lr: 0.1, beta1: 0.5, beta2: 0.9, eps: 1e-6, weightDecay: 1e-3 },
  { lr: 0.002, beta1: 0, beta2: 0.999 },
];

function trajectory(t: Tap, be: Backend, rng: Rng, cfg: AdamConfig & { lr: number }, n: number): void {
  const opt = new Adam(be, n, cfg);
  const ref = new RefAdam({ beta1: cfg.beta1 ?? 0.9, beta2: cfg.beta2 ?? 0.999, eps: cfg.eps ?? 1e-8,
    weightDecay: cfg.weightDecay ?? 0 }, n);
  const params = randArray(rng, n);
  const p0 = toF64(params);
  const want = p0.slice();
  for (let s = 0; s < STEPS; s++) {
    const grads = randArray(rng, n, -2, 2);
    ref.step(want, grads, cfg.lr);
    opt.step(params, grads);
  }
  const name = `${Object.entries(cfg).map(([k, v]) => `${k}=${v}`).join(' ')} n=${n}, ${STEPS} steps`;
  close(t, params, want, `params ${name}`, TOL);
  close(t, params.map((v, i) => v - p0[i]!), want.map((v, i) => v - p0[i]!), `displacement ${name}`, TOL_DISPLACEMENT, 0);
  const s = opt.state();
  close(t, s.buffers.m!, ref.m, `m ${name}`, TOL);
  close(t, s.buffers.v!, ref.v, `v ${name}`, TOL);
  t.equal(s.iteration, STEPS, 'iteration counts the steps (the bias correction uses iteration + 1)');
}

forEachBackend(t, (t, be) => {
  const rng = new Rng(202);
  t.test('trajectories match float64 PyTorch Adam', (t) => {
    for (const cfg of configs) for (const n of lengths) trajectory(t, be, rng, cfg, n);
    t.end();
  });
});

t.test('defaults are those of torch.optim.Adam', (t) => {
  const opt = new Adam({ adamUpdate: () => {} } as unknown as Backend, 3);
  t.same(opt.state().hyper, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
  t.same(Object.keys(opt.state().buffers).sort(), ['m', 'v'], 'm and v exist from the start');
  t.equal(opt.name, 'adam');
  t.end();
});

t.test('option rules', async (t) => {
  const be = { adamUpdate: () => {} } as unknown as Backend;
  await expectError(t, () => new Adam(be, 4, { beta1: 1 }), RangeError, ['beta1'], 'beta1 = 1');
  await expectError(t, () => new Adam(be, 4, { beta2: -0.1 }), RangeError, ['beta2'], 'negative beta2');
  await expectError(t, () => new Adam(be, 4, { eps: -1 }), RangeError, ['eps'], 'negative eps');
  await expectError(t, () => new Adam(be, 4, { lr: Infinity }), TypeError, ['lr'], 'infinite lr');
  await expectError(t, () => new Adam(be, 4, { momentum: 0.9 } as AdamConfig), TypeError, ['momentum'], "SGD's option");
  await expectError(t, () => new Adam(be, 4, { betas: [0.9, 0.99] } as AdamConfig), TypeError, ['betas'],
    "PyTorch's spelling");
  await expectError(t, () => new Adam({ sgdUpdate: () => {} } as unknown as Backend, 4), TypeError, ['backend', 'adamUpdate'],
    'backend without adamUpdate');
});
