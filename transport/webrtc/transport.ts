// A full mesh of WebRTC data channels (DESIGN.md §6): one RTCPeerConnection per pair of
// ranks, the lower rank offering, with one ordered reliable data channel each; session
// descriptions and ICE candidates go through the driver's signalling relay. No STUN or TURN
// server is used by default; on loopback (the default) only 127.0.0.1 host candidates are
// offered or accepted. Every pair is authenticated with the job's secret by the handshake of
// transport/handshake.ts over its channel before any frame of it is delivered.
//
// Liveness as on TCP: each side sends a Heartbeat frame when it has sent nothing for
// heartbeatIntervalMs; a peer from which nothing arrived for peerTimeoutMs is lost, and so is
// one whose channel closes, whose connection fails, or that sent a bad frame.
//
// Unlike TCP there is no read backpressure: a data channel cannot be paused, so frames that
// arrive before anyone receives them wait in the mailbox without limit (SCTP's window and
// the sender's bufferedAmount polling bound the data in flight, not the data queued).
import { HEADER_SIZE, encodeFrameBytes, jobIdBytes } from '../frame.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, HandshakeError, secretBytes, type RefuseReason } from '../handshake.js';
import { Mailbox } from '../mailbox.js';
import { Counters } from '../stats.js';
import {
  DEFAULT_MAX_PAYLOAD_BYTES, FrameKind, PeerLostError, TransportClosedError, WireDtype, checkJobId, checkRankAndWorld,
  type Frame, type OutgoingFrame, type ReceiveOptions, type Transport, type TransportOptions, type TransportStats,
} from '../transport.js';
import { LOOPBACK_ADDRESS } from './candidates.js';
import {
  loadWebRtcImplementation, type WebRtcImplementation, type WebRtcImplementationChoice, type WebRtcImplementationName,
} from './implementation.js';
import { PeerLink, type LinkHost } from './link.js';
import { parseSignal, type SignalMessage, type WebRtcSignalling } from './signalling.js';
import { deferred, positive, type Deferred } from '../util.js';
import { sendOnPair, type MeshSendState } from '../pair.js';

/** The largest message both implementations send and receive (SCTP max-message-size 262144). */
export const MAX_MESSAGE_BYTES = 256 * 1024;
export const DEFAULT_MAX_BUFFERED_AMOUNT = 4 * 1024 * 1024;

export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export interface WebRtcTransportOptions extends TransportOptions {
  rank: number;
  worldSize: number;
  /** The job's shared secret (the driver generates it and hands it to every worker). */
  secret: string | Uint8Array;
  /** The driver's relay of session descriptions and ICE candidates. */
  signalling: WebRtcSignalling;
  /** Which implementation: '@roamhq/wrtc', 'node-datachannel' (its W3C polyfill), or 'auto' (the first that loads). Default 'auto'. */
  implementation?: WebRtcImplementationChoice;
  /**
   * All ranks on this machine: only 127.0.0.1 host candidates are offered and accepted (in
   * signalling and in SDP), so nothing leaves the machine. Default true.
   */
  loopback?: boolean;
  /** STUN/TURN servers (only with loopback: false). Default none. */
  iceServers?: IceServer[];
  /** Extra RTCPeerConnection configuration fields (implementation-specific, e.g. node-datachannel's portRangeBegin). */
  rtcConfiguration?: Record<string, unknown>;
  /** Frames are split into data-channel messages of at most this many bytes. Default and maximum 256 KiB. */
  messageBytes?: number;
  /** A send waits while the channel's bufferedAmount is above this. Default 4 MiB. */
  maxBufferedAmount?: number;
  /** How often a waiting send polls bufferedAmount, in ms. Default 2. */
  bufferPollMs?: number;
  /** A peer from which nothing arrived for this long is lost. Default 30 000 ms. */
  peerTimeoutMs?: number;
  /** Send a Heartbeat after this long without sending. Default peerTimeoutMs / 4, at most 5000 ms. */
  heartbeatIntervalMs?: number;
  /** A handshake (from the channel's opening) that takes longer is refused. Default 10 000 ms. */
  handshakeTimeoutMs?: number;
  /** connect() fails if the mesh is not complete by then. Default 60 000 ms. */
  connectTimeoutMs?: number;
  /** close() waits at most this long for channels to send what was sent on them. Default 1000 ms. */
  closeGraceMs?: number;
  /**
   * close() waits, besides bufferedAmount reaching 0, until this long has passed since the
   * last message on a channel (within closeGraceMs): data the SCTP stack took from the
   * channel but has not had acknowledged is not in bufferedAmount and is dropped when the
   * connection closes. Default 250 ms with @roamhq/wrtc (which also loses UDP datagrams on
   * loopback and recovers them only by retransmission timeout), 100 ms with node-datachannel.
   */
  closeLingerMs?: number;
}

