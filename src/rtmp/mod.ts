export { RtmpServer } from "./_server.ts";
export { type RtmpConn, type RtmpGate, RtmpSession, type RtmpSessionOptions } from "./_session.ts";
export { ChunkReader, encodeChunks, MessageType, type RtmpMessage, RtmpProtocolError } from "./_chunk.ts";
export { buildDigestC1, HANDSHAKE_SIZE, serverHandshake, verifyServerDigest } from "./_handshake.ts";
