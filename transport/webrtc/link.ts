// One pair of the WebRTC mesh: an RTCPeerConnection with one ordered, reliable data channel
// ('squall', binaryType arraybuffer). The lower rank offers and creates the channel; the
// higher rank answers and receives it. Once the channel is open, the pair runs the job's
// handshake over it (transport/handshake.ts; the offerer is the acceptor and the answerer
// the dialer, as on TCP where the higher rank dials), then carries frames both ways.
//
// The channel is a message stream, not a byte stream, but the transport treats it as one:
// every frame (frame.ts) is cut into messages of at most messageBytes (256 KiB, the
// largest SCTP message both implementations take), and the receiver feeds the messages,
// in order, to a FrameDecoder that checks every frame as on TCP. Backpressure: before each
// message, send() polls `bufferedAmount` (a timer every bufferPollMs) until it is at most
// maxBufferedAmount; @roamhq/wrtc never fires bufferedamountlow, so polling is the one path
// both implementations share. A send resolves once all its messages are in the channel
// (both implementations copy them there), so the caller may reuse its payload then.
import { FrameDecoder, FrameError, HEADER_SIZE, encodeHeader } from '../frame.js';
import { admitDecoder, type PairHost } from '../pair.js';
import { HANDSHAKE_MAX_PAYLOAD, Handshake, HandshakeError, refuseFrame, type HandshakeParams, type RefuseReason } from '../handshake.js';
import { FrameKind, PeerLostError, type Frame } from '../transport.js';
import { isLoopbackHostCandidate, loopbackSdp, normalizeCandidate } from './candidates.js';
import type { RtcDataChannel, RtcIceCandidateInit, RtcPeerConnection, WebRtcImplementation } from './implementation.js';
import { SIGNAL_PROTOCOL, type SignalMessage } from './signalling.js';

export const CHANNEL_LABEL = 'squall';

/** What a link needs from its transport. */
export interface LinkHost extends PairHost {
  readonly messageBytes: number;
  readonly maxBufferedAmount: number;
  readonly bufferPollMs: number;
  /** On a flushing close, how long after the last message to wait before closing the channel. */
  readonly closeLingerMs: number;
  readonly loopback: boolean;
  readonly implementation: WebRtcImplementation;
  /** The RTCPeerConnection configuration (iceServers and implementation-specific fields). */
  readonly rtcConfiguration: Record<string, unknown>;
  /** Set once the transport is closed: what sends fail with then. */
  readonly closedError: Error | undefined;
  signal(to: number, message: SignalMessage): void;
  admissible(rank: number): { reason: RefuseReason; detail: string } | undefined;
  /** The handshake finished: the link carries `rank`'s frames. */
  admitted(link: PeerLink): void;
  /** A frame that passed every check arrived on an admitted link. */
  frame(link: PeerLink, frame: Frame): void;
  reject(key: string, message: string, rank: number | undefined): void;
  /** The link is gone; `error` is set when it failed before admission. */
  closed(link: PeerLink, reason: string, error: Error | undefined): void;
  log(line: string): void;
}

type State = 'signalling' | 'handshake' | 'open' | 'closed';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * On close, how long to wait for the data channel's close event before closing the peer
 * connection. node-datachannel's polyfill defers a channel's native close to setImmediate;
 * when the peer connection closed first, that channel now and then never reported closed and
 * its native callbacks kept the process alive for good (about one run in ten of
 * test/transport/webrtc-faults under CPU load). Closing the channel first and letting it
 * finish does not race. The bound is for a peer that no longer answers the stream reset.
 */
const CHANNEL_CLOSE_WAIT_MS = 500;

function errText(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (err && typeof err === 'object' && 'error' in err && (err as { error?: unknown }).error instanceof Error) return ((err as { error: Error }).error).message;
  return String(err);
}

export class PeerLink {
  state: State = 'signalling';
  /** Whether the handshake admitted the peer (the link then counts as the peer's). */
  admittedPeer = false;
  lastRecv = Date.now();
  lastSend = Date.now();
  /** A frame's messages are being written (no heartbeat may go between them). */
  sending = false;
  readonly role: 'offerer' | 'answerer';
  private readonly pc: RtcPeerConnection;
  private channel: RtcDataChannel | undefined;
  private readonly decoder: FrameDecoder;
  private readonly hs: Handshake;
  private hsTimer: NodeJS.Timeout | undefined;
  private remoteDescription = false;
  private readonly pendingCandidates: RtcIceCandidateInit[] = [];
  /**
   * Offerer: own candidates held back until the answer is set. Otherwise the answerer can
   * start its connectivity checks before the offerer knows the answer, which libdatachannel
   * (libjuice) recovers from only on a ~1 s retry.
   */
  private heldCandidates: SignalMessage[] | undefined;
  private sendChain: Promise<void> = Promise.resolve();
  private closeReason = 'the connection closed';
  private channelError: string | undefined;
  private closing: Promise<void> | undefined;
  /** Resolves on the data channel's close event. */
  private readonly channelClosed: Promise<void>;
  private onChannelClosed: () => void = () => {};

