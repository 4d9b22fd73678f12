// The transport contract, after gloo's context / pair / buffer split: a Transport connects
// one rank of a job to every other rank (a full mesh of pairs) and moves typed frames
// between them. The parameter manager (engine/cluster) only sees this interface; TCP,
// WebRTC data channels and the in-process transport implement it beside each other.
//
// Delivery: frames between two ranks arrive in the order they were sent, exactly once, or
// the transport fails (a peer that closes or stops answering raises PeerLostError on every
// pending and later receive that needs it; frames that had fully arrived before the loss
// are still delivered). A frame that fails validation (bad magic, version, checksum, job
// id, unknown or unauthenticated sender) is never delivered: it is counted in
// stats().rejected, logged, reported through onReject, and the connection it came on is
// closed (which loses that peer).
//
// How a transport comes up differs per kind (TCP: listen, then connect with an address
// book; in-process: one call makes the whole mesh; WebRTC: signalling through the driver),
// so it is not part of this interface: a Transport is a mesh that is up or coming up.

/** What a frame carries; the parameter manager, the scheduler and the driver each use some. */
export enum FrameKind {
  /** Handshake only (transport-internal; send() refuses it). */
  Hello = 1,
  GradientSlice = 2,
  WeightSlice = 3,
  Control = 4,
  /** Liveness only (transport-internal; send() refuses it, receive() never yields it). */
  Heartbeat = 5,
}

/** Element encoding of a slice payload on the wire. */
export enum WireDtype {
  F32 = 0,
  BF16 = 1,
  F16 = 2,
  Bytes = 3,
}

/** Bytes per element of a wire dtype; a payload's length must be a multiple of it. */
export function dtypeSize(dtype: WireDtype): number {
  return dtype === WireDtype.F32 ? 4 : dtype === WireDtype.BF16 || dtype === WireDtype.F16 ? 2 : 1;
}

/** The frame kinds a user of the transport may send and receive. */
export const DATA_KINDS: readonly FrameKind[] = [FrameKind.GradientSlice, FrameKind.WeightSlice, FrameKind.Control];

export interface FrameHeader {
  kind: FrameKind;
  /** 64-bit job id as a decimal string (JSON-safe). */
  jobId: string;
  /** u32. */
  iteration: number;
  /** u32: the rank that sent the frame (set by the transport, checked against the connection). */
  sender: number;
  /** u32. */
  slice: number;
  dtype: WireDtype;
}

export interface Frame extends FrameHeader {
  /**
   * The payload. A received payload owns its ArrayBuffer from byte 0 (byteOffset 0, no
   * other data in the buffer), so `new Float32Array(p.buffer, 0, p.byteLength / 4)` is a
   * valid, aligned view, and keeping it does not pin a socket's read buffer.
   */
  payload: Uint8Array;
  /**
   * Present on large received payloads: hands the payload's buffer back for reuse by a
   * later frame (transport/payload-pool.ts). Optional to call; after calling it the
   * receiver must not touch the payload or any view of it again.
   */
  release?: () => void;
}

/**
 * What send() takes: the header fields the caller chooses and any typed-array view as the
 * payload (a Float32Array slice of the flat parameters is sent as its bytes, no copy
 * needed). The transport fills in `sender`; `jobId` may be left out (the transport's own)
 * and is refused if it differs. `Omit<Frame, 'sender'>` is assignable to it.
 */
export interface OutgoingFrame {
  kind: FrameKind;
  jobId?: string;
  iteration: number;
  slice: number;
  dtype: WireDtype;
  payload: ArrayBufferView;
}

export interface TransportStats {
  /** Data frames (GradientSlice, WeightSlice, Control) only; handshakes and heartbeats are not counted here. */
  framesSent: number;
  framesReceived: number;
  /** Wire bytes (header + payload) of the counted data frames. */
  bytesSent: number;
  bytesReceived: number;
  heartbeatsSent: number;
  heartbeatsReceived: number;
  /** Peers lost (closed, silent for longer than the timeout, or cut off after a bad frame). */
  peersLost: number;
  /**
   * Frames and peers refused, by reason: `frame:<field>` for a frame that failed a check of
   * that header field (`frame:magic`, `frame:checksum`, `frame:length`, ...),
   * `frame:truncated` for a stream that ended inside a frame, and `handshake:<reason>` for
   * a refused peer (`handshake:wrong-secret`, `handshake:wrong-job`,
   * `handshake:rank-out-of-range`, `handshake:duplicate-rank`, `handshake:timeout`, ...).
   */
  rejected: Record<string, number>;
}

