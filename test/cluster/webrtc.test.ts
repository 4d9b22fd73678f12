// Cluster jobs over WebRTC data channels with the driver relaying the signalling through the
// rendezvous (engine/cluster/rendezvous.ts, rendezvous-signalling.ts), once per WebRTC
// implementation that loads here (one that does not is skipped with the reason): the driver
// in this process and two forked `squall worker` processes, one native and one wasm, LeNet-5
// on 320 synthetic images, global batch 64, end where one process ends (relative 1e-5, f32
// wire); every worker used the chosen implementation, the relay refused nothing. Then the
// commands as processes: `squall train --transport webrtc`, `squall driver --transport
// webrtc` + 2 x `squall worker`, and 2 x `squall cluster --transport webrtc` (torchrun
// variables), whose checkpoints hold the one-process weights; bad --transport / --webrtc
// values are usage errors.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { BackendName } from '../../engine/backends/backend.js';
import { loadBackend } from '../../engine/backends/registry.js';
import { launchLocal } from '../../engine/cluster/launch.js';
import { loadCheckpoint, restoreModel } from '../../engine/io/checkpoint/index.js';
import { lenet5 } from '../../engine/models/index.js';
import { within } from '../conformance/util.js';
import { IMPLEMENTATIONS, skipReason } from '../transport/webrtc-peers.js';
import { relErr } from './compare.js';
import { testBackends } from './pm-harness.js';
import { freePort, squall, stopSquallProcesses } from './squall-cli.js';
import { B, LR, MOMENTUM, SEED, SIZE, job, reference, showWorkerOutputOnFailure } from './process-job.js';