export class WebRtcTransport implements Transport, LinkHost {
  readonly rank: number;
  readonly worldSize: number;
  readonly jobId: string;
  readonly jobIdLE: Uint8Array;
  readonly secret: Uint8Array;
  readonly maxPayloadBytes: number;
  readonly handshakeTimeoutMs: number;
  readonly messageBytes: number;
  readonly maxBufferedAmount: number;
  readonly bufferPollMs: number;
  readonly closeLingerMs: number;
  readonly loopback: boolean;
  readonly rtcConfiguration: Record<string, unknown>;
  readonly peerTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  private readonly connectTimeoutMs: number;
  private readonly closeGraceMs: number;

  private readonly counters: Counters;
  private readonly mailbox: Mailbox;
  private readonly links: (PeerLink | undefined)[];
  private readonly lost: (PeerLostError | undefined)[];
  private readonly ready: Deferred[];
  /** What send() (pair.ts) reads of this mesh. */
  private readonly sendState: MeshSendState;
  /** Candidates that came before their pair's offer (a relay that reorders). */
  private readonly early: { from: number; message: SignalMessage }[] = [];
  private readonly heartbeat: Uint8Array;
  private readonly timer: NodeJS.Timeout;
  private closedErr: TransportClosedError | undefined;
  private connecting: Promise<void> | undefined;

