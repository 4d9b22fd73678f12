// The TCP full-mesh transport.
export { TcpTransport, listenTcp, createTcpTransport, type AddressBook, type PeerAddress, type TcpTransportOptions } from './transport.js';
export { COPY_MAX_BYTES } from './connection.js';
