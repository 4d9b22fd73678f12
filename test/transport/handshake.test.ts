// The handshake: the right secret connects; a wrong secret, another job, a rank outside the
// world, a rank already connected, a rank that should have been dialed, a handshake that
// does not finish in time, or too many at once are refused with a logged, counted reason;
// no frame from a refused peer is ever delivered.
import t from 'tap';
import { createHmac } from 'node:crypto';
import { HandshakeError, HandshakeStep, handshakeProof } from '../../transport/handshake.js';
import { FrameKind, WireDtype } from '../../transport/transport.js';
import { JOB, RawPeer, closeAll, closeEverything, dataFrame, tcpMesh, tcpRank } from './peers.js';
import { logSink, rejection, sameBytes, sleep, within } from './util.js';

const G = FrameKind.GradientSlice;

const rank = tcpRank;
t.teardown(closeEverything);

t.test('the proof is HMAC-SHA256(secret, "squall-v1" | job u64 LE | rank u32 LE | peer nonce)', async (t) => {
  const nonce = new Uint8Array(32).map((_, i) => i);
  const job = Buffer.alloc(8);
  job.writeBigUInt64LE(4242n);
  const r = Buffer.alloc(4);
  r.writeUInt32LE(3);
  const want = createHmac('sha256', 'k').update(Buffer.concat([Buffer.from('squall-v1'), job, r, nonce])).digest();
  t.ok(sameBytes(handshakeProof(new TextEncoder().encode('k'), '4242', 3, nonce), want));
});

t.test('the right secret connects', async (t) => {
  const ts = await tcpMesh(2);
  t.ok(ts[0]!.isConnected(1) && ts[1]!.isConnected(0), 'both sides admitted the other');
  await ts[1]!.send(0, { kind: G, iteration: 0, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array([5]) });
  t.same([...(await ts[0]!.receive(1, G, 0, 0)).payload], [5]);
  t.same(ts[0]!.stats().rejected, {});
  t.same(ts[1]!.stats().rejected, {});
  await closeAll(ts);
});

