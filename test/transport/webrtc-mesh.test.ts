// The WebRTC mesh in one process over in-process signalling, once per implementation that
// loads here (@roamhq/wrtc, node-datachannel; one that does not is skipped with the reason):
// 2 and 3 ranks exchange frames of 0 B, 1 B, 300 KiB (split into two messages) and 8 MiB
// (32 messages) in both directions at once, bytes compared, order kept; signalling offered
// only 127.0.0.1 host candidates; many concurrent sends of mixed sizes keep their order;
// the throughput of one channel is logged. Every peer connection is closed at the end, so
// the process exits.
import t from 'tap';
import { FrameKind, WireDtype } from '../../transport/transport.js';
import { IMPLEMENTATIONS, closeAll, closeEverything, mesh, relayedAddresses, skipReason } from './webrtc-peers.js';
import { pattern, sameBytes, stillPending, within, type Tap } from './util.js';
import type { WebRtcTransport } from '../../transport/webrtc/index.js';

const G = FrameKind.GradientSlice;
const KiB = 1024;
const MiB = 1 << 20;
const SIZES = [0, 1, 300 * KiB, 8 * MiB];
t.teardown(closeEverything);

/** Every ordered pair of `ts` sends SIZES to the other at once; returns the faults found. */
async function exchange(ts: WebRtcTransport[], t: Tap): Promise<void> {
  const src = ts.map((a) => pattern(8 * MiB, 300 + a.rank));
  const bad: string[] = [];
  let received = 0;
  const t0 = Date.now();
  await within(Promise.all(ts.flatMap((a) => ts.filter((b) => b !== a).flatMap((b) => [
    (async () => {
      for (const n of SIZES) await a.send(b.rank, { kind: G, iteration: 3, slice: b.rank, dtype: WireDtype.Bytes, payload: src[a.rank]!.subarray(0, n) });
    })(),
    (async () => {
      for (const n of SIZES) {
        const f = await b.receive(a.rank, G, 3, b.rank);
        received++;
        if (f.payload.byteLength !== n) bad.push(`${a.rank}->${b.rank}: got ${f.payload.byteLength} bytes, expected ${n} (order)`);
        else if (!sameBytes(f.payload, src[a.rank]!.subarray(0, n))) bad.push(`${a.rank}->${b.rank}: ${n} bytes differ`);
        else if (f.sender !== a.rank || f.jobId !== a.jobId || f.payload.byteOffset !== 0) bad.push(`${a.rank}->${b.rank}: header ${JSON.stringify({ ...f, payload: null })}`);
      }
    })(),
  ]))), 'exchange', 20_000);
  const flows = ts.length * (ts.length - 1);
  const total = SIZES.reduce((x, y) => x + y, 0);
  const ms = Date.now() - t0;
  t.same(bad, [], `${received} frames arrived intact and in order in ${ms} ms (${(flows * total / 1e6 / (ms / 1000)).toFixed(1)} MB/s over ${flows} directed flows)`);
  t.equal(received, flows * SIZES.length);
  for (const x of ts) {
    const s = x.stats();
    const out = (ts.length - 1) * SIZES.length;
    t.ok(s.framesSent === out && s.framesReceived === out && s.bytesSent === (ts.length - 1) * (total + SIZES.length * 36) && s.bytesReceived === s.bytesSent,
      `rank ${x.rank} stats ${JSON.stringify(s)}`);
    t.same(s.rejected, {});
  }
}