  /** The link is closed (a method, so TypeScript does not narrow the state across awaits). */
  get dead(): boolean {
    return this.state === 'closed';
  }

  constructor(readonly peer: number, private readonly host: LinkHost) {
    this.channelClosed = new Promise((r) => (this.onChannelClosed = r));
    this.role = host.rank < peer ? 'offerer' : 'answerer';
    if (this.role === 'offerer') this.heldCandidates = [];
    this.decoder = new FrameDecoder({ maxPayloadBytes: HANDSHAKE_MAX_PAYLOAD, kinds: [FrameKind.Hello] });
    const params: HandshakeParams = {
      role: this.role === 'answerer' ? 'dialer' : 'acceptor',
      rank: host.rank, worldSize: host.worldSize, jobId: host.jobId, secret: host.secret,
      admissible: (r) => (r !== peer
        ? { reason: 'unexpected-rank', detail: `the data channel of rank ${peer} carries a handshake claiming rank ${r}` }
        : host.admissible(r)),
    };
    if (this.role === 'answerer') params.expectRank = peer;
    this.hs = new Handshake(params);
    this.pc = new host.implementation.RTCPeerConnection({ ...host.rtcConfiguration });
    this.pc.onicecandidate = (ev) => this.onLocalCandidate(ev.candidate);
    this.pc.onconnectionstatechange = () => this.onConnectionState();
    if (this.role === 'answerer') {
      this.pc.ondatachannel = (ev) => {
        if (this.dead) {
          // Announced after close() began: nothing else would close it.
          ev.channel.close();
          return;
        }
        if (ev.channel.label !== CHANNEL_LABEL || this.channel) {
          this.host.log(`rank ${peer} opened an unexpected data channel ${JSON.stringify(ev.channel.label)}; closed it`);
          ev.channel.close();
          return;
        }
        this.setupChannel(ev.channel);
      };
    }
  }

  /** Offerer: creates the channel and sends the offer. */
  async offer(): Promise<void> {
    try {
      this.setupChannel(this.pc.createDataChannel(CHANNEL_LABEL, { ordered: true }));
      const offer = await this.pc.createOffer();
      if (this.dead) return;
      await this.pc.setLocalDescription(offer);
      if (this.dead) return;
      this.sendDescription('offer', offer.sdp ?? this.pc.localDescription?.sdp ?? '');
    } catch (err) {
      this.shut(`signalling failed: cannot make an offer: ${errText(err)}`, err instanceof Error ? err : undefined);
    }
  }

  /** Answerer: takes the offer and sends the answer. */
  async answer(sdp: string): Promise<void> {
    try {
      await this.pc.setRemoteDescription({ type: 'offer', sdp: this.host.loopback ? loopbackSdp(sdp) : sdp });
      if (this.dead) return;
      this.remoteDescription = true;
      await this.flushCandidates();
      const answer = await this.pc.createAnswer();
      if (this.dead) return;
      await this.pc.setLocalDescription(answer);
      if (this.dead) return;
      this.sendDescription('answer', answer.sdp ?? this.pc.localDescription?.sdp ?? '');
    } catch (err) {
      this.shut(`signalling failed: cannot answer the offer: ${errText(err)}`, err instanceof Error ? err : undefined);
    }
  }

  /** Offerer: takes the answer. Returns false if none was expected. */
  async takeAnswer(sdp: string): Promise<boolean> {
    if (this.role !== 'offerer' || this.remoteDescription || this.dead) return false;
    this.remoteDescription = true;
    try {
      await this.pc.setRemoteDescription({ type: 'answer', sdp: this.host.loopback ? loopbackSdp(sdp) : sdp });
      const held = this.heldCandidates ?? [];
      this.heldCandidates = undefined;
      if (!this.dead) for (const m of held) this.host.signal(this.peer, m);
      await this.flushCandidates();
    } catch (err) {
      this.shut(`signalling failed: cannot take the answer: ${errText(err)}`, err instanceof Error ? err : undefined);
    }
    return true;
  }

  /** A remote ICE candidate (held until the remote description is set; off-loopback ones dropped in loopback mode). */
  async addCandidate(c: RtcIceCandidateInit): Promise<void> {
    if (this.dead || !c.candidate) return;
    if (this.host.loopback && !isLoopbackHostCandidate(c.candidate)) return;
    if (!this.remoteDescription) {
      this.pendingCandidates.push(c);
      return;
    }
    await this.addCandidateNow(c);
  }

