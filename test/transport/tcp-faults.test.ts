// Faults on a TCP mesh: a frame with a bad checksum (or sender, job, kind, length) injected
// on a raw socket after an honest handshake is rejected, counted, and its connection closed
// (the peer is lost; the good frames before it are delivered); a peer that closes or goes
// silent fails pending and later receives with PeerLostError naming it, within the timeout;
// heartbeats keep an idle mesh alive; close() fails what is pending on the closing side.
import t from 'tap';
import { encodeFrameBytes } from '../../transport/frame.js';
import type { TcpTransport, TcpTransportOptions } from '../../transport/tcp/index.js';
import { FrameKind, PeerLostError, TransportClosedError, WireDtype } from '../../transport/transport.js';
import { JOB, RawPeer, closeAll, closeEverything, dataFrame, tcpMesh, tcpRank } from './peers.js';
import { logSink, rejection, sleep, stillPending, within } from './util.js';

const G = FrameKind.GradientSlice;

const rank = tcpRank;
t.teardown(closeEverything);

/** Rank 0 of a world of 2 and a raw peer that passed the handshake as rank 1. */
async function withRawRank1(extra: Partial<TcpTransportOptions> = {}): Promise<{ r0: TcpTransport; raw: RawPeer }> {
  const r0 = await rank(0, 2, extra);
  const raw = await RawPeer.connect(r0.address.port);
  if (!(await raw.handshake({ rank: 1, worldSize: 2 }))) throw new Error('raw handshake failed');
  await within(r0.connect([]), 'rank 0 sees rank 1');
  return { r0, raw };
}

t.test('a bad checksum after the handshake is rejected, counted, and closes the connection', async (t) => {
  const sink = logSink();
  const { r0, raw } = await withRawRank1({ log: sink.log });
  const first = r0.receive(1, G, 0, 0);
  const second = rejection(r0.receive(1, G, 1, 0));
  raw.write(dataFrame(1, new Uint8Array([1, 2, 3]), 0));
  const bad = dataFrame(1, new Uint8Array([4, 5, 6]), 1);
  bad[bad.length - 1]! ^= 0x40; // flip a payload bit: the CRC no longer matches
  raw.write(bad);
  raw.write(dataFrame(1, new Uint8Array([7]), 2)); // behind the bad one: never delivered
  t.same([...(await within(first, 'good frame')).payload], [1, 2, 3], 'the good frame before it is delivered');
  const e = await second;
  t.ok(e instanceof PeerLostError && e.rank === 1 && /checksum/.test(e.message), `the receive waiting on it fails: ${String(e)}`);
  await within(raw.closed, 'the connection is closed');
  const s = r0.stats();
  t.equal(s.rejected['frame:checksum'], 1, 'counted as frame:checksum');
  t.equal(s.framesReceived, 1);
  t.equal(s.peersLost, 1);
  t.ok(sink.lines.some((l) => /refused rank 1 .*\(frame:checksum\)/.test(l)), 'logged');
  t.ok(await rejection(r0.receive(1, G, 2, 0)) instanceof PeerLostError, 'the frame behind it is not delivered');
  await r0.close();
});

t.test('other bad frames after the handshake: sender, job, kind, length', async (t) => {
  const payload = new Uint8Array(8);
  const cases: [string, Uint8Array, string, Partial<TcpTransportOptions>?][] = [
    ['a frame claiming another sender', encodeFrameBytes({ kind: G, jobId: JOB, iteration: 0, sender: 0, slice: 0, dtype: WireDtype.Bytes, payload }), 'frame:sender'],
    ['a frame of another job', encodeFrameBytes({ kind: G, jobId: '1', iteration: 0, sender: 1, slice: 0, dtype: WireDtype.Bytes, payload }), 'frame:jobId'],
    ['a Hello after the handshake', encodeFrameBytes({ kind: FrameKind.Hello, jobId: JOB, iteration: 0, sender: 1, slice: 0, dtype: WireDtype.Bytes, payload }), 'frame:kind'],
    ['a payload past the maximum', encodeFrameBytes({ kind: G, jobId: JOB, iteration: 0, sender: 1, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array(65) }), 'frame:length', { maxPayloadBytes: 64 }],
    ['garbage', new Uint8Array(40).fill(0x41), 'frame:magic'],
  ];
  for (const [what, bytes, key, extra] of cases) {
    const { r0, raw } = await withRawRank1(extra);
    const pending = r0.receive(1, G, 0, 0);
    raw.write(bytes);
    const e = await rejection(pending);
    await within(raw.closed, `${what}: closed`);
    t.ok(e instanceof PeerLostError && r0.stats().rejected[key] === 1 && r0.stats().framesReceived === 0, `${what}: ${key}, ${String(e)}`);
    await r0.close();
  }
});

