export * from "./types.ts";
export * from "./schemas.ts";
export { PeerClient, PeerError } from "./peer_client.ts";
