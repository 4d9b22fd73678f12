// The WebRTC signalling of a cluster job through the driver (engine/cluster/rendezvous-
// signalling.ts, rendezvous.ts). The relay on its own: a signal before the worker's assign,
// a malformed one, one to an unknown, out-of-range or its own rank, an oversized one and one
// for another job are each refused, counted by reason and logged, and reach nobody; valid
// ones reach the addressed worker or the driver's own transport. Then through a real
// driver (RendezvousServer, WebRTC) with hand-written workers on raw sockets: the same
// refusals on the wire, only the valid signal arrives at the other worker, and a mesh that
// does not come up fails after meshTimeoutMs naming the ranks without a channel. A worker
// that cannot load the chosen implementation fails the job naming it and the npm package.
// Real workers (joinJob) of different implementations bring a mesh up through the relay,
// exchange frames, and the driver stops listening.
import { createHmac, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import t from 'tap';
import { LOGGED_REFUSALS_PER_WORKER, MAX_SIGNAL_BYTES, SignalRelay } from '../../engine/cluster/rendezvous-signalling.js';
import { RendezvousServer, joinJob } from '../../engine/cluster/rendezvous.js';
import { FrameKind, WireDtype } from '../../transport/transport.js';
import { AUTO_ORDER, IMPLEMENTATION_PACKAGES, SIGNAL_PROTOCOL, type WebRtcImplementationName } from '../../transport/webrtc/index.js';
import { within } from '../conformance/util.js';
import { IMPLEMENTATIONS, skipReason } from '../transport/webrtc-peers.js';

const JOB = '4242';
const candidate = (job = JOB): Record<string, unknown> => ({
  proto: SIGNAL_PROTOCOL, job, type: 'candidate', candidate: 'candidate:1 1 UDP 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0,
});
const offer = (sdpBytes = 200, job = JOB): Record<string, unknown> => ({ proto: SIGNAL_PROTOCOL, job, type: 'offer', sdp: `v=0\r\n${'a=x\r\n'.repeat(Math.ceil(sdpBytes / 5))}` });

/** Refusals a worker's stream of bad signals must produce, each with the message sent. */
const BAD: { reason: string; m: Record<string, unknown> }[] = [
  { reason: 'malformed', m: { to: 1, message: { proto: 'not-squall', job: JOB, type: 'offer', sdp: 'v=0' } } },
  { reason: 'malformed', m: { to: 1, message: { ...candidate(), type: 'pranswer' } } },
  { reason: 'malformed', m: { to: 1 } },
  { reason: 'rank', m: { to: 7, message: candidate() } },
  { reason: 'rank', m: { to: -1, message: candidate() } },
  { reason: 'rank', m: { to: '1', message: candidate() } },
  { reason: 'rank', m: { to: 0, message: candidate() } }, // its own rank (the sender is 0)
  { reason: 'oversized', m: { to: 1, message: offer(MAX_SIGNAL_BYTES + 1024) } },
  { reason: 'wrong-job', m: { to: 1, message: candidate('99') } },
];

function counts(reasons: string[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const r of reasons) c[r] = (c[r] ?? 0) + 1;
  return c;
}

t.test('the relay: bad signals are refused, counted and logged, never forwarded; valid ones reach their rank', async (t) => {
  const log: string[] = [];
  const relay = new SignalRelay({ enabled: true, rank: 2, worldSize: 3, jobId: JOB, log: (l) => log.push(l) });
  const posted: Record<string, unknown>[][] = [[], []];
  const driverGot: { from: number; message: unknown }[] = [];
  relay.onMessage((from, message) => driverGot.push({ from, message }));

  relay.fromWorker('the worker at 127.0.0.1:1', undefined, { t: 'signal', to: 1, message: candidate() });
  relay.fromWorker('worker 0', 0, { t: 'signal', to: 1, message: candidate() }); // joined with a rank, not assigned yet
  relay.attach(0, (m) => posted[0]!.push(m));
  relay.attach(1, (m) => posted[1]!.push(m));
  for (const b of BAD) relay.fromWorker('worker 0', 0, { t: 'signal', ...b.m });
  t.same(posted, [[], []], 'no refused signal reached a worker');
  t.same(driverGot, [], 'nor the driver\'s transport');
  const expected = counts(['before-assign', 'before-assign', ...BAD.map((b) => b.reason)]);
  t.same(relay.stats(), { relayed: 0, refused: expected }, `counted by reason: ${JSON.stringify(expected)}`);
  t.equal(log.filter((l) => /^squall driver: refused .* not forwarded/.test(l)).length, 2 + BAD.length, 'each one logged');
  t.match(log[0], /before the worker was assigned its rank from the worker at 127\.0\.0\.1:1 \(before-assign\)/, 'naming the sender and the reason');
  t.ok(log.some((l) => /of \d+ bytes \(at most 16384\)/.test(l)), 'the oversized one with its size');

  relay.fromWorker('worker 0', 0, { t: 'signal', to: 1, message: candidate() });
  t.same(posted[1], [{ t: 'signal', from: 0, message: candidate() }], 'a valid signal reaches the worker it is addressed to, with its sender');
  relay.fromWorker('worker 1', 1, { t: 'signal', to: 2, message: offer() });
  t.same(driverGot, [{ from: 1, message: offer() }], 'one to rank N reaches the driver\'s own transport');
  relay.send(0, offer());
  t.same(posted[0], [{ t: 'signal', from: 2, message: offer() }], 'the driver\'s own signals go to the worker as from rank N');
  t.throws(() => relay.send(5, offer()), /no worker rank 5/, 'the driver\'s transport cannot signal a rank that is not a worker');
  t.equal(relay.stats().relayed, 3, 'three relayed: worker to worker, worker to driver, driver to worker');

  relay.close();
  relay.fromWorker('worker 0', 0, { t: 'signal', to: 1, message: candidate() });
  relay.send(0, offer());
  t.equal(posted[1]!.length + posted[0]!.length, 2, 'once the mesh is up nothing more is relayed');
  t.equal(relay.stats().refused.late, 1, 'a late signal is refused');

  // A worker that keeps sending bad signals is counted, not logged without end.
  const quiet: string[] = [];
  const tcp = new SignalRelay({ enabled: false, rank: 1, worldSize: 2, jobId: JOB, log: (l) => quiet.push(l) });
  for (let i = 0; i < 50; i++) tcp.fromWorker('worker 0', 0, { t: 'signal', to: 1, message: candidate() });
  t.same(tcp.stats(), { relayed: 0, refused: { tcp: 50 } }, 'a TCP job refuses every signal');
  t.equal(quiet.length, LOGGED_REFUSALS_PER_WORKER, `50 refusals, ${quiet.length} log lines`);
  t.match(quiet.at(-1), /further refusals of this worker are only counted/);
});

/** A worker written by hand: raw rendezvous lines, so it can send what joinJob never would. */
class RawWorker {
  private buf = '';
  private readonly queue: Record<string, unknown>[] = [];
  private waiter: ((m: Record<string, unknown>) => void) | undefined;
  readonly received: Record<string, unknown>[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const m = JSON.parse(this.buf.slice(0, i)) as Record<string, unknown>;
        this.buf = this.buf.slice(i + 1);
        this.received.push(m);
        const w = this.waiter;
        this.waiter = undefined;
        if (w) w(m);
        else this.queue.push(m);
      }
    });
  }

  /** Connects and answers the challenge; `after` lines go in the same write as the join. */
  static async join(port: number, secret: string, rank: number, after: Record<string, unknown>[] = []): Promise<RawWorker> {
    const s = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
    const w = new RawWorker(s);
    const ch = await w.next();
    const proof = createHmac('sha256', secret).update('squall-join-v1').update(Buffer.from(ch.nonce as string, 'hex')).digest('hex');
    w.send({ t: 'join', proof, nonce: randomBytes(32).toString('hex'), backend: 'raw', pid: 1000 + rank, host: 'h', rank }, ...after);
    return w;
  }

  next(): Promise<Record<string, unknown>> {
    const m = this.queue.shift();
    return m ? Promise.resolve(m) : new Promise((resolve) => { this.waiter = resolve; });
  }

  send(...ms: Record<string, unknown>[]): void {
    this.socket.write(ms.map((m) => `${JSON.stringify(m)}\n`).join(''));
  }
}

