// A real second process: this process is rank 0, a forked worker (tcp-worker.ts) is rank 1;
// the addresses go through the IPC channel as the driver would hand them out. Frames of
// 0 B, 1 B, 1 MiB, 8 MiB and 4 B go out and come back echoed, intact and in order; the worker
// sends one frame of its own; when it exits, a receive waiting on it fails with PeerLostError.
import t from 'tap';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { listenTcp } from '../../transport/tcp/index.js';
import { FrameKind, PeerLostError, WireDtype } from '../../transport/transport.js';
import { pattern, rejection, sameBytes, within } from './util.js';

const SECRET = 'process-test-secret';
const JOB = '31337';

function nextMessage(child: ChildProcess, type: string, ms = 10_000): Promise<Record<string, unknown>> {
  return within(new Promise((resolve, reject) => {
    const on = (m: Record<string, unknown>): void => {
      if (m.type === type) {
        child.off('message', on);
        resolve(m);
      } else if (m.type === 'error') {
        child.off('message', on);
        reject(new Error(`worker: ${String(m.message)}`));
      }
    };
    child.on('message', on);
  }), `worker message ${type}`, ms);
}

t.test('a 2-rank mesh with a forked worker process', async (t) => {
  const r0 = await listenTcp({ rank: 0, worldSize: 2, secret: SECRET, jobId: JOB, host: '127.0.0.1', port: 0, log: () => {} });
  const child = fork(fileURLToPath(new URL('./tcp-worker.js', import.meta.url)), [], {
    env: { ...process.env, SQUALL_TEST_SECRET: SECRET, SQUALL_TEST_JOB: JOB },
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill();
    await r0.close();
  });
  const listening = await nextMessage(child, 'listening');
  t.not(listening.pid, process.pid, `the worker is process ${String(listening.pid)}`);
  const book = [r0.addressString, String(listening.address)];
  const sizes = [0, 1, 1 << 20, 8 << 20, 4];
  child.send({ type: 'book', book, count: sizes.length });
  await within(r0.connect(book), 'mesh up');

  const sent = sizes.map((n, i) => pattern(n, i + 1));
  const t0 = Date.now();
  const echoes = Promise.all(sizes.map((_, i) => r0.receive(1, FrameKind.WeightSlice, i, 0)));
  for (let i = 0; i < sizes.length; i++) {
    await r0.send(1, { kind: FrameKind.GradientSlice, iteration: i, slice: 0, dtype: WireDtype.Bytes, payload: sent[i]! });
  }
  const back = await within(echoes, 'echoes');
  t.same(back.map((f) => f.payload.byteLength), sizes, 'every echo arrived');
  t.ok(back.every((f, i) => sameBytes(f.payload, sent[i]!) && f.sender === 1 && f.jobId === JOB), `intact across processes (${Date.now() - t0} ms)`);
  const own = await within(r0.receive(1, FrameKind.Control, 0, 1), 'worker frame');
  t.same(Array.from(new Float32Array(own.payload.buffer, 0, 3)), [0, 0.5, 1], 'the worker\'s own F32 frame');
  const done = await nextMessage(child, 'done');
  const ws = done.stats as { framesSent: number; framesReceived: number };
  t.ok(ws.framesSent === 6 && ws.framesReceived === 5, `worker stats ${JSON.stringify(done.stats)}`);

  const pending = rejection(r0.receive(1, FrameKind.GradientSlice, 1000, 0), 5000);
  child.send({ type: 'exit' });
  const e = await pending;
  t.ok(e instanceof PeerLostError && e.rank === 1, `the worker's exit fails the pending receive: ${String(e)}`);
  t.equal(await within(exited, 'worker exit'), 0, 'the worker exited cleanly');
  t.same(r0.stats().rejected, {});
  await r0.close();
});
