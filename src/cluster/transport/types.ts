/**
 * The relay's view of the network: open a stream to a peer, accept streams from peers.
 * Two implementations: QUIC (the real one, `quic.ts`) and an in-memory pair for tests.
 */

export interface RelayStream {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  /** Aborts both directions at once (peer sees a reset). */
  abort(reason: string): void;
}

export interface PeerEndpoint {
  /** host:port of the peer's relay endpoint. */
  address: string;
  /** The peer's certificate (PEM), learned through the authenticated control plane. */
  certPem: string;
}

export interface RelayTransport extends AsyncDisposable {
  /** host:port this node's relay endpoint is reachable at. */
  readonly address: string;
  /** This node's certificate (PEM), advertised to peers in heartbeats. */
  readonly certPem: string;
  /** Opens a stream to `peer`, reusing the connection to it if there is one. */
  openStream(peer: PeerEndpoint, timeoutMs: number): Promise<RelayStream>;
  /** Registers the handler for streams peers open to us. */
  onStream(handler: (stream: RelayStream, remote: string) => void): void;
  /** Drops the connection to a peer that looks dead, so the next stream dials afresh. */
  resetPeer(address: string): void;
  /** Open peer connections (for tests and metrics). */
  connectionCount(): number;
}