  /**
   * One rank's end of the mesh, with a loaded implementation (see loadWebRtcImplementation);
   * it starts listening to signalling at once (answering offers from lower ranks) and makes
   * its own offers on connect(). createWebRtcTransport does all of it.
   */
  constructor(private readonly options: WebRtcTransportOptions, readonly implementation: WebRtcImplementation) {
    checkRankAndWorld(options.rank, options.worldSize);
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    this.jobId = checkJobId(options.jobId ?? '0');
    this.jobIdLE = jobIdBytes(this.jobId);
    this.secret = secretBytes(options.secret);
    const sig = options.signalling;
    if (!sig || typeof sig.send !== 'function' || typeof sig.onMessage !== 'function') {
      throw new TypeError('options.signalling must be an object with send(toRank, message) and onMessage(handler)');
    }
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    if (!Number.isInteger(this.maxPayloadBytes) || this.maxPayloadBytes < 0 || this.maxPayloadBytes > 0xffff_ffff) {
      throw new RangeError(`maxPayloadBytes must be an integer in [0, 2^32), got ${this.maxPayloadBytes}`);
    }
    this.messageBytes = options.messageBytes ?? MAX_MESSAGE_BYTES;
    if (!Number.isInteger(this.messageBytes) || this.messageBytes < 1024 || this.messageBytes > MAX_MESSAGE_BYTES) {
      throw new RangeError(`messageBytes must be an integer in [1024, ${MAX_MESSAGE_BYTES}], got ${this.messageBytes}`);
    }
    this.maxBufferedAmount = positive('maxBufferedAmount', options.maxBufferedAmount, DEFAULT_MAX_BUFFERED_AMOUNT);
    this.bufferPollMs = positive('bufferPollMs', options.bufferPollMs, 2);
    this.handshakeTimeoutMs = positive('handshakeTimeoutMs', options.handshakeTimeoutMs, DEFAULT_HANDSHAKE_TIMEOUT_MS);
    this.peerTimeoutMs = positive('peerTimeoutMs', options.peerTimeoutMs, 30_000);
    this.heartbeatIntervalMs = positive('heartbeatIntervalMs', options.heartbeatIntervalMs, Math.max(5, Math.min(5000, Math.floor(this.peerTimeoutMs / 4))));
    this.connectTimeoutMs = positive('connectTimeoutMs', options.connectTimeoutMs, 60_000);
    this.closeGraceMs = positive('closeGraceMs', options.closeGraceMs, 1000);
    this.closeLingerMs = options.closeLingerMs === 0 ? 0 : positive('closeLingerMs', options.closeLingerMs, implementation.name === 'wrtc' ? 250 : 100);
    this.loopback = options.loopback ?? true;
    const iceServers = options.iceServers ?? [];
    if (this.loopback && iceServers.length > 0) {
      throw new RangeError('iceServers cannot be used with loopback (only 127.0.0.1 host candidates are used); set loopback: false');
    }
    this.rtcConfiguration = {
      iceServers,
      // libdatachannel gathers no loopback candidate unless bound to it.
      ...(this.loopback && implementation.name === 'node-datachannel' ? { bindAddress: LOOPBACK_ADDRESS } : {}),
      ...options.rtcConfiguration,
    };
    this.counters = new Counters(this.rank, options);
    this.mailbox = new Mailbox(this.rank, this.worldSize);
    this.links = new Array<PeerLink | undefined>(this.worldSize).fill(undefined);
    this.lost = new Array<PeerLostError | undefined>(this.worldSize).fill(undefined);
    this.ready = Array.from({ length: this.worldSize }, () => deferred());
    this.sendState = { closedError: () => this.closedErr, lost: this.lost, ready: this.ready, counters: this.counters };
    this.ready[this.rank]!.resolve();
    this.heartbeat = encodeFrameBytes({
      kind: FrameKind.Heartbeat, jobId: this.jobId, iteration: 0, sender: this.rank, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array(0),
    });
    this.timer = setInterval(() => this.tick(), Math.max(5, Math.min(this.heartbeatIntervalMs, this.peerTimeoutMs / 4)));
    this.timer.unref();
    sig.onMessage((from, message) => this.onSignal(from, message));
  }

  /** The implementation in use ('wrtc' or 'node-datachannel'). */
  get implementationName(): WebRtcImplementationName {
    return this.implementation.name;
  }

  get closedError(): TransportClosedError | undefined {
    return this.closedErr;
  }

