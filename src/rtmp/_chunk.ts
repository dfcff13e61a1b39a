/**
 * RTMP chunk stream codec (pure, no I/O).
 *
 * `ChunkReader` is fed whatever the socket delivers and emits whole messages. It commits a
 * chunk's header only once the chunk's payload is complete, so a short read is never
 * mistaken for bad input. Audio and video messages are assembled straight into an FLV tag
 * buffer (see media/frame.ts) so ingest never copies a payload twice. Every size a peer
 * controls is bounded: message length, chunk size, number of chunk streams.
 */

import { ByteQueue } from "../bytes/mod.ts";
import { allocTagBuffer, TAG_OVERHEAD } from "../media/mod.ts";
import { TAG_HEADER_SIZE } from "../flv/mod.ts";

export class RtmpProtocolError extends Error {
  override name = "RtmpProtocolError";
}

export const MessageType = {
  SetChunkSize: 1,
  Abort: 2,
  Acknowledgement: 3,
  UserControl: 4,
  WindowAckSize: 5,
  SetPeerBandwidth: 6,
  Audio: 8,
  Video: 9,
  DataAmf3: 15,
  CommandAmf3: 17,
  DataAmf0: 18,
  CommandAmf0: 20,
  Aggregate: 22,
} as const;

export interface RtmpMessage {
  csid: number;
  type: number;
  streamId: number;
  /** Absolute timestamp, 32-bit. */
  timestamp: number;
  payload: Uint8Array;
  /** For audio/video: the FLV tag buffer `payload` lives in (see media `allocTagBuffer`). */
  tagBuffer: Uint8Array | null;
}

interface ChunkStreamState {
  timestamp: number;
  delta: number;
  length: number;
  type: number;
  streamId: number;
  extended: boolean;
  buf: Uint8Array | null;
  bodyOffset: number;
  received: number;
}

const MAX_CHUNK_STREAMS = 64;
/** Messages being assembled at once; real clients interleave a handful (audio, video, commands). */
const MAX_PARTIAL_MESSAGES = 8;
/**
 * A message buffer starts at most this big and grows as chunks arrive, so a header that
 * declares a large message costs memory only once the bytes are actually sent.
 */
const INITIAL_MESSAGE_BUFFER = 64 * 1024;
export const MAX_CHUNK_SIZE = 0x7fffffff;

export class ChunkReader {
  readonly #queue: ByteQueue;
  readonly #streams = new Map<number, ChunkStreamState>();
  chunkSize = 128;
  /** Total bytes pushed (for acknowledgements). */
  bytesReceived = 0;

  constructor(readonly maxMessageSize: number) {
    // Room for one full chunk of the largest allowed chunk size plus headers; it starts small
    // (a player sends next to nothing) and grows with what the peer actually sends.
    this.#queue = new ByteQueue(Math.max(maxMessageSize, 1 << 16) + 64, 4096);
  }

  setChunkSize(size: number): void {
    if (size < 1 || size > MAX_CHUNK_SIZE) throw new RtmpProtocolError(`invalid chunk size ${size}`);
    this.chunkSize = Math.min(size, this.maxMessageSize);
  }

  abort(csid: number): void {
    const st = this.#streams.get(csid);
    if (st) {
      st.buf = null;
      st.received = 0;
    }
  }

