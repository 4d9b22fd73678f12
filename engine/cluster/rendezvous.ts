// Bringing a job's TCP mesh up from one known address: the driver's (DESIGN.md §7).
//
// A worker knows only HOST:PORT of the driver and the job's secret. It dials the driver and
// the two speak newline-delimited JSON on that connection, each side proving it holds the
// secret before the other tells it anything:
//
//   driver -> worker  {t:'challenge', v, nonce}                     (32 random bytes, hex)
//   worker -> driver  {t:'join', proof, nonce, backend, pid, host, rank?, workers?}
//                     proof = HMAC-SHA256(secret, 'squall-join-v1' | driver's nonce)
//   driver -> worker  {t:'refused', reason}  and closes            (bad proof, job full, rank taken, ...)
//   ... once N workers have joined (ranks: the one a worker asked for, e.g. from Slurm's
//       SLURM_PROCID, else in order of arrival) ...
//   driver -> worker  {t:'assign', rank, workers: N, worldSize: N + 1, jobId, proof, peerTimeoutMs}
//                     proof = HMAC-SHA256(secret, 'squall-driver-v1' | worker's nonce)
//   worker -> driver  {t:'address', address}   where its mesh transport (rank r of N + 1) listens
//   driver -> worker  {t:'book', addresses}    every rank's address (the driver is rank N)
//
// Then every rank connects the mesh (transport/tcp: rank i dials every j < i, so the driver,
// rank N, dials all workers; each pair authenticates again with the secret), the worker
// closes the rendezvous connection, and the driver stops listening. Control traffic from
// then on is Control frames on the mesh (protocol.ts). A worker listening on an any-address
// ('0.0.0.0') advertises the local address of its connection to the driver, i.e. the
// interface that reaches the cluster.
//
// The mesh's transport is the driver's choice, sent in `assign` as `transport: 'tcp' |
// 'webrtc'` (workers never pick it). A WebRTC job (`webrtc`: the implementation choice,
// 'auto' | 'wrtc' | 'node-datachannel'; `loopback`; `meshTimeoutMs`) goes on instead of
// address / book:
//
//   worker -> driver  {t:'ready', implementation}   it loaded one and its transport listens to signalling
//                  or {t:'unavailable', reason}     it cannot load the chosen implementation (the
//                                                   reason names the npm package): the job fails naming it
//   driver -> worker  {t:'connect'}                 every rank is ready: offer to the higher ranks
//   worker <-> driver {t:'signal', ...}             relayed by the driver (rendezvous-signalling.ts)
//   worker -> driver  {t:'connected'} or {t:'failed', reason}   its connect() settled
//   driver -> worker  {t:'up'}                      every rank is connected; the connections close
//
// The driver (rank N) answers every worker's offer itself. A loopback job (the driver listens
// on a loopback address) offers only 127.0.0.1 host candidates; each pair of ranks proves it
// holds the job's secret over its data channel before any frame (transport/handshake.ts).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import * as net from 'node:net';
import { hostname } from 'node:os';
import { secretBytes } from '../../transport/handshake.js';
import { listenTcp, type TcpTransport } from '../../transport/tcp/index.js';
import type { PeerLostError, Transport } from '../../transport/transport.js';
import {
  loadWebRtcImplementation, type ModuleLoader, type WebRtcImplementation, type WebRtcImplementationChoice, type WebRtcImplementationName,
} from '../../transport/webrtc/implementation.js';
import { WebRtcTransport } from '../../transport/webrtc/transport.js';
import { LineSignalling, SignalRelay, type SignalStats } from './rendezvous-signalling.js';

export const RENDEZVOUS_VERSION = 1;
const MAX_LINE = 64 * 1024;

export interface HostPort {
  host: string;
  port: number;
}

/** "host:port", "[v6]:port" -> {host, port}. */
export function parseHostPort(s: string, what = 'address'): HostPort {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:[\]]+):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port > 0 && port < 65536)) throw new RangeError(`${what} must be HOST:PORT (port 1-65535), got ${JSON.stringify(s)}`);
  return { host: m[1]!, port };
}

