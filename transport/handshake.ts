// Mutual authentication of a new pair with the job's secret (DESIGN.md §6), as a state
// machine over frames of kind Hello, independent of what carries them (TCP here, a WebRTC
// data channel later). Every handshake frame is an ordinary frame (magic, version, CRC)
// of kind Hello with dtype Bytes and slice 0; its iteration field says which step it is:
//
//   step 0 HELLO   payload: nonce (32 random bytes) | worldSize (u32 LE)   both sides, at once
//   step 1 PROOF   payload: HMAC-SHA256(secret, "squall-v1" | jobId (u64 LE) | own rank (u32 LE) | peer's nonce)
//   step 2 REFUSE  payload: the reason (ASCII, <= 64 bytes), then the sender closes
//
// The header's sender field carries the claimed rank and its jobId the claimed job.
// Order: the dialer sends its PROOF once it has the acceptor's HELLO; the acceptor checks
// it and only then sends its own PROOF (and admits the dialer); the dialer checks that and
// admits the acceptor. Because the acceptor never computes a proof before it has verified
// one, a party without the secret cannot get a member to compute the proof it needs (no
// relay through a second connection), and a member only dials addresses in its book.
//
// Refusals: wrong-job, wrong-world-size, rank-out-of-range, unexpected-rank (not the rank
// dialed, or a rank that should have been dialed rather than dial in), duplicate-rank (a
// rank already admitted or lost), wrong-secret (a proof that does not verify), protocol (a
// malformed or out-of-order handshake frame), refused-by-peer (the other side refused us),
// and, decided by the carrier: timeout, too-many-pending, closed.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { HEADER_SIZE, encodeFrameBytes, jobIdBytes } from './frame.js';
import { FrameKind, WireDtype, type Frame } from './transport.js';

export const HANDSHAKE_LABEL = 'squall-v1';
export const NONCE_BYTES = 32;
export const PROOF_BYTES = 32;
/** Largest payload of a handshake frame (the decoder's limit until the peer is admitted). */
export const HANDSHAKE_MAX_PAYLOAD = 64;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

export enum HandshakeStep {
  Hello = 0,
  Proof = 1,
  Refuse = 2,
}

export type RefuseReason =
  | 'wrong-secret' | 'wrong-job' | 'wrong-world-size' | 'rank-out-of-range' | 'unexpected-rank' | 'duplicate-rank'
  | 'protocol' | 'refused-by-peer' | 'timeout' | 'too-many-pending' | 'closed';

export class HandshakeError extends Error {
  constructor(
    readonly reason: RefuseReason,
    detail: string,
    /** The rank the peer claimed, when it got that far. */
    readonly rank?: number,
  ) {
    super(`handshake refused (${reason}): ${detail}`);
    this.name = 'HandshakeError';
  }

  /** The stats().rejected key. */
  get key(): string {
    return `handshake:${this.reason}`;
  }
}

export function secretBytes(secret: string | Uint8Array): Uint8Array {
  const b = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
  if (!(b instanceof Uint8Array) || b.byteLength === 0) throw new RangeError('the job secret must be a non-empty string or byte array');
  return b;
}

/** HMAC-SHA256(secret, "squall-v1" | jobId u64 LE | rank u32 LE | peerNonce). */
export function handshakeProof(secret: Uint8Array, jobId: string, rank: number, peerNonce: Uint8Array): Uint8Array {
  const r = new Uint8Array(4);
  new DataView(r.buffer).setUint32(0, rank, true);
  const h = createHmac('sha256', secret);
  h.update(HANDSHAKE_LABEL);
  h.update(jobIdBytes(jobId));
  h.update(r);
  h.update(peerNonce);
  return new Uint8Array(h.digest());
}

function frame(step: HandshakeStep, rank: number, jobId: string, payload: Uint8Array): Uint8Array {
  return encodeFrameBytes({ kind: FrameKind.Hello, jobId, iteration: step, sender: rank, slice: 0, dtype: WireDtype.Bytes, payload });
}

export function helloFrame(rank: number, jobId: string, nonce: Uint8Array, worldSize: number): Uint8Array {
  const p = new Uint8Array(NONCE_BYTES + 4);
  p.set(nonce, 0);
  new DataView(p.buffer).setUint32(NONCE_BYTES, worldSize, true);
  return frame(HandshakeStep.Hello, rank, jobId, p);
}

export function proofFrame(rank: number, jobId: string, proof: Uint8Array): Uint8Array {
  return frame(HandshakeStep.Proof, rank, jobId, proof);
}

export function refuseFrame(rank: number, jobId: string, reason: string): Uint8Array {
  return frame(HandshakeStep.Refuse, rank, jobId, new TextEncoder().encode(reason.slice(0, HANDSHAKE_MAX_PAYLOAD).replace(/[^\x20-\x7e]/g, '?')));
}

export interface HandshakeParams {
  role: 'dialer' | 'acceptor';
  rank: number;
  worldSize: number;
  jobId: string;
  secret: Uint8Array;
  /** Dialer: the rank at the address it dialed. */
  expectRank?: number;
  /**
   * Whether a peer claiming `rank` may be admitted now (asked when its HELLO arrives and
   * again just before admission): undefined if so, else the refusal and why.
   */
  admissible?: (rank: number) => { reason: RefuseReason; detail: string } | undefined;
}

export interface HandshakeOutput {
  /** Frames to send now, in order. */
  send: Uint8Array[];
  /** The peer is authenticated and admitted (send the frames above first). */
  done: boolean;
}