  /**
   * Offers a connection to every higher rank and waits until every pair (offered or
   * answered) is authenticated. On failure (a refused handshake, a failed connection, or
   * connectTimeoutMs) the transport is closed and the error names the rank(s).
   */
  connect(): Promise<void> {
    if (this.closedErr) return Promise.reject(this.closedErr);
    if (this.connecting) return this.connecting;
    this.connecting = (async () => {
      try {
        for (let j = this.rank + 1; j < this.worldSize; j++) {
          if (this.links[j]) continue;
          const link = new PeerLink(j, this);
          this.links[j] = link;
          void link.offer();
        }
      } catch (err) {
        await this.close();
        throw new Error(`rank ${this.rank}: cannot create an RTCPeerConnection (${this.implementation.name}): ${err instanceof Error ? err.message : String(err)}`);
      }
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const missing = this.ready.map((d, r) => (d.settled ? -1 : r)).filter((r) => r >= 0);
          reject(new Error(`rank ${this.rank}: the WebRTC mesh did not complete within ${this.connectTimeoutMs} ms; no data channel with rank(s) ${missing.join(', ')}`));
        }, this.connectTimeoutMs);
      });
      try {
        await Promise.race([Promise.all(this.ready.map((d) => d.promise)), timeout]);
      } catch (err) {
        await this.close();
        throw err;
      } finally {
        clearTimeout(timer);
      }
    })();
    return this.connecting;
  }

  // Signalling

  private signalReject(key: string, message: string, rank: number | undefined): void {
    this.reject(`signal:${key}`, `signalling message ${message}`, rank);
  }

  private onSignal(from: number, raw: unknown): void {
    if (this.closedErr) return;
    if (!Number.isInteger(from) || from < 0 || from >= this.worldSize || from === this.rank) {
      this.signalReject('rank', `from rank ${String(from)}, not a peer in a world of ${this.worldSize}`, undefined);
      return;
    }
    const m = parseSignal(raw);
    if (typeof m === 'string') {
      this.signalReject('malformed', `from rank ${from} refused: ${m}`, from);
      return;
    }
    if (m.job !== this.jobId) {
      this.signalReject('wrong-job', `from rank ${from} is for job ${m.job}, this is job ${this.jobId}`, from);
      return;
    }
    let link = this.links[from];
    switch (m.type) {
      case 'offer':
        if (from > this.rank) {
          this.signalReject('unexpected', `from rank ${from}: an offer from a higher rank (the lower rank of a pair offers)`, from);
          return;
        }
        if (link || this.lost[from]) {
          this.signalReject('duplicate', `from rank ${from}: a second offer for the pair`, from);
          return;
        }
        try {
          link = new PeerLink(from, this);
        } catch (err) {
          const e = new Error(`rank ${this.rank}: cannot create an RTCPeerConnection (${this.implementation.name}) for rank ${from}: ${err instanceof Error ? err.message : String(err)}`);
          this.counters.log(e.message);
          this.lost[from] = new PeerLostError(from, e.message);
          this.mailbox.fail(from, this.lost[from]);
          this.ready[from]!.reject(e);
          return;
        }
        this.links[from] = link;
        void link.answer(m.sdp);
        for (const e of this.early.filter((x) => x.from === from)) {
          const c = e.message as Extract<SignalMessage, { type: 'candidate' }>;
          void link.addCandidate({ candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex }); // held until the offer is set
        }
        this.early.splice(0, this.early.length, ...this.early.filter((x) => x.from !== from));
        return;
      case 'answer':
        if (!link) {
          this.signalReject('unexpected', `from rank ${from}: an answer to no offer`, from);
          return;
        }
        void link.takeAnswer(m.sdp).then((ok) => {
          if (!ok) this.signalReject('unexpected', `from rank ${from}: an answer that was not expected`, from);
        });
        return;
      case 'candidate':
        if (!link) {
          if (from < this.rank && this.early.length < 64) this.early.push({ from, message: m });
          else this.signalReject('unexpected', `from rank ${from}: a candidate before any offer`, from);
          return;
        }
        void link.addCandidate({ candidate: m.candidate, sdpMid: m.sdpMid, sdpMLineIndex: m.sdpMLineIndex });
        return;
    }
  }

  // LinkHost

  signal(to: number, message: SignalMessage): void {
    if (this.closedErr) return;
    try {
      this.options.signalling.send(to, message);
    } catch (err) {
      this.counters.log(`signalling to rank ${to} failed: ${err instanceof Error ? err.message : String(err)}`);
      void this.links[to]?.shut(`signalling failed: ${err instanceof Error ? err.message : String(err)}`, err instanceof Error ? err : undefined);
    }
  }

  admissible(rank: number): { reason: RefuseReason; detail: string } | undefined {
    if (this.closedErr) return { reason: 'closed', detail: 'this transport is closed' };
    if (this.lost[rank]) return { reason: 'duplicate-rank', detail: `rank ${rank} is already lost; a second connection is refused` };
    return undefined;
  }

  admitted(link: PeerLink): void {
    this.ready[link.peer]!.resolve();
  }

  frame(link: PeerLink, f: Frame): void {
    if (f.kind === FrameKind.Heartbeat) {
      this.counters.heartbeatsReceived++;
      return;
    }
    this.counters.framesReceived++;
    this.counters.bytesReceived += HEADER_SIZE + f.payload.byteLength;
    this.mailbox.deliver(f);
  }

  reject(key: string, message: string, rank: number | undefined): void {
    const r: { reason: string; message: string; rank?: number } = { reason: key, message };
    if (rank !== undefined && rank >= 0) r.rank = rank;
    this.counters.reject(r);
  }

  closed(link: PeerLink, reason: string, error: Error | undefined): void {
    if (this.links[link.peer] !== link) return;
    if (this.closedErr) return;
    if (link.admittedPeer) {
      this.lose(link.peer, reason);
      return;
    }
    // Failed before admission: the pair never came up.
    const err = error instanceof HandshakeError ? error : new Error(`rank ${this.rank}: no data channel with rank ${link.peer}: ${reason}`);
    const lostErr = new PeerLostError(link.peer, reason);
    this.lost[link.peer] = lostErr;
    this.mailbox.fail(link.peer, lostErr);
    this.ready[link.peer]!.reject(err);
  }

  log(line: string): void {
    this.counters.log(line);
  }

  private lose(rank: number, reason: string): void {
    if (this.lost[rank] || this.closedErr) return;
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

  private tick(): void {
    const now = Date.now();
    for (let r = 0; r < this.worldSize; r++) {
      const l = this.links[r];
      if (!l || l.state !== 'open') continue;
      if (now - l.lastRecv > this.peerTimeoutMs) {
        void l.shut(`silent for ${now - l.lastRecv} ms (peerTimeoutMs ${this.peerTimeoutMs})`);
        continue;
      }
      if (now - l.lastSend >= this.heartbeatIntervalMs && l.sendIdle(this.heartbeat)) this.counters.heartbeatsSent++;
    }
  }

  // Transport

  send(to: number, frame: OutgoingFrame): Promise<void> {
    return sendOnPair(this, this.sendState, to, frame, (r) => this.links[r]!);
  }

  receive(from: number, kind: FrameKind, iteration: number, slice: number, options?: ReceiveOptions): Promise<Frame> {
    return this.mailbox.receive(from, kind, iteration, slice, options);
  }

  stats(): TransportStats {
    return this.counters.snapshot();
  }

  /** Whether `rank`'s data channel is up (authenticated and not lost). */
  isConnected(rank: number): boolean {
    return this.links[rank]?.state === 'open' && !this.lost[rank];
  }

  /** Closes every pair (channels flush what was sent first, within closeGraceMs); resolves once every peer connection is closed. */
  async close(): Promise<void> {
    if (this.closedErr) {
      await Promise.all(this.links.map((l) => l?.shut('closed by this side')));
      return;
    }
    const err = (this.closedErr = new TransportClosedError(this.rank));
    clearInterval(this.timer);
    this.mailbox.close(err);
    for (const d of this.ready) if (!d.settled) d.reject(err);
    this.early.length = 0;
    await Promise.all(this.links.map((l) => l?.shut('closed by this side', err, true, this.closeGraceMs)));
  }
}

/**
 * One rank's WebRTC transport, connected: loads the implementation (options.implementation,
 * default 'auto'), listens to signalling, offers to every higher rank, answers every lower
 * one, and resolves when all worldSize-1 pairs are authenticated.
 */
export async function createWebRtcTransport(options: WebRtcTransportOptions): Promise<WebRtcTransport> {
  const impl = await loadWebRtcImplementation(options.implementation ?? 'auto');
  const t = new WebRtcTransport(options, impl);
  await t.connect();
  return t;
}
