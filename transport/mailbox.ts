// The receive side every transport shares: one FIFO queue per (sender, kind, iteration,
// slice) of frames that arrived before anyone asked, and the receives waiting for them;
// per-sender accounting of queued bytes (for read backpressure) and of peer loss.
import { DATA_KINDS, PeerLostError, type Frame, type FrameKind, type ReceiveOptions } from './transport.js';

interface Waiter {
  resolve(frame: Frame): void;
  reject(err: unknown): void;
  /** Detaches the abort listener. */
  detach(): void;
}

interface Slot {
  from: number;
  frames: Frame[];
  waiters: Waiter[];
}

function key(from: number, kind: number, iteration: number, slice: number): string {
  return `${from}:${kind}:${iteration}:${slice}`;
}

function isU32(x: unknown): boolean {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffff_ffff;
}

export class Mailbox {
  private readonly slots = new Map<string, Slot>();
  private readonly queued: number[];
  private readonly waiting: number[];
  private readonly lost: (PeerLostError | undefined)[];
  private closed: Error | undefined;
  /**
   * Called when demand for `from`'s frames grows: queued bytes were claimed or a receive
   * started waiting. A transport that paused reading from `from` checks whether to resume.
   */
  onDemand: ((from: number) => void) | undefined;

  constructor(readonly rank: number, readonly worldSize: number) {
    this.queued = new Array<number>(worldSize).fill(0);
    this.waiting = new Array<number>(worldSize).fill(0);
    this.lost = new Array<PeerLostError | undefined>(worldSize).fill(undefined);
  }

  /** Bytes of payload from `from` that arrived and nobody has received yet. */
  queuedBytes(from: number): number {
    return this.queued[from]!;
  }
  /** Receives from `from` waiting for a frame. */
  waiters(from: number): number {
    return this.waiting[from]!;
  }
  isLost(from: number): PeerLostError | undefined {
    return this.lost[from];
  }

  /** Hands an arrived frame to the first receive waiting for it, or queues it. */
  deliver(frame: Frame): void {
    if (this.closed || this.lost[frame.sender]) return;
    const k = key(frame.sender, frame.kind, frame.iteration, frame.slice);
    let slot = this.slots.get(k);
    const w = slot?.waiters.shift();
    if (w) {
      this.waiting[frame.sender]!--;
      if (slot!.waiters.length === 0 && slot!.frames.length === 0) this.slots.delete(k);
      w.detach();
      w.resolve(frame);
      return;
    }
    if (!slot) this.slots.set(k, (slot = { from: frame.sender, frames: [], waiters: [] }));
    slot.frames.push(frame);
    this.queued[frame.sender]! += frame.payload.byteLength;
  }

  receive(from: number, kind: FrameKind, iteration: number, slice: number, options: ReceiveOptions = {}): Promise<Frame> {
    if (this.closed) return Promise.reject(this.closed);
    if (!Number.isInteger(from) || from < 0 || from >= this.worldSize || from === this.rank) {
      return Promise.reject(new RangeError(`receive: from must be a rank in [0, ${this.worldSize}) other than ${this.rank}, got ${from}`));
    }
    if (!DATA_KINDS.includes(kind)) return Promise.reject(new RangeError(`receive: kind must be GradientSlice, WeightSlice or Control, got ${String(kind)}`));
    if (!isU32(iteration) || !isU32(slice)) return Promise.reject(new RangeError(`receive: iteration and slice must be u32, got ${iteration}, ${slice}`));
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const k = key(from, kind, iteration, slice);
    const slot = this.slots.get(k);
    if (slot && slot.frames.length > 0 && slot.waiters.length === 0) {
      const frame = slot.frames.shift()!;
      if (slot.frames.length === 0) this.slots.delete(k);
      this.queued[from]! -= frame.payload.byteLength;
      this.onDemand?.(from);
      return Promise.resolve(frame);
    }
    const lost = this.lost[from];
    if (lost) return Promise.reject(lost);
    return new Promise<Frame>((resolve, reject) => {
      let s = this.slots.get(k);
      if (!s) this.slots.set(k, (s = { from, frames: [], waiters: [] }));
      const slotRef = s;
      const onAbort = (): void => {
        const i = slotRef.waiters.indexOf(w);
        if (i >= 0) {
          slotRef.waiters.splice(i, 1);
          this.waiting[from]!--;
          if (slotRef.waiters.length === 0 && slotRef.frames.length === 0 && this.slots.get(k) === slotRef) this.slots.delete(k);
        }
        reject(signal!.reason);
      };
      const w: Waiter = {
        resolve: (f) => {
          // The frame leaves the queue accounting (deliver() never counted it).
          resolve(f);
          this.onDemand?.(from);
        },
        reject,
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      s.waiters.push(w);
      this.waiting[from]!++;
      this.onDemand?.(from);
    });
  }

  /** Marks `from` lost: its waiting receives reject; frames already queued stay receivable. */
  fail(from: number, err: PeerLostError): void {
    if (this.lost[from] || this.closed) return;
    this.lost[from] = err;
    for (const [k, slot] of this.slots) {
      if (slot.from !== from) continue;
      for (const w of slot.waiters.splice(0)) {
        w.detach();
        w.reject(err);
      }
      this.waiting[from] = 0;
      if (slot.frames.length === 0) this.slots.delete(k);
    }
  }

  /** Rejects every waiting and later receive with `err` and drops the queues. */
  close(err: Error): void {
    if (this.closed) return;
    this.closed = err;
    for (const slot of this.slots.values()) {
      for (const w of slot.waiters.splice(0)) {
        w.detach();
        w.reject(err);
      }
    }
    this.slots.clear();
    this.queued.fill(0);
    this.waiting.fill(0);
  }
}