/**
 * One side of one handshake. `start()` gives the HELLO to send; `onFrame` takes each
 * decoded frame from the peer and returns what to send, or throws a HandshakeError (the
 * carrier then sends `refuseFrame(...)` unless the reason is refused-by-peer, and closes).
 */
export class Handshake {
  readonly nonce: Uint8Array;
  peerRank: number | undefined;
  private peerNonce: Uint8Array | undefined;
  private step: 'hello' | 'proof' | 'done' | 'failed' = 'hello';

  constructor(private readonly p: HandshakeParams, nonce: Uint8Array = new Uint8Array(randomBytes(NONCE_BYTES))) {
    if (nonce.byteLength !== NONCE_BYTES) throw new RangeError(`nonce must be ${NONCE_BYTES} bytes`);
    this.nonce = nonce;
  }

  get done(): boolean {
    return this.step === 'done';
  }

  start(): Uint8Array[] {
    return [helloFrame(this.p.rank, this.p.jobId, this.nonce, this.p.worldSize)];
  }

  private refuse(reason: RefuseReason, detail: string): never {
    this.step = 'failed';
    throw new HandshakeError(reason, detail, this.peerRank);
  }

  onFrame(f: Frame): HandshakeOutput {
    if (this.step === 'done' || this.step === 'failed') this.refuse('protocol', `handshake frame after the handshake ${this.step === 'done' ? 'finished' : 'failed'}`);
    if (f.kind !== FrameKind.Hello) this.refuse('protocol', `expected a handshake frame, got kind ${f.kind} (${FrameKind[f.kind]})`);
    if (f.iteration === HandshakeStep.Refuse) {
      const why = new TextDecoder().decode(f.payload).replace(/[^\x20-\x7e]/g, '?');
      this.refuse('refused-by-peer', `the peer (claiming rank ${f.sender}) refused us: ${why}`);
    }
    if (this.step === 'hello') return this.onHello(f);
    return this.onProof(f);
  }

  private onHello(f: Frame): HandshakeOutput {
    if (f.iteration !== HandshakeStep.Hello) this.refuse('protocol', `expected HELLO (step 0), got step ${f.iteration}`);
    if (f.payload.byteLength !== NONCE_BYTES + 4 || f.slice !== 0 || f.dtype !== WireDtype.Bytes) {
      this.refuse('protocol', `malformed HELLO (payload ${f.payload.byteLength} bytes, slice ${f.slice}, dtype ${f.dtype})`);
    }
    const p = this.p;
    const rank = f.sender;
    this.peerRank = rank;
    if (f.jobId !== p.jobId) this.refuse('wrong-job', `the peer claiming rank ${rank} is in job ${f.jobId}, this is job ${p.jobId}`);
    const world = new DataView(f.payload.buffer, f.payload.byteOffset, f.payload.byteLength).getUint32(NONCE_BYTES, true);
    if (world !== p.worldSize) this.refuse('wrong-world-size', `the peer claiming rank ${rank} has a world of ${world}, this one has ${p.worldSize}`);
    if (rank >= p.worldSize) this.refuse('rank-out-of-range', `rank ${rank} is outside the world of ${p.worldSize}`);
    if (rank === p.rank) this.refuse('unexpected-rank', `the peer claims this side's own rank ${rank}`);
    if (p.role === 'dialer' && p.expectRank !== undefined && rank !== p.expectRank) {
      this.refuse('unexpected-rank', `dialed rank ${p.expectRank}, the peer claims rank ${rank}`);
    }
    if (p.role === 'acceptor') {
      const no = p.admissible?.(rank);
      if (no) this.refuse(no.reason, no.detail);
    }
    this.peerNonce = f.payload.slice(0, NONCE_BYTES);
    this.step = 'proof';
    if (p.role === 'dialer') return { send: [proofFrame(p.rank, p.jobId, handshakeProof(p.secret, p.jobId, p.rank, this.peerNonce))], done: false };
    return { send: [], done: false };
  }

  private onProof(f: Frame): HandshakeOutput {
    const p = this.p;
    if (f.iteration !== HandshakeStep.Proof) this.refuse('protocol', `expected PROOF (step 1), got step ${f.iteration}`);
    if (f.sender !== this.peerRank || f.jobId !== p.jobId) this.refuse('protocol', `PROOF from rank ${f.sender} of job ${f.jobId} after HELLO from rank ${this.peerRank}`);
    if (f.payload.byteLength !== PROOF_BYTES) this.refuse('protocol', `PROOF of ${f.payload.byteLength} bytes (expected ${PROOF_BYTES})`);
    const want = handshakeProof(p.secret, p.jobId, this.peerRank!, this.nonce);
    if (!timingSafeEqual(want, f.payload)) this.refuse('wrong-secret', `the proof of rank ${this.peerRank} does not verify (it does not hold this job's secret)`);
    if (p.role === 'acceptor') {
      const no = p.admissible?.(this.peerRank!);
      if (no) this.refuse(no.reason, no.detail);
      this.step = 'done';
      return { send: [proofFrame(p.rank, p.jobId, handshakeProof(p.secret, p.jobId, p.rank, this.peerNonce!))], done: true };
    }
    this.step = 'done';
    return { send: [], done: true };
  }
}

/** Bytes of a handshake frame on the wire, at most (for carriers that size buffers). */
export const HANDSHAKE_FRAME_MAX = HEADER_SIZE + HANDSHAKE_MAX_PAYLOAD;
