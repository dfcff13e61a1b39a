export type { PeerEndpoint, RelayStream, RelayTransport } from "./types.ts";
export { QuicTransport } from "./quic.ts";
export { MemoryNetwork, MemoryTransport } from "./memory.ts";
export { generateSelfSigned, loadTls, RELAY_SERVER_NAME, type TlsMaterial } from "./certs.ts";