export function formatHostPort(a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

function isAnyAddress(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

function hmac(secret: Uint8Array, label: string, nonceHex: string): Buffer {
  return createHmac('sha256', secret).update(label).update(Buffer.from(nonceHex, 'hex')).digest();
}

function proofOk(secret: Uint8Array, label: string, nonceHex: string, proofHex: unknown): boolean {
  if (typeof proofHex !== 'string' || !/^[0-9a-f]{64}$/.test(proofHex)) return false;
  return timingSafeEqual(hmac(secret, label, nonceHex), Buffer.from(proofHex, 'hex'));
}

/** The transport of a job's mesh. */
export type MeshTransport = 'tcp' | 'webrtc';

export function isMeshTransport(x: unknown): x is MeshTransport {
  return x === 'tcp' || x === 'webrtc';
}

export class RendezvousError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RendezvousError';
  }
}

/** A newline-delimited JSON connection. */
class Line {
  private buf = '';
  private readonly queue: Record<string, unknown>[] = [];
  private waiter: { resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void } | undefined;
  private ended: Error | undefined;

  /** `onSignal` takes every {t:'signal'} message out of the stream (the WebRTC relay). */
  constructor(readonly socket: net.Socket, private readonly who: string, private readonly onSignal: (m: Record<string, unknown>) => void) {
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    socket.on('data', (chunk: string) => this.data(chunk));
    socket.on('error', (err) => this.end(new RendezvousError(`${this.who}: ${err.message}`)));
    socket.on('close', () => this.end(new RendezvousError(`${this.who}: the connection closed`)));
  }

  private data(chunk: string): void {
    this.buf += chunk;
    if (this.buf.length > MAX_LINE && !this.buf.includes('\n')) {
      this.end(new RendezvousError(`${this.who}: a line longer than ${MAX_LINE} bytes`));
      this.socket.destroy();
      return;
    }
    let i: number;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      let m: unknown;
      try {
        m = JSON.parse(line);
      } catch {
        m = null;
      }
      if (m === null || typeof m !== 'object' || typeof (m as { t?: unknown }).t !== 'string') {
        this.end(new RendezvousError(`${this.who}: not a rendezvous message: ${line.slice(0, 80)}`));
        this.socket.destroy();
        return;
      }
      if ((m as { t: string }).t === 'signal') {
        this.onSignal(m as Record<string, unknown>);
        continue;
      }
      const w = this.waiter;
      this.waiter = undefined;
      if (w) w.resolve(m as Record<string, unknown>);
      else this.queue.push(m as Record<string, unknown>);
    }
  }

  private end(err: Error): void {
    if (this.ended) return;
    this.ended = err;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
  }

  next(): Promise<Record<string, unknown>> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => { this.waiter = { resolve, reject }; });
  }

  /** The next message, which must be of type `t` (a 'refused' becomes an error). */
  async expect(t: string): Promise<Record<string, unknown>> {
    const m = await this.next();
    if (m.t === 'refused') throw new RendezvousError(`${this.who} refused: ${String(m.reason)}`);
    if (m.t !== t) throw new RendezvousError(`${this.who}: expected '${t}', got '${String(m.t)}'`);
    return m;
  }

  send(m: Record<string, unknown>): void {
    if (!this.socket.destroyed) this.socket.write(`${JSON.stringify(m)}\n`);
  }

  get closed(): boolean {
    return this.ended !== undefined;
  }
}

// ---- driver side ----------------------------------------------------------------------------

export interface RendezvousOptions {
  /** Where to listen for workers: default '127.0.0.1' (use '0.0.0.0' for a cluster). */
  host?: string;
  /** Default 0 (ephemeral: read `address`). */
  port?: number;
  secret: string | Uint8Array;
  /** N. */
  workers: number;
  /** Default: random. */
  jobId?: string;
  /** gather() fails if N workers have not joined by then (default 120 000 ms). */
  joinTimeoutMs?: number;
  /** The mesh's liveness timeout, for every rank (default 30 000 ms). */
  peerTimeoutMs?: number;
  /** The mesh's transport, for every rank (default 'tcp'). */
  transport?: MeshTransport;
  /** With transport 'webrtc': the implementation every rank loads (default 'auto': node-datachannel, else @roamhq/wrtc). */
  webrtc?: WebRtcImplementationChoice;
  /** With transport 'webrtc': every data channel must be open by then (default 60 000 ms). */
  meshTimeoutMs?: number;
  log?: (line: string) => void;
  onPeerLost?: (rank: number, err: PeerLostError) => void;
}

