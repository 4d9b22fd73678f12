// The WebRTC signalling of a cluster job, carried by the rendezvous connections
// (rendezvous.ts, DESIGN.md §6-§7). After `assign`, a WebRTC job keeps each worker's
// connection to the driver open as its signalling channel until the mesh is up:
//
//   worker -> driver  {t:'signal', to, message}     a session description or ICE candidate for rank `to`
//   driver -> worker  {t:'signal', from, message}   one from rank `from` (a worker, or the driver: rank N)
//
// The driver side (SignalRelay) checks every message before it goes anywhere: the sender
// must have been assigned its rank, `to` must be another rank of the job, the message at
// most MAX_SIGNAL_BYTES of JSON, of the shape parseSignal accepts, and for this job. A
// message that fails is refused: counted under its reason (stats()), logged (the first few
// per worker; not the late ones, which a pair that is already connected may still send),
// never forwarded. Messages to rank N go to the driver's own WebRtcTransport.
// The worker side (LineSignalling) hands what the driver relays to its transport, which
// checks it again (the driver is authenticated, but the transport trusts no relay).
//
// Signalling carries no secret: every pair still proves it holds the job's secret with the
// handshake over its data channel (transport/handshake.ts), as on TCP.
import { parseSignal, type WebRtcSignalling } from '../../transport/webrtc/signalling.js';

/** The largest signalling message relayed (its JSON); SDPs of a data-channel-only session are a few KiB. */
export const MAX_SIGNAL_BYTES = 16 * 1024;
/** Refusals logged per worker; later ones are only counted. */
export const LOGGED_REFUSALS_PER_WORKER = 16;
/** Messages held for a transport that has not registered its handler yet. */
const MAX_HELD = 1024;

export type SignalRefusal = 'tcp' | 'before-assign' | 'late' | 'rank' | 'oversized' | 'malformed' | 'wrong-job';

export interface SignalStats {
  /** Messages that passed the checks and went on (worker -> worker, worker -> driver, driver -> worker). */
  relayed: number;
  /** Refused messages by reason. */
  refused: Partial<Record<SignalRefusal, number>>;
}

type Handler = (fromRank: number, message: unknown) => void;
type Post = (line: Record<string, unknown>) => void;

/** One rank's end: the transport's handler, with messages held until it registers; closed ends drop everything. */
class Endpoint {
  private handler: Handler | undefined;
  private readonly held: { from: number; message: unknown }[] = [];
  protected closed = false;

  onMessage(handler: Handler): void {
    if (this.handler) throw new Error('signalling: a handler is already registered');
    this.handler = handler;
    for (const m of this.held.splice(0)) handler(m.from, m.message);
  }

  protected deliver(from: number, message: unknown): void {
    if (this.closed) return;
    if (this.handler) this.handler(from, message);
    else if (this.held.length < MAX_HELD) this.held.push({ from, message });
  }

  /** The mesh is up (or failed): nothing more is sent or delivered. */
  close(): void {
    this.closed = true;
    this.held.length = 0;
  }
}

export interface SignalRelayOptions {
  /** False in a TCP job: every signal is refused ('tcp'). */
  enabled: boolean;
  /** The driver's rank (N) and the world (N + 1). */
  rank: number;
  worldSize: number;
  jobId: string;
  log: (line: string) => void;
}

/** The driver's relay, and the driver's own WebRtcSignalling (rank N). */
export class SignalRelay extends Endpoint implements WebRtcSignalling {
  private readonly lines: (Post | undefined)[];
  private readonly counts: SignalStats = { relayed: 0, refused: {} };
  private readonly logged = new Map<string, number>();

  constructor(private readonly o: SignalRelayOptions) {
    super();
    this.lines = new Array<Post | undefined>(o.worldSize).fill(undefined);
  }

  /** Worker `rank` has been assigned: its connection now carries its signalling. */
  attach(rank: number, post: Post): void {
    this.lines[rank] = post;
  }

  /**
   * A {t:'signal'} line from a worker: `rank` is its rank once assigned (undefined before),
   * `who` names it in the log. Forwards it, delivers it to the driver's transport, or refuses it.
   */
  fromWorker(who: string, rank: number | undefined, m: Record<string, unknown>): void {
    if (!this.o.enabled) return this.refuse(who, 'tcp', 'a signalling message in a TCP job');
    if (rank === undefined || !this.lines[rank]) return this.refuse(who, 'before-assign', 'a signalling message before the worker was assigned its rank');
    if (this.closed) return this.refuse(who, 'late', 'a signalling message after the mesh was up');
    const to = m.to;
    if (typeof to !== 'number' || to === rank || (to !== this.o.rank && !this.lines[to])) {
      return this.refuse(who, 'rank', `a signalling message to ${JSON.stringify(to) ?? 'no rank'}, not another rank of 0..${this.o.worldSize - 1}`);
    }
    const bytes = Buffer.byteLength(JSON.stringify(m.message ?? null));
    if (bytes > MAX_SIGNAL_BYTES) return this.refuse(who, 'oversized', `a signalling message of ${bytes} bytes (at most ${MAX_SIGNAL_BYTES})`);
    const s = parseSignal(m.message);
    if (typeof s === 'string') return this.refuse(who, 'malformed', `a malformed signalling message: ${s}`);
    if (s.job !== this.o.jobId) return this.refuse(who, 'wrong-job', `a signalling message for job ${s.job}, this is job ${this.o.jobId}`);
    this.counts.relayed++;
    if (to === this.o.rank) this.deliver(rank, s);
    else this.lines[to]!({ t: 'signal', from: rank, message: s });
  }

  /** From the driver's transport to worker `to`. */
  send(to: number, message: unknown): void {
    if (this.closed) return; // a late candidate once the mesh is up
    const post = Number.isInteger(to) ? this.lines[to] : undefined;
    if (!post) throw new RangeError(`signalling: no worker rank ${to}`);
    this.counts.relayed++;
    post({ t: 'signal', from: this.o.rank, message });
  }

  stats(): SignalStats {
    return { relayed: this.counts.relayed, refused: { ...this.counts.refused } };
  }

  private refuse(who: string, reason: SignalRefusal, detail: string): void {
    this.counts.refused[reason] = (this.counts.refused[reason] ?? 0) + 1;
    if (reason === 'late') return; // a candidate trickling in after its pair connected: harmless, only counted
    const n = (this.logged.get(who) ?? 0) + 1;
    this.logged.set(who, n);
    if (n <= LOGGED_REFUSALS_PER_WORKER) {
      this.o.log(`squall driver: refused ${detail} from ${who} (${reason}), not forwarded${n === LOGGED_REFUSALS_PER_WORKER ? '; further refusals of this worker are only counted' : ''}`);
    }
  }
}

/** A worker's WebRtcSignalling: its connection to the driver. */
export class LineSignalling extends Endpoint implements WebRtcSignalling {
  constructor(private readonly post: Post) {
    super();
  }

  send(to: number, message: unknown): void {
    if (!this.closed) this.post({ t: 'signal', to, message });
  }

  /** A {t:'signal'} line from the driver (the transport checks the rank and the message). */
  fromDriver(m: Record<string, unknown>): void {
    this.deliver(typeof m.from === 'number' ? m.from : NaN, m.message);
  }
}
