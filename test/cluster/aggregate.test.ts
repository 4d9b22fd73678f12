// The driver and tree aggregation modes (Spark's reduce and treeAggregate) against one
// process with the same global batches (engine/train, float64-free: the same float32 model
// trained alone), over the in-process mesh with the real Driver and workers: LeNet-5 on 300
// synthetic images, global batch 64, SGD with momentum. driver mode sums in rank order like
// the all-reduce's owners, so it must give the all-reduce's bits; tree mode adds in tree
// order (within 1e-5). A NaN in one worker's data stops the iteration on every worker with
// the flat index, nothing updated; a checkpoint written in driver mode resumes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { BackendName } from '../../engine/backends/backend.js';
import { treeChildren, treeParent } from '../../engine/cluster/aggregation.js';
import { InProcessJobError, runInProcessJob, type InProcessJobOptions } from '../../engine/cluster/inproc.js';
import type { Dataset } from '../../engine/data/index.js';
import { within } from '../conformance/util.js';
import { relErr } from './compare.js';
import { data, job, reference } from './inproc-job.js';
import { testBackends } from './pm-harness.js';

const names = testBackends().map((b) => b.name);
const be = names[0]!;
const dir = mkdtempSync(join(tmpdir(), 'squall-aggregate-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('the tree: every worker but 0 has one parent, children in rank order', async (t) => {
  for (const n of [1, 2, 3, 4, 7, 8]) {
    const parents = new Map<number, number>();
    for (let r = 0; r < n; r++) for (const c of treeChildren(r, n)) parents.set(c, r);
    for (let r = 1; r < n; r++) t.equal(parents.get(r), treeParent(r), `n=${n}: worker ${r}'s parent`);
    t.equal(parents.has(0), false, `n=${n}: worker 0 is the root`);
    t.equal(treeParent(0), -1, 'the root sends to the driver');
  }
});

t.test('driver and tree modes end where one process ends', async (t) => {
  const ref = (await reference(be, 7)).weights;
  const all = await within(runInProcessJob(job({ backends: [be, be, be, be] })), 'allreduce', 120_000);
  for (const mode of ['driver', 'tree'] as const) {
    for (const schedule of ['group', 'bsp'] as const) {
      const res = await within(runInProcessJob(job({ backends: [be, be, be, be], aggregate: mode, schedule, weights: [3, 2, 2, 1] })), `${mode} ${schedule}`, 120_000);
      const e = relErr(res.driver.weights!, ref);
      t.ok(e <= 1e-5, `${mode}, ${schedule}, 4 workers 3:2:2:1: weights equal one process to ${e.toExponential(2)} <= 1e-5`);
      for (const w of res.workers) t.equal(w.iterations, 7, `${mode} ${schedule}: worker ${w.rank} ran 7 iterations`);
    }
  }
  const d = await runInProcessJob(job({ backends: [be, be, be, be], aggregate: 'driver' }));
  t.same([...d.driver.weights!], [...all.driver.weights!], 'driver mode sums in rank order: the all-reduce\'s bits');
  if (names.includes('native') && names.includes('wasm')) {
    const m = await runInProcessJob(job({ backends: ['native', 'wasm', 'native'], aggregate: 'tree', weights: [2, 1, 2] }));
    const e = relErr(m.driver.weights!, (await reference('native', 7)).weights);
    t.ok(e <= 1e-5, `tree mode with native, wasm, native workers: ${e.toExponential(2)} <= 1e-5`);
  }
});

t.test('a NaN in one worker\'s gradient stops every worker, naming the index', async (t) => {
  for (const mode of ['driver', 'tree'] as const) {
    const bad: Dataset = { ...data, images: data.images.slice() };
    bad.images.fill(NaN);
    const err = await runInProcessJob(job({
      backends: [be, be, be], aggregate: mode,
      // Rank 2 trains on NaN images: its gradient is NaN everywhere.
      loadData: (j) => ({ train: j.workers === 3 && loadRank.next().value === 2 ? bad : data }),
    })).then(() => null, (e: unknown) => e);
    t.ok(err instanceof InProcessJobError, `${mode}: the job fails`);
    const we = (err as InProcessJobError).workerErrors;
    const aborted = we.filter((e) => e instanceof Error && /iteration 0 stopped on every worker: the reduced gradient is NaN at flat index \d+/.test(e.message));
    t.ok(aborted.length >= 1, `${mode}: a worker reports the iteration stopped with the flat index: ${(we.find(Boolean) as Error | undefined)?.message.slice(0, 160)}`);
    if (mode === 'driver') t.ok(aborted.some((e) => /rank \d's contribution is NaN/.test((e as Error).message)), `driver mode names the rank whose gradient was NaN: ${(aborted[0] as Error).message}`);
    t.ok(aborted.every((e) => /\(reduced by the driver; /.test((e as Error).message)), `${mode}: the message says the driver reduced it`);
    if (mode === 'tree') t.ok(aborted.every((e) => /do not tell which rank/.test((e as Error).message)), 'tree mode says the partial sums hide the rank');
    loadRank = ranks();
  }
});
let loadRank = ranks();
function* ranks(): Generator<number> {
  for (let r = 0; ; r++) yield r;
}

t.test('a checkpoint written in driver mode resumes to the same weights', async (t) => {
  const path = join(dir, 'driver.sqck');
  await runInProcessJob(job({ backends: [be, be], aggregate: 'driver', maxIterations: 6, checkpointPath: path, checkpointEvery: 1 }));
  const again = await runInProcessJob(job({ backends: [be, be, be], aggregate: 'tree', maxIterations: 9, checkpointPath: path, resume: true }));
  t.equal(again.driver.startIteration, 6, 'resumed at iteration 6');
  const e = relErr(again.driver.weights!, (await reference(be, 9)).weights);
  t.ok(e <= 1e-5, `driver-mode checkpoint resumed in tree mode on 3 workers ends where one process ends: ${e.toExponential(2)}`);
  const mixed = await runInProcessJob(job({ backends: [be, be], maxIterations: 9, checkpointPath: path, resume: true }));
  t.ok(relErr(mixed.driver.weights!, (await reference(be, 9)).weights) <= 1e-5, 'and in all-reduce mode');
});