/** A worker as it joined. */
export interface JoinedWorker {
  rank: number;
  backend: string;
  pid: number;
  host: string;
  /** Its mesh address (TCP). */
  address?: string;
  /** The WebRTC implementation it loaded (WebRTC). */
  implementation?: string;
}

export interface Gathered {
  transport: Transport;
  workers: JoinedWorker[];
}

interface JoinEntry {
  line: Line;
  nonce: string;
  rank?: number;
  backend: string;
  pid: number;
  host: string;
}

function describe(j: JoinEntry): string {
  return `worker ${j.rank ?? '?'} (${j.backend}, pid ${j.pid} on ${j.host})`;
}

export class RendezvousServer {
  private readonly server: net.Server;
  private readonly secret: Uint8Array;
  readonly jobId: string;
  readonly transport: MeshTransport;
  private readonly pending = new Set<net.Socket>();
  private joined: JoinEntry[] = [];
  private full = false;
  private onChange: (() => void) | undefined;
  private failure: Error | undefined;
  private addr: HostPort | undefined;
  private mesh: Transport | undefined;
  private implementation: WebRtcImplementation | undefined;
  private readonly relay: SignalRelay;

  private constructor(private readonly o: RendezvousOptions) {
    this.secret = secretBytes(o.secret);
    if (!Number.isSafeInteger(o.workers) || o.workers < 1) throw new RangeError(`rendezvous: workers must be a positive integer, got ${o.workers}`);
    this.transport = o.transport ?? 'tcp';
    if (!isMeshTransport(this.transport)) throw new RangeError(`rendezvous: transport must be 'tcp' or 'webrtc', got ${JSON.stringify(o.transport)}`);
    this.jobId = o.jobId ?? BigInt(`0x${randomBytes(8).toString('hex')}`).toString();
    this.relay = new SignalRelay({ enabled: this.transport === 'webrtc', rank: o.workers, worldSize: o.workers + 1, jobId: this.jobId, log: (l) => this.log(l) });
    this.server = net.createServer((s) => this.accept(s));
  }

