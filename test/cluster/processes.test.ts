// Real processes over TCP (engine/cluster/launch): the driver in this process, 2 or 3 forked
// `squall worker` processes, LeNet-5 on 320 synthetic images, global batch 64. group and bsp
// mode, 2 native workers and 2 native + 1 wasm, end where one process ends (relative 1e-5,
// f32 wire). A worker killed with SIGKILL, or stopped with SIGSTOP (silent), ends the job
// within the timeout with an error naming it, every process exits, the last checkpoint is
// intact and `resume` continues from it to the one-process result.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ClusterJobError } from '../../engine/cluster/driver.js';
import { launchLocal } from '../../engine/cluster/launch.js';
import { loadCheckpoint } from '../../engine/io/checkpoint/index.js';
import { within } from '../conformance/util.js';
import { testBackends } from './pm-harness.js';
import { relErr } from './compare.js';
import { job, reference, showWorkerOutputOnFailure } from './process-job.js';

const names = testBackends().map((b) => b.name);
const be = names[0]!;
const dir = mkdtempSync(join(tmpdir(), 'squall-processes-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
showWorkerOutputOnFailure();

t.test('driver + 2 native workers: group and bsp mode end where one process ends', async (t) => {
  const ref = await reference(be, 8);
  const waits: Record<string, number> = {};
  for (const schedule of ['group', 'bsp'] as const) {
    const res = await within(launchLocal(job({ backends: [be, be], schedule })), `${schedule} job`, 120_000);
    const e = relErr(res.driver.weights!, ref);
    t.ok(e <= 1e-5, `${schedule}: final weights equal one process to ${e.toExponential(2)} <= 1e-5`);
    t.same(res.exits, [{ code: 0, signal: null }, { code: 0, signal: null }], `${schedule}: both worker processes exited with code 0`);
    t.equal(res.driver.control.launchMessages, 2 * (schedule === 'group' ? 3 : 8), `${schedule}: ${res.driver.control.launchMessages} launch messages`);
    t.ok(res.driver.ready.every((m) => m.pid !== process.pid && m.backend === be), 'the workers are other processes');
    waits[schedule] = res.driver.launches.reduce((a, l) => a + l.workers.reduce((b, w) => b + w.waitSeconds, 0), 0);
  }
  // Group mode: the next launch is already queued when a worker finishes one (pre-scheduling);
  // bsp: every iteration waits for a round trip through the driver.
  t.ok(waits.group! < waits.bsp!, `workers waited ${(1000 * waits.group!).toFixed(2)} ms for launches in group mode, ${(1000 * waits.bsp!).toFixed(2)} ms in bsp`);
});

t.test('2 native + 1 wasm worker, uneven shares, bf16 wire', { skip: names.includes('native') && names.includes('wasm') ? false : 'needs both backends' }, async (t) => {
  const ref = await reference('native', 8);
  const res = await within(launchLocal(job({ backends: ['native', 'native', 'wasm'], weights: [2, 2, 1] })), 'mixed job', 120_000);
  const e = relErr(res.driver.weights!, ref);
  t.ok(e <= 1e-5, `native, native, wasm 2:2:1: final weights equal one native process to ${e.toExponential(2)} <= 1e-5`);
  t.same(res.driver.ready.map((m) => m.backend), ['native', 'native', 'wasm']);
  const bf = await within(launchLocal(job({ backends: ['native', 'native', 'wasm'], gradientWire: 'bf16', weightWire: 'bf16' })), 'bf16 job', 120_000);
  const eb = relErr(bf.driver.weights!, ref);
  t.ok(eb > 0 && eb <= 2 ** -7, `bf16 wire: master weights within ${eb.toExponential(2)} of one process (bf16 rounding)`);
});

t.test('a killed worker ends the job within the timeout; the last checkpoint resumes it', async (t) => {
  const path = join(dir, 'killed.sqck');
  let killedAt = 0;
  let pid = 0;
  const err = await within(launchLocal(job({
    backends: [be, be, be], groupSize: 2, epochs: 6, maxIterations: 30, checkpointPath: path, timeoutMs: 5000,
    onDriver: (_, children) => {
      pid = children[1]!.pid!;
    },
    onCheckpoint: (c) => {
      if (c.iteration === 4 && !killedAt) {
        killedAt = Date.now();
        process.kill(pid, 'SIGKILL');
      }
    },
  })).then(() => null, (e: unknown) => e), 'killed job', 120_000);
  const took = Date.now() - killedAt;
  t.ok(killedAt > 0, `worker 1 (pid ${pid}) was killed after the checkpoint of iteration 4`);
  t.ok(err instanceof ClusterJobError && err.rank === 1, `the job fails naming worker 1: ${(err as Error)?.message}`);
  t.match((err as Error).message, new RegExp(`^worker 1 \\(${be}, pid ${pid} on [^)]*\\) `), 'with its backend and pid');
  t.ok(took < 5000, `within the timeout: ${took} ms after the kill (launchLocal also waited for every process)`);
  const ck = await loadCheckpoint(path);
  const it = (ck.meta.training as { iteration: number }).iteration;
  t.ok(it >= 4 && it % 2 === 0, `the last checkpoint is intact: iteration ${it}, a group boundary`);
  const res = await within(launchLocal(job({ backends: [be, be, be], groupSize: 2, epochs: 6, maxIterations: 30, checkpointPath: path, resume: true })), 'resumed job', 120_000);
  t.equal(res.driver.startIteration, it, `the resumed job started at iteration ${it}`);
  t.equal(res.driver.endIteration, 30, 'and ran to iteration 30');
  const e = relErr(res.driver.weights!, await reference(be, 30));
  t.ok(e <= 1e-5, `and ended where one process ends after 30 iterations (${e.toExponential(2)})`);
});

t.test('a stopped (silent) worker is lost after the timeout', async (t) => {
  let stoppedAt = 0;
  const err = await within(launchLocal(job({
    backends: [be, be], groupSize: 2, epochs: 100, maxIterations: 400, timeoutMs: 1500, exitGraceMs: 1000,
    onDriver: (_, children) => {
      setTimeout(() => {
        stoppedAt = Date.now();
        process.kill(children[0]!.pid!, 'SIGSTOP');
      }, 300);
    },
  })).then(() => null, (e: unknown) => e), 'stopped job', 120_000);
  const took = Date.now() - stoppedAt;
  t.ok(err instanceof ClusterJobError && err.rank === 0 && err.kind === 'lost', `the job fails naming worker 0: ${(err as Error)?.message}`);
  t.match((err as Error).message, /silent for \d+ ms/, 'as silent');
  t.ok(took >= 1500 && took < 6000, `${took} ms after SIGSTOP with a 1.5 s timeout (the stopped process was then killed)`);
});
