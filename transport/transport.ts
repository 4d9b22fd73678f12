// The transport contract, after gloo's context / pair / buffer split: a Transport connects
// one rank of a job to every other rank (a full mesh of pairs) and moves typed frames
// between them. The parameter manager (engine/cluster) only sees this interface; TCP,
// WebRTC data channels and the in-process transport implement it beside each other.
//
// Delivery: frames between two ranks arrive in the order they were sent, exactly once, or
// the transport fails (a peer that closes or stops answering raises PeerLostError on every
// pending and later receive that needs it). A frame that fails validation (bad magic,
// version, checksum, job id, unknown or unauthenticated sender) is never delivered: it is
// counted in stats().rejected, logged through onReject, and the connection it came on is
// closed.

/** What a frame carries; the parameter manager, the scheduler and the driver each use some. */
export enum FrameKind {
  Hello = 1,
  GradientSlice = 2,
  WeightSlice = 3,
  Control = 4,
  Heartbeat = 5,
}

/** Element encoding of a slice payload on the wire. */
export enum WireDtype {
  F32 = 0,
  BF16 = 1,
  F16 = 2,
  Bytes = 3,
}

export interface FrameHeader {
  kind: FrameKind;
  /** 64-bit job id as a decimal string (JSON-safe). */
  jobId: string;
  iteration: number;
  sender: number;
  slice: number;
  dtype: WireDtype;
}

export interface Frame extends FrameHeader {
  payload: Uint8Array;
}

export interface TransportStats {
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Frames refused by validation, by reason. */
  rejected: Record<string, number>;
}

export class PeerLostError extends Error {
  constructor(readonly rank: number, reason: string) {
    super(`peer rank ${rank} lost: ${reason}`);
    this.name = 'PeerLostError';
  }
}

export interface Transport {
  readonly rank: number;
  readonly worldSize: number;
  /** Sends one frame to `to` (never to itself); resolves when the transport has taken it (backpressure). */
  send(to: number, frame: Omit<Frame, 'sender'>): Promise<void>;
  /**
   * Resolves with the next frame from `from` that matches kind / iteration / slice; frames
   * that arrive before anyone asks wait in a queue per (sender, kind, iteration, slice).
   */
  receive(from: number, kind: FrameKind, iteration: number, slice: number): Promise<Frame>;
  stats(): TransportStats;
  /** Closes every pair; pending receives reject. */
  close(): Promise<void>;
}