  /**
   * Listens for workers. A WebRTC job loads its implementation here first, so a driver that
   * cannot use WebRTC fails before any worker joins (the error names the npm package).
   */
  static async listen(o: RendezvousOptions): Promise<RendezvousServer> {
    const r = new RendezvousServer(o);
    if (r.transport === 'webrtc') {
      try {
        r.implementation = await loadWebRtcImplementation(o.webrtc ?? 'auto');
      } catch (err) {
        throw new RendezvousError(`the driver cannot use WebRTC: ${(err as Error).message}`);
      }
    }
    const host = o.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      r.server.once('error', (err) => reject(new RendezvousError(`the driver cannot listen on ${host}:${o.port ?? 0}: ${err.message}`)));
      r.server.listen(o.port ?? 0, host, () => resolve());
    });
    const a = r.server.address() as net.AddressInfo;
    r.addr = { host: a.address, port: a.port };
    return r;
  }

  get address(): HostPort {
    return { ...this.addr! };
  }

  /** Signalling messages relayed and refused (WebRTC jobs; in a TCP job every one is refused). */
  signalStats(): SignalStats {
    return this.relay.stats();
  }

  /** Fails a pending gather() (e.g. a launcher saw a worker process exit during setup). */
  abort(err: Error): void {
    this.failure ??= err;
    this.onChange?.();
  }

  private log(line: string): void {
    (this.o.log ?? ((l) => console.error(l)))(line);
  }

  private accept(socket: net.Socket): void {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.full) {
      socket.end(`${JSON.stringify({ t: 'refused', reason: 'the job already has all its workers' })}\n`);
      return;
    }
    this.pending.add(socket);
    const line: Line = new Line(socket, `worker at ${remote}`, (m) => {
      const j = this.joined.find((x) => x.line === line);
      this.relay.fromWorker(j ? describe(j) : `the worker at ${remote}`, j?.rank, m);
    });
    const nonce = randomBytes(32).toString('hex');
    line.send({ t: 'challenge', v: RENDEZVOUS_VERSION, nonce });
    const refuse = (reason: string): void => {
      this.log(`squall driver: refused ${remote}: ${reason}`);
      line.send({ t: 'refused', reason });
      socket.end();
      this.pending.delete(socket);
    };
    socket.once('close', () => this.onChange?.());
    void line.expect('join').then((m) => {
      if (!proofOk(this.secret, 'squall-join-v1', nonce, m.proof)) return refuse('wrong secret (set the same SQUALL_SECRET as the driver)');
      if (typeof m.nonce !== 'string' || !/^[0-9a-f]{64}$/.test(m.nonce)) return refuse('bad nonce');
      if (m.workers !== undefined && m.workers !== this.o.workers) return refuse(`the worker expects ${String(m.workers)} workers, this job has ${this.o.workers}`);
      let rank: number | undefined;
      if (m.rank !== undefined && m.rank !== null) {
        if (!Number.isSafeInteger(m.rank) || (m.rank as number) < 0 || (m.rank as number) >= this.o.workers) {
          return refuse(`rank ${String(m.rank)} is not a worker rank (0..${this.o.workers - 1})`);
        }
        rank = m.rank as number;
        if (this.joined.some((j) => j.rank === rank)) return refuse(`rank ${rank} has already joined`);
      }
      if (this.joined.length >= this.o.workers) return refuse('the job already has all its workers');
      this.joined.push({
        line, nonce: m.nonce, ...(rank !== undefined ? { rank } : {}),
        backend: String(m.backend ?? '?'), pid: Number(m.pid ?? 0), host: String(m.host ?? socket.remoteAddress ?? '?'),
      });
      this.onChange?.();
    }, () => this.pending.delete(socket));
  }

  /**
   * Waits for N workers, assigns ranks, brings the mesh up with the driver as rank N and
   * resolves with the driver's transport and the workers. Fails naming what is missing.
   */
  async gather(): Promise<Gathered> {
    const N = this.o.workers;
    const timeout = this.o.joinTimeoutMs ?? 120_000;
    let deadline = Date.now() + timeout;
    let phase = 'join';
    // One watchdog for the whole setup: a worker that leaves, an abort() or the deadline fails it.
    let stop = (): void => {};
    let changed = (): void => {};
    let timeoutStart = Date.now();
    const watchdog = new Promise<never>((_, reject) => {
      const tick = (): void => {
        let err = this.failure;
        if (phase === 'join') {
          // A worker that leaves before the job is complete just gives its place up.
          for (const j of this.joined.filter((x) => x.line.closed)) this.log(`squall driver: worker (${j.backend}, pid ${j.pid} on ${j.host}) left before the job started`);
          this.joined = this.joined.filter((x) => !x.line.closed);
        }
        const gone = this.joined.find((j) => j.line.closed);
        if (!err && gone) err = new RendezvousError(`${phase === 'join' ? `worker (${gone.backend}, pid ${gone.pid} on ${gone.host})` : describe(gone)} left during setup`);
        if (!err && Date.now() > deadline) {
          err = phase === 'join'
            ? new RendezvousError(`only ${this.joined.length} of ${N} workers joined within ${timeout / 1000} s ` +
              `(the driver listens on ${formatHostPort(this.address)}; start them with: squall worker --driver HOST:${this.address.port})`)
            : new RendezvousError(`the workers did not bring the mesh up within ${(deadline - timeoutStart) / 1000} s`);
        }
        if (err) {
          stop();
          reject(err);
        } else changed();
      };
      const timer = setInterval(tick, 200);
      stop = () => {
        clearInterval(timer);
        this.onChange = undefined;
      };
      this.onChange = tick;
    });
    watchdog.catch(() => undefined);
    const guarded = <T>(p: Promise<T>): Promise<T> => Promise.race([watchdog, p]);
    try {
      await guarded(new Promise<void>((resolve) => {
        changed = () => { if (this.joined.length === N) resolve(); };
        changed();
      }));
      changed = () => {};
      this.full = true;
      phase = 'mesh';
      timeoutStart = Date.now();
      deadline = timeoutStart + timeout + (this.transport === 'webrtc' ? this.meshTimeoutMs : 0);
      // Ranks: the requested ones, the rest in order of arrival.
      const free = Array.from({ length: N }, (_, r) => r).filter((r) => !this.joined.some((j) => j.rank === r));
      for (const j of this.joined) if (j.rank === undefined) j.rank = free.shift()!;
      this.joined.sort((a, b) => a.rank! - b.rank!);
      const peerTimeoutMs = this.o.peerTimeoutMs ?? 30_000;
      const workers = this.transport === 'webrtc' ? await this.meshWebRtc(peerTimeoutMs, guarded) : await this.meshTcp(peerTimeoutMs, guarded, () => stop());
      return { transport: this.mesh!, workers };
    } catch (err) {
      for (const j of this.joined) j.line.send({ t: 'refused', reason: `the driver gave up: ${(err as Error).message}` });
      await this.mesh?.close();
      throw err;
    } finally {
      stop();
      this.relay.close();
      for (const j of this.joined) j.line.socket.end();
      await this.close();
    }
  }

  private get meshTimeoutMs(): number {
    return this.o.meshTimeoutMs ?? 60_000;
  }

  private transportCommon(peerTimeoutMs: number): { rank: number; worldSize: number; secret: Uint8Array; jobId: string; peerTimeoutMs: number } & Pick<RendezvousOptions, 'log' | 'onPeerLost'> {
    return {
      rank: this.o.workers, worldSize: this.o.workers + 1, secret: this.secret, jobId: this.jobId, peerTimeoutMs,
      ...(this.o.log ? { log: this.o.log } : {}), ...(this.o.onPeerLost ? { onPeerLost: this.o.onPeerLost } : {}),
    };
  }

  private assign(peerTimeoutMs: number, extra: Record<string, unknown>): void {
    for (const j of this.joined) {
      j.line.send({
        t: 'assign', rank: j.rank, workers: this.o.workers, worldSize: this.o.workers + 1, jobId: this.jobId,
        proof: hmac(this.secret, 'squall-driver-v1', j.nonce).toString('hex'), peerTimeoutMs, transport: this.transport, ...extra,
      });
    }
  }

  /** address / book, then the TCP mesh (the driver, rank N, dials every worker). */
  private async meshTcp(peerTimeoutMs: number, guarded: <T>(p: Promise<T>) => Promise<T>, stopWatchdog: () => void): Promise<JoinedWorker[]> {
    const N = this.o.workers;
    const meshHost = isLoopback(this.addr!.host) ? this.addr!.host : '0.0.0.0';
    const transport = await listenTcp({ ...this.transportCommon(peerTimeoutMs), host: meshHost, port: 0 });
    this.mesh = transport;
    this.assign(peerTimeoutMs, {});
    const addresses = await guarded(Promise.all(this.joined.map(async (j) => {
      const m = await j.line.expect('address');
      if (typeof m.address !== 'string') throw new RendezvousError(`worker ${j.rank}: no address`);
      return m.address;
    })));
    // Nobody dials the driver (rank N, the highest, dials everyone): its entry is for completeness.
    const book = [...addresses, formatHostPort({ host: meshHost === '0.0.0.0' ? hostname() : meshHost, port: transport.address.port })];
    for (const j of this.joined) j.line.send({ t: 'book', addresses: book });
    stopWatchdog();
    await transport.connect(book);
    return this.joined.map((j, r) => ({ rank: j.rank!, backend: j.backend, pid: j.pid, host: j.host, address: addresses[r]! }));
  }

  /** ready / connect, signalling through the relay until every rank's data channels are open, then up. */
  private async meshWebRtc(peerTimeoutMs: number, guarded: <T>(p: Promise<T>) => Promise<T>): Promise<JoinedWorker[]> {
    const N = this.o.workers;
    const loopback = isLoopback(this.addr!.host);
    const meshTimeoutMs = this.meshTimeoutMs;
    const transport = new WebRtcTransport({
      ...this.transportCommon(peerTimeoutMs), signalling: this.relay, loopback, connectTimeoutMs: meshTimeoutMs,
    }, this.implementation!);
    this.mesh = transport;
    for (const j of this.joined) this.relay.attach(j.rank!, (m) => j.line.send(m));
    this.assign(peerTimeoutMs, { webrtc: this.o.webrtc ?? 'auto', loopback, meshTimeoutMs });
    const implementations = await guarded(Promise.all(this.joined.map(async (j) => {
      const m = await j.line.next();
      if (m.t === 'unavailable') throw new RendezvousError(`${describe(j)} cannot use WebRTC: ${String(m.reason)}`);
      if (m.t === 'refused') throw new RendezvousError(`${describe(j)} refused the job: ${String(m.reason)}`);
      if (m.t !== 'ready') throw new RendezvousError(`${describe(j)}: expected 'ready', got '${String(m.t)}'`);
      return String(m.implementation);
    })));
    this.log(`squall driver: WebRTC mesh of ${N + 1} ranks (${loopback ? 'loopback' : 'host candidates'}): ` +
      `${this.joined.map((j, r) => `worker ${j.rank} ${implementations[r]}`).join(', ')}, driver ${transport.implementationName}`);
    for (const j of this.joined) j.line.send({ t: 'connect' });
    const connected = this.joined.map(() => false);
    await guarded(new Promise<void>((resolve, reject) => {
      let driverUp = false;
      const check = (): void => {
        if (driverUp && connected.every(Boolean)) resolve();
      };
      const fail = (who: string, why: string): void => {
        const notUp = this.joined.filter((_, r) => !connected[r]).map((j) => j.rank!);
        const missing = transport.closedError ? [] : this.joined.map((j) => j.rank!).filter((r) => !transport.isConnected(r));
        reject(new RendezvousError(`the WebRTC mesh did not come up: ${who}: ${why}` +
          `${missing.length ? `; the driver (rank ${N}) has no data channel with worker(s) ${missing.join(', ')}` : ''}` +
          `${notUp.length ? `; worker(s) ${notUp.join(', ')} not connected` : ''}`));
      };
      transport.connect().then(() => {
        driverUp = true;
        check();
      }, (err: Error) => fail(`the driver (rank ${N})`, err.message));
      for (const [r, j] of this.joined.entries()) {
        j.line.next().then((m) => {
          if (m.t === 'connected') {
            connected[r] = true;
            check();
          } else if (m.t === 'failed') fail(describe(j), String(m.reason));
          else fail(describe(j), `expected 'connected', got '${String(m.t)}'`);
        }, reject);
      }
    }));
    for (const j of this.joined) j.line.send({ t: 'up' });
    return this.joined.map((j, r) => ({ rank: j.rank!, backend: j.backend, pid: j.pid, host: j.host, implementation: implementations[r]! }));
  }

  /** Stops listening (joined connections end on their own). */
  async close(): Promise<void> {
    this.full = true;
    for (const s of this.pending) if (!this.joined.some((j) => j.line.socket === s)) s.destroy();
    await new Promise<void>((res) => (this.server.listening ? this.server.close(() => res()) : res()));
  }
}

