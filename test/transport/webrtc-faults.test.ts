// Faults of the WebRTC mesh, once per implementation that loads here: a rank with the wrong
// secret is refused (both ends' connect fails, counted by reason); a peer that closes, and
// a peer that goes silent (heartbeat timeout), are lost with PeerLostError naming the rank;
// close() fails pending sends with TransportClosedError; garbage signalling is counted and
// ignored. Without a mesh: option checks, an implementation that cannot load names its npm
// package, and a pair of different implementations (wrtc offering, node-datachannel
// answering) interoperates when both load.
import t from 'tap';
import { HandshakeError } from '../../transport/handshake.js';
import { FrameKind, PeerLostError, TransportClosedError, WireDtype } from '../../transport/transport.js';
import {
  WebRtcTransport, WebRtcUnavailableError, createInProcessSignalling, createWebRtcTransport, isLoopbackHostCandidate, loadWebRtcImplementation, loopbackSdp,
} from '../../transport/webrtc/index.js';
import { IMPLEMENTATIONS, JOB, SECRET, closeAll, closeEverything, mesh, meshSettled, skipReason } from './webrtc-peers.js';
import { pattern, rejection, sameBytes, within } from './util.js';

const G = FrameKind.GradientSlice;

/** Resolves once `cond()` holds (polled every 5 ms). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}
const MiB = 1 << 20;
t.teardown(closeEverything);

const skips = new Map(await Promise.all(IMPLEMENTATIONS.map(async (i) => [i, await skipReason(i)] as const)));

for (const impl of IMPLEMENTATIONS) {
  t.test(impl, { skip: skips.get(impl)! }, async (t) => {
    t.test('a rank with the wrong secret is refused', async (t) => {
      const m = await within(meshSettled(2, impl, (r) => (r === 1 ? { secret: 'not-the-secret' } : {})), 'connect', 15_000);
      const [e0, e1] = m.outcomes.map((o) => (o.status === 'rejected' ? o.reason : new Error('connected')));
      t.ok(e0 instanceof HandshakeError && e0.reason === 'wrong-secret', `rank 0 (verifies the proof): ${String(e0)}`);
      t.ok(e1 instanceof HandshakeError && e1.reason === 'refused-by-peer', `rank 1: ${String(e1)}`);
      t.same(m.transports[0]!.stats().rejected, { 'handshake:wrong-secret': 1 });
      t.same(m.transports[1]!.stats().rejected, { 'handshake:refused-by-peer': 1 });
      t.ok(await rejection(m.transports[0]!.send(1, { kind: G, iteration: 0, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array(1) })) instanceof TransportClosedError,
        'the transport closed itself');
      await closeAll(m.transports);
    });

    t.test('a peer that closes is lost: PeerLostError naming its rank', async (t) => {
      const lostAt: number[][] = [[], [], []];
      const m = await within(mesh(3, impl, (r) => ({ onPeerLost: (rank) => lostAt[r]!.push(rank) })), 'connect', 15_000);
      const [a, b, c] = m.transports;
      // A frame that fully arrived before the loss stays receivable after it.
      await c!.send(0, { kind: G, iteration: 5, slice: 0, dtype: WireDtype.Bytes, payload: pattern(300 * 1024, 1) });
      await within(until(() => a!.stats().framesReceived === 1), 'the 300 KiB frame to arrive');
      // close() lingers so that a small frame sent just before it still goes out (best effort).
      await c!.send(1, { kind: G, iteration: 5, slice: 0, dtype: WireDtype.Bytes, payload: pattern(1024, 2) });
      const pending = rejection(a!.receive(2, G, 6, 0));
      const pendingB = rejection(b!.receive(2, G, 6, 0));
      await c!.close();
      const e = await pending;
      t.ok(e instanceof PeerLostError && e.rank === 2 && /rank 2/.test(e.message), `rank 0's pending receive: ${String(e)}`);
      const eb = await pendingB;
      t.ok(eb instanceof PeerLostError && eb.rank === 2, `rank 1's pending receive: ${String(eb)}`);
      t.ok(sameBytes((await a!.receive(2, G, 5, 0)).payload, pattern(300 * 1024, 1)), 'the frame that arrived before the loss is delivered');
      t.ok(sameBytes((await b!.receive(2, G, 5, 0)).payload, pattern(1024, 2)), 'the frame sent just before close() arrived');
      const es = await rejection(a!.send(2, { kind: G, iteration: 6, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array(4) }));
      t.ok(es instanceof PeerLostError && es.rank === 2, `a later send: ${String(es)}`);
      t.same([lostAt[0], lostAt[1]], [[2], [2]], 'onPeerLost once per survivor');
      t.equal(a!.stats().peersLost, 1);
      // The survivors still talk.
      await a!.send(1, { kind: G, iteration: 7, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array([1, 2, 3]) });
      t.same([...(await within(b!.receive(0, G, 7, 0), 'survivors')).payload], [1, 2, 3], 'ranks 0 and 1 still connected');
      await closeAll(m.transports);
    });

    t.test('a silent peer is lost after peerTimeoutMs', async (t) => {
      // Rank 1 sends no heartbeats; rank 0 gives up on it after 400 ms of silence.
      const m = await within(mesh(2, impl, (r) => (r === 0 ? { peerTimeoutMs: 400, heartbeatIntervalMs: 100 } : { heartbeatIntervalMs: 60_000 })), 'connect', 15_000);
      const [a, b] = m.transports;
      const t0 = Date.now();
      const e = await rejection(a!.receive(1, G, 0, 0), 5000);
      t.ok(e instanceof PeerLostError && e.rank === 1 && /silent/.test(e.message), `rank 0: ${String(e)} after ${Date.now() - t0} ms`);
      const eb = await rejection(b!.receive(0, G, 0, 0), 5000);
      t.ok(eb instanceof PeerLostError && eb.rank === 0, `rank 1 sees rank 0 leave: ${String(eb)}`);
      t.ok(b!.stats().heartbeatsReceived > 0, `rank 1 received heartbeats (${b!.stats().heartbeatsReceived})`);
      await closeAll(m.transports);
    });

    t.test('close() fails pending sends and receives with TransportClosedError', async (t) => {
      const m = await within(mesh(2, impl, { maxBufferedAmount: MiB }), 'connect', 15_000);
      const [a, b] = m.transports;
      const big = pattern(32 * MiB, 3);
      const sends = [0, 1, 2].map((i) => a!.send(1, { kind: G, iteration: 1, slice: i, dtype: WireDtype.Bytes, payload: big }));
      sends[0]!.catch(() => {}); // may have finished before the close
      const pending = [...sends.slice(1), a!.receive(1, G, 1, 0)].map((p) => rejection(p));
      const lostB = rejection(b!.receive(0, G, 1, 9), 5000);
      await new Promise((r) => setTimeout(r, 50));
      await a!.close();
      const errs = await Promise.all(pending);
      t.ok(errs.every((e) => e instanceof TransportClosedError), `pending: ${errs.map(String).join('; ')}`);
      const eb = await lostB;
      t.ok(eb instanceof PeerLostError && eb.rank === 0, `the other side: ${String(eb)}`);
      await closeAll(m.transports);
    });

    t.test('garbage signalling is counted and ignored', async (t) => {
      const sig = createInProcessSignalling(3);
      const impl0 = await loadWebRtcImplementation(impl);
      const x = new WebRtcTransport({ rank: 1, worldSize: 3, secret: SECRET, jobId: JOB, signalling: sig[1]!, log: () => {} }, impl0);
      sig[0]!.send(1, 'hello');
      sig[0]!.send(1, { proto: 'squall-webrtc-v1', job: '1', type: 'offer', sdp: 'v=0' });
      sig[2]!.send(1, { proto: 'squall-webrtc-v1', job: JOB, type: 'offer', sdp: 'v=0' });
      sig[0]!.send(1, { proto: 'squall-webrtc-v1', job: JOB, type: 'answer', sdp: 'v=0' });
      await new Promise((r) => setTimeout(r, 20));
      t.same(x.stats().rejected, { 'signal:malformed': 1, 'signal:wrong-job': 1, 'signal:unexpected': 2 });
      await x.close();
    });
  });
}

t.test('wrtc offering, node-datachannel answering: one pair of different implementations', { skip: skips.get('wrtc') || skips.get('node-datachannel') }, async (t) => {
  const m = await within(mesh(2, (r) => (r === 0 ? 'wrtc' : 'node-datachannel')), 'connect', 15_000);
  const [a, b] = m.transports;
  const p = pattern(MiB + 12, 4);
  await Promise.all([
    a!.send(1, { kind: G, iteration: 1, slice: 0, dtype: WireDtype.Bytes, payload: p }),
    b!.send(0, { kind: G, iteration: 1, slice: 0, dtype: WireDtype.Bytes, payload: p }),
  ]);
  t.ok(sameBytes((await within(b!.receive(0, G, 1, 0), 'b')).payload, p), 'wrtc -> node-datachannel');
  t.ok(sameBytes((await within(a!.receive(1, G, 1, 0), 'a')).payload, p), 'node-datachannel -> wrtc');
  await closeAll(m.transports);
});

t.test('options and implementation loading', async (t) => {
  const sig = createInProcessSignalling(2);
  const base = { rank: 0, worldSize: 2, secret: SECRET, signalling: sig[0]! };
  t.ok(await rejection(createWebRtcTransport({ ...base, implementation: 'libwebrtc' as never })) instanceof RangeError, 'unknown implementation');
  const noLoad = async (spec: string): Promise<unknown> => {
    throw new Error(`Cannot find package '${spec}'`);
  };
  const e1 = await rejection(loadWebRtcImplementation('node-datachannel', noLoad));
  t.ok(e1 instanceof WebRtcUnavailableError && /node-datachannel/.test(e1.message) && /npm install node-datachannel/.test(e1.message), String(e1));
  const e2 = await rejection(loadWebRtcImplementation('wrtc', noLoad));
  t.ok(e2 instanceof WebRtcUnavailableError && /@roamhq\/wrtc/.test(e2.message), String(e2));
  const e3 = await rejection(loadWebRtcImplementation('auto', noLoad));
  t.ok(e3 instanceof WebRtcUnavailableError && /@roamhq\/wrtc/.test(e3.message) && /node-datachannel/.test(e3.message), String(e3));
  const fake = await loadWebRtcImplementation('wrtc', async () => ({ RTCPeerConnection: class {} }));
  t.equal(fake.package, '@roamhq/wrtc');
  t.throws(() => new WebRtcTransport({ ...base, iceServers: [{ urls: 'stun:127.0.0.1:3478' }] }, fake), RangeError, 'STUN with loopback');
  t.throws(() => new WebRtcTransport({ ...base, messageBytes: 512 * 1024 }, fake), RangeError, 'messages over 256 KiB');
  t.throws(() => new WebRtcTransport({ ...base, signalling: {} as never }, fake), TypeError, 'no signalling');
});

t.test('loopback candidate and SDP filtering', async (t) => {
  t.ok(isLoopbackHostCandidate('candidate:1510613869 1 udp 2122063615 127.0.0.1 60116 typ host generation 0 ufrag JCXW network-id 3'));
  t.ok(isLoopbackHostCandidate('a=candidate:1 1 UDP 2114977791 127.0.0.1 38549 typ host'));
  t.notOk(isLoopbackHostCandidate('candidate:3229573512 1 udp 2122194687 192.0.2.2 57647 typ host generation 0'));
  t.notOk(isLoopbackHostCandidate('candidate:559267639 1 udp 2122136831 ::1 41803 typ host'));
  t.notOk(isLoopbackHostCandidate('candidate:9 1 udp 1686052607 127.0.0.1 5000 typ srflx raddr 0.0.0.0 rport 0'));
  const sdp = ['v=0', 'm=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'c=IN IP4 192.0.2.2',
    'a=candidate:1 1 UDP 2114977791 192.0.2.2 44092 typ host', 'a=candidate:2 1 UDP 2114977791 127.0.0.1 44093 typ host',
    'a=candidate:3 1 UDP 2116026111 fd00::2 44092 typ host', 'a=mid:0', ''].join('\r\n');
  t.equal(loopbackSdp(sdp), ['v=0', 'm=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'c=IN IP4 0.0.0.0',
    'a=candidate:2 1 UDP 2114977791 127.0.0.1 44093 typ host', 'a=mid:0', ''].join('\r\n'));
});
