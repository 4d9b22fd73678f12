// What step() refuses (non-finite gradients, wrong lengths, wrong types) and how: a clear
// error and nothing changed. Also the factory's option checks, empty slices, caller-owned
// state storage (alloc/free) and dispose().
import t from 'tap';
import type { Backend } from '../../engine/backends/backend.js';
import {
  NonFiniteGradientError, createOptimizer, type OptimizerName, type SgdConfig,
} from '../../engine/optim/index.js';
import { Rng, caught, expectError, forEachBackend, randArray, sameBits, type Tap } from '../conformance/util.js';

const N = 100;
const names: OptimizerName[] = ['sgd', 'adam'];
const options = { sgd: { lr: 0.1, momentum: 0.9 }, adam: { lr: 0.01 } };

async function rejectsNonFinite(t: Tap, be: Backend, rng: Rng, name: OptimizerName, bad: number, at: number): Promise<void> {
  const opt = createOptimizer(name, be, N, options[name]);
  const twin = createOptimizer(name, be, N, options[name]);
  const p = randArray(rng, N);
  const q = p.slice();
  const g0 = randArray(rng, N);
  opt.step(p, g0);
  twin.step(q, g0);
  const pBefore = p.slice();
  const sBefore = opt.state();
  const g = randArray(rng, N);
  g[at] = bad;
  g[at + 1] = NaN; // only the first bad index is reported
  const err = await caught(() => opt.step(p, g));
  t.ok(err instanceof NonFiniteGradientError, `${name}: ${bad} rejected with NonFiniteGradientError`);
  if (err instanceof NonFiniteGradientError) {
    t.equal(err.index, at, 'names the first bad index');
    t.match(err.message, new RegExp(`grads\\[${at}\\] is ${bad}`), `message: ${err.message}`);
  }
  sameBits(t, p, pBefore, `${name}: params unchanged`);
  t.equal(opt.iteration, 1, `${name}: iteration unchanged`);
  for (const [k, b] of Object.entries(sBefore.buffers)) sameBits(t, opt.state().buffers[k]!, b, `${name}: buffer '${k}' unchanged`);
  // Skipping the bad gradient leaves the optimiser exactly as if it had never seen it.
  const g2 = randArray(rng, N);
  opt.step(p, g2);
  twin.step(q, g2);
  sameBits(t, p, q, `${name}: continues as if the bad step never happened`);
}

forEachBackend(t, (t, be) => {
  const rng = new Rng(606);
  t.test('non-finite gradients are rejected and change nothing', async (t) => {
    for (const name of names) {
      await rejectsNonFinite(t, be, rng, name, NaN, 17);
      await rejectsNonFinite(t, be, rng, name, Infinity, 0);
      await rejectsNonFinite(t, be, rng, name, -Infinity, N - 2);
    }
  });

  t.test('wrong lengths and types are rejected', async (t) => {
    for (const name of names) {
      const opt = createOptimizer(name, be, N, options[name]);
      const p = randArray(rng, N);
      const before = p.slice();
      for (const [pl, gl] of [[N + 1, N], [N, N - 1], [0, 0]] as const) {
        const err = await caught(() => opt.step(pl === N ? p : new Float32Array(pl), new Float32Array(gl)));
        t.ok(err instanceof RangeError, `${name}: params ${pl} / grads ${gl} is a RangeError`);
        const msg = (err as Error)?.message ?? '';
        t.ok(msg.includes(`params has length ${pl}`) && msg.includes(`grads has length ${gl}`) && msg.includes(String(N)),
          `names both lengths and the slice length: ${msg}`);
      }
      await expectError(t, () => opt.step(Array.from(p) as unknown as Float32Array, new Float32Array(N)), TypeError, ['params'],
        `${name}: params not a Float32Array`);
      await expectError(t, () => opt.step(p, new Float64Array(N) as unknown as Float32Array), TypeError, ['grads'],
        `${name}: grads not a Float32Array`);
      sameBits(t, p, before, `${name}: params unchanged`);
      t.equal(opt.iteration, 0, `${name}: no step counted`);
    }
  });

  t.test('an empty slice (more workers than parameters) steps without touching anything', (t) => {
    for (const name of names) {
      const opt = createOptimizer(name, be, 0, options[name]);
      opt.step(new Float32Array(0), new Float32Array(0));
      t.equal(opt.iteration, 1, `${name}: iteration advances with its peers`);
    }
    t.end();
  });

  t.test('state can live in the backend\'s own arrays (alloc/free)', (t) => {
    for (const name of names) {
      const allocated: Float32Array[] = [];
      const freed: Float32Array[] = [];
      const opt = createOptimizer(name, be, N, {
        ...options[name],
        alloc: (n) => {
          const a = be.allocFloat32(n);
          a.fill(NaN); // the optimiser must zero what it is given
          allocated.push(a);
          return a;
        },
        free: (a) => {
          freed.push(a);
          be.free(a);
        },
      });
      const plain = createOptimizer(name, be, N, options[name]);
      const p = randArray(rng, N);
      const q = p.slice();
      for (let i = 0; i < 3; i++) {
        const g = randArray(rng, N);
        opt.step(p, g);
        plain.step(q, g);
      }
      sameBits(t, p, q, `${name}: same result as plain arrays`);
      t.equal(allocated.length, name === 'adam' ? 2 : 1, `${name}: state allocated through alloc`);
      opt.dispose();
      t.same(freed, allocated, `${name}: dispose() frees every array it allocated`);
      t.throws(() => opt.step(p, randArray(rng, N)), /disposed/, `${name}: unusable after dispose()`);
    }
    t.end();
  });
});

t.test('factory and construction checks', async (t) => {
  const be = { sgdUpdate: () => {}, adamUpdate: () => {} } as unknown as Backend;
  await expectError(t, () => createOptimizer('rmsprop' as OptimizerName, be, 4), TypeError, ['rmsprop'], 'unknown optimiser');
  await expectError(t, () => createOptimizer('sgd', be, 4, { lr: 0.1, momentun: 0.9 } as SgdConfig), TypeError, ['momentun'],
    'unknown option name');
  await expectError(t, () => createOptimizer('adam', be, 4, { lr: 0.1, nesterov: true } as SgdConfig), TypeError, ['nesterov'],
    'an SGD option given to Adam');
  await expectError(t, () => createOptimizer('sgd', be, 4, { lr: '0.1' as unknown as number }), TypeError, ['lr'],
    'lr as a string');
  await expectError(t, () => createOptimizer('sgd', be, 4, 'fast' as unknown as SgdConfig), TypeError, ['options'],
    'options not an object');
  await expectError(t, () => createOptimizer('adam', be, 4, { alloc: () => new Float32Array(3) }), TypeError, ['alloc'],
    'alloc returning the wrong length');
  await expectError(t, () => createOptimizer('adam', be, 4, { alloc: 5 as unknown as () => Float32Array }), TypeError, ['alloc'],
    'alloc not a function');
  t.ok(createOptimizer('sgd', be, 4) instanceof Object, 'options may be omitted');
});