// ---- worker side ----------------------------------------------------------------------------

export interface JoinOptions {
  driver: string | HostPort;
  secret: string | Uint8Array;
  backend: string;
  /** Ask for this rank (e.g. from SLURM_PROCID / RANK). */
  rank?: number;
  /** Refuse a job of another size (e.g. from SLURM_NTASKS / WORLD_SIZE). */
  workers?: number;
  /** Where the mesh transport listens (TCP): default '127.0.0.1' for a driver on loopback, else '0.0.0.0'. */
  listenHost?: string;
  /** The address peers dial (TCP; default: the interface that reaches the driver). */
  advertiseHost?: string;
  /** Keep dialing the driver for this long (it may start later); also the mesh connect limit. Default 60 000 ms. */
  connectTimeoutMs?: number;
  /** Test hook: how the WebRTC implementation's module is loaded (see loadWebRtcImplementation). */
  webrtcLoader?: ModuleLoader;
  log?: (line: string) => void;
  onPeerLost?: (rank: number, err: PeerLostError) => void;
}

export interface Joined {
  transport: Transport;
  rank: number;
  workers: number;
  jobId: string;
  /** The transport the driver chose. */
  mesh: MeshTransport;
  /** The WebRTC implementation this worker loaded (WebRTC jobs). */
  implementation?: WebRtcImplementationName;
}

