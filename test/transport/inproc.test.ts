// The in-process transport: the Transport contract without a wire (per-pair order, exactly
// once, payload copies the sender may reuse, owned aligned payloads on receive, argument
// checks, PeerLostError from a closed rank, TransportClosedError after close, abort).
import t from 'tap';
import { createInProcessMesh, InProcessHub } from '../../transport/inproc/index.js';
import { FrameKind, PeerLostError, TransportClosedError, WireDtype } from '../../transport/index.js';
import { logSink, pattern, rejection, sameBytes, stillPending } from './util.js';

const G = FrameKind.GradientSlice;
const W = FrameKind.WeightSlice;

t.test('every pair exchanges frames in order, exactly once', async (t) => {
  const sink = logSink();
  const mesh = createInProcessMesh(3, { jobId: '42', log: sink.log });
  t.equal(mesh.length, 3);
  mesh.forEach((m, r) => {
    t.equal(m.rank, r);
    t.equal(m.worldSize, 3);
    t.equal(m.jobId, '42');
  });
  const sizes = [0, 1, 7, 4096];
  const sends: Promise<void>[] = [];
  for (const a of mesh) {
    for (const b of mesh) {
      if (a === b) continue;
      for (let i = 0; i < sizes.length; i++) sends.push(a.send(b.rank, { kind: G, iteration: 5, slice: 1, dtype: WireDtype.Bytes, payload: pattern(sizes[i]!, a.rank * 10 + b.rank + i) }));
    }
  }
  await Promise.all(sends);
  let ok = 0;
  for (const b of mesh) {
    for (const a of mesh) {
      if (a === b) continue;
      for (let i = 0; i < sizes.length; i++) {
        const f = await b.receive(a.rank, G, 5, 1);
        if (f.sender === a.rank && f.jobId === '42' && f.iteration === 5 && f.slice === 1 && sameBytes(f.payload, pattern(sizes[i]!, a.rank * 10 + b.rank + i))) ok++;
      }
    }
  }
  t.equal(ok, 6 * sizes.length, 'every frame arrived once, in send order, intact');
  const s = mesh[0]!.stats();
  t.equal(s.framesSent, 2 * sizes.length);
  t.equal(s.framesReceived, 2 * sizes.length);
  t.equal(s.bytesSent, 2 * (sizes.reduce((x, y) => x + y, 0) + 36 * sizes.length), 'bytes count header + payload');
  t.same(s.rejected, {});
  t.equal(await stillPending(mesh[0]!.receive(1, G, 5, 1), 20), true, 'no frame is delivered twice');
  for (const m of mesh) await m.close();
});

t.test('payloads: copied at send, owned and aligned on receive, typed views accepted', async (t) => {
  const [a, b] = createInProcessMesh(2);
  const w = new Float32Array([1.5, -2, 3.25, 4]);
  const view = w.subarray(1, 3);
  await a!.send(1, { kind: W, iteration: 0, slice: 0, dtype: WireDtype.F32, payload: view });
  w.fill(99); // the sender reuses its buffer after send resolved
  const f = await b!.receive(0, W, 0, 0);
  t.equal(f.payload.byteOffset, 0, 'payload starts its buffer');
  t.equal(f.payload.buffer.byteLength, 8, 'payload owns its buffer');
  t.same(Array.from(new Float32Array(f.payload.buffer, 0, 2)), [-2, 3.25], 'the bytes sent, not the overwritten ones');
  await a!.close();
  await b!.close();
});

t.test('receives wait per key; same-key receives are served in call order', async (t) => {
  const [a, b] = createInProcessMesh(2);
  const r1 = b!.receive(0, G, 1, 0);
  const r2 = b!.receive(0, G, 1, 0);
  const other = b!.receive(0, G, 2, 0);
  await a!.send(1, { kind: G, iteration: 1, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array([1]) });
  await a!.send(1, { kind: G, iteration: 1, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array([2]) });
  t.same([...(await r1).payload, ...(await r2).payload], [1, 2]);
  t.equal(await stillPending(other, 20), true, 'a receive for another iteration is not served');
  await a!.send(1, { kind: G, iteration: 2, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array([3]) });
  t.same([...(await other).payload], [3]);
  // abort
  const ac = new AbortController();
  const aborted = b!.receive(0, W, 9, 9, { signal: ac.signal });
  ac.abort(new Error('no longer needed'));
  t.match(String(await rejection(aborted)), /no longer needed/, 'an aborted receive rejects with the reason');
  await a!.send(1, { kind: W, iteration: 9, slice: 9, dtype: WireDtype.Bytes, payload: new Uint8Array([4]) });
  t.same([...(await b!.receive(0, W, 9, 9)).payload], [4], 'the aborted receive did not take the frame');
  await a!.close();
  await b!.close();
});

