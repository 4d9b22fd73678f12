// Test peers for the WebRTC transport: n ranks in this process over in-process signalling
// (the driver's relay stood in for), with a chosen implementation per rank; which
// implementations load here; and closing everything a test made, so that no peer
// connection keeps the process alive (@roamhq/wrtc does while one is open).
import {
  WebRtcTransport, createInProcessSignalling, loadWebRtcImplementation,
  type RelayedSignal, type WebRtcImplementationName, type WebRtcTransportOptions,
} from '../../transport/webrtc/index.js';

export const SECRET = 'webrtc-test-secret-0123456789';
export const JOB = '777';
export const IMPLEMENTATIONS: readonly WebRtcImplementationName[] = ['wrtc', 'node-datachannel'];

/** Per implementation: false if it loads here, else why not (a tap skip reason). */
export async function skipReason(name: WebRtcImplementationName): Promise<false | string> {
  try {
    await loadWebRtcImplementation(name);
    return false;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

const made = new Set<WebRtcTransport>();

/** Closes every transport the helpers made that is still open (t.teardown at the top of a test file). */
export async function closeEverything(): Promise<void> {
  await Promise.all([...made].map((x) => x.close()));
  made.clear();
}

export async function closeAll(ts: { close(): Promise<void> }[]): Promise<void> {
  await Promise.all(ts.map((t) => t.close()));
}

type Impl = WebRtcImplementationName | ((rank: number) => WebRtcImplementationName);
type MeshOptions = Partial<WebRtcTransportOptions> | ((rank: number) => Partial<WebRtcTransportOptions>);

export interface Mesh {
  transports: WebRtcTransport[];
  /** Every signalling message relayed, in order. */
  relayed: RelayedSignal[];
  /** connect() of each rank, settled. */
  outcomes: PromiseSettledResult<void>[];
}

/** n WebRTC transports over in-process signalling, connecting (settled outcomes; see mesh() for the happy path). */
export async function meshSettled(n: number, impl: Impl, options: MeshOptions = {}): Promise<Mesh> {
  const implOf = (r: number): WebRtcImplementationName => (typeof impl === 'function' ? impl(r) : impl);
  const opts = (r: number): Partial<WebRtcTransportOptions> => (typeof options === 'function' ? options(r) : options);
  const relayed: RelayedSignal[] = [];
  const sig = createInProcessSignalling(n, (m) => relayed.push(m));
  const transports: WebRtcTransport[] = [];
  for (let r = 0; r < n; r++) {
    const t = new WebRtcTransport({
      rank: r, worldSize: n, secret: SECRET, jobId: JOB, signalling: sig[r]!, log: () => {}, connectTimeoutMs: 15_000, ...opts(r),
    }, await loadWebRtcImplementation(implOf(r)));
    made.add(t);
    transports.push(t);
  }
  const outcomes = await Promise.allSettled(transports.map((t) => t.connect()));
  return { transports, relayed, outcomes };
}

/** n connected WebRTC transports (throws the first connect failure). */
export async function mesh(n: number, impl: Impl, options: MeshOptions = {}): Promise<Mesh> {
  const m = await meshSettled(n, impl, options);
  const bad = m.outcomes.find((o) => o.status === 'rejected');
  if (bad) throw (bad as PromiseRejectedResult).reason;
  return m;
}

/** Every address that appears in a relayed candidate or SDP candidate line. */
export function relayedAddresses(relayed: RelayedSignal[]): string[] {
  const out: string[] = [];
  for (const { message } of relayed) {
    const m = message as { type?: string; candidate?: string; sdp?: string };
    if (m.type === 'candidate' && typeof m.candidate === 'string') out.push(m.candidate.split(' ')[4] ?? '?');
    if (typeof m.sdp === 'string') {
      for (const l of m.sdp.split(/\r?\n/)) if (l.startsWith('a=candidate:')) out.push(l.split(' ')[4] ?? '?');
    }
  }
  return out;
}
