// What every pair of a mesh transport (a TCP connection, a WebRTC data channel) shares with
// its transport, after gloo's context / pair split: the job identity the handshake proves,
// the decoder limits a pair switches to once its peer is admitted, and the stamping of an
// outgoing frame.
import { HEADER_SIZE, checkOutgoing, type FrameDecoder } from './frame.js';
import type { Counters } from './stats.js';
import { FrameKind, type Frame, type OutgoingFrame, type PeerLostError } from './transport.js';
import type { Deferred } from './util.js';

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

/** What a mesh transport's send() needs to know of its pairs. */
export interface MeshSendState {
  /** The error sends fail with once the transport is closed; undefined while it is open. */
  readonly closedError: () => Error | undefined;
  /** Per rank: the error it was lost with. */
  readonly lost: readonly (PeerLostError | undefined)[];
  /** Per rank: settles when its pair is up. */
  readonly ready: readonly Deferred[];
  readonly counters: Counters;
}

/**
 * Transport.send for a mesh of pairs: checks the frame and the destination, waits until the
 * pair is up (sends to one peer keep their call order: they wait on the same promise), then
 * hands the stamped frame to the pair.
 */
export async function sendOnPair(host: PairHost, mesh: MeshSendState, to: number, frame: OutgoingFrame,
  pair: (to: number) => { send(frame: Frame): Promise<void> }): Promise<void> {
  let closed = mesh.closedError();
  if (closed) throw closed;
  checkDestination(to, host);
  const payload = checkOutgoing(frame, host.jobId, host.maxPayloadBytes);
  if (mesh.lost[to]) throw mesh.lost[to];
  if (!mesh.ready[to]!.settled) await mesh.ready[to]!.promise;
  closed = mesh.closedError();
  if (closed) throw closed;
  if (mesh.lost[to]) throw mesh.lost[to];
  await pair(to).send(stampFrame(frame, payload, host, mesh.counters));
}
