// add, scale, axpy and sumSlices against the float64 reference; add is exactly the float32
// sum; sumSlices adds in array order (bit-for-bit the sequential float32 sum, so the result
// is reproducible); the allowed aliasing (out === a for add, out === x for scale) matches
// separate buffers.
import t from 'tap';
import * as ref from './reference.js';
import { Rng, close, filled, forEachBackend, randArray, sameBits } from './util.js';

const lengths = [1, 3, 7, 8, 17, 33, 1000, 65537, 300001];

forEachBackend(t, async (t, be) => {
  const rng = new Rng(9);

  t.test('add', (t) => {
    for (const n of lengths) {
      const a = randArray(rng, n, -100, 100);
      const b = randArray(rng, n);
      const out = filled(n, NaN);
      be.add(a, b, out);
      sameBits(t, out, Float32Array.from(a, (v, i) => v + b[i]!), `add n=${n} is the float32 sum`);
      close(t, out, ref.add(a, b), `add n=${n}`);
      const a2 = a.slice();
      be.add(a2, b, a2);
      sameBits(t, a2, out, `add in place (out === a) n=${n}`);
    }
    t.end();
  });

  t.test('scale', (t) => {
    for (const n of lengths) {
      const x = randArray(rng, n, -10, 10);
      const alpha = rng.pick([0, -1, 0.5, 3.7, 1e-3]);
      const out = filled(n, NaN);
      be.scale(x, alpha, out);
      close(t, out, ref.scale(x, alpha), `scale n=${n} alpha=${alpha}`);
      const x2 = x.slice();
      be.scale(x2, alpha, x2);
      sameBits(t, x2, out, `scale in place (out === x) n=${n}`);
    }
    t.end();
  });

  t.test('axpy', (t) => {
    for (const n of lengths) {
      const x = randArray(rng, n);
      const y = randArray(rng, n, -5, 5);
      const alpha = rng.pick([0, 1, -0.25, 2.5]);
      const want = ref.axpy(alpha, x, y);
      be.axpy(alpha, x, y);
      close(t, y, want, `axpy n=${n} alpha=${alpha}`);
    }
    t.end();
  });

  t.test('empty arrays and an empty list of slices', (t) => {
    const e = new Float32Array(0);
    be.add(e, e, new Float32Array(0));
    be.scale(e, 2, new Float32Array(0));
    be.axpy(2, e, new Float32Array(0));
    t.pass('length-0 add/scale/axpy are no-ops');
    const out = Float32Array.from([7, NaN, -1]);
    be.sumSlices([], out);
    t.same([...out], [0, 0, 0], 'sumSlices([]) writes the empty sum, zeros');
    t.end();
  });

  t.test('sumSlices', (t) => {
    for (const n of [1, 7, 33, 1000, 65537]) {
      for (const count of [1, 2, 3, 8]) {
        // magnitudes that make the order of the additions visible in float32
        const slices = Array.from({ length: count }, (_, k) => randArray(rng, n, -(10 ** (k % 4)), 10 ** (k % 4)));
        const out = filled(n, NaN);
        be.sumSlices(slices, out);
        close(t, out, ref.sumSlices(slices, n), `sumSlices n=${n} slices=${count}`);
        const seq = Float32Array.from(slices[0]!);
        for (let k = 1; k < count; k++) for (let i = 0; i < n; i++) seq[i] = seq[i]! + slices[k]![i]!;
        sameBits(t, out, seq, `sumSlices n=${n} slices=${count} adds in array order`);
      }
    }
    t.end();
  });
});