for (const impl of IMPLEMENTATIONS) {
  const skip = await skipReason(impl);
  t.test(impl, { skip }, async (t) => {
    t.test('2 ranks: 0 B, 1 B, 300 KiB, 8 MiB both ways at once; only 127.0.0.1 host candidates signalled', async (t) => {
      const t0 = Date.now();
      const m = await within(mesh(2, impl), 'connect', 15_000);
      t.comment(`${impl}: 2-rank mesh up in ${Date.now() - t0} ms`);
      t.ok(m.transports.every((x) => x.implementationName === impl && x.isConnected(1 - x.rank)), `both use ${impl} and are connected`);
      const addrs = relayedAddresses(m.relayed);
      t.ok(addrs.length > 0 && addrs.every((a) => a === '127.0.0.1'), `signalled candidate addresses: ${[...new Set(addrs)].join(', ')}`);
      t.ok(m.relayed.every((r) => (r.message as { type: string }).type !== 'candidate' || / typ host/.test((r.message as { candidate: string }).candidate)), 'host candidates only');
      await exchange(m.transports, t);
      await closeAll(m.transports);
    });

    t.test('one channel: 32 MiB one way (throughput logged)', async (t) => {
      const m = await within(mesh(2, impl), 'connect', 15_000);
      const [a, b] = m.transports;
      const buf = pattern(8 * MiB, 9);
      const n = 4;
      const t0 = process.hrtime.bigint();
      const got = (async () => {
        let ok = 0;
        for (let i = 0; i < n; i++) if (sameBytes((await b!.receive(0, G, 1, i)).payload, buf)) ok++;
        return ok;
      })();
      for (let i = 0; i < n; i++) await a!.send(1, { kind: G, iteration: 1, slice: i, dtype: WireDtype.Bytes, payload: buf });
      const ok = await within(got, 'receive', 20_000);
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      t.equal(ok, n, 'all intact');
      t.comment(`${impl}: one data channel carried ${n * 8} MiB in ${(s * 1000).toFixed(0)} ms = ${((n * 8 * MiB) / 1e6 / s).toFixed(1)} MB/s`);
      await closeAll(m.transports);
    });

    t.test('3 ranks: every pair exchanges 0 B, 1 B, 300 KiB, 8 MiB both ways at once', async (t) => {
      const t0 = Date.now();
      const m = await within(mesh(3, impl), 'connect', 15_000);
      t.comment(`${impl}: 3-rank mesh up in ${Date.now() - t0} ms`);
      t.ok(relayedAddresses(m.relayed).every((a) => a === '127.0.0.1'), 'only 127.0.0.1 signalled');
      await exchange(m.transports, t);
      await closeAll(m.transports);
    });

    t.test('many concurrent sends of mixed sizes keep their order; per-key queues', async (t) => {
      const m = await within(mesh(2, impl), 'connect', 15_000);
      const [a, b] = m.transports;
      const size = (i: number): number => (i % 5 === 0 ? 300 * KiB + i * 4 : 4 + i);
      const n = 60;
      const sends: Promise<void>[] = [];
      for (let i = 0; i < n; i++) {
        const p = pattern(size(i), i);
        new DataView(p.buffer).setUint32(0, i, true);
        sends.push(a!.send(1, { kind: G, iteration: 2, slice: i % 2, dtype: WireDtype.Bytes, payload: p })); // not awaited one by one
      }
      await within(Promise.all(sends), 'sends', 15_000);
      const seq = (f: { payload: Uint8Array }): number => new DataView(f.payload.buffer, f.payload.byteOffset).getUint32(0, true);
      const odd: number[] = [];
      for (let i = 1; i < n; i += 2) odd.push(seq(await within(b!.receive(0, G, 2, 1), 'receive odd')));
      const even: number[] = [];
      for (let i = 0; i < n; i += 2) {
        const f = await within(b!.receive(0, G, 2, 0), 'receive even');
        const k = seq(f);
        const want = pattern(size(k), k);
        new DataView(want.buffer).setUint32(0, k, true);
        even.push(sameBytes(f.payload, want) ? k : -1);
      }
      t.same(odd, Array.from({ length: n / 2 }, (_, i) => 2 * i + 1), 'slice 1 (read first) in send order');
      t.same(even, Array.from({ length: n / 2 }, (_, i) => 2 * i), 'slice 0 in send order, intact');
      t.equal(await stillPending(b!.receive(0, G, 2, 0), 30), true, 'nothing extra');
      await closeAll(m.transports);
    });
  });
}