t.test('a wrong secret is refused, counted and logged; the rank can then join honestly', async (t) => {
  const sink = logSink();
  const r0 = await rank(0, 2, { log: sink.log });
  const bad = await rank(1, 2, { secret: 'not the secret' });
  const e = await rejection(bad.connect([r0.addressString]));
  t.ok(e instanceof HandshakeError && e.reason === 'refused-by-peer' && /wrong-secret/.test(e.message), `the intruder's connect fails: ${String(e)}`);
  t.equal(r0.stats().rejected['handshake:wrong-secret'], 1, 'counted as handshake:wrong-secret');
  t.equal(bad.stats().rejected['handshake:refused-by-peer'], 1, 'the intruder counts its refusal');
  t.ok(sink.lines.some((l) => /rank 1 .*\(handshake:wrong-secret\).*does not hold this job's secret/.test(l)), `logged: ${sink.lines.join(' | ')}`);
  t.notOk(r0.isConnected(1), 'not admitted');
  const good = await rank(1, 2);
  await within(Promise.all([good.connect([r0.addressString]), r0.connect([])]), 'honest rank 1 joins');
  t.ok(r0.isConnected(1));
  await closeAll([r0, bad, good]);
});

t.test('another job is refused on both sides', async (t) => {
  const r0 = await rank(0, 2);
  const other = await rank(1, 2, { jobId: '7' });
  const e = await rejection(other.connect([r0.addressString]));
  t.ok(e instanceof HandshakeError && e.reason === 'wrong-job', `connect fails: ${String(e)}`);
  await sleep(50);
  t.equal(r0.stats().rejected['handshake:wrong-job'], 1, 'counted as handshake:wrong-job');
  await closeAll([r0, other]);
});

t.test('a rank outside the world, the own rank, or one that must be dialed is refused', async (t) => {
  const r1 = await rank(1, 3);
  const port = r1.address.port;
  const cases: [string, number, string][] = [
    ['rank 5 of a world of 3', 5, 'rank-out-of-range'],
    ['its own rank 1', 1, 'unexpected-rank'],
    ['rank 0 dialing in (rank 1 dials 0)', 0, 'unexpected-rank'],
  ];
  for (const [what, claimed, reason] of cases) {
    const p = await RawPeer.connect(port);
    const ok = await p.handshake({ rank: claimed, worldSize: 3 }).catch((err: unknown) => err);
    await within(p.closed, `${what}: the socket is closed`);
    t.ok(ok instanceof HandshakeError && ok.message.includes(reason), `${what}: ${String(ok)}`);
    const refusal = p.frames.find((f) => f.kind === FrameKind.Hello && f.iteration === HandshakeStep.Refuse);
    t.equal(refusal && new TextDecoder().decode(refusal.payload), reason, `${what}: told why (${reason})`);
  }
  const s = r1.stats().rejected;
  t.equal(s['handshake:rank-out-of-range'], 1);
  t.equal(s['handshake:unexpected-rank'], 2);
  await r1.close();
});

t.test('a rank already connected is refused', async (t) => {
  const ts = await tcpMesh(2);
  const dup = await rank(1, 2);
  const e = await rejection(dup.connect([ts[0]!.addressString]));
  t.ok(e instanceof HandshakeError && /duplicate-rank/.test(e.message), `a second rank 1 (right secret) is refused: ${String(e)}`);
  const raw = await RawPeer.connect(ts[0]!.address.port);
  const r = await raw.handshake({ rank: 1, worldSize: 2 }).catch((err: unknown) => err);
  t.ok(r instanceof HandshakeError, 'and so is a raw one');
  t.equal(ts[0]!.stats().rejected['handshake:duplicate-rank'], 2, 'counted twice');
  t.ok(ts[0]!.isConnected(1), 'the first connection is untouched');
  await ts[1]!.send(0, { kind: G, iteration: 1, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array([1]) });
  t.same([...(await ts[0]!.receive(1, G, 1, 0)).payload], [1], 'and still carries frames');
  await closeAll([...ts, dup]);
});

t.test('a handshake that does not finish in time is refused', async (t) => {
  const r0 = await rank(0, 2, { handshakeTimeoutMs: 200 });
  const t0 = Date.now();
  const silent = await RawPeer.connect(r0.address.port);
  const half = await RawPeer.connect(r0.address.port);
  half.write(new Uint8Array([0x53, 0x51])); // two bytes of a header, then nothing
  await within(Promise.all([silent.closed, half.closed]), 'both closed by the server', 3000);
  const dt = Date.now() - t0;
  t.ok(dt >= 150 && dt < 2000, `closed after ${dt} ms (timeout 200 ms)`);
  t.equal(r0.stats().rejected['handshake:timeout'], 2, 'counted as handshake:timeout');
  await r0.close();
});

t.test('no frame from a refused peer is ever delivered', async (t) => {
  const r0 = await rank(0, 2);
  // Wrong secret, with data frames pipelined right behind the proof (one write).
  const a = await RawPeer.connect(r0.address.port);
  a.sendBadHandshake({ rank: 1, worldSize: 2 });
  for (let i = 0; i < 3; i++) a.write(dataFrame(1, new Uint8Array([0xee, i])));
  await within(a.closed, 'refused and closed');
  // Data before any handshake.
  const b = await RawPeer.connect(r0.address.port);
  b.write(dataFrame(1, new Uint8Array([0xdd])));
  await within(b.closed, 'closed');
  const s = r0.stats();
  t.equal(s.rejected['handshake:wrong-secret'], 1);
  t.equal(s.rejected['frame:kind'], 1, 'a data frame during the handshake is a bad kind');
  t.equal(s.framesReceived, 0, 'nothing was received');
  // The honest rank 1 joins; the first frame rank 0 gets on that key is the honest one.
  const r1 = await rank(1, 2);
  await r1.connect([r0.addressString]);
  await r1.send(0, { kind: G, iteration: 0, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array([1, 2, 3]) });
  t.same([...(await r0.receive(1, G, 0, 0)).payload], [1, 2, 3], 'only the honest frame is delivered');
  t.equal(r0.stats().framesReceived, 1);
  await closeAll([r0, r1]);
});

t.test('too many handshakes at once are dropped', async (t) => {
  const r0 = await rank(0, 2, { maxPendingHandshakes: 2, handshakeTimeoutMs: 2000 });
  const peers = [await RawPeer.connect(r0.address.port), await RawPeer.connect(r0.address.port)];
  await sleep(30);
  const third = await RawPeer.connect(r0.address.port);
  await within(third.closed, 'the third is dropped');
  t.equal(r0.stats().rejected['handshake:too-many-pending'], 1);
  t.notOk(peers[0]!.isClosed, 'the first two wait for their handshake');
  for (const p of peers) p.close();
  await r0.close();
});