t.test('bad sends and receives are refused with the reason', async (t) => {
  const [a] = createInProcessMesh(2, { jobId: '7', maxPayloadBytes: 16, log: () => {} });
  const ok = { kind: G, iteration: 0, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array(4) };
  const cases: [string, Promise<unknown>, RegExp][] = [
    ['to itself', a!.send(0, ok), /to must be a rank/],
    ['to out of range', a!.send(2, ok), /to must be a rank/],
    ['Hello kind', a!.send(1, { ...ok, kind: FrameKind.Hello }), /kind/],
    ['Heartbeat kind', a!.send(1, { ...ok, kind: FrameKind.Heartbeat }), /kind/],
    ['negative iteration', a!.send(1, { ...ok, iteration: -1 }), /iteration/],
    ['slice 2^32', a!.send(1, { ...ok, slice: 2 ** 32 }), /slice/],
    ['bad dtype', a!.send(1, { ...ok, dtype: 9 as WireDtype }), /dtype/],
    ['payload past max', a!.send(1, { ...ok, payload: new Uint8Array(17) }), /exceeds the maximum of 16/],
    ['F32 of 6 bytes', a!.send(1, { ...ok, dtype: WireDtype.F32, payload: new Uint8Array(6) }), /multiple of 4/],
    ['other job', a!.send(1, { ...ok, jobId: '8' }), /job id 8/],
    ['receive from itself', a!.receive(0, G, 0, 0), /from must be a rank/],
    ['receive Heartbeat', a!.receive(1, FrameKind.Heartbeat, 0, 0), /kind/],
  ];
  for (const [what, p, re] of cases) {
    const e = await rejection(p);
    t.ok(e instanceof RangeError && re.test(e.message), `${what}: ${String(e)}`);
  }
  await a!.send(1, { ...ok, jobId: '07' }); // same job, other spelling
  t.equal(a!.stats().framesSent, 1, 'refused sends are not counted');
  t.throws(() => createInProcessMesh(2, { jobId: 'x' }), /job id/);
  t.throws(() => createInProcessMesh(0), /worldSize/);
});

t.test('a closed rank fails the receives that need it; close() fails our own', async (t) => {
  const sink = logSink();
  const lost: number[] = [];
  const hub = new InProcessHub(3, { log: sink.log, onPeerLost: (r, e) => { if (e instanceof PeerLostError) lost.push(r); } });
  const [a, b, c] = hub.endpoints;
  await c!.send(0, { kind: G, iteration: 3, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array([7]) });
  const pending = a!.receive(2, G, 4, 0);
  const fromB = a!.receive(1, G, 4, 0);
  await c!.close();
  const e = await rejection(pending);
  t.ok(e instanceof PeerLostError && e.rank === 2 && /rank 2/.test(e.message), `pending receive: ${String(e)}`);
  const q = await a!.receive(2, G, 3, 0);
  t.same([...q.payload], [7], 'a frame that arrived before the loss is still delivered');
  t.ok(await rejection(a!.receive(2, G, 3, 0)) instanceof PeerLostError, 'a later receive fails');
  t.ok(await rejection(a!.send(2, { kind: G, iteration: 0, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array(0) })) instanceof PeerLostError, 'a send to it fails');
  t.same(lost.sort(), [2, 2], 'onPeerLost on both other ranks');
  t.equal(a!.stats().peersLost, 1);
  t.ok(sink.lines.some((l) => /rank 2 lost/.test(l)), 'the loss is logged');
  t.equal(await stillPending(fromB, 20), true, 'receives from live ranks are not affected');
  await a!.close();
  const ce = await rejection(fromB);
  t.ok(ce instanceof TransportClosedError, `close() rejects pending receives: ${String(ce)}`);
  t.ok(await rejection(a!.send(1, { kind: G, iteration: 0, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array(0) })) instanceof TransportClosedError, 'send after close');
  await a!.close(); // idempotent
  await b!.close();
});
