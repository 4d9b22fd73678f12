// The partition of the flat parameters among workers: contiguous slices tiling [0, P) in
// rank order, sizes differing by at most one (the larger ones first), for P divisible or
// not by N, P < N (empty slices) and P = 0; the owner lookup agrees with the ranges; views
// share memory; chunks tile a slice.
import t from 'tap';
import { sliceChunks, sliceOwner, sliceRange, sliceRanges, sliceView } from '../../engine/cluster/index.js';

t.test('slices tile [0, P) with sizes differing by at most one', async (t) => {
  let cases = 0;
  for (const P of [0, 1, 2, 3, 5, 7, 10, 11, 97, 100, 101, 1003, 44426, 1_000_003]) {
    for (const N of [1, 2, 3, 4, 5, 7, 8, 16]) {
      const s = sliceRanges(P, N);
      let ok = s.length === N && s[0]!.start === 0 && s[N - 1]!.end === P;
      const q = Math.floor(P / N);
      for (let i = 0; i < N && ok; i++) {
        const r = s[i]!;
        ok = r.index === i && r.length === r.end - r.start && (i === 0 || r.start === s[i - 1]!.end) &&
          r.length === q + (i < P % N ? 1 : 0) && r.length === sliceRange(P, N, i).length;
      }
      const sizes = s.map((r) => r.length);
      ok &&= Math.max(...sizes) - Math.min(...sizes) <= 1 && sizes.reduce((a, b) => a + b, 0) === P;
      if (!ok) t.fail(`P=${P} N=${N}: ${JSON.stringify(s)}`);
      cases++;
      if (P <= 1003) {
        for (let e = 0; e < P; e++) {
          const o = sliceOwner(P, N, e);
          if (!(s[o]!.start <= e && e < s[o]!.end)) {
            t.fail(`P=${P} N=${N}: sliceOwner(${e}) = ${o}, slice ${JSON.stringify(s[o])}`);
            break;
          }
        }
      }
    }
  }
  t.pass(`${cases} partitions checked`);
  t.same(sliceRanges(10, 3).map((r) => [r.start, r.end]), [[0, 4], [4, 7], [7, 10]], 'P=10, N=3: 4, 3, 3');
  t.same(sliceRanges(2, 3).map((r) => r.length), [1, 1, 0], 'P=2, N=3: the last slice is empty');
});

t.test('views and chunks', async (t) => {
  const a = new Float32Array(10).map((_, i) => i);
  const v = sliceView(a, sliceRange(10, 3, 1));
  t.same([...v], [4, 5, 6], 'slice 1 of 10 over 3');
  v[0] = -1;
  t.equal(a[4], -1, 'a view shares memory with the flat array');
  t.throws(() => sliceView(a, { start: 8, end: 11 }), RangeError, 'a range beyond the array');
  const r = sliceRange(1003, 3, 2);
  const c = sliceChunks(r, 100);
  t.equal(c.length, Math.ceil(r.length / 100), 'ceil(length / chunk) chunks');
  t.equal(c[0]!.start, r.start, 'first chunk starts at the slice');
  t.equal(c[c.length - 1]!.end, r.end, 'last chunk ends at the slice end');
  t.ok(c.every((x, i) => x.end - x.start <= 100 && (i === 0 || x.start === c[i - 1]!.end)), 'chunks are consecutive and at most 100 long');
  t.same(sliceChunks(sliceRange(2, 3, 2), 4), [], 'an empty slice has no chunks');
});

t.test('bad arguments are refused', async (t) => {
  t.throws(() => sliceRange(10, 0, 0), RangeError, 'world size 0');
  t.throws(() => sliceRange(10, 3, 3), RangeError, 'index = world size');
  t.throws(() => sliceRange(-1, 3, 0), RangeError, 'negative P');
  t.throws(() => sliceRange(1.5, 3, 0), RangeError, 'fractional P');
  t.throws(() => sliceOwner(10, 3, 10), RangeError, 'element = P');
  t.throws(() => sliceChunks({ start: 0, end: 5 }, 0), RangeError, 'chunk of 0');
});
