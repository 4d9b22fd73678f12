// Rank 1 of a 2-rank TCP mesh in its own process, for tcp-process.test.ts (not a test file).
// Protocol over the fork IPC channel: it listens and sends {type:'listening', address}; on
// {type:'book', book} it connects, echoes every GradientSlice frame it receives back as a
// WeightSlice of the same iteration (bytes unchanged) for iterations 0 .. count-1, sends
// one Control frame of its own, reports {type:'done', stats}; on {type:'exit'} it closes.
import { listenTcp } from '../../transport/tcp/index.js';
import { FrameKind, WireDtype } from '../../transport/transport.js';

const secret = process.env.SQUALL_TEST_SECRET ?? '';
const jobId = process.env.SQUALL_TEST_JOB ?? '0';
const send = (m: unknown): void => {
  process.send?.(m);
};

const t = await listenTcp({ rank: 1, worldSize: 2, secret, jobId, host: '127.0.0.1', port: 0, log: () => {} });
process.on('message', (m: { type: string; book?: string[]; count?: number }) => {
  if (m.type === 'book') {
    void (async () => {
      try {
        await t.connect(m.book!);
        for (let i = 0; i < m.count!; i++) {
          const f = await t.receive(0, FrameKind.GradientSlice, i, 0);
          await t.send(0, { kind: FrameKind.WeightSlice, iteration: i, slice: 0, dtype: f.dtype, payload: f.payload });
        }
        const mine = new Float32Array(1000).map((_, i) => i * 0.5);
        await t.send(0, { kind: FrameKind.Control, iteration: 0, slice: 1, dtype: WireDtype.F32, payload: mine });
        send({ type: 'done', stats: t.stats() });
      } catch (err) {
        send({ type: 'error', message: err instanceof Error ? err.message : String(err) });
      }
    })();
  } else if (m.type === 'exit') {
    void t.close().then(() => process.exit(0));
  }
});
send({ type: 'listening', address: t.addressString, pid: process.pid });
