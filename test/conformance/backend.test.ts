// Backend-level behaviour: the registry (unknown names, unavailable backends with their
// reason), info(), and the thread count (setThreads(1) and (2) give the same sgemm and
// convolution results; invalid counts are rejected).
import t from 'tap';
import type { Conv2dShape } from '../../engine/backends/backend.js';
import { availableBackends, backendNames, loadBackend, probeBackends } from '../../engine/backends/registry.js';
import * as ref from './reference.js';
import { Rng, close, expectError, forEachBackend, randArray, within } from './util.js';

t.test('registry', async (t) => {
  await expectError(t, () => loadBackend('nope'), Error, ['nope'], "loadBackend('nope') throws naming the name");
  const { available, unavailable } = probeBackends();
  t.same([...available.map((b) => b.name), ...unavailable.map((u) => u.name)].sort(), [...backendNames].sort(),
    'probeBackends accounts for every backend name');
  for (const u of unavailable) {
    t.ok(u.reason.length > 0, `${u.name} is unavailable with a reason: ${u.reason}`);
    await expectError(t, () => loadBackend(u.name), Error, [u.name], `loadBackend('${u.name}') throws naming it`);
  }
  for (const b of available) t.equal(loadBackend(b.name), b, `loadBackend('${b.name}') returns the loaded backend`);
  t.same(availableBackends().map((b) => b.name), available.map((b) => b.name), 'availableBackends() lists the available ones');
  t.end();
});

forEachBackend(t, async (t, be) => {
  const rng = new Rng(13);

  t.test('info()', (t) => {
    const info = be.info();
    t.equal(info.name, be.name, 'info().name is the backend name');
    t.equal(typeof info.blas, 'string', 'blas is a string');
    t.ok(info.blas.trim().length > 0, `blas is non-empty: "${info.blas}"`);
    t.ok(Number.isInteger(info.threads) && info.threads >= 1, `threads >= 1: ${info.threads}`);
    t.ok(Array.isArray(info.cpuFeatures) && info.cpuFeatures.every((f) => typeof f === 'string'), `cpuFeatures: ${info.cpuFeatures.join(' ')}`);
    t.ok(info.details !== null && typeof info.details === 'object', 'details is an object');
    t.equal(info.threads, be.getThreads(), 'info().threads == getThreads()');
    t.end();
  });

  t.test('allocFloat32 / free', (t) => {
    // Arrays from allocFloat32 are what models keep their tensors in: kernels must read and
    // write them in place, and each array must be independent of the others.
    const n = 37;
    const a = be.allocFloat32(n);
    const b = be.allocFloat32(n);
    const c = be.allocFloat32(n);
    t.equal(a.length, n, 'length as asked');
    for (let i = 0; i < n; i++) { a[i] = i; b[i] = 2 * i + 1; c[i] = -7; }
    be.add(a, b, c);
    let ok = true;
    for (let i = 0; i < n; i++) ok &&= c[i] === 3 * i + 1 && a[i] === i && b[i] === 2 * i + 1;
    t.ok(ok, 'add writes its output array in place and leaves the inputs alone');
    be.free(a);
    be.free(b);
    be.free(c);
    t.throws(() => be.free(a), /not an array from allocFloat32/, 'a second free is refused');
    t.throws(() => be.free(new Float32Array(4)), /not an array from allocFloat32/, 'an array from elsewhere is refused');
    t.throws(() => be.allocFloat32(-1), /length/, 'a negative length is refused, naming the length');
    t.end();
  });

  t.test('threads', async (t) => {
    const original = be.getThreads();
    try {
      for (const bad of [0, -1, 1.5]) {
        await expectError(t, () => be.setThreads(bad), RangeError, ['threads'], `setThreads(${bad})`);
        t.equal(be.getThreads(), original, `setThreads(${bad}) leaves the count alone`);
      }

      const m = 150, n = 130, k = 400;
      const a = randArray(rng, m * k);
      const b = randArray(rng, k * n);
      const want = ref.gemm(false, false, m, n, k, 1, a, k, b, n, 0, new Float64Array(m * n), n);
      const s: Conv2dShape = { batch: 3, inC: 32, inH: 26, inW: 26, outC: 24, kH: 3, kW: 3, strideH: 1, strideW: 1, padH: 1, padW: 1,
        dilationH: 1, dilationW: 1, groups: 1 };
      const z = ref.convSizes(s);
      const x = randArray(rng, z.input);
      const w = randArray(rng, z.weight);
      const gy = randArray(rng, z.output);
      const yWant = ref.conv2dForward(s, x, w, null);
      const gxWant = ref.conv2dBackwardData(s, gy, w);
      const gwWant = ref.conv2dBackwardFilter(s, x, gy);
      const results: Float32Array[] = [];
      const convs: Float32Array[][] = [];
      for (const threads of [1, 2]) {
        be.setThreads(threads);
        t.equal(be.getThreads(), threads, `getThreads() after setThreads(${threads})`);
        t.equal(be.info().threads, threads, `info().threads after setThreads(${threads})`);
        const c = new Float32Array(m * n);
        be.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n);
        close(t, c, want, `sgemm ${m}x${n}x${k} on ${threads} thread(s)`);
        const ca = new Float32Array(m * n);
        await within(be.sgemmAsync(false, false, m, n, k, 1, a, k, b, n, 0, ca, n), 'sgemmAsync');
        close(t, ca, want, `sgemmAsync ${m}x${n}x${k} on ${threads} thread(s)`);
        results.push(c);
        const y = new Float32Array(z.output);
        be.conv2dForward(s, x, w, null, y);
        close(t, y, yWant, `conv2dForward on ${threads} thread(s)`);
        const gx = new Float32Array(z.input);
        be.conv2dBackwardData(s, gy, w, gx);
        close(t, gx, gxWant, `conv2dBackwardData on ${threads} thread(s)`);
        const gw = new Float32Array(z.weight);
        const gb = new Float32Array(s.outC);
        be.conv2dBackwardFilter(s, x, gy, gw, gb);
        close(t, gw, gwWant.gradWeight, `conv2dBackwardFilter (weight) on ${threads} thread(s)`);
        close(t, gb, gwWant.gradBias, `conv2dBackwardFilter (bias) on ${threads} thread(s)`);
        convs.push([y, gx, gw, gb]);
      }
      close(t, results[1]!, results[0]!, 'sgemm: 2 threads agree with 1 thread', 1e-5);
      const what = ['conv2dForward', 'conv2dBackwardData', 'conv2dBackwardFilter (weight)', 'conv2dBackwardFilter (bias)'];
      for (let i = 0; i < what.length; i++) close(t, convs[1]![i]!, convs[0]![i]!, `${what[i]}: 2 threads agree with 1 thread`, 1e-5);
    } finally {
      be.setThreads(original);
    }
    t.equal(be.getThreads(), original, 'thread count restored');
    t.end();
  });
});
