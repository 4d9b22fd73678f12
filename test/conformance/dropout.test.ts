// Inverted dropout with backend.ts's counter-based generator: the mask is element for element
// the one dropoutUniform gives (so every backend and every peer agrees on it), including
// seeds above 2^31 and lengths long enough to be split across threads; y = x * mask;
// backward = gradOutput * mask; in-place forms (y === x, gradInput === gradOutput).
import t from 'tap';
import { dropoutUniform } from '../../engine/backends/backend.js';
import * as ref from './reference.js';
import { Rng, close, filled, forEachBackend, randArray, sameBits } from './util.js';

forEachBackend(t, async (t, be) => {
  const rng = new Rng(8);

  t.test('mask, forward and backward', (t) => {
    const seeds = [0, 1, 42, 0x7fffffff, 0x80000000, 0xdeadbeef, 0xffffffff];
    const ps = [0, 0.1, 0.5, 0.9];
    const lengths = [1, 33, 10007, 300001];
    let k = 0;
    for (const n of lengths) {
      for (const p of ps) {
        const seed = seeds[k++ % seeds.length]!;
        const name = `n=${n} p=${p} seed=${seed}`;
        const x = randArray(rng, n);
        const y = filled(n, NaN);
        const mask = filled(n, NaN);
        be.dropoutForward(p, seed, x, y, mask);
        const want = ref.dropoutMask(p, seed, n);
        let badZero = -1;
        for (let i = 0; i < n && badZero < 0; i++) if ((mask[i] === 0) !== (want[i] === 0)) badZero = i;
        t.ok(badZero < 0, `mask drops exactly the elements dropoutUniform selects, ${name}` +
          (badZero >= 0 ? ` (first difference at [${badZero}]: mask ${mask[badZero]}, uniform ${dropoutUniform(seed, badZero)})` : ''));
        close(t, mask, want, `mask values 0 or 1/(1-p), ${name}`, 1e-6);
        close(t, y, Float64Array.from(x, (v, i) => v * want[i]!), `y = x * mask, ${name}`, 1e-6);
        const g = randArray(rng, n);
        const gi = filled(n, NaN);
        be.dropoutBackward(mask, g, gi);
        close(t, gi, Float64Array.from(g, (v, i) => v * mask[i]!), `backward = gradOutput * mask, ${name}`, 1e-6);

        // in place
        const xa = x.slice();
        const ma = new Float32Array(n);
        be.dropoutForward(p, seed, xa, xa, ma);
        sameBits(t, ma, mask, `same seed, same mask ${name}`);
        sameBits(t, xa, y, `forward in place (y === x) ${name}`);
        const ga = g.slice();
        be.dropoutBackward(mask, ga, ga);
        sameBits(t, ga, gi, `backward in place (gradInput === gradOutput) ${name}`);
      }
    }
    t.end();
  });

  t.test('the drop rate is p and seeds give different masks', (t) => {
    const n = 200000;
    const x = filled(n, 1);
    const m1 = new Float32Array(n);
    const m2 = new Float32Array(n);
    be.dropoutForward(0.3, 7, x, new Float32Array(n), m1);
    be.dropoutForward(0.3, 8, x, new Float32Array(n), m2);
    const rate = m1.reduce((a, v) => a + (v === 0 ? 1 : 0), 0) / n;
    t.ok(Math.abs(rate - 0.3) < 0.01, `drop rate ${rate.toFixed(4)} ~ 0.3`);
    let same = 0;
    for (let i = 0; i < n; i++) if (m1[i] === m2[i]) same++;
    t.ok(same < 0.7 * n, `seeds 7 and 8 give different masks (${same} of ${n} agree)`);
    t.end();
  });
});
