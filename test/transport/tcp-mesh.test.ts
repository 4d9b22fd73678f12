// The TCP mesh of 3 ranks in this process (ephemeral ports on 127.0.0.1): every pair
// exchanges frames of 0 B, 1 B, 1 MiB and 32 MiB in both directions at once with the bytes
// compared; order per pair holds across the copy and zero-copy write paths; per-key queues;
// backpressure: a sender of 100 x 1 MiB to a receiver that reads slowly waits for it.
import t from 'tap';
import { FrameKind, WireDtype } from '../../transport/transport.js';
import { closeAll, closeEverything, tcpMesh } from './peers.js';
import { pattern, sameBytes, sleep, stillPending, within } from './util.js';

const G = FrameKind.GradientSlice;
const MiB = 1 << 20;
t.teardown(closeEverything);

t.test('every pair exchanges 0 B, 1 B, 1 MiB, 32 MiB both ways at once, intact and in order', async (t) => {
  const ts = await tcpMesh(3);
  const sizes = [0, 1, MiB, 32 * MiB];
  const src = ts.map((a) => pattern(32 * MiB, 100 + a.rank));
  const bad: string[] = [];
  let received = 0;
  const t0 = Date.now();
  await within(Promise.all(ts.flatMap((a) => ts.filter((b) => b !== a).flatMap((b) => [
    (async () => {
      for (const n of sizes) await a.send(b.rank, { kind: G, iteration: 7, slice: b.rank, dtype: WireDtype.Bytes, payload: src[a.rank]!.subarray(0, n) });
    })(),
    (async () => {
      for (const n of sizes) {
        const f = await b.receive(a.rank, G, 7, b.rank);
        received++;
        if (f.payload.byteLength !== n) bad.push(`${a.rank}->${b.rank}: got ${f.payload.byteLength} bytes, expected ${n} (order)`);
        else if (!sameBytes(f.payload, src[a.rank]!.subarray(0, n))) bad.push(`${a.rank}->${b.rank}: ${n} bytes differ`);
        else if (f.sender !== a.rank || f.jobId !== a.jobId || f.payload.byteOffset !== 0) bad.push(`${a.rank}->${b.rank}: header ${JSON.stringify({ ...f, payload: null })}`);
      }
    })(),
  ]))), 'exchange', 25_000);
  t.same(bad, [], `${received} frames arrived intact, in order, in ${Date.now() - t0} ms`);
  t.equal(received, 6 * sizes.length);
  const total = sizes.reduce((x, y) => x + y, 0);
  for (const x of ts) {
    const s = x.stats();
    t.ok(s.framesSent === 8 && s.framesReceived === 8 && s.bytesSent === 2 * (total + 4 * 36) && s.bytesReceived === s.bytesSent,
      `rank ${x.rank} stats ${JSON.stringify(s)}`);
    t.same(s.rejected, {});
  }
  await closeAll(ts);
});

t.test('order per pair across small (copied) and large (zero-copy) frames; per-key queues', async (t) => {
  const ts = await tcpMesh(2);
  const [a, b] = ts;
  const n = 200;
  const sends: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const p = pattern(i % 3 === 0 ? 100_000 + i * 4 : 4 + i, i);
    new DataView(p.buffer).setUint32(0, i, true);
    // two keys, alternating; not awaited one by one
    sends.push(a!.send(1, { kind: G, iteration: 1, slice: i % 2, dtype: WireDtype.Bytes, payload: p }));
  }
  await within(Promise.all(sends), 'sends');
  const seq = (f: { payload: Uint8Array }): number => new DataView(f.payload.buffer, f.payload.byteOffset).getUint32(0, true);
  const odd: number[] = [];
  for (let i = 1; i < n; i += 2) odd.push(seq(await b!.receive(0, G, 1, 1)));
  const even: number[] = [];
  for (let i = 0; i < n; i += 2) {
    const f = await b!.receive(0, G, 1, 0);
    const k = seq(f);
    const want = pattern(k % 3 === 0 ? 100_000 + k * 4 : 4 + k, k);
    new DataView(want.buffer).setUint32(0, k, true);
    even.push(sameBytes(f.payload, want) ? k : -1);
  }
  t.same(odd, Array.from({ length: n / 2 }, (_, i) => 2 * i + 1), 'slice 1 (read first) in send order');
  t.same(even, Array.from({ length: n / 2 }, (_, i) => 2 * i), 'slice 0 in send order, intact');
  t.equal(await stillPending(b!.receive(0, G, 1, 0), 30), true, 'nothing extra');
  await closeAll(ts);
});

t.test('backpressure: 100 x 1 MiB to a receiver that reads slowly', async (t) => {
  const ts = await tcpMesh(2, (r) => (r === 1 ? { maxQueuedBytes: 2 * MiB } : {}));
  const [a, b] = ts;
  const buf = pattern(MiB, 5); // one buffer, reused once each send resolves
  let sent = 0;
  const sender = (async () => {
    for (let i = 0; i < 100; i++) {
      new DataView(buf.buffer).setUint32(0, i, true);
      await a!.send(1, { kind: G, iteration: 3, slice: 0, dtype: WireDtype.Bytes, payload: buf });
      sent++;
    }
  })();
  await sleep(400);
  const stalledAt = sent;
  const queued = b!.stats().bytesReceived;
  t.ok(stalledAt < 20, `the sender waits while nobody reads: ${stalledAt} of 100 sends resolved after 400 ms`);
  t.ok(queued <= 2 * MiB + 2 * MiB, `the receiver stopped reading at ${(queued / MiB).toFixed(1)} MiB (limit 2 MiB)`);
  t.ok(await stillPending(sender, 1), 'the sender is still waiting');
  let maxLead = 0;
  let wrong = 0;
  const expect = pattern(MiB, 5);
  for (let i = 0; i < 100; i++) {
    const f = await within(b!.receive(0, G, 3, 0), `receive ${i}`);
    new DataView(expect.buffer).setUint32(0, i, true);
    if (!sameBytes(f.payload, expect)) wrong++;
    maxLead = Math.max(maxLead, sent - i);
    if (i % 10 === 0) await sleep(10); // a slow reader
  }
  await within(sender, 'sender');
  t.equal(wrong, 0, 'all 100 intact and in order (the reused buffer was not overwritten in flight)');
  t.ok(maxLead < 20, `the sender never ran more than ${maxLead} frames ahead of the reader`);
  await closeAll(ts);
});