t.test('a peer that closes fails pending and later receives from it, not others', async (t) => {
  const lost: number[] = [];
  const ts = await tcpMesh(3, { peerTimeoutMs: 5000, onPeerLost: (r) => lost.push(r) });
  const [a, b, c] = ts;
  await c!.send(0, { kind: G, iteration: 1, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array([9]) });
  const pa = rejection(a!.receive(2, G, 2, 0), 3000);
  const pb = rejection(b!.receive(2, G, 2, 0), 3000);
  const ab = a!.receive(1, G, 2, 0);
  const t0 = Date.now();
  await c!.close();
  const [ea, eb] = await Promise.all([pa, pb]);
  const dt = Date.now() - t0;
  t.ok(ea instanceof PeerLostError && ea.rank === 2 && /rank 2/.test(ea.message), `rank 0's pending receive: ${String(ea)}`);
  t.ok(eb instanceof PeerLostError && eb.rank === 2, `rank 1's pending receive: ${String(eb)}`);
  t.ok(dt < 2000, `within ${dt} ms (a close is seen at once, not after the 5 s timeout)`);
  t.same([...(await a!.receive(2, G, 1, 0)).payload], [9], 'a frame that arrived before the close is still delivered');
  t.ok(await rejection(a!.receive(2, G, 3, 0)) instanceof PeerLostError, 'a later receive fails');
  t.ok(await rejection(a!.send(2, { kind: G, iteration: 0, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array(1) })) instanceof PeerLostError, 'a send to it fails');
  t.same(lost.sort(), [2, 2], 'onPeerLost once on each survivor');
  t.equal(a!.stats().peersLost, 1);
  t.ok(await stillPending(ab, 20), 'a receive from a live rank still waits');
  await b!.send(0, { kind: G, iteration: 2, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array([1]) });
  t.same([...(await ab).payload], [1], 'and the survivors still talk');
  // An abrupt disconnect (no FIN exchange) of a raw peer.
  const { r0, raw } = await withRawRank1();
  const p = rejection(r0.receive(1, G, 0, 0), 3000);
  raw.socket.resetAndDestroy();
  t.ok(await p instanceof PeerLostError, 'a reset connection loses the peer too');
  await closeAll([a!, b!, r0]);
});

t.test('a peer that goes silent is lost after peerTimeoutMs; heartbeats keep a quiet mesh alive', async (t) => {
  const { r0, raw } = await withRawRank1({ peerTimeoutMs: 400 });
  const t0 = Date.now();
  const e = await rejection(r0.receive(1, G, 0, 0), 3000);
  const dt = Date.now() - t0;
  t.ok(e instanceof PeerLostError && e.rank === 1 && /silent/.test(e.message), `${String(e)}`);
  t.ok(dt >= 350 && dt < 1500, `after ${dt} ms (timeout 400 ms)`);
  t.ok(raw.frames.some((f) => f.kind === FrameKind.Heartbeat), 'rank 0 sent heartbeats meanwhile');
  await within(raw.closed, 'the silent peer is disconnected');
  await r0.close();

  const ts = await tcpMesh(2, { peerTimeoutMs: 500 });
  await sleep(1200);
  t.ok(ts[0]!.isConnected(1) && ts[1]!.isConnected(0), 'an idle mesh stays up for 1.2 s with a 500 ms timeout');
  const s = ts[0]!.stats();
  t.ok(s.heartbeatsSent >= 3 && s.heartbeatsReceived >= 3 && s.peersLost === 0, `heartbeats ${s.heartbeatsSent} sent, ${s.heartbeatsReceived} received`);
  await ts[1]!.send(0, { kind: G, iteration: 0, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array([3]) });
  t.same([...(await ts[0]!.receive(1, G, 0, 0)).payload], [3]);
  await closeAll(ts);
});

t.test('close() fails pending receives and later calls on the closing side', async (t) => {
  const ts = await tcpMesh(2);
  const p = rejection(ts[0]!.receive(1, G, 0, 0));
  await ts[0]!.close();
  t.ok(await p instanceof TransportClosedError, 'pending receive');
  t.ok(await rejection(ts[0]!.send(1, { kind: G, iteration: 0, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array(1) })) instanceof TransportClosedError, 'send');
  t.ok(await rejection(ts[0]!.receive(1, G, 0, 0)) instanceof TransportClosedError, 'receive');
  await ts[0]!.close();
  await ts[1]!.close();
});

t.test('connect fails cleanly when a rank never shows up', async (t) => {
  const r1 = await rank(1, 3, { connectTimeoutMs: 300 });
  const r0 = await rank(0, 3);
  const e = await rejection(r1.connect([r0.addressString, '', '']), 3000);
  t.ok(e instanceof Error && /rank\(s\) 2/.test(e.message), `names the missing rank: ${String(e)}`);
  await sleep(50);
  t.notOk(r0.isConnected(1), 'the failed rank closed its side');
  await closeAll([r0, r1]);
  const r2 = await rank(2, 3);
  const e2 = await rejection(r2.connect({ 0: 'nohost' }));
  t.ok(e2 instanceof RangeError && /rank 0/.test(e2.message), `a malformed address book entry is refused: ${String(e2)}`);
  const e3 = await rejection(r2.connect({ 0: '127.0.0.1:1' }));
  t.ok(e3 instanceof RangeError && /rank 1/.test(e3.message), `a missing entry is refused: ${String(e3)}`);
  await r2.close();
});