const skips = new Map(await Promise.all(IMPLEMENTATIONS.map(async (i) => [i, await skipReason(i)] as const)));
const loadable = IMPLEMENTATIONS.filter((i) => skips.get(i) === false);
const noWebRtc = loadable.length ? false : `no WebRTC implementation loads here: ${[...skips.values()].join('; ')}`;

t.test('through the driver: refused signals reach no worker; the mesh timeout names the ranks', { skip: noWebRtc }, async (t) => {
  const log: string[] = [];
  const server = await RendezvousServer.listen({
    secret: 's', workers: 2, jobId: JOB, transport: 'webrtc', meshTimeoutMs: 1500, joinTimeoutMs: 20_000, log: (l) => log.push(l),
  });
  const workers: RawWorker[] = [];
  // gather() stops listening once it settles; these cover a test that gives up before then.
  t.teardown(async () => {
    for (const w of workers) w.socket.destroy();
    await server.close();
  });
  const gathered = server.gather().then(() => null, (e: unknown) => e as Error);
  // Worker 0 signals in the write that carries its join: before any assign.
  const w0 = await RawWorker.join(server.address.port, 's', 0, [{ t: 'signal', to: 1, message: candidate() }]);
  workers.push(w0);
  await new Promise((r) => setTimeout(r, 100));
  const w1 = await RawWorker.join(server.address.port, 's', 1);
  workers.push(w1);
  const [a0, a1] = await within(Promise.all([w0.next(), w1.next()]), 'assign');
  for (const [r, a] of [a0!, a1!].entries()) {
    t.match(a, { t: 'assign', rank: r, workers: 2, transport: 'webrtc', webrtc: 'auto', loopback: true, meshTimeoutMs: 1500 }, `worker ${r} is assigned a WebRTC job on loopback`);
  }
  w0.send({ t: 'ready', implementation: 'raw' });
  w1.send({ t: 'ready', implementation: 'raw' });
  t.same(await within(Promise.all([w0.next(), w1.next()]), 'connect'), [{ t: 'connect' }, { t: 'connect' }], 'then told to connect');
  w0.send(...BAD.map((b) => ({ t: 'signal', ...b.m })), { t: 'signal', to: 1, message: candidate() });
  const got = await within(w1.next(), 'the valid signal');
  t.same(got, { t: 'signal', from: 0, message: candidate() }, 'worker 1 receives the valid signal sent after the bad ones, and nothing before it');

  const err = await within(gathered, 'the mesh timeout', 20_000);
  t.ok(err instanceof Error, 'the job fails');
  t.match(err?.message, /^the WebRTC mesh did not come up: the driver \(rank 2\): .*no data channel with rank\(s\) 0, 1; worker\(s\) 0, 1 not connected$/,
    `after meshTimeoutMs, naming the ranks without a channel: ${err?.message}`);
  for (const w of [w0, w1]) {
    t.match(await within(w.next(), 'refused'), { t: 'refused', reason: /^the driver gave up: the WebRTC mesh did not come up/ }, 'the workers are told');
  }
  t.same(w1.received.filter((m) => m.t === 'signal').length, 1, 'worker 1 received exactly one signal in all');
  const expected = counts(['before-assign', ...BAD.map((b) => b.reason)]);
  t.same(server.signalStats(), { relayed: 1, refused: expected }, `the driver counted ${JSON.stringify(expected)}`);
  t.equal(log.filter((l) => /not forwarded/.test(l)).length, 1 + BAD.length, 'and logged each refusal');
});

