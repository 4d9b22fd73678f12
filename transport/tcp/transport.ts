// A full mesh of TCP connections (node:net): every rank listens; rank i dials every rank
// j < i, so each pair has exactly one connection, authenticated by the handshake before any
// frame of it is delivered. Liveness: each side writes a Heartbeat frame when it has written
// nothing for heartbeatIntervalMs; a peer from which nothing arrived for peerTimeoutMs (while
// we were reading) is lost, and so is one whose socket closes or that sent a bad frame.
import * as net from 'node:net';
import { FrameError, HEADER_SIZE, encodeFrameBytes, jobIdBytes } from '../frame.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, HandshakeError, secretBytes, type RefuseReason } from '../handshake.js';
import { Mailbox } from '../mailbox.js';
import { Counters } from '../stats.js';
import {
  DEFAULT_MAX_PAYLOAD_BYTES, FrameKind, PeerLostError, TransportClosedError, WireDtype, checkJobId, checkRankAndWorld,
  type Frame, type OutgoingFrame, type ReceiveOptions, type Transport, type TransportOptions, type TransportStats,
} from '../transport.js';
import { Connection, type ConnectionHost } from './connection.js';
import { deferred, positive, type Deferred } from '../util.js';
import { sendOnPair, type MeshSendState } from '../pair.js';

export interface PeerAddress {
  host: string;
  port: number;
}

/** rank -> "host:port" (IPv6 as "[::1]:port") or {host, port}; an array indexed by rank works. */
export type AddressBook = Readonly<Record<number, string | PeerAddress>>;

export interface TcpTransportOptions extends TransportOptions {
  rank: number;
  worldSize: number;
  /** The job's shared secret (the driver generates it and hands it to every worker). */
  secret: string | Uint8Array;
  /** Address to listen on; default '127.0.0.1' (use '0.0.0.0' or the host's address across machines). */
  host?: string;
  /** Port to listen on; default 0 (ephemeral: read it from `address` after listenTcp). */
  port?: number;
  /** A peer from which nothing arrived for this long is lost. Default 30 000 ms. */
  peerTimeoutMs?: number;
  /** Write a Heartbeat after this long without writing. Default peerTimeoutMs / 4, at most 5000 ms. */
  heartbeatIntervalMs?: number;
  /** A handshake that takes longer is refused. Default 10 000 ms. */
  handshakeTimeoutMs?: number;
  /** connect() fails if the mesh is not complete by then. Default 60 000 ms. */
  connectTimeoutMs?: number;
  /** Reading from a peer pauses while more than this many of its bytes wait unclaimed (and no receive waits on it). Default 64 MiB. */
  maxQueuedBytes?: number;
  /** Inbound connections still in their handshake beyond this many are dropped. Default 64. */
  maxPendingHandshakes?: number;
  /** close() waits this long for sockets to finish their last writes. Default 1000 ms. */
  closeGraceMs?: number;
}

/** Parses an address book entry; port 0 only where `allowZero` (this rank's own entry: listen on an ephemeral port). */
function parseAddress(a: string | PeerAddress, rank: number, allowZero = false): PeerAddress {
  const min = allowZero ? 0 : 1;
  if (typeof a === 'object' && a !== null && typeof a.host === 'string' && Number.isInteger(a.port) && a.port >= min && a.port < 65536) {
    return { host: a.host, port: a.port };
  }
  if (typeof a === 'string') {
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(a) ?? /^([^:]+):(\d+)$/.exec(a);
    if (m && Number(m[2]) >= min && Number(m[2]) < 65536) return { host: m[1]!, port: Number(m[2]) };
  }
  throw new RangeError(`address of rank ${rank} must be "host:port" or {host, port}, got ${JSON.stringify(a)}`);
}

/** Errors worth dialing again for (the peer is not listening yet, or went away before its HELLO). */
const RETRYABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EAI_AGAIN', 'EPIPE']);

class RetryableDialError extends Error {}

export class TcpTransport implements Transport, ConnectionHost {
  readonly rank: number;
  readonly worldSize: number;
  readonly jobId: string;
  readonly jobIdLE: Uint8Array;
  readonly secret: Uint8Array;
  readonly maxPayloadBytes: number;
  readonly handshakeTimeoutMs: number;
  readonly peerTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxQueuedBytes: number;
  private readonly maxPendingHandshakes: number;
  private readonly closeGraceMs: number;

