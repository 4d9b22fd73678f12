// Signalling for the WebRTC mesh: how two ranks exchange their session descriptions and ICE
// candidates before a data channel exists. The transport only needs a way to send a
// JSON-serialisable message to a rank and to hear messages from any rank; the driver relays
// them (each worker sends to the driver, which forwards to the addressed rank). Messages
// between one pair must arrive in the order they were sent (candidates that come before
// their description are held back anyway).
//
// Signalling carries no secret: a pair proves it belongs to the job with the handshake over
// the data channel itself (transport/handshake.ts), as on TCP.

/** What the transport needs from the driver's relay. */
export interface WebRtcSignalling {
  /** Sends a JSON-serialisable message to `toRank`. */
  send(toRank: number, message: unknown): void;
  /** Registers the one handler of messages addressed to this rank (called once, at construction). */
  onMessage(handler: (fromRank: number, message: unknown) => void): void;
}

export const SIGNAL_PROTOCOL = 'squall-webrtc-v1';

export type SignalMessage =
  | { proto: typeof SIGNAL_PROTOCOL; job: string; type: 'offer' | 'answer'; sdp: string }
  | { proto: typeof SIGNAL_PROTOCOL; job: string; type: 'candidate'; candidate: string; sdpMid: string | null; sdpMLineIndex: number | null };

/** Checks the shape of a received signalling message: the message, or a reason it is refused. */
export function parseSignal(m: unknown): SignalMessage | string {
  if (m === null || typeof m !== 'object') return `not an object (${typeof m})`;
  const o = m as Record<string, unknown>;
  if (o.proto !== SIGNAL_PROTOCOL) return `protocol ${JSON.stringify(o.proto)} is not ${SIGNAL_PROTOCOL}`;
  if (typeof o.job !== 'string') return 'no job id';
  if (o.type === 'offer' || o.type === 'answer') {
    if (typeof o.sdp !== 'string' || o.sdp.length === 0 || o.sdp.length > 1 << 20) return `${o.type} without a session description`;
    return { proto: SIGNAL_PROTOCOL, job: o.job, type: o.type, sdp: o.sdp };
  }
  if (o.type === 'candidate') {
    if (typeof o.candidate !== 'string' || o.candidate.length > 4096) return 'candidate without a candidate line';
    const mid = o.sdpMid === undefined ? null : o.sdpMid;
    const idx = o.sdpMLineIndex === undefined ? null : o.sdpMLineIndex;
    if (mid !== null && typeof mid !== 'string') return 'candidate with a bad sdpMid';
    if (idx !== null && !(typeof idx === 'number' && Number.isInteger(idx) && idx >= 0)) return 'candidate with a bad sdpMLineIndex';
    return { proto: SIGNAL_PROTOCOL, job: o.job, type: 'candidate', candidate: o.candidate, sdpMid: mid, sdpMLineIndex: idx };
  }
  return `unknown message type ${JSON.stringify(o.type)}`;
}

/** One message as it went through an in-process relay (for tests that inspect signalling). */
export interface RelayedSignal {
  from: number;
  to: number;
  message: unknown;
}

/**
 * The signalling of `worldSize` ranks in one process, as the driver would relay it: each
 * message is round-tripped through JSON (it must survive the driver's wire) and delivered
 * asynchronously, in order per sender and receiver; messages to a rank that has not
 * registered its handler yet wait for it. `onRelay` sees every message (tests use it).
 */
export function createInProcessSignalling(worldSize: number, onRelay?: (m: RelayedSignal) => void): WebRtcSignalling[] {
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`worldSize must be an integer >= 1, got ${worldSize}`);
  const handlers: (((from: number, message: unknown) => void) | undefined)[] = new Array(worldSize).fill(undefined);
  const waiting: { from: number; message: unknown }[][] = Array.from({ length: worldSize }, () => []);
  return Array.from({ length: worldSize }, (_, rank): WebRtcSignalling => ({
    send(to: number, message: unknown): void {
      if (!Number.isInteger(to) || to < 0 || to >= worldSize || to === rank) throw new RangeError(`signalling: no rank ${to} to send to from rank ${rank}`);
      const copy = JSON.parse(JSON.stringify(message)) as unknown;
      onRelay?.({ from: rank, to, message: copy });
      setImmediate(() => {
        const h = handlers[to];
        if (h && waiting[to]!.length === 0) h(rank, copy);
        else waiting[to]!.push({ from: rank, message: copy }); // behind earlier ones not yet handed over

      });
    },
    onMessage(handler): void {
      if (handlers[rank]) throw new Error(`signalling: rank ${rank} already has a handler`);
      handlers[rank] = handler;
      setImmediate(() => {
        const q = waiting[rank]!;
        while (q.length) {
          const m = q.shift()!;
          handler(m.from, m.message);
        }
      });
    },
  }));
}
