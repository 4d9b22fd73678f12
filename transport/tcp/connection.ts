// One TCP socket between two ranks: the handshake on it (bounded in time), then frames in
// both directions. Reading: a FrameDecoder checks every frame; the first bad one is counted,
// logged, and closes the socket (the peer is lost). Reading pauses while too many bytes from
// this peer wait unclaimed in the mailbox (and nobody waits for a frame from it), so a slow
// receiver pushes back through TCP to the sender. Writing: small frames are copied into one
// buffer; large payloads go out as header + the caller's view (no copy) and the send
// resolves once the socket has handed them to the kernel.
import type { Socket } from 'node:net';
import { FrameDecoder, FrameError, HEADER_SIZE, encodeHeader } from '../frame.js';
import { admitDecoder, type PairHost } from '../pair.js';
import {
  HANDSHAKE_MAX_PAYLOAD, Handshake, HandshakeError, refuseFrame, type HandshakeParams, type RefuseReason,
} from '../handshake.js';
import { FrameKind, PeerLostError, type Frame } from '../transport.js';

/** Payloads up to this size are copied into one buffer with their header; larger ones are written in place. */
export const COPY_MAX_BYTES = 64 * 1024;

/** What a connection needs from its transport. */
export interface ConnectionHost extends PairHost {
  /** May `rank` be admitted now? (duplicates, direction) */
  admissible(rank: number): { reason: RefuseReason; detail: string } | undefined;
  /** The handshake finished: `conn` now carries `rank`'s frames. */
  admitted(conn: Connection): void;
  /** A frame that passed every check arrived on an admitted connection. */
  frame(conn: Connection, frame: Frame): void;
  /** Counts, logs and reports a refusal. */
  reject(key: string, message: string, rank: number | undefined, remote: string): void;
  /** The connection is gone (`admitted` tells whether it had been admitted). */
  closed(conn: Connection, reason: string, error: HandshakeError | FrameError | Error | undefined): void;
}

type State = 'handshake' | 'open' | 'closed';

