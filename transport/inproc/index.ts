// The in-process transport: every rank of a job in one process (unit tests of the parameter
// manager and the scheduler). Same contract as TCP: per-pair order, exactly once, payloads
// copied at send() (the sender may overwrite its buffer as soon as send resolves; the
// receiver gets a payload that owns its ArrayBuffer), the same argument checks, PeerLostError
// from a closed rank to every pending and later receive that needs it. No wire, so nothing
// is ever rejected; bytes are counted as if the frames had crossed one (header + payload).
import { POOL_MIN_BYTES, releaser, takePayload } from '../payload-pool.js';
import { HEADER_SIZE, checkOutgoing } from '../frame.js';
import { Mailbox } from '../mailbox.js';
import { Counters } from '../stats.js';
import {
  DEFAULT_MAX_PAYLOAD_BYTES, PeerLostError, TransportClosedError, checkJobId, checkRankAndWorld,
  type Frame, type FrameKind, type OutgoingFrame, type ReceiveOptions, type Transport, type TransportOptions, type TransportStats,
} from '../transport.js';

export type InProcessOptions = TransportOptions;

/** The ranks of one in-process mesh. */
export class InProcessHub {
  readonly endpoints: InProcessTransport[] = [];
  readonly jobId: string;

  constructor(readonly worldSize: number, options: InProcessOptions | ((rank: number) => InProcessOptions) = {}) {
    checkRankAndWorld(0, worldSize);
    const opts = (r: number): InProcessOptions => (typeof options === 'function' ? options(r) : options);
    this.jobId = checkJobId(opts(0).jobId ?? '0');
    for (let r = 0; r < worldSize; r++) {
      const o = opts(r);
      if (o.jobId !== undefined && checkJobId(o.jobId) !== this.jobId) throw new RangeError('every rank of an in-process mesh must have the same job id');
      this.endpoints.push(new InProcessTransport(this, r, o));
    }
  }

  /** The transport of `rank`. */
  endpoint(rank: number): InProcessTransport {
    checkRankAndWorld(rank, this.worldSize);
    return this.endpoints[rank]!;
  }
}

export class InProcessTransport implements Transport {
  readonly worldSize: number;
  readonly jobId: string;
  private readonly mailbox: Mailbox;
  private readonly counters: Counters;
  private readonly maxPayload: number;
  private closedError: TransportClosedError | undefined;

  constructor(private readonly hub: InProcessHub, readonly rank: number, private readonly options: InProcessOptions = {}) {
    this.worldSize = hub.worldSize;
    this.jobId = hub.jobId;
    this.maxPayload = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.mailbox = new Mailbox(rank, this.worldSize);
    this.counters = new Counters(rank, options);
  }

  async send(to: number, frame: OutgoingFrame): Promise<void> {
    if (this.closedError) throw this.closedError;
    if (!Number.isInteger(to) || to < 0 || to >= this.worldSize || to === this.rank) {
      throw new RangeError(`send: to must be a rank in [0, ${this.worldSize}) other than ${this.rank}, got ${to}`);
    }
    const bytes = checkOutgoing(frame, this.jobId, this.maxPayload);
    const lost = this.mailbox.isLost(to);
    if (lost) throw lost;
    const peer = this.hub.endpoints[to]!;
    // Copy into a buffer the receiver owns from byte 0.
    const payload = takePayload(bytes.byteLength);
    payload.set(bytes);
    const out: Frame = {
      kind: frame.kind, jobId: this.jobId, iteration: frame.iteration, sender: this.rank, slice: frame.slice, dtype: frame.dtype, payload,
      ...(payload.byteLength >= POOL_MIN_BYTES ? { release: releaser(payload) } : {}),
    };
    this.counters.framesSent++;
    this.counters.bytesSent += HEADER_SIZE + payload.byteLength;
    peer.arrive(out);
  }

  /** A frame from another rank of the hub. */
  private arrive(frame: Frame): void {
    if (this.closedError) return;
    this.counters.framesReceived++;
    this.counters.bytesReceived += HEADER_SIZE + frame.payload.byteLength;
    this.mailbox.deliver(frame);
  }

  receive(from: number, kind: FrameKind, iteration: number, slice: number, options?: ReceiveOptions): Promise<Frame> {
    return this.mailbox.receive(from, kind, iteration, slice, options);
  }

  stats(): TransportStats {
    return this.counters.snapshot();
  }

  /** `rank` of the hub closed: fail what needs it. */
  private peerClosed(rank: number, reason: string): void {
    if (this.closedError || this.mailbox.isLost(rank)) return;
    const err = new PeerLostError(rank, reason);
    this.counters.peersLost++;
    this.counters.log(err.message);
    this.mailbox.fail(rank, err);
    try {
      this.options.onPeerLost?.(rank, err);
    } catch (e) {
      this.counters.log(`onPeerLost threw: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  async close(): Promise<void> {
    if (this.closedError) return;
    this.closedError = new TransportClosedError(this.rank);
    this.mailbox.close(this.closedError);
    for (const peer of this.hub.endpoints) if (peer !== this) peer.peerClosed(this.rank, 'connection closed');
  }
}

/** Every rank of a job in this process: element r is rank r's transport. */
export function createInProcessMesh(worldSize: number, options?: InProcessOptions | ((rank: number) => InProcessOptions)): InProcessTransport[] {
  return new InProcessHub(worldSize, options).endpoints;
}