async function dialDriver(a: HostPort, deadline: number): Promise<net.Socket> {
  let backoff = 50;
  for (;;) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host: a.host, port: a.port });
        s.once('connect', () => {
          s.off('error', reject);
          resolve(s);
        });
        s.once('error', reject);
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (!['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND'].includes(code) || Date.now() + backoff > deadline) {
        throw new RendezvousError(`cannot reach the driver at ${formatHostPort(a)}: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(1000, backoff * 2);
    }
  }
}

/** Dials the driver, joins the job and connects the mesh (the transport the driver chose); resolves with this worker's transport. */
export async function joinJob(o: JoinOptions): Promise<Joined> {
  const a = typeof o.driver === 'string' ? parseHostPort(o.driver, 'the driver address') : o.driver;
  const secret = secretBytes(o.secret);
  const timeout = o.connectTimeoutMs ?? 60_000;
  const socket = await dialDriver(a, Date.now() + timeout);
  let signalling: LineSignalling | undefined;
  const line = new Line(socket, `the driver at ${formatHostPort(a)}`, (m) => {
    if (signalling) signalling.fromDriver(m);
    else o.log?.('squall worker: ignored a signalling message from the driver before the WebRTC mesh was set up');
  });
  let transport: TcpTransport | WebRtcTransport | undefined;
  const timer = setTimeout(() => socket.destroy(new Error(`no job within ${timeout / 1000} s`)), timeout);
  try {
    const ch = await line.expect('challenge');
    if (ch.v !== RENDEZVOUS_VERSION || typeof ch.nonce !== 'string') throw new RendezvousError(`the driver speaks rendezvous version ${String(ch.v)}, this worker ${RENDEZVOUS_VERSION}`);
    const nonce = randomBytes(32).toString('hex');
    line.send({
      t: 'join', proof: hmac(secret, 'squall-join-v1', ch.nonce).toString('hex'), nonce, backend: o.backend, pid: process.pid, host: hostname(),
      ...(o.rank !== undefined ? { rank: o.rank } : {}), ...(o.workers !== undefined ? { workers: o.workers } : {}),
    });
    // Waiting for the other workers can take long: the timer is the connect limit only.
    clearTimeout(timer);
    const as = await line.expect('assign');
    if (!proofOk(secret, 'squall-driver-v1', nonce, as.proof)) throw new RendezvousError('the driver could not prove it holds the job secret');
    const rank = as.rank as number;
    const workers = as.workers as number;
    const mesh = as.transport ?? 'tcp';
    const common = {
      rank, worldSize: workers + 1, secret, jobId: String(as.jobId), peerTimeoutMs: Number(as.peerTimeoutMs ?? 30_000),
      ...(o.log ? { log: o.log } : {}), ...(o.onPeerLost ? { onPeerLost: o.onPeerLost } : {}),
    };
    if (mesh === 'webrtc') {
      let implementation: WebRtcImplementation;
      try {
        implementation = await loadWebRtcImplementation(as.webrtc as WebRtcImplementationChoice, o.webrtcLoader);
      } catch (err) {
        line.send({ t: 'unavailable', reason: (err as Error).message });
        throw new RendezvousError(`this worker cannot use WebRTC: ${(err as Error).message}`);
      }
      signalling = new LineSignalling((m) => line.send(m));
      const t = new WebRtcTransport({
        ...common, signalling, loopback: as.loopback === true, connectTimeoutMs: Number(as.meshTimeoutMs ?? timeout),
      }, implementation);
      transport = t;
      line.send({ t: 'ready', implementation: implementation.name });
      await line.expect('connect');
      // The driver says nothing more until every rank is connected, unless it gives up.
      const up = line.expect('up');
      up.catch(() => undefined);
      try {
        await Promise.race([t.connect(), up.then(() => { throw new RendezvousError('the driver declared the mesh up before this worker was connected'); })]);
      } catch (err) {
        line.send({ t: 'failed', reason: (err as Error).message });
        throw err;
      }
      line.send({ t: 'connected' });
      await up;
      signalling.close();
      return { transport: t, rank, workers, jobId: common.jobId, mesh, implementation: implementation.name };
    }
    if (mesh !== 'tcp') {
      line.send({ t: 'unavailable', reason: `this worker does not know the transport ${JSON.stringify(mesh)} (tcp | webrtc)` });
      throw new RendezvousError(`the driver chose the transport ${JSON.stringify(mesh)}, which this worker does not know (tcp | webrtc)`);
    }
    const listenHost = o.listenHost ?? (isLoopback(a.host) ? '127.0.0.1' : '0.0.0.0');
    const t = await listenTcp({ ...common, host: listenHost, port: 0, connectTimeoutMs: timeout });
    transport = t;
    const advertise = o.advertiseHost ?? (isAnyAddress(listenHost) ? socket.localAddress ?? hostname() : listenHost);
    line.send({ t: 'address', address: formatHostPort({ host: advertise.replace(/^::ffff:/, ''), port: t.address.port }) });
    const book = await line.expect('book');
    await t.connect(book.addresses as string[]);
    return { transport: t, rank, workers, jobId: common.jobId, mesh };
  } catch (err) {
    signalling?.close();
    await transport?.close();
    throw err;
  } finally {
    clearTimeout(timer);
    socket.end();
  }
}
