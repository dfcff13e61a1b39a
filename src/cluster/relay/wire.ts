/**
 * The relay's framing on a QUIC stream. Media-agnostic: a media frame is an opaque FLV tag
 * plus two flags the ingest side already computed (keyframe, sequence header), so neither
 * end parses codecs here.
 *
 *   frame  = kind:u8 flags:u8 length:u32be payload[length]
 *   HELLO   (edge → origin)  JSON {session_id, stream_path, requestor_id}
 *   HEADERS (origin → edge)  metadata + sequence-header FLV tags, back to back
 *   MEDIA   (origin → edge)  one FLV tag; flags bit0 = keyframe, bit1 = sequence header
 *   END     (origin → edge)  JSON {reason}: the stream ended at the origin
 *   ERROR   (origin → edge)  JSON {reason}: the request was refused
 */

import { ByteQueue } from "../../bytes/mod.ts";

export const FrameKind = { Hello: 1, Headers: 2, Media: 3, End: 4, Error: 5 } as const;
export type FrameKind = typeof FrameKind[keyof typeof FrameKind];

export const FLAG_KEYFRAME = 1;
export const FLAG_SEQUENCE_HEADER = 2;
export const FRAME_HEADER_SIZE = 6;
/** Largest payload accepted: a video frame well beyond any sane bitrate. */
export const MAX_FRAME_PAYLOAD = 16 * 1024 * 1024;
export const MAX_CONTROL_PAYLOAD = 4096;

export class RelayWireError extends Error {
  override name = "RelayWireError";
}

export interface WireFrame {
  kind: FrameKind;
  flags: number;
  /** An owned copy: safe to keep in a GOP cache. */
  payload: Uint8Array;
}

export function frameHeader(kind: FrameKind, flags: number, length: number): Uint8Array {
  const h = new Uint8Array(FRAME_HEADER_SIZE);
  writeFrameHeader(h, kind, flags, length);
  return h;
}

/** Writes a frame header at the start of `target` (which has room for the payload after it). */
export function writeFrameHeader(target: Uint8Array, kind: FrameKind, flags: number, length: number): void {
  target[0] = kind;
  target[1] = flags;
  target[2] = length >>> 24;
  target[3] = (length >>> 16) & 0xff;
  target[4] = (length >>> 8) & 0xff;
  target[5] = length & 0xff;
}

export function encodeControl(kind: FrameKind, value: unknown): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(value));
  const out = new Uint8Array(FRAME_HEADER_SIZE + json.byteLength);
  out.set(frameHeader(kind, 0, json.byteLength));
  out.set(json, FRAME_HEADER_SIZE);
  return out;
}

export function decodeControl(frame: WireFrame): Record<string, unknown> {
  try {
    const v = JSON.parse(new TextDecoder().decode(frame.payload));
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
    return v;
  } catch (err) {
    throw new RelayWireError("control frame is not a JSON object", { cause: err });
  }
}

/** Incremental decoder: push what the stream delivers, get whole frames back. */
export class FrameDecoder {
  readonly #queue: ByteQueue;

  /** `maxMediaPayload`: the largest HEADERS/MEDIA payload accepted (control frames: 4 KiB). */
  constructor(readonly maxMediaPayload = MAX_FRAME_PAYLOAD) {
    this.#queue = new ByteQueue(maxMediaPayload + FRAME_HEADER_SIZE + 64 * 1024, 64 * 1024);
  }

  push(chunk: Uint8Array, onFrame: (f: WireFrame) => void): void {
    this.#queue.push(chunk);
    for (;;) {
      const data = this.#queue.peek();
      if (data.byteLength < FRAME_HEADER_SIZE) return;
      const kind = data[0]!;
      if (kind < FrameKind.Hello || kind > FrameKind.Error) {
        throw new RelayWireError(`unknown frame kind ${kind}`);
      }
      const length = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(2);
      const limit = kind === FrameKind.Media || kind === FrameKind.Headers
        ? MAX_FRAME_PAYLOAD
        : MAX_CONTROL_PAYLOAD;
      if (length > limit) throw new RelayWireError(`frame of ${length} bytes exceeds ${limit}`);
      if (data.byteLength < FRAME_HEADER_SIZE + length) return;
      const payload = data.slice(FRAME_HEADER_SIZE, FRAME_HEADER_SIZE + length);
      this.#queue.consume(FRAME_HEADER_SIZE + length);
      onFrame({ kind: kind as FrameKind, flags: data[1]!, payload });
    }
  }

  get buffered(): number {
    return this.#queue.length;
  }
}

/** Splits a run of complete FLV tags (as in HEADERS) into tag views. Throws on a bad run. */
export function splitTags(run: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < run.byteLength) {
    if (off + 11 > run.byteLength) throw new RelayWireError("truncated tag in headers frame");
    const size = (run[off + 1]! << 16) | (run[off + 2]! << 8) | run[off + 3]!;
    const end = off + 11 + size + 4;
    if (end > run.byteLength) throw new RelayWireError("truncated tag in headers frame");
    out.push(run.subarray(off, end));
    off = end;
  }
  return out;
}
