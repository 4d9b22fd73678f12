// The transport layer (DESIGN.md §6): the Transport contract, the frame codec, the
// handshake, the TCP full mesh and the in-process mesh, and one factory over the kinds.
import { InProcessHub, type InProcessTransport } from './inproc/index.js';
import { createTcpTransport, type AddressBook, type TcpTransport, type TcpTransportOptions } from './tcp/index.js';

export * from './transport.js';
export {
  FrameDecoder, FrameError, FRAME_MAGIC, HEADER_FIELDS, HEADER_SIZE, PROTOCOL_VERSION, decodeFrames, encodeFrame, encodeFrameBytes, encodeHeader,
  type FrameDecoderOptions, type FrameField,
} from './frame.js';
export { HandshakeError, DEFAULT_HANDSHAKE_TIMEOUT_MS, type RefuseReason } from './handshake.js';
export { createInProcessMesh, InProcessHub, InProcessTransport, type InProcessOptions } from './inproc/index.js';
export { TcpTransport, listenTcp, createTcpTransport, type AddressBook, type PeerAddress, type TcpTransportOptions } from './tcp/index.js';
export { WebRtcTransport, createWebRtcTransport, createInProcessSignalling, loadWebRtcImplementation, WebRtcUnavailableError, type WebRtcTransportOptions, type WebRtcSignalling, type WebRtcImplementationChoice, type WebRtcImplementationName } from './webrtc/index.js';

export type TransportKind = 'tcp' | 'inproc';

export interface InProcessEndpointOptions {
  /** The mesh this rank belongs to (new InProcessHub(worldSize, options) or createInProcessMesh). */
  hub: InProcessHub;
  rank: number;
}

/**
 * One rank's transport of the given kind, connected:
 * - 'tcp': listens on the port the address book gives this rank (or options.port) and
 *   connects the full mesh (for ephemeral ports use listenTcp + connect instead);
 * - 'inproc': rank `rank` of an in-process hub.
 */
export function createTransport(kind: 'tcp', options: TcpTransportOptions & { addresses: AddressBook }): Promise<TcpTransport>;
export function createTransport(kind: 'inproc', options: InProcessEndpointOptions): Promise<InProcessTransport>;
export function createTransport(kind: TransportKind, options: (TcpTransportOptions & { addresses: AddressBook }) | InProcessEndpointOptions): Promise<TcpTransport | InProcessTransport>;
export async function createTransport(
  kind: TransportKind,
  options: (TcpTransportOptions & { addresses: AddressBook }) | InProcessEndpointOptions,
): Promise<TcpTransport | InProcessTransport> {
  if (kind === 'tcp') return createTcpTransport(options as TcpTransportOptions & { addresses: AddressBook });
  if (kind === 'inproc') {
    const o = options as InProcessEndpointOptions;
    if (!(o.hub instanceof InProcessHub)) throw new TypeError("createTransport('inproc') needs options.hub, an InProcessHub");
    return o.hub.endpoint(o.rank);
  }
  throw new RangeError(`unknown transport kind ${JSON.stringify(kind)} (expected 'tcp' or 'inproc')`);
}
