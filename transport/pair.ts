// What every pair of a mesh transport (a TCP connection, a WebRTC data channel) shares with
// its transport, after gloo's context / pair split: the job identity the handshake proves,
// the decoder limits a pair switches to once its peer is admitted, and the stamping of an
// outgoing frame.
import { HEADER_SIZE, type FrameDecoder } from './frame.js';
import type { Counters } from './stats.js';
import { FrameKind, type Frame, type OutgoingFrame } from './transport.js';

/** The identity and limits of the job, as a pair sees its transport. */
export interface PairHost {
  readonly rank: number;
  readonly worldSize: number;
  readonly jobId: string;
  readonly jobIdLE: Uint8Array;
  readonly secret: Uint8Array;
  readonly maxPayloadBytes: number;
  readonly handshakeTimeoutMs: number;
}

/** After the handshake: the decoder accepts only data frames from `peer` of this job. */
export function admitDecoder(d: FrameDecoder, host: PairHost, peer: number): void {
  d.maxPayloadBytes = host.maxPayloadBytes;
  d.expectJobId = host.jobId;
  d.sender = peer;
  d.worldSize = host.worldSize;
  d.kinds = [FrameKind.GradientSlice, FrameKind.WeightSlice, FrameKind.Control, FrameKind.Heartbeat];
}

/** A RangeError unless `to` is another rank of the job. */
export function checkDestination(to: number, host: Pick<PairHost, 'rank' | 'worldSize'>): void {
  if (!Number.isInteger(to) || to < 0 || to >= host.worldSize || to === host.rank) {
    throw new RangeError(`send: to must be a rank in [0, ${host.worldSize}) other than ${host.rank}, got ${to}`);
  }
}

/** The frame as it goes on the wire from this rank, counted as sent. */
export function stampFrame(frame: OutgoingFrame, payload: Uint8Array, host: Pick<PairHost, 'rank' | 'jobId'>, counters: Counters): Frame {
  counters.framesSent++;
  counters.bytesSent += HEADER_SIZE + payload.byteLength;
  return { kind: frame.kind, jobId: host.jobId, iteration: frame.iteration, sender: host.rank, slice: frame.slice, dtype: frame.dtype, payload };
}
