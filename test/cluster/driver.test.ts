// Driver + workers in one process over the in-process mesh (engine/cluster/inproc): LeNet-5
// on 300 synthetic images, global batch 64, SGD with momentum. group and bsp mode end where
// one process (engine/train) ends on the same global batches (relative 1e-5, f32 wire), with
// even, uneven and mixed-backend shares; group mode sends one launch per group per worker,
// bsp one per iteration. A worker that disappears mid-job stops everyone with an error
// naming it, the last checkpoint is intact, and resuming from it ends where one process ends.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { BackendName } from '../../engine/backends/backend.js';
import { ClusterJobError } from '../../engine/cluster/driver.js';
import { InProcessJobError, runInProcessJob, type InProcessJobOptions } from '../../engine/cluster/inproc.js';
import { syntheticDataset, type Dataset } from '../../engine/data/index.js';
import { loadCheckpoint } from '../../engine/io/checkpoint/index.js';
import { within } from '../conformance/util.js';
import { testBackends } from './pm-harness.js';
import { relErr } from './compare.js';
import { SEED, data, job, reference } from './inproc-job.js';

const names = testBackends().map((b) => b.name);
const be = names[0]!;
const dir = mkdtempSync(join(tmpdir(), 'squall-driver-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

async function checkEquivalent(t: Tap, o: Partial<InProcessJobOptions> & { backends: BackendName[] }, what: string) {
  const res = await within(runInProcessJob(job(o)), what, 120_000);
  const K = (o.maxIterations ?? 7) - (res.driver.startIteration);
  const ref = await reference(o.backends[0]!, o.maxIterations ?? 7);
  const e = relErr(res.driver.weights!, ref.weights);
  t.ok(e <= 1e-5, `${what}: final weights equal one process to ${e.toExponential(2)} <= 1e-5`);
  const le = Math.max(...res.driver.losses.map((l, k) => Math.abs(l - ref.losses[k + res.driver.startIteration]!) / ref.losses[k + res.driver.startIteration]!));
  t.ok(res.driver.losses.length === K && le <= 1e-5, `${what}: per-iteration global loss as one process (${le.toExponential(2)})`);
  return res;
}

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

t.test('group and bsp mode end where one process ends', async (t) => {
  const g = await checkEquivalent(t, { backends: [be, be, be], schedule: 'group', groupSize: 3 }, `group G=3, 3 x ${be}`);
  const N = 3;
  t.equal(g.driver.launches.length, 3, 'groups 0-2, 3-5, 6');
  t.equal(g.driver.control.launchMessages, N * 3, 'one launch message per worker per group');
  t.equal(g.driver.control.doneMessages, N * 3, 'one completion per worker per group');
  const b = await checkEquivalent(t, { backends: [be, be, be], schedule: 'bsp' }, `bsp, 3 x ${be}`);
  t.equal(b.driver.control.launchMessages, N * 7, 'bsp: one launch message per worker per iteration');
  t.equal(b.driver.control.doneMessages, N * 7, 'bsp: one completion per worker per iteration');
  t.same([...b.driver.weights!], [...g.driver.weights!], 'bsp and group mode give the same bits');
  for (const w of g.workers) t.equal(w.iterations, 7, `worker ${w.rank} ran 7 iterations`);
});

t.test('uneven shares, an empty share and mixed backends', async (t) => {
  await checkEquivalent(t, { backends: [be, be, be], weights: [2, 1, 1], groupSize: 2 }, 'weights 2:1:1, G=2');
  await checkEquivalent(t, { backends: [be, be], weights: [1, 0], groupSize: 4, maxIterations: 6 }, 'weights 1:0 (worker 1 takes no images)');
  if (names.includes('native') && names.includes('wasm')) {
    await checkEquivalent(t, { backends: ['native', 'native', 'wasm'], weights: [2, 2, 1] }, 'native, native, wasm 2:2:1');
  }
});

t.test('evaluation on the test split, progress output', async (t) => {
  const test = syntheticDataset({ length: 100, first: 300, shape: [1, 28, 28], classes: 10, seed: 11, separation: 1 });
  const lines: string[] = [];
  const progress = { write: (s: string) => { lines.push(s); return true; } } as unknown as NodeJS.WritableStream;
  const res = await runInProcessJob(job({
    backends: [be, be], data: { dataset: 'synthetic', seed: SEED, test: true }, loadData: () => ({ train: data, test }), maxIterations: 10, progress,
  }));
  const ev = res.driver.evaluation;
  t.ok(ev && ev.samples === 100 && ev.accuracy > 0.3, `test accuracy ${((ev?.accuracy ?? 0) * 100).toFixed(1)}% over ${ev?.samples} samples (chance 10%)`);
  t.ok(lines.some((l) => /group G=3 2 workers .*10\/10 loss \d/.test(l)), `progress bar: ${lines.at(-1)?.trim()}`);
});

t.test('a worker that disappears stops the job; the last checkpoint resumes it', async (t) => {
  const path = join(dir, 'ckpt.sqck');
  const checkpoints: number[] = [];
  const started = Date.now();
  const err = await runInProcessJob(job({
    backends: [be, be, be], groupSize: 2, maxIterations: 9, checkpointPath: path,
    onCheckpoint: (c) => checkpoints.push(c.iteration),
    beforeIteration: async ({ rank, iteration, transport }) => {
      if (rank === 1 && iteration === 5) {
        // Wait until the checkpoint of iterations 0-3 is on disk, then vanish as a killed process does.
        while (!checkpoints.includes(4)) await new Promise((r) => setTimeout(r, 5));
        await transport.close();
      }
    },
  })).then(() => null, (e: unknown) => e);
  t.ok(err instanceof InProcessJobError, 'the job fails');
  if (!(err instanceof InProcessJobError)) return;
  const d = err.driverError;
  t.ok(d instanceof ClusterJobError && d.rank === 1 && d.kind === 'lost', `the driver's error names worker 1: ${(d as Error).message}`);
  t.match((d as Error).message, /^worker 1 \(\w+, pid \d+ on .*\) was lost.*; the job stopped in launch 2 \(iterations 4-5\); last complete checkpoint: iteration 4 in /);
  t.ok(err.workerErrors.every((e) => e instanceof Error), 'every worker stopped with an error');
  t.ok(Date.now() - started < 60_000, 'nobody hung');
  t.same(checkpoints, [2, 4], 'checkpoints after iterations 2 and 4');
  const ck = await loadCheckpoint(path);
  t.equal((ck.meta.training as { iteration: number }).iteration, 4, 'the file holds the state after iteration 4');
  const P = (await reference(be, 9)).weights.length;
  t.ok(statSync(path).size > 2 * 4 * P, `and the full weights and momentum (${statSync(path).size} bytes for ${P} parameters)`);
  const res = await checkEquivalent(t, { backends: [be, be, be], groupSize: 2, maxIterations: 9, checkpointPath: path, resume: true }, 'resumed from iteration 4');
  t.equal(res.driver.startIteration, 4, 'the resumed job started at iteration 4');
  t.same(res.driver.launches.map((l) => l.first), [4, 6, 8], 'and ran the remaining groups');
  const again = await runInProcessJob(job({ backends: [be, be], groupSize: 2, maxIterations: 9, checkpointPath: path, resume: true }));
  t.equal(again.driver.launches.length, 1, 'resuming a finished job runs one empty launch');
  t.equal(again.driver.startIteration, 9, 'at iteration 9');
  const ref = await reference(be, 9);
  t.ok(relErr(again.driver.weights!, ref.weights) <= 1e-5, 'a different number of workers resumes the same state');
});

t.test('a worker that fails reports it; the others stop', async (t) => {
  const err = await runInProcessJob(job({
    backends: [be, be, be],
    beforeIteration: ({ rank, iteration }) => {
      if (rank === 2 && iteration === 4) throw new Error('injected failure');
    },
  })).then(() => null, (e: unknown) => e);
  t.ok(err instanceof InProcessJobError);
  const d = (err as InProcessJobError).driverError;
  t.ok(d instanceof ClusterJobError && d.rank === 2 && d.kind === 'failed', 'the driver names worker 2');
  t.match((d as Error).message, /^worker 2 \(.*\) failed: injected failure; the job stopped in launch 1 \(iterations 3-5\)/);
  const we = (err as InProcessJobError).workerErrors;
  t.match((we[2] as Error).message, /injected failure/, 'worker 2 rethrows its own error');
  for (const r of [0, 1]) t.ok(we[r] instanceof Error, `worker ${r} stopped: ${(we[r] as Error).message.slice(0, 100)}`);
});

t.test('a launch that takes too long stops the job (a worker that answers but makes no progress)', async (t) => {
  const err = await runInProcessJob(job({
    backends: [be, be], launchTimeoutMs: 300,
    beforeIteration: ({ rank, iteration }) => (rank === 1 && iteration === 4 ? new Promise((r) => setTimeout(r, 2000)) : undefined),
  })).then(() => null, (e: unknown) => e);
  const d = (err as InProcessJobError).driverError;
  t.ok(d instanceof ClusterJobError, 'the job fails');
  t.match((d as Error).message, /^worker 0 \(.*\), worker 1 \(.*\) did not finish launch 1 within 0\.3 s \(launch timeout\)/,
    'naming the workers whose completion is missing (in a synchronous job the others wait for the stuck one)');
});

t.test('the driver can abort a job', async (t) => {
  const err = await runInProcessJob(job({
    backends: [be, be],
    onDriver: (d) => setTimeout(() => d.abort('test'), 1),
    beforeIteration: () => new Promise((r) => setTimeout(r, 20)),
  })).then(() => null, (e: unknown) => e);
  t.match((err as Error).message, /the driver stopped the job: test/);
});