/** A refused frame or peer, as reported to TransportOptions.onReject. */
export interface Rejection {
  /** The key counted in stats().rejected, e.g. 'frame:checksum' or 'handshake:wrong-secret'. */
  reason: string;
  /** The peer's rank when known (authenticated, or claimed in a refused handshake). */
  rank?: number;
  /** The remote address when there is one ('127.0.0.1:40123'). */
  remote?: string;
  /** A one-line human explanation (the same line that is logged). */
  message: string;
}

/** Options every transport kind understands. */
export interface TransportOptions {
  /** 64-bit job id, decimal string; default '0'. Frames of another job are refused. */
  jobId?: string;
  /** Largest payload accepted or sent, in bytes; checked before any allocation. Default 256 MiB. */
  maxPayloadBytes?: number;
  /** Called for every refused frame or peer (after it is counted and logged). */
  onReject?: (rejection: Rejection) => void;
  /** Called once when a peer is lost, with the error its receives fail with. */
  onPeerLost?: (rank: number, error: PeerLostError) => void;
  /** Where log lines go (refusals, lost peers). Default: console.warn. */
  log?: (line: string) => void;
}

export const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024 * 1024;

export class PeerLostError extends Error {
  constructor(readonly rank: number, reason: string) {
    super(`peer rank ${rank} lost: ${reason}`);
    this.name = 'PeerLostError';
  }
}

/** What pending and later calls fail with after close(). */
export class TransportClosedError extends Error {
  constructor(readonly rank: number, what = 'transport closed') {
    super(`rank ${rank}: ${what}`);
    this.name = 'TransportClosedError';
  }
}

export interface ReceiveOptions {
  /** Aborting rejects the pending receive (with the signal's reason) and removes it from the queue. */
  signal?: AbortSignal;
}

export interface Transport {
  readonly rank: number;
  readonly worldSize: number;
  readonly jobId: string;
  /**
   * Sends one frame to `to` (never to itself). Resolves when the transport has taken the
   * frame (backpressure: a full socket makes it wait) and no longer needs the caller's
   * payload memory: the caller may reuse or overwrite its buffer once the promise resolves.
   * Frames to one peer leave in the order of the send() calls, also when a call is made
   * before the previous one has resolved (many frames may be in flight).
   * Rejects with PeerLostError if `to` is lost, RangeError/TypeError for a bad frame (kind
   * not a data kind, u32 field out of range, payload too large or not a multiple of the
   * dtype's size, wrong job id), TransportClosedError after close().
   */
  send(to: number, frame: OutgoingFrame): Promise<void>;
  /**
   * Resolves with the next frame from `from` that matches kind / iteration / slice; frames
   * that arrive before anyone asks wait in a queue per (sender, kind, iteration, slice).
   * Receives for the same key are served in call order.
   */
  receive(from: number, kind: FrameKind, iteration: number, slice: number, options?: ReceiveOptions): Promise<Frame>;
  stats(): TransportStats;
  /** Closes every pair; pending receives and sends reject with TransportClosedError. Idempotent. */
  close(): Promise<void>;
}

/** Checks the job id string: a decimal u64. Returns it in canonical form (no leading zeros). */
export function checkJobId(jobId: string): string {
  if (typeof jobId !== 'string' || !/^[0-9]{1,20}$/.test(jobId) || BigInt(jobId) > 0xffff_ffff_ffff_ffffn) {
    throw new RangeError(`job id must be a decimal 64-bit unsigned integer string, got ${JSON.stringify(jobId)}`);
  }
  return BigInt(jobId).toString();
}

export function checkRankAndWorld(rank: number, worldSize: number): void {
  if (!Number.isInteger(worldSize) || worldSize < 1 || worldSize > 0xffff_ffff) {
    throw new RangeError(`worldSize must be an integer >= 1, got ${worldSize}`);
  }
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
    throw new RangeError(`rank must be an integer in [0, ${worldSize}), got ${rank}`);
  }
}