  private async addCandidateNow(c: RtcIceCandidateInit): Promise<void> {
    try {
      await this.pc.addIceCandidate({ candidate: normalizeCandidate(c.candidate!), sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null });
    } catch (err) {
      if (!this.dead) this.host.log(`rank ${this.peer}: ICE candidate ${JSON.stringify(c.candidate)} not added: ${errText(err)}`);
    }
  }

  private async flushCandidates(): Promise<void> {
    for (const c of this.pendingCandidates.splice(0)) await this.addCandidateNow(c);
  }

  private sendDescription(type: 'offer' | 'answer', sdp: string): void {
    this.host.signal(this.peer, { proto: SIGNAL_PROTOCOL, job: this.host.jobId, type, sdp: this.host.loopback ? loopbackSdp(sdp) : sdp });
  }

  private onLocalCandidate(c: RtcIceCandidateInit | null): void {
    if (this.dead || !c || !c.candidate) return; // null / empty: end of gathering
    const line = normalizeCandidate(c.candidate);
    if (this.host.loopback && !isLoopbackHostCandidate(line)) return;
    const m: SignalMessage = {
      proto: SIGNAL_PROTOCOL, job: this.host.jobId, type: 'candidate', candidate: line, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null,
    };
    if (this.heldCandidates) this.heldCandidates.push(m);
    else this.host.signal(this.peer, m);
  }

  private onConnectionState(): void {
    const s = this.pc.connectionState;
    if (this.dead) return;
    if (s === 'failed') this.shut(`the peer connection failed (ICE or DTLS)`);
    else if (s === 'closed') this.shut('the peer connection closed');
  }

  private setupChannel(ch: RtcDataChannel): void {
    this.channel = ch;
    ch.binaryType = 'arraybuffer';
    ch.onopen = () => this.startHandshake();
    ch.onmessage = (ev) => this.onMessage(ev.data);
    ch.onerror = (ev) => {
      this.channelError = errText(ev);
    };
    ch.onclose = () => {
      this.onChannelClosed();
      if (!this.dead) this.shut(this.channelError ? `the data channel failed: ${this.channelError}` : 'the peer closed the data channel');
    };
    if (ch.readyState === 'open') this.startHandshake();
  }

  private startHandshake(): void {
    if (this.state !== 'signalling') return;
    this.state = 'handshake';
    this.lastRecv = Date.now();
    this.hsTimer = setTimeout(() => {
      if (this.state === 'handshake') {
        this.refuse(new HandshakeError('timeout', `the handshake did not finish within ${this.host.handshakeTimeoutMs} ms`, this.hs.peerRank));
      }
    }, this.host.handshakeTimeoutMs);
    this.hsTimer.unref();
    try {
      for (const b of this.hs.start()) this.put(b);
    } catch {
      // put() closed the link already
    }
  }

  private onMessage(data: unknown): void {
    if (this.dead) return;
    if (this.state === 'signalling') this.startHandshake(); // a message before the open event: the channel is open
    if (this.dead) return;
    this.lastRecv = Date.now();
    let bytes: Uint8Array;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else {
      const rank = this.state === 'open' ? this.peer : this.hs.peerRank;
      const what = typeof data === 'string' ? 'a text message' : `a message of type ${typeof data}`;
      this.host.reject('frame:text', `${what} on the data channel (frames are binary)`, rank);
      this.shut(`rejected ${what} on the data channel`, new Error(`rank ${this.peer} sent ${what}`), true);
      return;
    }
    try {
      for (const f of this.decoder.push(bytes)) {
        if (this.state === 'handshake') this.onHandshakeFrame(f);
        else if (this.state === 'open') this.host.frame(this, f);
        if ((this.state as State) === 'closed') break;
      }
    } catch (err) {
      if (err instanceof FrameError) {
        this.host.reject(err.reason, err.message, this.state === 'open' ? this.peer : this.hs.peerRank);
        this.shut(this.state === 'open' ? `rejected a bad frame: ${err.message}` : `bad handshake frame: ${err.message}`, err, true);
      } else if (err instanceof HandshakeError) {
        this.refuse(err);
      } else {
        this.shut(`internal error: ${errText(err)}`, err instanceof Error ? err : undefined, true);
      }
    }
  }

  private onHandshakeFrame(f: Frame): void {
    const out = this.hs.onFrame(f); // throws HandshakeError
    for (const b of out.send) this.put(b);
    if (!out.done) return;
    clearTimeout(this.hsTimer);
    this.state = 'open';
    this.admittedPeer = true;
    admitDecoder(this.decoder, this.host, this.peer);
    this.host.admitted(this);
  }

