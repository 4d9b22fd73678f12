// The parameter manager on synthetic gradients (no model), over the fake in-memory
// transport: after K iterations every worker holds exactly (bit for bit) the weights of one
// process that sums the same N gradients in rank order, scales by 1/B and runs one SGD
// with momentum over all P values; for P divisible or not by N, P < N (empty slices) and
// N = 1; with gradients reported in pieces (chunks leave early), in any order, and with
// frames delivered in shuffled order. bf16 wires: owners keep float32 master weights and
// everyone else holds their rounding. A NaN/Inf found by one owner, or a veto, stops the
// iteration on every worker with the same error and no change anywhere; the next
// iteration then runs normally. Mismatched wire formats stop the iteration instead of
// hanging.
import t from 'tap';
import type { Backend } from '../../engine/backends/backend.js';
import { IterationAbortedError, ParameterManager, roundTrip, sliceRanges } from '../../engine/cluster/index.js';
import { createInProcessMesh } from '../../transport/inproc/index.js';
import { FrameKind, type Transport } from '../../transport/transport.js';
import { sameBits, within, type Tap } from '../conformance/util.js';
import { createFakeMesh, type FakeTransport } from './fake-transport.js';
import { initialWeights, localGradient, reference, runHarness, sgd, testBackends, type HarnessOptions } from './pm-harness.js';

const backends = testBackends();
t.ok(backends.length >= 1, `backends: ${backends.map((b) => b.name).join(', ')}`);
const be = backends[0]!;
/** One backend per rank: all the same, or alternating when `mixed` and both load. */
const pick = (n: number, mixed = false): Backend[] => Array.from({ length: n }, (_, r) => (mixed ? backends[r % backends.length]! : be));

function allSame(t: Tap, got: Float32Array[], want: Float32Array, what: string): void {
  got.forEach((g, r) => sameBits(t, g, want, `${what}, rank ${r}`));
}

async function equivalence(t: Tap, o: Omit<HarnessOptions, 'backends'> & { mixed?: boolean }, what: string): Promise<void> {
  const N = o.transports.length;
  const res = await within(runHarness({ ...o, backends: pick(N, o.mixed) }), what);
  t.ok(res.errors.every((e) => e.every((x) => x === undefined)), `${what}: no errors`);
  const ref = reference(be, o.P, N, o.iterations);
  allSame(t, res.history.map((h) => h[o.iterations - 1]!), ref[o.iterations - 1]!, `${what}: weights after ${o.iterations} iterations`);
  t.same(res.steps, res.steps.map(() => o.iterations), `${what}: every owner stepped ${o.iterations} times`);
}

t.test('f32: every worker ends with the one-process weights, bit for bit', async (t) => {
  for (const [P, N] of [[1003, 3], [1000, 4], [10, 3], [2, 3], [0, 2], [57, 1]] as const) {
    await equivalence(t, { transports: createFakeMesh(N), P, iterations: 3 }, `P=${P} N=${N}`);
  }
  await equivalence(t, { transports: createFakeMesh(3), P: 1003, iterations: 3, chunkElements: 37, ready: 'reverse' },
    'P=1003 N=3, chunks of 37 reported in reverse order');
  await equivalence(t, { transports: createFakeMesh(4), P: 999, iterations: 3, chunkElements: 50, ready: 'random' },
    'P=999 N=4, chunks of 50 reported in random order');
  if (backends.length > 1) {
    await equivalence(t, { transports: createFakeMesh(3), P: 1003, iterations: 3, mixed: true, chunkElements: 100, ready: 'reverse' },
      'P=1003 N=3 on native and wasm side by side');
  }
});

t.test('chunks leave during the backward pass', async (t) => {
  const res = await runHarness({ transports: createFakeMesh(3), backends: pick(3), P: 1003, iterations: 2, chunkElements: 37, ready: 'reverse' });
  const slices = sliceRanges(1003, 3);
  for (let r = 0; r < 3; r++) {
    const rep = res.reports[r]![1]!;
    const expected = slices.filter((s) => s.index !== r).reduce((n, s) => n + Math.ceil(s.length / 37), 0);
    t.equal(rep.gradientFrames, expected, `rank ${r}: one frame per chunk of the other slices (${expected})`);
    t.ok(rep.earlyGradientFrames > 0 && rep.earlyGradientFrames <= expected, `rank ${r}: ${rep.earlyGradientFrames} of them before finish()`);
    t.equal(rep.weightFrames, 2, `rank ${r}: one weight frame per peer`);
  }
  const none = await runHarness({ transports: createFakeMesh(3), backends: pick(3), P: 1003, iterations: 1, chunkElements: 37, ready: 'none' });
  t.equal(none.reports[0]![0]!.earlyGradientFrames, 0, 'without gradientsReady() nothing leaves before finish()');
});