t.test('a worker that cannot load the chosen implementation fails the job, naming it and the package', { skip: noWebRtc }, async (t) => {
  const impl = loadable[0]!;
  const server = await RendezvousServer.listen({ secret: 's', workers: 2, transport: 'webrtc', webrtc: impl, joinTimeoutMs: 20_000, log: () => {} });
  t.teardown(() => server.close());
  const driver = `127.0.0.1:${server.address.port}`;
  const gathered = server.gather().then(() => null, (e: unknown) => e as Error);
  const ok = joinJob({ driver, secret: 's', backend: 'native', rank: 0, log: () => {} }).then(() => null, (e: unknown) => e as Error);
  const missing = joinJob({
    driver, secret: 's', backend: 'wasm', rank: 1, log: () => {},
    webrtcLoader: async (spec) => { throw new Error(`Cannot find module '${spec}'`); },
  }).then(() => null, (e: unknown) => e as Error);
  const [g, w0, w1] = await within(Promise.all([gathered, ok, missing]), 'the failed job');
  const pkg = IMPLEMENTATION_PACKAGES[impl];
  t.match(g?.message, new RegExp(`^worker 1 \\(wasm, pid ${process.pid} on [^)]+\\) cannot use WebRTC: WebRTC implementation '${impl}' is not available: .*npm install ${pkg}`),
    `the driver names the worker and what to install: ${g?.message}`);
  t.match(w1?.message, /^this worker cannot use WebRTC: .*Cannot find module/, 'the worker says why');
  t.match(w0?.message, /refused: the driver gave up: worker 1 \(wasm/, 'the other worker is told who failed');
});

t.test('workers through the relay: a mesh of mixed implementations carries frames; the driver stops listening', { skip: noWebRtc }, async (t) => {
  // Worker 0 takes what 'auto' picks here; worker 1 can load only another implementation, when one is installed.
  const first = AUTO_ORDER.find((i) => loadable.includes(i))!;
  const other: WebRtcImplementationName | undefined = loadable.find((i) => i !== first);
  const server = await RendezvousServer.listen({ secret: 's', workers: 2, transport: 'webrtc', joinTimeoutMs: 20_000, log: () => {} });
  t.teardown(() => server.close());
  const driver = `127.0.0.1:${server.address.port}`;
  const only = (name: WebRtcImplementationName) => async (spec: string): Promise<unknown> => {
    if (!spec.startsWith(IMPLEMENTATION_PACKAGES[name])) throw new Error(`Cannot find module '${spec}' (test: only ${name})`);
    return import(spec);
  };
  const [g, j0, j1] = await within(Promise.all([
    server.gather(),
    joinJob({ driver, secret: 's', backend: 'native', log: () => {} }),
    joinJob({ driver, secret: 's', backend: 'native', log: () => {}, webrtcLoader: only(other ?? first) }),
  ]), 'the mesh', 30_000);
  t.teardown(() => Promise.all([g.transport.close(), j0.transport.close(), j1.transport.close()]));
  const [a, b] = j0.rank === 0 ? [j0, j1] : [j1, j0];
  t.same([a.mesh, b.mesh], ['webrtc', 'webrtc'], 'both workers were told to use WebRTC');
  t.same(g.workers.map((w) => w.implementation), [a.implementation, b.implementation], 'the driver knows which implementation each loaded');
  if (other) t.not(j0.implementation, j1.implementation, `two implementations in one mesh: ${j0.implementation}, ${j1.implementation}`);
  const payload = new Uint8Array([7, 8, 9]);
  await a.transport.send(1, { kind: FrameKind.Control, iteration: 0, slice: 3, dtype: WireDtype.Bytes, payload });
  await g.transport.send(1, { kind: FrameKind.Control, iteration: 0, slice: 4, dtype: WireDtype.Bytes, payload });
  await b.transport.send(2, { kind: FrameKind.Control, iteration: 0, slice: 5, dtype: WireDtype.Bytes, payload });
  t.same([...(await within(b.transport.receive(0, FrameKind.Control, 0, 3), 'frame')).payload], [7, 8, 9], 'worker 0 -> worker 1');
  t.same([...(await within(b.transport.receive(2, FrameKind.Control, 0, 4), 'frame')).payload], [7, 8, 9], 'driver -> worker 1');
  t.same([...(await within(g.transport.receive(1, FrameKind.Control, 0, 5), 'frame')).payload], [7, 8, 9], 'worker 1 -> driver');
  const s = server.signalStats();
  t.ok(s.relayed >= 6, `${s.relayed} signalling messages relayed (an offer and an answer per pair at least)`);
  t.same(s.refused, {}, 'none refused');
  const refused = await new Promise<string>((resolve) => {
    const c = net.connect(server.address.port, '127.0.0.1');
    c.once('connect', () => { c.destroy(); resolve('connected'); });
    c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
  t.equal(refused, 'ECONNREFUSED', 'the rendezvous port is closed once the mesh is up');
});
