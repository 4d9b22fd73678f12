// The bootstrap of a TCP job (engine/cluster/rendezvous) and the cluster commands:
// a worker without the secret is refused and the job keeps waiting; requested ranks are
// honoured, bad ones refused; a job that does not fill up fails naming the count. Then the
// commands as processes: `squall driver` + 2 x `squall worker --driver HOST:PORT`, and 2 x
// `squall cluster` with RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT (rank 0 runs the driver).
import { createHmac, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import t from 'tap';
import { RendezvousServer, joinJob, type Joined } from '../../engine/cluster/rendezvous.js';
import { parseShares, parseWorkerList } from '../../engine/cluster/launch.js';
import { FrameKind, WireDtype } from '../../transport/transport.js';
import { within } from '../conformance/util.js';
import { testBackends } from './pm-harness.js';
import { freePort, squall, stopSquallProcesses } from './squall-cli.js';

t.teardown(stopSquallProcesses);
const be = testBackends()[0]!.name;

t.test('worker lists and shares', async (t) => {
  t.same(parseWorkerList('native:2,wasm:1'), ['native', 'native', 'wasm']);
  t.same(parseWorkerList('3', 'wasm'), ['wasm', 'wasm', 'wasm']);
  t.same(parseWorkerList('wasm,native'), ['wasm', 'native']);
  t.throws(() => parseWorkerList('gpu:2'), /'gpu:2' is not BACKEND\[:COUNT\]/);
  t.throws(() => parseWorkerList('native:0'), /asks for no worker/);
  t.same(parseShares('2, 2,1', 3), [2, 2, 1]);
  t.throws(() => parseShares('1,1', 3), /must be 3 non-negative numbers/);
  t.throws(() => parseShares('0,0', 2), /not all 0/);
});

t.test('rendezvous: the secret, requested ranks, a job that does not fill up', async (t) => {
  // Each server stops listening once its gather() settles, and each mesh is closed when done
  // with; the teardowns (close() is idempotent) cover a test that gives up before then.
  const server = await RendezvousServer.listen({ secret: 'right', workers: 2, joinTimeoutMs: 20_000, log: () => {} });
  t.teardown(() => server.close());
  const driver = `127.0.0.1:${server.address.port}`;
  const gathered = server.gather();
  await t.rejects(joinJob({ driver, secret: 'wrong', backend: be }), /refused: wrong secret/, 'a worker without the secret is refused');
  await t.rejects(joinJob({ driver, secret: 'right', backend: be, rank: 2 }), /refused: rank 2 is not a worker rank \(0\.\.1\)/, 'a rank out of range is refused');
  await t.rejects(joinJob({ driver, secret: 'right', backend: be, workers: 3 }), /refused: the worker expects 3 workers, this job has 2/, 'a job of another size is refused');
  const w1 = joinJob({ driver, secret: 'right', backend: be, rank: 1 });
  await new Promise((r) => setTimeout(r, 100));
  await t.rejects(joinJob({ driver, secret: 'right', backend: be, rank: 1 }), /refused: rank 1 has already joined/, 'a taken rank is refused');
  const w0 = joinJob({ driver, secret: 'right', backend: 'wasm' });
  const [g, j1, j0] = await within(Promise.all([gathered, w1, w0]), 'the mesh comes up');
  t.teardown(() => Promise.all([g.transport.close(), j0.transport.close(), j1.transport.close()]));
  t.equal(j1.rank, 1, 'the requested rank is honoured');
  t.equal(j0.rank, 0, 'the other worker gets the free rank');
  t.same(g.workers.map((w) => [w.rank, w.backend]), [[0, 'wasm'], [1, be]], 'the driver knows who is who');
  t.equal(g.transport.rank, 2, 'the driver is rank N');
  t.equal(j0.transport.worldSize, 3);
  t.equal(j0.jobId, g.transport.jobId, 'one job id');
  const payload = new Uint8Array([1, 2, 3]);
  await j0.transport.send(1, { kind: FrameKind.Control, iteration: 0, slice: 9, dtype: WireDtype.Bytes, payload });
  await g.transport.send(0, { kind: FrameKind.Control, iteration: 0, slice: 9, dtype: WireDtype.Bytes, payload });
  t.same([...(await j1.transport.receive(0, FrameKind.Control, 0, 9)).payload], [1, 2, 3], 'worker 0 -> worker 1');
  t.same([...(await j0.transport.receive(2, FrameKind.Control, 0, 9)).payload], [1, 2, 3], 'driver -> worker 0');
  await Promise.all([g.transport.close(), ...[j0, j1].map((j: Joined) => j.transport.close())]);

  // A worker that joins and leaves before the job is complete gives its place up.
  const flaky = await RendezvousServer.listen({ secret: 'k', workers: 2, joinTimeoutMs: 20_000, log: () => {} });
  t.teardown(() => flaky.close());
  const gf = flaky.gather();
  await new Promise<void>((resolve, reject) => {
    const s = net.connect(flaky.address.port, '127.0.0.1');
    s.setEncoding('utf8');
    s.once('data', (d: string) => {
      const nonce = (JSON.parse(d) as { nonce: string }).nonce;
      const proof = createHmac('sha256', 'k').update('squall-join-v1').update(Buffer.from(nonce, 'hex')).digest('hex');
      s.write(`${JSON.stringify({ t: 'join', proof, nonce: randomBytes(32).toString('hex'), backend: 'ghost', pid: 1, host: 'h' })}\n`, () => {
        setTimeout(() => { s.destroy(); resolve(); }, 100);
      });
    });
    s.once('error', reject);
  });
  await new Promise((r) => setTimeout(r, 300));
  const fw = [joinJob({ driver: `127.0.0.1:${flaky.address.port}`, secret: 'k', backend: be }), joinJob({ driver: `127.0.0.1:${flaky.address.port}`, secret: 'k', backend: be })];
  const [fg, ...fj] = await within(Promise.all([gf, ...fw]), 'the job fills up after a worker left');
  t.teardown(() => Promise.all([fg.transport.close(), ...fj.map((j: Joined) => j.transport.close())]));
  t.same(fg.workers.map((w) => w.backend), [be, be], 'the worker that left was replaced');
  await Promise.all([fg.transport.close(), ...fj.map((j: Joined) => j.transport.close())]);

  const lonely = await RendezvousServer.listen({ secret: 's', workers: 2, joinTimeoutMs: 600, log: () => {} });
  t.teardown(() => lonely.close());
  const gl = lonely.gather();
  const one = joinJob({ driver: `127.0.0.1:${lonely.address.port}`, secret: 's', backend: be });
  const [a, b] = await Promise.allSettled([gl, one]);
  t.match(a.status === 'rejected' ? String(a.reason) : 'resolved', /only 1 of 2 workers joined within 0\.6 s/, 'the driver gives up naming the count');
  t.match(b.status === 'rejected' ? String(b.reason) : 'resolved', /refused: the driver gave up/, 'and tells the worker that joined');
});

const jobArgs = ['--dataset', 'synthetic', '--synthetic-size', '256', '--batch', '64', '--epochs', '1', '--group-size', '2', '--threads', '1'];

t.test('squall driver + 2 x squall worker --driver HOST:PORT', async (t) => {
  const port = await freePort();
  const env = { SQUALL_SECRET: 'cli-test-secret' };
  const driver = squall(['driver', '--workers', '2', '--host', '127.0.0.1', '--port', String(port), ...jobArgs.filter((a, i, all) => a !== '--threads' && all[i - 1] !== '--threads')], env);
  const workers = [0, 1].map(() => squall(['worker', '--driver', `127.0.0.1:${port}`, '--backend', be, '--threads', '1'], env));
  const [d, ...ws] = await within(Promise.all([driver, ...workers]), 'driver and workers', 120_000);
  t.equal(d!.code, 0, `the driver exits 0${d!.code ? `: ${d!.err}` : ''}`);
  t.match(d!.err, /listening on 127\.0\.0\.1:\d+ for 2 workers/, 'it says where it listens');
  t.match(d!.out, /test accuracy \d+\.\d+% \(64 test images\)/, 'and prints the test accuracy');
  for (const [r, w] of ws.entries()) t.equal(w.code, 0, `worker process ${r} exits 0${w.code ? `: ${w.err}` : ''}`);
  const nosecret = await squall(['worker', '--driver', `127.0.0.1:${port}`], { SQUALL_SECRET: '' });
  t.equal(nosecret.code, 2, 'a worker without a secret is a usage error');
  t.match(nosecret.err, /set SQUALL_SECRET/);
});

t.test('squall cluster under srun: SLURM_PROCID / SLURM_NTASKS / SLURM_STEP_NODELIST', async (t) => {
  const port = await freePort();
  const base = { SQUALL_SECRET: 'slurm-secret', SLURM_NTASKS: '2', SLURM_STEP_NODELIST: 'localhost', SQUALL_DRIVER_PORT: String(port), RANK: '', WORLD_SIZE: '' };
  const ranks = [0, 1].map((r) => squall(['cluster', '--backend', be, '--host', '127.0.0.1', ...jobArgs], { ...base, SLURM_PROCID: String(r), SLURM_LOCALID: String(r) }));
  const [r0, r1] = await within(Promise.all(ranks), 'two tasks', 120_000);
  t.equal(r0!.code, 0, `task 0 exits 0${r0!.code ? `: ${r0!.err}` : ''}`);
  t.equal(r1!.code, 0, `task 1 exits 0${r1!.code ? `: ${r1!.err}` : ''}`);
  t.match(r0!.err, /2 workers \(slurm\)/, 'from the Slurm environment');
});

t.test('squall cluster under RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT', async (t) => {
  const port = await freePort();
  const base = { SQUALL_SECRET: 'env-secret', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) };
  const ranks = [0, 1].map((r) => squall(['cluster', '--backend', be, '--host', '127.0.0.1', '--schedule', 'bsp', ...jobArgs], { ...base, RANK: String(r) }));
  const [r0, r1] = await within(Promise.all(ranks), 'two ranks', 120_000);
  t.equal(r0!.code, 0, `rank 0 (driver and worker 0) exits 0${r0!.code ? `: ${r0!.err}` : ''}`);
  t.equal(r1!.code, 0, `rank 1 exits 0${r1!.code ? `: ${r1!.err}` : ''}`);
  t.match(r0!.out, /test accuracy/, 'rank 0 reports the test accuracy');
  t.match(r0!.err, /2 workers \(torchrun\)/, 'from the torchrun environment');
  t.equal(r1!.out, '', 'rank 1 prints no result');
});