t.test('shuffled delivery gives the same bits', async (t) => {
  const base = await runHarness({ transports: createFakeMesh(4), backends: pick(4), P: 1001, iterations: 3, chunkElements: 64, ready: 'reverse' });
  for (const seed of [1, 2, 3]) {
    const sh = await within(runHarness({ transports: createFakeMesh(4, { shuffleSeed: seed }), backends: pick(4), P: 1001, iterations: 3, chunkElements: 64, ready: 'random' }),
      `shuffle seed ${seed}`);
    allSame(t, sh.history.map((h) => h[2]!), base.history[0]![2]!, `shuffle seed ${seed}`);
  }
});

t.test('the in-process transport (transport/inproc)', async (t) => {
  await equivalence(t, { transports: createInProcessMesh(3) as Transport[], P: 1003, iterations: 3, chunkElements: 100, ready: 'reverse' }, 'inproc P=1003 N=3');
});

t.test('bf16 and fp16 wires: float32 masters on the owner, their rounding elsewhere', async (t) => {
  for (const fmt of ['bf16', 'fp16'] as const) {
    const P = 1003;
    const N = 3;
    const res = await runHarness({ transports: createFakeMesh(N), backends: pick(N), P, iterations: 1, gradientWire: fmt, weightWire: fmt });
    // Owner i sums its own gradient exactly and the others' rounded ones.
    const slices = sliceRanges(P, N);
    const master = new Float32Array(P);
    const w0 = initialWeights(P);
    for (const s of slices) {
      const parts = Array.from({ length: N }, (_, r) => {
        const g = localGradient(P, r, 0).subarray(s.start, s.end);
        return r === s.index ? g : roundTrip(be, g, fmt);
      });
      const sum = new Float32Array(s.length);
      be.sumSlices(parts, sum);
      be.scale(sum, 1 / 32, sum);
      const w = w0.slice(s.start, s.end);
      const opt = sgd(be, s.length);
      opt.step(w, sum);
      opt.dispose();
      master.set(w, s.start);
    }
    for (let r = 0; r < N; r++) {
      const want = new Float32Array(P);
      for (const s of slices) want.set(s.index === r ? master.subarray(s.start, s.end) : roundTrip(be, master.subarray(s.start, s.end), fmt), s.start);
      sameBits(t, res.history[r]![0]!, want, `${fmt}: rank ${r} holds its own master slice and the rounded others`);
    }
  }
});

t.test('a NaN gradient stops the iteration everywhere, nothing changes, the next one runs', async (t) => {
  const P = 1003;
  const N = 3;
  const bad = 800; // in slice 2
  const transports = createFakeMesh(N, { shuffleSeed: 9 });
  const res = await within(runHarness({
    transports, backends: pick(N), P, iterations: 3, chunkElements: 100, ready: 'reverse',
    corrupt: (r, k, g) => {
      if (r === 1 && k === 1) g[bad] = NaN;
    },
  }), 'NaN run');
  for (let r = 0; r < N; r++) {
    const e = res.errors[r]![1];
    t.ok(e instanceof IterationAbortedError, `rank ${r}: IterationAbortedError at iteration 1`);
    if (e instanceof IterationAbortedError) {
      t.equal(e.iteration, 1, `rank ${r}: names iteration 1`);
      t.equal(e.index, bad, `rank ${r}: the first bad flat index`);
      t.equal(e.owner, 2, `rank ${r}: found by the owner of slice 2`);
      t.equal(e.contributor, 1, `rank ${r}: rank 1's contribution`);
      t.match(e.message, /iteration 1 .*NaN at flat index 800 .*no weights or optimiser state changed/, `rank ${r}: message`);
    }
    sameBits(t, res.history[r]![1]!, res.history[r]![0]!, `rank ${r}: weights unchanged by the stopped iteration`);
    t.equal(res.errors[r]![0], undefined, `rank ${r}: iteration 0 fine`);
    t.equal(res.errors[r]![2], undefined, `rank ${r}: iteration 2 runs after it`);
    t.equal(res.steps[r], 2, `rank ${r}: its optimiser stepped twice (not for the stopped iteration)`);
    t.equal((transports[r] as FakeTransport).pendingFrames(), 0, `rank ${r}: no frame left behind`);
  }
  const ref = reference(be, P, N, 3, 32, [1]);
  allSame(t, res.history.map((h) => h[2]!), ref[2]!, 'after iteration 2: as one process that skipped iteration 1');
});

