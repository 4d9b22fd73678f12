// The two WebRTC implementations behind one W3C code path: `@roamhq/wrtc` (libwebrtc; the
// maintained fork of `wrtc`) and `node-datachannel` (libdatachannel) through its W3C
// polyfill `node-datachannel/polyfill`. Both are optional dependencies: each ships its native
// binary in a per-platform npm package, so `npm install` never builds anything, and a
// platform without one simply lacks that implementation. They are loaded on first use, so a
// process that never makes a WebRTC transport never loads either.
//
// The types below are the slice of the W3C API the transport uses, written out so that the
// code neither needs the DOM lib nor either package's typings to compile.
import { createRequire } from 'node:module';

export type WebRtcImplementationName = 'wrtc' | 'node-datachannel';
export type WebRtcImplementationChoice = WebRtcImplementationName | 'auto';

/** npm package of each implementation (the module loaded for it). */
export const IMPLEMENTATION_PACKAGES: Readonly<Record<WebRtcImplementationName, string>> = {
  wrtc: '@roamhq/wrtc',
  'node-datachannel': 'node-datachannel',
};

/** What 'auto' tries, in order. */
export const AUTO_ORDER: readonly WebRtcImplementationName[] = ['node-datachannel', 'wrtc'];

export interface RtcIceCandidateInit {
  candidate?: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
}

export interface RtcSessionDescriptionInit {
  type: 'offer' | 'answer' | 'pranswer' | 'rollback';
  sdp?: string;
}

export type RtcDataChannelState = 'connecting' | 'open' | 'closing' | 'closed';

export interface RtcDataChannel {
  readonly label: string;
  readonly readyState: RtcDataChannelState;
  /** Bytes queued by send() and not yet handed to the network (polled for backpressure). */
  readonly bufferedAmount: number;
  binaryType: string;
  send(data: Uint8Array): void;
  close(): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
}

export interface RtcPeerConnection {
  readonly connectionState: string;
  readonly localDescription: RtcSessionDescriptionInit | null;
  createOffer(): Promise<RtcSessionDescriptionInit>;
  createAnswer(): Promise<RtcSessionDescriptionInit>;
  setLocalDescription(d: RtcSessionDescriptionInit): Promise<void>;
  setRemoteDescription(d: RtcSessionDescriptionInit): Promise<void>;
  addIceCandidate(c: RtcIceCandidateInit): Promise<void>;
  createDataChannel(label: string, init?: { ordered?: boolean }): RtcDataChannel;
  close(): void;
  onicecandidate: ((ev: { candidate: RtcIceCandidateInit | null }) => void) | null;
  ondatachannel: ((ev: { channel: RtcDataChannel }) => void) | null;
  onconnectionstatechange: ((ev: unknown) => void) | null;
}

/** `new RTCPeerConnection(configuration)`; the configuration may carry implementation-specific fields. */
export type RtcPeerConnectionConstructor = new (configuration: Record<string, unknown>) => RtcPeerConnection;

export interface WebRtcImplementation {
  name: WebRtcImplementationName;
  /** The npm package it came from. */
  package: string;
  RTCPeerConnection: RtcPeerConnectionConstructor;
}

/** An implementation could not be loaded; the message names the npm package and how to get it. */
export class WebRtcUnavailableError extends Error {
  constructor(readonly implementation: WebRtcImplementationChoice, detail: string) {
    super(detail);
    this.name = 'WebRtcUnavailableError';
  }
}

/** Loads a module by name (tests inject a failing one). */
export type ModuleLoader = (specifier: string) => Promise<unknown>;

const require = createRequire(import.meta.url);

/**
 * The default loader: `@roamhq/wrtc` is CommonJS (require); the node-datachannel polyfill
 * is imported as ESM (one copy of its native module per process either way).
 */
const defaultLoader: ModuleLoader = async (specifier) => (specifier === '@roamhq/wrtc' ? require(specifier) : import(specifier));

const MODULE_OF: Record<WebRtcImplementationName, string> = {
  wrtc: '@roamhq/wrtc',
  'node-datachannel': 'node-datachannel/polyfill',
};

const cache = new Map<WebRtcImplementationName, Promise<WebRtcImplementation>>();

async function loadOne(name: WebRtcImplementationName, loader: ModuleLoader): Promise<WebRtcImplementation> {
  const pkg = IMPLEMENTATION_PACKAGES[name];
  let mod: unknown;
  try {
    mod = await loader(MODULE_OF[name]);
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new WebRtcUnavailableError(name,
      `WebRTC implementation '${name}' is not available: the npm package ${pkg} (an optional dependency of squall) ` +
      `could not be loaded (${why}); install it with \`npm install ${pkg}\`, or choose another implementation`);
  }
  const m = mod as { RTCPeerConnection?: unknown; default?: { RTCPeerConnection?: unknown } };
  const ctor = m.RTCPeerConnection ?? m.default?.RTCPeerConnection;
  if (typeof ctor !== 'function') {
    throw new WebRtcUnavailableError(name, `WebRTC implementation '${name}': the npm package ${pkg} loaded but exports no RTCPeerConnection`);
  }
  return { name, package: pkg, RTCPeerConnection: ctor as RtcPeerConnectionConstructor };
}

/**
 * The implementation to use: a named one, or for 'auto' the first of AUTO_ORDER that loads.
 * Throws WebRtcUnavailableError naming the package(s) when none does. Results of the
 * default loader are cached per process.
 */
export async function loadWebRtcImplementation(choice: WebRtcImplementationChoice = 'auto', loader?: ModuleLoader): Promise<WebRtcImplementation> {
  if (choice !== 'auto' && choice !== 'wrtc' && choice !== 'node-datachannel') {
    throw new RangeError(`WebRTC implementation must be 'wrtc', 'node-datachannel' or 'auto', got ${JSON.stringify(choice)}`);
  }
  const one = (name: WebRtcImplementationName): Promise<WebRtcImplementation> => {
    if (loader) return loadOne(name, loader);
    let p = cache.get(name);
    if (!p) {
      p = loadOne(name, defaultLoader);
      cache.set(name, p);
    }
    return p;
  };
  if (choice !== 'auto') return one(choice);
  const errors: string[] = [];
  for (const name of AUTO_ORDER) {
    try {
      return await one(name);
    } catch (err) {
      errors.push(err instanceof Error ? err.message : String(err));
    }
  }
  throw new WebRtcUnavailableError('auto', `no WebRTC implementation is available (install @roamhq/wrtc or node-datachannel): ${errors.join('; ')}`);
}
