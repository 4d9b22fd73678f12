// A minimal in-memory Transport for the parameter manager's tests, independent of
// transport/inproc: per-pair FIFO delivery, exactly once, payloads copied at send(),
// receives matched by (sender, kind, iteration, slice).
//
// shuffle: frames are not delivered at send() but parked in one queue per (sender,
// receiver) pair; a pump delivers, one frame per macrotask, the head of a queue picked at
// random (seeded). Per-pair order is kept (the transport contract), but the interleaving of
// pairs, and of frames with the workers' computation, changes with the seed.
// tamper: a hook that may replace or drop a frame on its way (protocol-error tests).
import {
  FrameKind, TransportClosedError, WireDtype, type Frame, type OutgoingFrame, type ReceiveOptions, type Transport, type TransportStats,
} from '../../transport/transport.js';

export interface FakeMeshOptions {
  /** Seed of the random delivery order; undefined: deliver in send order, at once. */
  shuffleSeed?: number;
  tamper?: (frame: Frame, to: number) => Frame | null;
}

interface Waiter {
  resolve(f: Frame): void;
  reject(e: unknown): void;
}

class Hub {
  readonly endpoints: FakeTransport[] = [];
  private readonly queues = new Map<string, { to: number; frames: Frame[] }>();
  private pumping = false;
  private state: number;

  constructor(readonly worldSize: number, readonly options: FakeMeshOptions) {
    this.state = (options.shuffleSeed ?? 1) >>> 0;
    for (let r = 0; r < worldSize; r++) this.endpoints.push(new FakeTransport(this, r));
  }

  post(frame: Frame, to: number): void {
    const f = this.options.tamper ? this.options.tamper(frame, to) : frame;
    if (!f) return;
    if (this.options.shuffleSeed === undefined) {
      this.endpoints[to]!.arrive(f);
      return;
    }
    const k = `${f.sender}>${to}`;
    let q = this.queues.get(k);
    if (!q) this.queues.set(k, (q = { to, frames: [] }));
    q.frames.push(f);
    if (!this.pumping) {
      this.pumping = true;
      setImmediate(() => this.pump());
    }
  }

  private random(): number {
    let z = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  }

  private pump(): void {
    const live = [...this.queues.values()].filter((q) => q.frames.length > 0);
    if (live.length === 0) {
      this.pumping = false;
      return;
    }
    const q = live[Math.floor(this.random() * live.length)]!;
    this.endpoints[q.to]!.arrive(q.frames.shift()!);
    setImmediate(() => this.pump());
  }
}

export class FakeTransport implements Transport {
  readonly worldSize: number;
  readonly jobId = '0';
  private readonly queued = new Map<string, Frame[]>();
  private readonly waiting = new Map<string, Waiter[]>();
  private closed: TransportClosedError | null = null;
  private readonly counts: TransportStats = {
    framesSent: 0, framesReceived: 0, bytesSent: 0, bytesReceived: 0, heartbeatsSent: 0, heartbeatsReceived: 0, peersLost: 0, rejected: {},
  };

  constructor(private readonly hub: Hub, readonly rank: number) {
    this.worldSize = hub.worldSize;
  }

  async send(to: number, frame: OutgoingFrame): Promise<void> {
    if (this.closed) throw this.closed;
    if (!Number.isInteger(to) || to < 0 || to >= this.worldSize || to === this.rank) throw new RangeError(`fake send: bad destination ${to} from ${this.rank}`);
    if (![FrameKind.GradientSlice, FrameKind.WeightSlice, FrameKind.Control].includes(frame.kind)) throw new RangeError(`fake send: kind ${frame.kind}`);
    if (!(frame.dtype in WireDtype)) throw new RangeError(`fake send: dtype ${frame.dtype}`);
    const p = frame.payload;
    const payload = new Uint8Array(p.byteLength);
    payload.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
    this.counts.framesSent++;
    this.counts.bytesSent += payload.byteLength;
    this.hub.post({ kind: frame.kind, jobId: this.jobId, iteration: frame.iteration, sender: this.rank, slice: frame.slice, dtype: frame.dtype, payload }, to);
  }

  /** Called by the hub. */
  arrive(f: Frame): void {
    if (this.closed) return;
    this.counts.framesReceived++;
    this.counts.bytesReceived += f.payload.byteLength;
    const k = key(f.sender, f.kind, f.iteration, f.slice);
    const w = this.waiting.get(k)?.shift();
    if (w) w.resolve(f);
    else {
      let q = this.queued.get(k);
      if (!q) this.queued.set(k, (q = []));
      q.push(f);
    }
  }

  receive(from: number, kind: FrameKind, iteration: number, slice: number, _options?: ReceiveOptions): Promise<Frame> {
    if (this.closed) return Promise.reject(this.closed);
    const k = key(from, kind, iteration, slice);
    const q = this.queued.get(k);
    if (q && q.length > 0 && !(this.waiting.get(k)?.length)) {
      const f = q.shift()!;
      if (q.length === 0) this.queued.delete(k);
      return Promise.resolve(f);
    }
    return new Promise<Frame>((resolve, reject) => {
      let w = this.waiting.get(k);
      if (!w) this.waiting.set(k, (w = []));
      w.push({ resolve, reject });
    });
  }

  /** Frames that arrived and nobody received (a clean iteration leaves none). */
  pendingFrames(): number {
    let n = 0;
    for (const q of this.queued.values()) n += q.length;
    return n;
  }

  stats(): TransportStats {
    return { ...this.counts, rejected: { ...this.counts.rejected } };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = new TransportClosedError(this.rank);
    for (const ws of this.waiting.values()) for (const w of ws) w.reject(this.closed);
    this.waiting.clear();
    this.queued.clear();
  }
}

function key(from: number, kind: number, iteration: number, slice: number): string {
  return `${from}:${kind}:${iteration}:${slice}`;
}

/** worldSize connected fake transports; element r is rank r's. */
export function createFakeMesh(worldSize: number, options: FakeMeshOptions = {}): FakeTransport[] {
  return new Hub(worldSize, options).endpoints;
}