  /** Refuses the peer: counts it, tells it why (unless it refused us), closes. */
  private refuse(err: HandshakeError): void {
    if (this.dead) return;
    this.host.reject(err.key, err.message, err.rank);
    if (err.reason !== 'refused-by-peer' && this.channel?.readyState === 'open') {
      try {
        this.channel.send(refuseFrame(this.host.rank, this.host.jobId, err.reason));
      } catch {
        // the channel is going anyway
      }
    }
    this.shut(err.message, err, true);
  }

  /** What a send fails with once the link is closed. */
  private failure(): Error {
    return this.host.closedError ?? new PeerLostError(this.peer, this.closeReason);
  }

  /** Hands one message to the channel; a channel that refuses it loses the peer. */
  private put(bytes: Uint8Array): void {
    const ch = this.channel;
    if (!ch || ch.readyState !== 'open') {
      if (!this.dead) this.shut('the data channel is not open');
      throw this.failure();
    }
    try {
      ch.send(bytes);
    } catch (err) {
      this.shut(`the data channel refused a message: ${errText(err)}`);
      throw this.failure();
    }
    this.lastSend = Date.now();
  }

  /** Waits (polling bufferedAmount) until the channel has room for another message. */
  private async room(): Promise<void> {
    const ch = this.channel!;
    while (!this.dead && ch.bufferedAmount > this.host.maxBufferedAmount) await sleep(this.host.bufferPollMs);
    if (this.dead) throw this.failure();
  }

  /** Sends one frame, after the ones sent before it; resolves when its payload is no longer needed. */
  send(frame: Frame): Promise<void> {
    if (this.state !== 'open') return Promise.reject(this.failure());
    const run = this.sendChain.then(() => this.write(frame));
    this.sendChain = run.catch(() => {});
    return run;
  }

  private async write(frame: Frame): Promise<void> {
    if (this.state !== 'open') throw this.failure();
    this.sending = true;
    try {
      const payload = frame.payload;
      const n = payload.byteLength;
      const m = this.host.messageBytes;
      // The first message carries the header and as much of the payload as fits (copied);
      // the rest goes out as views of the caller's payload, which send() copies.
      const take = Math.min(n, m - HEADER_SIZE);
      const first = new Uint8Array(HEADER_SIZE + take);
      first.set(encodeHeader(frame, payload, this.host.jobIdLE), 0);
      if (take > 0) first.set(payload.subarray(0, take), HEADER_SIZE);
      await this.room();
      this.put(first);
      for (let off = take; off < n; off += m) {
        await this.room();
        this.put(payload.subarray(off, Math.min(n, off + m)));
      }
    } finally {
      this.sending = false;
    }
  }

  /** Sends a ready-made frame (a heartbeat) if the link is idle; returns whether it did. */
  sendIdle(bytes: Uint8Array): boolean {
    if (this.state !== 'open' || this.sending || !this.channel || this.channel.bufferedAmount > 0) return false;
    try {
      this.put(bytes);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Closes the link: no more frames are read, sends fail. With `flush`, what was sent so far
   * gets time to go out first (bufferedAmount drains and closeLingerMs pass, within
   * graceMs). Resolves once the peer connection is closed.
   */
  shut(reason: string, error?: Error, flush = false, graceMs = 1000): Promise<void> {
    if (this.closing) return this.closing;
    this.closeReason = reason;
    this.state = 'closed';
    clearTimeout(this.hsTimer);
    this.host.closed(this, reason, this.admittedPeer ? undefined : error ?? new Error(reason));
    this.closing = this.teardown(flush, graceMs);
    return this.closing;
  }

  private async teardown(flush: boolean, graceMs: number): Promise<void> {
    const ch = this.channel;
    const deadline = Date.now() + graceMs;
    if (flush && ch && ch.readyState === 'open') {
      // bufferedAmount counts only what the channel still holds, not what the SCTP stack
      // took from it and has not had acknowledged; closing drops that part (libwebrtc
      // discards it when the stream resets; either drops it when the association goes), and
      // neither API tells when it is acknowledged. So the close waits for bufferedAmount to
      // reach 0 and then lingers until closeLingerMs have passed since the last message.
      // Best effort: a frame that SCTP is still retransmitting then may be lost.
      const linger = this.host.closeLingerMs;
      while (ch.readyState === 'open' && (ch.bufferedAmount > 0 || Date.now() - this.lastSend < linger) && Date.now() < deadline) {
        await sleep(this.host.bufferPollMs);
      }
    }
    try {
      if (ch && ch.readyState !== 'closed') {
        ch.close();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([this.channelClosed, new Promise<void>((r) => (timer = setTimeout(r, CHANNEL_CLOSE_WAIT_MS)))]);
        clearTimeout(timer);
      }
    } catch (err) {
      this.host.log(`rank ${this.peer}: closing the data channel: ${errText(err)}`);
    }
    try {
      this.pc.close();
    } catch (err) {
      this.host.log(`rank ${this.peer}: closing the peer connection: ${errText(err)}`);
    }
  }
}