  private readonly server: net.Server;
  private readonly counters: Counters;
  private readonly mailbox: Mailbox;
  /** The admitted connection of each rank (stays set after the peer is lost). */
  private readonly peers: (Connection | undefined)[];
  private readonly lost: (PeerLostError | undefined)[];
  private readonly ready: Deferred[];
  /** What send() (pair.ts) reads of this mesh. */
  private readonly sendState: MeshSendState;
  private readonly handshaking = new Set<Connection>();
  private readonly heartbeat: Uint8Array;
  private timer: NodeJS.Timeout | undefined;
  private closedError: TransportClosedError | undefined;
  private connecting: Promise<void> | undefined;
  private addr: PeerAddress | undefined;

  constructor(private readonly options: TcpTransportOptions) {
    checkRankAndWorld(options.rank, options.worldSize);
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    this.jobId = checkJobId(options.jobId ?? '0');
    this.jobIdLE = jobIdBytes(this.jobId);
    this.secret = secretBytes(options.secret);
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    if (!Number.isInteger(this.maxPayloadBytes) || this.maxPayloadBytes < 0 || this.maxPayloadBytes > 0xffff_ffff) {
      throw new RangeError(`maxPayloadBytes must be an integer in [0, 2^32), got ${this.maxPayloadBytes}`);
    }
    this.handshakeTimeoutMs = positive('handshakeTimeoutMs', options.handshakeTimeoutMs, DEFAULT_HANDSHAKE_TIMEOUT_MS);
    this.peerTimeoutMs = positive('peerTimeoutMs', options.peerTimeoutMs, 30_000);
    this.heartbeatIntervalMs = positive('heartbeatIntervalMs', options.heartbeatIntervalMs, Math.max(5, Math.min(5000, Math.floor(this.peerTimeoutMs / 4))));
    this.connectTimeoutMs = positive('connectTimeoutMs', options.connectTimeoutMs, 60_000);
    this.maxQueuedBytes = positive('maxQueuedBytes', options.maxQueuedBytes, 64 * 1024 * 1024);
    this.maxPendingHandshakes = positive('maxPendingHandshakes', options.maxPendingHandshakes, 64);
    this.closeGraceMs = positive('closeGraceMs', options.closeGraceMs, 1000);
    this.counters = new Counters(this.rank, options);
    this.mailbox = new Mailbox(this.rank, this.worldSize);
    this.mailbox.onDemand = (from) => this.onDemand(from);
    this.peers = new Array<Connection | undefined>(this.worldSize).fill(undefined);
    this.lost = new Array<PeerLostError | undefined>(this.worldSize).fill(undefined);
    this.ready = Array.from({ length: this.worldSize }, () => deferred());
    this.sendState = { closedError: () => this.closedError, lost: this.lost, ready: this.ready, counters: this.counters };
    this.ready[this.rank]!.resolve();
    this.heartbeat = encodeFrameBytes({
      kind: FrameKind.Heartbeat, jobId: this.jobId, iteration: 0, sender: this.rank, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array(0),
    });
    this.server = net.createServer((socket) => this.onInbound(socket));
  }

  /** Starts listening; resolves with the bound address (port filled in when it was 0). */
  async listen(): Promise<PeerAddress> {
    const host = this.options.host ?? '127.0.0.1';
    const port = this.options.port ?? 0;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(new Error(`rank ${this.rank}: cannot listen on ${host}:${port}: ${err.message}`));
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.server.on('error', (err) => this.counters.log(`listener error: ${err.message}`));
    const a = this.server.address() as net.AddressInfo;
    this.addr = { host: a.address, port: a.port };
    this.timer = setInterval(() => this.tick(), Math.max(5, Math.min(this.heartbeatIntervalMs, this.peerTimeoutMs / 4)));
    this.timer.unref();
    return this.addr;
  }

  /** The bound address (after listen()). */
  get address(): PeerAddress {
    if (!this.addr) throw new Error(`rank ${this.rank}: not listening yet`);
    return { ...this.addr };
  }

  /** "host:port" of the bound address, as an address book holds it. */
  get addressString(): string {
    const a = this.address;
    return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
  }