const names = testBackends().map((b) => b.name);
/** One native and one wasm worker when both backends load here. */
const mixed: BackendName[] = names.includes('native') && names.includes('wasm') ? ['native', 'wasm'] : [names[0]!, names[0]!];
const refBackend = mixed[0]!;
const dir = mkdtempSync(join(tmpdir(), 'squall-webrtc-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
t.teardown(stopSquallProcesses);
showWorkerOutputOnFailure();

const skips = new Map(await Promise.all(IMPLEMENTATIONS.map(async (i) => [i, await skipReason(i)] as const)));
const noWebRtc = [...skips.values()].some((s) => s === false) ? false : `no WebRTC implementation loads here: ${[...skips.values()].join('; ')}`;

for (const impl of IMPLEMENTATIONS) {
  t.test(`${impl}: a ${mixed.join(' and a ')} worker process over WebRTC end where one process ends`, { skip: skips.get(impl)! }, async (t) => {
    const iterations = 6;
    const ref = await reference(refBackend, iterations);
    const res = await within(launchLocal(job({ backends: mixed, transport: 'webrtc', webrtc: impl, maxIterations: iterations })), 'WebRTC job', 120_000);
    const e = relErr(res.driver.weights!, ref);
    t.ok(e <= 1e-5, `final weights equal one ${refBackend} process to ${e.toExponential(2)} <= 1e-5`);
    t.equal(res.driver.endIteration, iterations, `${iterations} iterations`);
    t.same(res.exits, [{ code: 0, signal: null }, { code: 0, signal: null }], 'both worker processes exited with code 0');
    t.same(res.driver.ready.map((m) => m.backend), mixed, `the workers: ${mixed.join(', ')}`);
    t.ok(res.driver.ready.every((m) => m.pid !== process.pid), 'in other processes');
    t.same(res.workers.map((w) => w.implementation), [impl, impl], `every worker loaded ${impl}, as the driver chose`);
    t.ok(res.workers.every((w) => w.address === undefined), 'and none announced a TCP address');
    t.ok(res.signalling.relayed >= 6, `the driver relayed ${res.signalling.relayed} signalling messages (3 pairs: an offer and an answer each at least)`);
    t.same(res.signalling.refused, {}, 'and refused none');
  });
}

/** The job of the reference, as command-line flags: 4 iterations, groups of 2, a checkpoint at the end. */
const ITERATIONS = 4;
const jobArgs = (checkpoint: string): string[] => [
  '--model', 'lenet5', '--dataset', 'synthetic', '--synthetic-size', String(SIZE), '--seed', String(SEED), '--batch', String(B),
  '--lr', String(LR), '--momentum', String(MOMENTUM), '--epochs', '1', '--max-iterations', String(ITERATIONS), '--group-size', '2',
  '--checkpoint', checkpoint,
];

/** max relative difference of a checkpoint's weights from the one-process weights. */
async function checkpointError(path: string): Promise<number> {
  const b = loadBackend(refBackend);
  const model = lenet5().to(b);
  restoreModel(model, await loadCheckpoint(path));
  const w = model.flatParameters().values.slice();
  model.dispose();
  return relErr(w, await reference(refBackend, ITERATIONS));
}

t.test('squall train --transport webrtc: the checkpoint holds the one-process weights', { skip: noWebRtc }, async (t) => {
  const path = join(dir, 'train.sqck');
  const r = await within(squall(['train', '--workers', mixed.join(','), '--transport', 'webrtc', '--threads', '1', ...jobArgs(path)]), 'squall train', 120_000);
  t.equal(r.code, 0, `exits 0${r.code ? `: ${r.err}` : ''}`);
  t.match(r.err, /over webrtc \(auto\)/, 'over WebRTC');
  t.match(r.err, /WebRTC data channels \(workers: [\w-]+, [\w-]+\); the driver relayed \d+ signalling messages/, 'through the driver\'s relay');
  t.match(r.out, /test accuracy \d+\.\d+%/, 'and prints the test accuracy');
  const e = await checkpointError(path);
  t.ok(e <= 1e-5, `the checkpoint's weights equal one process to ${e.toExponential(2)} <= 1e-5`);
});

t.test('squall driver --transport webrtc + 2 x squall worker: the workers follow the driver', { skip: noWebRtc }, async (t) => {
  const port = await freePort();
  const env = { SQUALL_SECRET: 'webrtc-cli-secret' };
  const path = join(dir, 'driver.sqck');
  const driver = squall(['driver', '--workers', '2', '--host', '127.0.0.1', '--port', String(port), '--transport', 'webrtc', ...jobArgs(path)], env);
  const workers = mixed.map((b) => squall(['worker', '--driver', `127.0.0.1:${port}`, '--backend', b, '--threads', '1'], env));
  const [d, ...ws] = await within(Promise.all([driver, ...workers]), 'driver and workers', 120_000);
  t.equal(d!.code, 0, `the driver exits 0${d!.code ? `: ${d!.err}` : ''}`);
  t.match(d!.err, /WebRTC mesh of 3 ranks \(loopback\): worker 0 [\w-]+, worker 1 [\w-]+, driver [\w-]+/, 'it brought a WebRTC mesh up');
  for (const [r, w] of ws.entries()) t.equal(w.code, 0, `worker process ${r} exits 0${w.code ? `: ${w.err}` : ''}`);
  const e = await checkpointError(path);
  t.ok(e <= 1e-5, `the checkpoint's weights equal one process to ${e.toExponential(2)} <= 1e-5`);
});

t.test('squall cluster --transport webrtc under RANK / WORLD_SIZE: rank 0\'s driver relays for both ranks', { skip: noWebRtc }, async (t) => {
  const port = await freePort();
  const path = join(dir, 'cluster.sqck');
  const base = { SQUALL_SECRET: 'webrtc-cluster-secret', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) };
  const ranks = mixed.map((b, r) => squall(['cluster', '--backend', b, '--host', '127.0.0.1', '--transport', 'webrtc', '--threads', '1', ...jobArgs(path)], { ...base, RANK: String(r) }));
  const [r0, r1] = await within(Promise.all(ranks), 'two ranks', 120_000);
  t.equal(r0!.code, 0, `rank 0 (driver and worker 0) exits 0${r0!.code ? `: ${r0!.err}` : ''}`);
  t.equal(r1!.code, 0, `rank 1 exits 0${r1!.code ? `: ${r1!.err}` : ''}`);
  t.match(r0!.err, /WebRTC mesh of 3 ranks \(loopback\)/, 'rank 0 brought a WebRTC mesh up');
  const e = await checkpointError(path);
  t.ok(e <= 1e-5, `the checkpoint's weights equal one process to ${e.toExponential(2)} <= 1e-5`);
});

t.test('bad --transport and --webrtc values are usage errors', async (t) => {
  const runs = await within(Promise.all([
    squall(['train', '--workers', '2', '--transport', 'carrier-pigeon']),
    squall(['train', '--workers', '2', '--transport', 'webrtc', '--webrtc', 'libjingle']),
    squall(['driver', '--workers', '2', '--transport', 'inproc']),
  ]), 'usage errors', 60_000);
  t.same(runs.map((r) => r.code), [2, 2, 2], 'each exits 2');
  t.match(runs[0]!.err, /--transport must be tcp, webrtc or inproc, got 'carrier-pigeon'/);
  t.match(runs[1]!.err, /--webrtc must be auto, wrtc or node-datachannel, got 'libjingle'/);
  t.match(runs[2]!.err, /squall driver: --transport must be tcp or webrtc, got 'inproc'/);
});
