// Test peers: a TCP mesh of n ranks in this process on ephemeral 127.0.0.1 ports, and a raw
// socket peer that speaks the wire protocol by hand (to be refused, to go silent, or to
// inject a corrupt frame after an honest handshake).
import * as net from 'node:net';
import { FrameDecoder, encodeFrameBytes } from '../../transport/frame.js';
import { Handshake, helloFrame, proofFrame, secretBytes } from '../../transport/handshake.js';
import { listenTcp, type TcpTransport, type TcpTransportOptions } from '../../transport/tcp/index.js';
import { FrameKind, WireDtype, type Frame } from '../../transport/transport.js';

export const SECRET = 'test-secret-0123456789';
export const JOB = '4242';

/** Every transport and raw peer the helpers made, so a failed test cannot leave a listener that keeps the process alive. */
const made = new Set<{ close(): unknown }>();

/** Closes whatever the helpers made and is still open (register with t.teardown at the top of a test file). */
export async function closeEverything(): Promise<void> {
  await Promise.all([...made].map((x) => x.close()));
  made.clear();
}

/** One rank listening on an ephemeral 127.0.0.1 port with the test secret and job (not connected). */
export async function tcpRank(rank: number, worldSize: number, extra: Partial<TcpTransportOptions> = {}): Promise<TcpTransport> {
  const t = await listenTcp({ rank, worldSize, secret: SECRET, jobId: JOB, host: '127.0.0.1', port: 0, log: () => {}, ...extra });
  made.add(t);
  return t;
}

type MeshOptions = Partial<TcpTransportOptions> | ((rank: number) => Partial<TcpTransportOptions>);

/** n TCP transports, listening on ephemeral ports, connected. */
export async function tcpMesh(n: number, options: MeshOptions = {}): Promise<TcpTransport[]> {
  const opts = (r: number): Partial<TcpTransportOptions> => (typeof options === 'function' ? options(r) : options);
  const ts = await Promise.all(Array.from({ length: n }, (_, r) => tcpRank(r, n, opts(r))));
  const book = ts.map((t) => t.addressString);
  await Promise.all(ts.map((t) => t.connect(book)));
  return ts;
}

export async function closeAll(ts: { close(): Promise<void> }[]): Promise<void> {
  await Promise.all(ts.map((t) => t.close()));
}

/** A hand-driven client socket. */
export class RawPeer {
  readonly frames: Frame[] = [];
  readonly decoder = new FrameDecoder({ maxPayloadBytes: 1 << 20 });
  readonly closed: Promise<void>;
  decodeError: unknown = null;
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const f of this.decoder.push(chunk)) this.frames.push(f);
      } catch (e) {
        this.decodeError = e;
      }
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('error', () => {});
    this.closed = new Promise((res) => socket.once('close', () => res()));
  }

  static connect(port: number): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        const p = new RawPeer(s);
        made.add(p);
        resolve(p);
      });
    });
  }

  get isClosed(): boolean {
    return this.socket.destroyed || this.socket.readyState === 'closed';
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Waits until at least `n` frames arrived (or the socket closed). */
  async waitFrames(n: number, ms = 5000): Promise<void> {
    const end = Date.now() + ms;
    while (this.frames.length < n && !this.isClosed && Date.now() < end) {
      await new Promise<void>((res) => {
        this.waiters.push(res);
        setTimeout(res, 50);
      });
    }
  }

  /** An honest dialer handshake as `rank` (with the given secret / job / world). */
  async handshake(o: { rank: number; worldSize: number; secret?: string; jobId?: string }): Promise<boolean> {
    const hs = new Handshake({ role: 'dialer', rank: o.rank, worldSize: o.worldSize, jobId: o.jobId ?? JOB, secret: secretBytes(o.secret ?? SECRET) });
    for (const b of hs.start()) this.write(b);
    let seen = 0;
    while (!hs.done) {
      await this.waitFrames(seen + 1);
      if (this.frames.length <= seen) return false;
      const out = hs.onFrame(this.frames[seen++]!);
      for (const b of out.send) this.write(b);
    }
    return true;
  }

  /** HELLO then a PROOF of 32 arbitrary bytes (a peer that does not hold the secret). */
  sendBadHandshake(o: { rank: number; worldSize: number; jobId?: string }): void {
    this.write(helloFrame(o.rank, o.jobId ?? JOB, new Uint8Array(32).fill(1), o.worldSize));
    this.write(proofFrame(o.rank, o.jobId ?? JOB, new Uint8Array(32).fill(2)));
  }

  close(): void {
    this.socket.destroy();
  }
}

export function dataFrame(sender: number, payload: Uint8Array, iteration = 0, slice = 0, kind = FrameKind.GradientSlice): Uint8Array {
  return encodeFrameBytes({ kind, jobId: JOB, iteration, sender, slice, dtype: WireDtype.Bytes, payload });
}