t.test('fp16 overflow to infinity and vetoes stop the iteration too', async (t) => {
  const P = 300;
  const N = 2;
  const inf = await runHarness({
    transports: createFakeMesh(N), backends: pick(N), P, iterations: 1, gradientWire: 'fp16',
    corrupt: (r, _k, g) => {
      if (r === 0) g[290] = 1e6; // beyond fp16's 65504: rank 0 sends +Infinity to owner 1
    },
  });
  for (let r = 0; r < N; r++) {
    const e = inf.errors[r]![0] as IterationAbortedError;
    t.ok(e instanceof IterationAbortedError && e.index === 290 && e.value === Infinity && e.contributor === 0, `rank ${r}: Infinity at 290 from rank 0`);
    t.equal(inf.steps[r], 0, `rank ${r}: no optimiser step`);
  }
  const veto = await runHarness({ transports: createFakeMesh(3), backends: pick(3), P, iterations: 2, veto: (r, k) => (r === 2 && k === 0 ? 'loss is NaN' : undefined) });
  for (let r = 0; r < 3; r++) {
    const e = veto.errors[r]![0] as IterationAbortedError;
    t.ok(e instanceof IterationAbortedError && e.index === -1, `rank ${r}: stopped by a veto`);
    t.match(e?.message, /iteration 0 .*rank 2 vetoed it: loss is NaN/, `rank ${r}: names the vetoing rank and its reason`);
    t.equal(veto.errors[r]![1], undefined, `rank ${r}: iteration 1 runs`);
  }
  allSame(t, veto.history.map((h) => h[1]!), reference(be, P, 3, 2, 32, [0])[1]!, 'after the veto: as one process that skipped iteration 0');
});

t.test('workers disagreeing on the wire format stop instead of hanging', async (t) => {
  const N = 3;
  const transports = createFakeMesh(N);
  const P = 100;
  const pms = transports.map((tr, r) => new ParameterManager({
    transport: tr, backend: be, values: new Float32Array(P), grads: localGradient(P, r, 0),
    optimizer: (n) => sgd(be, n), gradientWire: r === 0 ? 'bf16' : 'f32',
  }));
  const out = await within(Promise.allSettled(pms.map((pm) => pm.step(0, { globalBatch: 4 }))), 'mismatch');
  for (const [r, o] of out.entries()) {
    t.ok(o.status === 'rejected' && o.reason instanceof IterationAbortedError, `rank ${r}: IterationAbortedError`);
    if (o.status === 'rejected') t.match(String(o.reason.message), /dtype/, `rank ${r}: names the dtype problem`);
  }
  t.ok(pms.every((pm) => pm.masterSlice().every((v) => v === 0)), 'no weights changed');
  pms.forEach((pm) => pm.dispose());
});

t.test('API misuse', async (t) => {
  const [tr] = createFakeMesh(1);
  const values = new Float32Array(10);
  const grads = new Float32Array(10);
  t.throws(() => new ParameterManager({ transport: tr!, backend: be, values, grads: new Float32Array(9), optimizer: (n) => sgd(be, n) }), RangeError, 'length mismatch');
  t.throws(() => new ParameterManager({ transport: tr!, backend: be, values, grads, optimizer: sgd(be, 9) }), RangeError, 'optimiser of the wrong slice length');
  t.throws(() => new ParameterManager({ transport: tr!, backend: be, values, grads, optimizer: (n) => sgd(be, n), gradientWire: 'f64' as never }), RangeError, 'unknown wire');
  const pm = new ParameterManager({ transport: tr!, backend: be, values, grads, optimizer: (n) => sgd(be, n) });
  t.throws(() => pm.gradientsReady(0, 1), Error, 'gradientsReady before begin');
  pm.begin(5);
  t.throws(() => pm.begin(6), Error, 'begin while an iteration is open');
  t.throws(() => pm.gradientsReady(5, 6), RangeError, 'range beyond P');
  await t.rejects(pm.finish({ globalBatch: 0 }), RangeError, 'globalBatch 0');
  t.throws(() => pm.begin(5), RangeError, 'iteration numbers must grow');
  grads.fill(1);
  const rep = await pm.step(6, { globalBatch: 2 });
  t.equal(rep.iteration, 6, 'N = 1: an iteration without any peer');
  t.ok(values.every((v) => Math.abs(v + 0.1 * 0.5) < 1e-7), 'N = 1: w -= lr * g / B');
  pm.dispose();
  t.throws(() => pm.begin(7), Error, 'disposed');
  t.equal(FrameKind.Control, 4, 'status frames are Control frames');
});