  /**
   * Dials every lower rank (retrying until it listens) and waits until every higher rank has
   * dialed in; resolves when all worldSize-1 pairs are authenticated. On failure (a refused
   * handshake, or connectTimeoutMs) the transport is closed and the error names the ranks.
   */
  connect(book: AddressBook): Promise<void> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (!this.addr) return Promise.reject(new Error(`rank ${this.rank}: listen() before connect()`));
    if (this.connecting) return this.connecting;
    const targets: { rank: number; addr: PeerAddress }[] = [];
    try {
      for (let j = 0; j < this.rank; j++) {
        const a = (book as Record<number, string | PeerAddress | undefined>)[j];
        if (a === undefined) throw new RangeError(`the address book has no entry for rank ${j}`);
        targets.push({ rank: j, addr: parseAddress(a, j) });
      }
    } catch (err) {
      return Promise.reject(err);
    }
    const deadline = Date.now() + this.connectTimeoutMs;
    this.connecting = (async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const missing = this.ready.map((d, r) => (d.settled ? -1 : r)).filter((r) => r >= 0);
          reject(new Error(`rank ${this.rank}: the mesh did not complete within ${this.connectTimeoutMs} ms; no connection with rank(s) ${missing.join(', ')}`));
        }, this.connectTimeoutMs);
      });
      try {
        await Promise.race([
          Promise.all([...targets.map((t) => this.dial(t.rank, t.addr, deadline)), ...this.ready.map((d) => d.promise)]),
          timeout,
        ]);
      } catch (err) {
        await this.close();
        throw err;
      } finally {
        clearTimeout(timer);
      }
    })();
    return this.connecting;
  }

  private async dial(rank: number, addr: PeerAddress, deadline: number): Promise<void> {
    let backoff = 20;
    for (;;) {
      if (this.closedError) throw this.closedError;
      try {
        await this.dialOnce(rank, addr);
        return;
      } catch (err) {
        if (!(err instanceof RetryableDialError) || Date.now() + backoff >= deadline) {
          throw err instanceof RetryableDialError
            ? new Error(`rank ${this.rank}: cannot reach rank ${rank} at ${addr.host}:${addr.port}: ${err.message}`)
            : err;
        }
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 500);
      }
    }
  }

  private dialOnce(rank: number, addr: PeerAddress): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const socket = net.connect({ host: addr.host, port: addr.port });
      let conn: Connection | undefined;
      const onEarlyError = (err: NodeJS.ErrnoException): void => {
        socket.destroy();
        reject(RETRYABLE.has(err.code ?? '') ? new RetryableDialError(err.message) : err);
      };
      socket.once('error', onEarlyError);
      socket.once('connect', () => {
        socket.off('error', onEarlyError);
        if (this.closedError) {
          socket.destroy();
          reject(this.closedError);
          return;
        }
        conn = new Connection(socket, 'dialer', this, rank);
        this.dialWaits.set(conn, { resolve, reject });
      });
    });
  }

  /** Dialed connections still in their handshake, and how to report the outcome. */
  private readonly dialWaits = new Map<Connection, { resolve: () => void; reject: (e: Error) => void }>();

  private onInbound(socket: net.Socket): void {
    if (this.closedError) {
      socket.destroy();
      return;
    }
    if (this.handshaking.size >= this.maxPendingHandshakes) {
      const remote = `${socket.remoteAddress}:${socket.remotePort}`;
      this.reject('handshake:too-many-pending', `${this.handshaking.size} handshakes already pending (maxPendingHandshakes)`, undefined, remote);
      socket.destroy();
      return;
    }
    socket.on('error', () => {}); // reported through the connection's close
    this.handshaking.add(new Connection(socket, 'acceptor', this));
  }

  // ConnectionHost

  admissible(rank: number): { reason: RefuseReason; detail: string } | undefined {
    if (this.closedError) return { reason: 'closed', detail: 'this transport is closed' };
    if (this.peers[rank] || this.lost[rank]) {
      return { reason: 'duplicate-rank', detail: `rank ${rank} is already ${this.lost[rank] ? 'lost' : 'connected'}; a second connection is refused` };
    }
    if (rank < this.rank) {
      return { reason: 'unexpected-rank', detail: `rank ${rank} is lower than this rank ${this.rank} and must be dialed by it, not dial in` };
    }
    return undefined;
  }

  admitted(conn: Connection): void {
    this.handshaking.delete(conn);
    const rank = conn.peer;
    this.peers[rank] = conn;
    this.ready[rank]!.resolve();
    const w = this.dialWaits.get(conn);
    this.dialWaits.delete(conn);
    w?.resolve();
  }

  frame(conn: Connection, f: Frame): void {
    if (f.kind === FrameKind.Heartbeat) {
      this.counters.heartbeatsReceived++;
      return;
    }
    this.counters.framesReceived++;
    this.counters.bytesReceived += HEADER_SIZE + f.payload.byteLength;
    this.mailbox.deliver(f);
    if (this.mailbox.queuedBytes(conn.peer) > this.maxQueuedBytes && this.mailbox.waiters(conn.peer) === 0) conn.pause();
  }

  reject(key: string, message: string, rank: number | undefined, remote: string): void {
    const r: { reason: string; message: string; rank?: number; remote?: string } = { reason: key, message, remote };
    if (rank !== undefined && rank >= 0) r.rank = rank;
    this.counters.reject(r);
  }

  closed(conn: Connection, reason: string, error: Error | undefined): void {
    this.handshaking.delete(conn);
    const w = this.dialWaits.get(conn);
    if (w) {
      this.dialWaits.delete(conn);
      // A dialed connection that failed before the peer's HELLO (and without a refusal) is retried.
      const retry = !conn.heardHello && !(error instanceof HandshakeError) && !(error instanceof FrameError) && !this.closedError;
      w.reject(retry ? new RetryableDialError(reason) : error ?? new Error(reason));
      return;
    }
    if (conn.peer < 0) {
      if (!(error instanceof HandshakeError) && !this.closedError && conn.heardHello) {
        // An inbound peer that vanished mid-handshake: worth a line, not a refusal count.
        this.counters.log(`inbound connection from ${conn.remote} closed during the handshake: ${reason}`);
      }
      return;
    }
    if (this.peers[conn.peer] === conn) this.lose(conn.peer, reason);
  }

  private lose(rank: number, reason: string): void {
    if (this.lost[rank] || this.closedError) return;
    const err = new PeerLostError(rank, reason);
    this.lost[rank] = err;
    this.counters.peersLost++;
    this.counters.log(err.message);
    this.mailbox.fail(rank, err);
    this.ready[rank]!.reject(err);
    try {
      this.options.onPeerLost?.(rank, err);
    } catch (e) {
      this.counters.log(`onPeerLost threw: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private onDemand(from: number): void {
    const conn = this.peers[from];
    if (!conn?.paused) return;
    if (this.mailbox.waiters(from) > 0 || this.mailbox.queuedBytes(from) <= this.maxQueuedBytes / 2) conn.resume();
  }

  private tick(): void {
    const now = Date.now();
    for (let r = 0; r < this.worldSize; r++) {
      const c = this.peers[r];
      if (!c || c.state !== 'open') continue;
      if (!c.paused && now - c.lastRecv > this.peerTimeoutMs) {
        c.shut(`silent for ${now - c.lastRecv} ms (peerTimeoutMs ${this.peerTimeoutMs})`);
        continue;
      }
      if (now - c.lastSend >= this.heartbeatIntervalMs && c.socket.writableLength === 0) {
        c.sendRaw(this.heartbeat);
        this.counters.heartbeatsSent++;
      }
    }
  }

  // Transport

  send(to: number, frame: OutgoingFrame): Promise<void> {
    return sendOnPair(this, this.sendState, to, frame, (r) => this.peers[r]!);
  }

  receive(from: number, kind: FrameKind, iteration: number, slice: number, options?: ReceiveOptions): Promise<Frame> {
    return this.mailbox.receive(from, kind, iteration, slice, options);
  }

  stats(): TransportStats {
    return this.counters.snapshot();
  }

  /** Whether `rank`'s connection is up (authenticated and not lost). */
  isConnected(rank: number): boolean {
    return this.peers[rank]?.state === 'open' && !this.lost[rank];
  }

  async close(): Promise<void> {
    if (this.closedError) return;
    const err = (this.closedError = new TransportClosedError(this.rank));
    clearInterval(this.timer);
    this.mailbox.close(err);
    for (const d of this.ready) if (!d.settled) d.reject(err);
    const sockets: net.Socket[] = [];
    const conns = [...this.peers, ...this.handshaking, ...this.dialWaits.keys()];
    for (const c of conns) {
      if (!c) continue;
      sockets.push(c.socket);
      c.shut('closed by this side', err, true, this.closeGraceMs);
    }
    for (const w of this.dialWaits.values()) w.reject(err);
    this.dialWaits.clear();
    const closing = sockets.filter((s) => !s.closed).map((s) => new Promise<void>((res) => s.once('close', () => res())));
    const server = new Promise<void>((res) => (this.server.listening ? this.server.close(() => res()) : res()));
    await Promise.all([server, ...closing]);
  }
}

/** A TCP transport listening on options.host:options.port (0 = ephemeral); connect() it with the address book. */
export async function listenTcp(options: TcpTransportOptions): Promise<TcpTransport> {
  const t = new TcpTransport(options);
  await t.listen();
  return t;
}

/**
 * Listens on the port the address book gives this rank (unless options.port is set) and
 * connects the mesh; resolves when every pair is up. With ephemeral ports, use listenTcp,
 * distribute `addressString`, then connect().
 */
export async function createTcpTransport(options: TcpTransportOptions & { addresses: AddressBook }): Promise<TcpTransport> {
  const own = options.addresses[options.rank];
  const port = options.port ?? (own !== undefined ? parseAddress(own, options.rank, true).port : 0);
  const t = await listenTcp({ ...options, port });
  await t.connect(options.addresses);
  return t;
}
