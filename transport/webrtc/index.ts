// The WebRTC data-channel mesh (DESIGN.md §6): @roamhq/wrtc or node-datachannel behind the W3C API.
export {
  WebRtcTransport, createWebRtcTransport, MAX_MESSAGE_BYTES, DEFAULT_MAX_BUFFERED_AMOUNT, type WebRtcTransportOptions, type IceServer,
} from './transport.js';
export {
  createInProcessSignalling, parseSignal, SIGNAL_PROTOCOL, type WebRtcSignalling, type SignalMessage, type RelayedSignal,
} from './signalling.js';
export {
  loadWebRtcImplementation, WebRtcUnavailableError, IMPLEMENTATION_PACKAGES, AUTO_ORDER,
  type WebRtcImplementation, type WebRtcImplementationName, type WebRtcImplementationChoice, type ModuleLoader,
} from './implementation.js';
export { isLoopbackHostCandidate, loopbackSdp, parseCandidate, sdpCandidateAddresses, LOOPBACK_ADDRESS } from './candidates.js';