export class Connection {
  state: State = 'handshake';
  /** The authenticated peer's rank (once open). */
  peer = -1;
  readonly remote: string;
  lastRecv = Date.now();
  lastSend = Date.now();
  /** Reading paused for read backpressure. */
  paused = false;
  /** The peer's HELLO has arrived (a dialer retries only failures before it). */
  heardHello = false;
  private readonly decoder: FrameDecoder;
  private readonly hs: Handshake;
  private hsTimer: NodeJS.Timeout | undefined;
  private drain: { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } | undefined;
  private readonly pendingWrites = new Set<(e: Error) => void>();
  private closeReason = 'connection closed';
  private closeError: Error | undefined;
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly socket: Socket,
    readonly role: 'dialer' | 'acceptor',
    private readonly host: ConnectionHost,
    expectRank?: number,
  ) {
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    this.decoder = new FrameDecoder({ maxPayloadBytes: HANDSHAKE_MAX_PAYLOAD, kinds: [FrameKind.Hello] });
    const params: HandshakeParams = {
      role, rank: host.rank, worldSize: host.worldSize, jobId: host.jobId, secret: host.secret,
      admissible: (r) => host.admissible(r),
    };
    if (expectRank !== undefined) params.expectRank = expectRank;
    this.hs = new Handshake(params);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      const d = this.drain;
      this.drain = undefined;
      d?.resolve();
    });
    socket.on('error', (err) => {
      this.closeError ??= err;
      this.closeReason = `socket error: ${err.message}`;
    });
    socket.on('close', () => this.onClose());
    socket.on('end', () => {
      if (this.state !== 'closed') this.closeReason = 'the peer closed the connection';
    });
    this.hsTimer = setTimeout(() => {
      if (this.state === 'handshake') {
        this.refuse(new HandshakeError('timeout', `the handshake did not finish within ${host.handshakeTimeoutMs} ms`, this.hs.peerRank));
      }
    }, host.handshakeTimeoutMs);
    this.hsTimer.unref();
    this.writeRaw(this.hs.start());
  }

  private writeRaw(bufs: Uint8Array[]): void {
    for (const b of bufs) this.socket.write(b);
    this.lastSend = Date.now();
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.lastRecv = Date.now();
    try {
      for (const f of this.decoder.push(chunk)) {
        if (this.state === 'handshake') this.onHandshakeFrame(f);
        else if (this.state === 'open') this.onFrame(f);
        if ((this.state as State) === 'closed') break;
      }
    } catch (err) {
      if (err instanceof FrameError) {
        this.host.reject(err.reason, err.message, this.state === 'open' ? this.peer : this.hs.peerRank, this.remote);
        this.shut(this.state === 'open' ? `rejected a bad frame: ${err.message}` : `bad handshake frame: ${err.message}`, err, true);
      } else if (err instanceof HandshakeError) {
        this.refuse(err);
      } else {
        this.shut(`internal error: ${err instanceof Error ? err.message : String(err)}`, err instanceof Error ? err : undefined, true);
      }
    }
  }

  private onHandshakeFrame(f: Frame): void {
    if (f.iteration === 0) this.heardHello = true;
    const out = this.hs.onFrame(f); // throws HandshakeError
    if (out.send.length) this.writeRaw(out.send);
    if (!out.done) return;
    clearTimeout(this.hsTimer);
    this.peer = this.hs.peerRank!;
    this.state = 'open';
    admitDecoder(this.decoder, this.host, this.peer);
    this.host.admitted(this);
  }

  private onFrame(f: Frame): void {
    this.host.frame(this, f);
  }

  /** Refuses the peer: counts it, tells it why (unless it refused us), closes. */
  private refuse(err: HandshakeError): void {
    if (this.state === 'closed') return;
    this.host.reject(err.key, err.message, err.rank, this.remote);
    if (err.reason !== 'refused-by-peer' && !this.socket.destroyed) {
      this.socket.write(refuseFrame(this.host.rank, this.host.jobId, err.reason));
    }
    this.shut(err.message, err, true);
  }

  /**
   * Closes the connection: no more frames are read from it, pending writes fail. With
   * `flush`, what was written so far still goes out (end + a grace period); else destroyed.
   */
  shut(reason: string, error?: Error, flush = false, graceMs = 1000): void {
    if (this.state === 'closed') return;
    this.closeReason = reason;
    this.closeError = error;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    clearTimeout(this.hsTimer);
    this.failWrites();
    if (flush && !this.socket.destroyed) {
      this.socket.end();
      this.graceTimer = setTimeout(() => this.socket.destroy(), graceMs);
      this.graceTimer.unref();
      if (this.paused) this.socket.resume(); // let the FIN exchange finish
    } else {
      this.socket.destroy();
    }
    this.host.closed(this, reason, error ?? (wasOpen ? undefined : new Error(reason)));
  }

  private onClose(): void {
    clearTimeout(this.graceTimer);
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    if (!wasOpen) {
      // Closed during the handshake (the peer left, or refused us without saying why).
      const err = this.closeError ?? new Error(`connection closed during the handshake ${this.heardHello ? 'after' : 'before'} the peer's HELLO`);
      this.state = 'closed';
      clearTimeout(this.hsTimer);
      this.failWrites();
      this.host.closed(this, this.closeReason, err);
      return;
    }
    this.state = 'closed';
    this.failWrites();
    this.host.closed(this, this.closeReason, undefined);
  }

  private failWrites(): void {
    const err = new PeerLostError(this.peer >= 0 ? this.peer : (this.hs.peerRank ?? -1), this.closeReason);
    for (const rej of this.pendingWrites) rej(err);
    this.pendingWrites.clear();
    const d = this.drain;
    this.drain = undefined;
    d?.reject(err);
  }

  private waitDrain(): Promise<void> {
    if (!this.drain) {
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      promise.catch(() => {});
      this.drain = { promise, resolve, reject };
    }
    return this.drain.promise;
  }

  /** Writes one frame; resolves when the caller's payload is no longer needed and the socket is not over its high-water mark. */
  async send(frame: Frame): Promise<void> {
    if (this.state !== 'open') throw new PeerLostError(this.peer, this.closeReason);
    const payload = frame.payload;
    const header = encodeHeader(frame, payload, this.host.jobIdLE);
    this.lastSend = Date.now();
    if (payload.byteLength <= COPY_MAX_BYTES) {
      const buf = Buffer.allocUnsafe(HEADER_SIZE + payload.byteLength);
      buf.set(header, 0);
      buf.set(payload, HEADER_SIZE);
      if (!this.socket.write(buf)) await this.waitDrain();
      return;
    }
    await new Promise<void>((resolve, reject) => {
      this.pendingWrites.add(reject);
      const done = (err?: Error | null): void => {
        if (!this.pendingWrites.delete(reject)) return;
        if (err) reject(new PeerLostError(this.peer, `write failed: ${err.message}`));
        else resolve();
      };
      this.socket.cork();
      this.socket.write(header);
      this.socket.write(payload, done);
      this.socket.uncork();
    });
  }

  /** Writes a ready-made frame (heartbeat) without waiting. */
  sendRaw(bytes: Uint8Array): void {
    if (this.state !== 'open') return;
    this.socket.write(bytes);
    this.lastSend = Date.now();
  }

  pause(): void {
    if (this.paused || this.state !== 'open') return;
    this.paused = true;
    this.socket.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.lastRecv = Date.now(); // silence while paused was ours
    this.socket.resume();
  }
}