  /** Feeds bytes; calls `onMessage` for every completed message. Throws `RtmpProtocolError`. */
  push(bytes: Uint8Array, onMessage: (m: RtmpMessage) => void): void {
    this.bytesReceived += bytes.byteLength;
    // Take the input in slices that fit: the queue holds one whole chunk of the largest size,
    // so parsing always frees room, whatever the size of a socket read.
    let off = 0;
    while (off < bytes.byteLength) {
      const room = this.#queue.maxBytes - this.#queue.length;
      if (room <= 0) throw new RtmpProtocolError("peer sent more than the input buffer holds");
      const n = Math.min(room, bytes.byteLength - off);
      this.#queue.push(bytes.subarray(off, off + n));
      off += n;
      while (this.#parseOne(onMessage));
    }
  }

  #parseOne(onMessage: (m: RtmpMessage) => void): boolean {
    const data = this.#queue.peek();
    const n = data.byteLength;
    if (n < 1) return false;
    let p = 0;
    const b0 = data[p++]!;
    const fmt = b0 >> 6;
    let csid = b0 & 0x3f;
    if (csid === 0) {
      if (n < 2) return false;
      csid = 64 + data[p++]!;
    } else if (csid === 1) {
      if (n < 3) return false;
      csid = 64 + data[p]! + data[p + 1]! * 256;
      p += 2;
    }
    const headerSize = fmt === 0 ? 11 : fmt === 1 ? 7 : fmt === 2 ? 3 : 0;
    if (n < p + headerSize) return false;

    let st = this.#streams.get(csid);
    if (!st) {
      if (fmt !== 0) {
        throw new RtmpProtocolError(`chunk stream ${csid} starts without a full header (fmt ${fmt})`);
      }
      if (this.#streams.size >= MAX_CHUNK_STREAMS) throw new RtmpProtocolError("too many chunk streams");
      st = {
        timestamp: 0,
        delta: 0,
        length: 0,
        type: 0,
        streamId: 0,
        extended: false,
        buf: null,
        bodyOffset: 0,
        received: 0,
      };
      this.#streams.set(csid, st);
    }
    const continuing = st.buf !== null;
    if (continuing && fmt !== 3) {
      throw new RtmpProtocolError(`chunk stream ${csid}: new header (fmt ${fmt}) inside a message`);
    }

    let tsField = 0;
    let length = st.length;
    let type = st.type;
    let streamId = st.streamId;
    if (fmt <= 2) {
      tsField = (data[p]! << 16) | (data[p + 1]! << 8) | data[p + 2]!;
    }
    if (fmt <= 1) {
      length = (data[p + 3]! << 16) | (data[p + 4]! << 8) | data[p + 5]!;
      type = data[p + 6]!;
    }
    if (fmt === 0) {
      streamId = data[p + 7]! | (data[p + 8]! << 8) | (data[p + 9]! << 16) | (data[p + 10]! << 24);
    }
    p += headerSize;
    const extended = fmt <= 2 ? tsField === 0xffffff : st.extended;
    let extValue = 0;
    if (extended) {
      if (n < p + 4) return false;
      extValue = ((data[p]! << 24) | (data[p + 1]! << 16) | (data[p + 2]! << 8) | data[p + 3]!) >>> 0;
      p += 4;
    }

    if (!continuing && length > this.maxMessageSize) {
      throw new RtmpProtocolError(`message of ${length} bytes exceeds the ${this.maxMessageSize}-byte limit`);
    }
    const received = continuing ? st.received : 0;
    const chunkLen = Math.min(this.chunkSize, length - received);
    if (n < p + chunkLen) return false;

    // The whole chunk is here: commit its header.
    if (!continuing) {
      const value = extended ? extValue : tsField;
      if (fmt === 0) {
        st.timestamp = value;
        st.delta = value;
      } else if (fmt === 1 || fmt === 2) {
        st.delta = value;
        st.timestamp = (st.timestamp + value) >>> 0;
      } else {
        st.timestamp = (st.timestamp + st.delta) >>> 0;
      }
      st.length = length;
      st.type = type;
      st.streamId = streamId;
      st.extended = extended;
      if (this.#partialMessages() >= MAX_PARTIAL_MESSAGES) {
        throw new RtmpProtocolError(`more than ${MAX_PARTIAL_MESSAGES} messages in progress at once`);
      }
      const isTag = type === MessageType.Audio || type === MessageType.Video;
      st.bodyOffset = isTag ? TAG_HEADER_SIZE : 0;
      st.buf = isTag && length <= INITIAL_MESSAGE_BUFFER
        ? allocTagBuffer(length)
        : new Uint8Array(Math.min(st.bodyOffset + length, INITIAL_MESSAGE_BUFFER));
      st.received = 0;
    }
    const end = st.bodyOffset + st.received + chunkLen;
    if (end > st.buf!.byteLength) {
      st.buf = grow(st.buf!, st.bodyOffset + st.received, this.#fullSize(st), end);
    }
    st.buf!.set(data.subarray(p, p + chunkLen), st.bodyOffset + st.received);
    st.received += chunkLen;
    this.#queue.consume(p + chunkLen);

    if (st.received === st.length) {
      // A tag buffer must end up exactly header + body + trailer long (see media allocTagBuffer).
      const full = this.#fullSize(st);
      const buf = st.buf!.byteLength === full ? st.buf! : grow(st.buf!, end, full, full);
      st.buf = null;
      st.received = 0;
      const isTag = st.bodyOffset > 0;
      onMessage({
        csid,
        type: st.type,
        streamId: st.streamId,
        timestamp: st.timestamp,
        payload: isTag ? buf.subarray(TAG_HEADER_SIZE, TAG_HEADER_SIZE + st.length) : buf,
        tagBuffer: isTag ? buf : null,
      });
    }
    return true;
  }

  #fullSize(st: ChunkStreamState): number {
    return st.bodyOffset > 0 ? st.length + TAG_OVERHEAD : st.length;
  }

  #partialMessages(): number {
    let n = 0;
    for (const st of this.#streams.values()) if (st.buf !== null) n++;
    return n;
  }
}

/** A bigger buffer (doubling, at most `limit`, at least `needed`) holding the first `used` bytes. */
function grow(buf: Uint8Array, used: number, limit: number, needed: number): Uint8Array {
  const next = new Uint8Array(Math.min(limit, Math.max(needed, buf.byteLength * 2)));
  next.set(buf.subarray(0, used));
  return next;
}

/**
 * Encodes one message as chunks: a type-0 header, then type-3 continuations (each carrying
 * the extended timestamp when one is used, as ffmpeg and OBS expect).
 */
export function encodeChunks(
  csid: number,
  type: number,
  streamId: number,
  timestamp: number,
  payload: Uint8Array,
  chunkSize: number,
): Uint8Array {
  if (csid < 2 || csid > 63) throw new RangeError(`csid ${csid} not supported by the writer`);
  const ts = timestamp >>> 0;
  const extended = ts >= 0xffffff;
  const len = payload.byteLength;
  const chunks = Math.max(1, Math.ceil(len / chunkSize));
  const extBytes = extended ? 4 : 0;
  const out = new Uint8Array(12 + extBytes + len + (chunks - 1) * (1 + extBytes));
  const v = new DataView(out.buffer);
  out[0] = csid;
  const tsField = extended ? 0xffffff : ts;
  out[1] = tsField >>> 16;
  out[2] = (tsField >>> 8) & 0xff;
  out[3] = tsField & 0xff;
  out[4] = len >>> 16;
  out[5] = (len >>> 8) & 0xff;
  out[6] = len & 0xff;
  out[7] = type;
  v.setUint32(8, streamId, true);
  let p = 12;
  if (extended) {
    v.setUint32(p, ts);
    p += 4;
  }
  for (let off = 0; off < len || off === 0; off += chunkSize) {
    if (off > 0) {
      out[p++] = 0xc0 | csid;
      if (extended) {
        v.setUint32(p, ts);
        p += 4;
      }
    }
    const part = payload.subarray(off, Math.min(len, off + chunkSize));
    out.set(part, p);
    p += part.byteLength;
    if (len === 0) break;
  }
  return out;
}
