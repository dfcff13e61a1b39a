/**
 * The unit everything moves: one FLV tag. Ingest (RTMP, relay) builds a frame once, with
 * the complete encoded tag (11-byte header + body + 4-byte previous-tag-size) in a single
 * buffer; HTTP-FLV, WS-FLV and the relay send `tag` as is and RTMP sends `data`, so the
 * fan-out path never copies or re-encodes. A frame is immutable once it enters a stream.
 */

import { TAG_HEADER_SIZE, writeTagHeader } from "../flv/mod.ts";

export const TagType = { Audio: 8, Video: 9, Script: 18 } as const;
export type TagType = typeof TagType[keyof typeof TagType];

export interface MediaFrame {
  readonly type: TagType;
  /** Decode timestamp in ms, monotonic per track within a stream. */
  readonly timestamp: number;
  /** The FLV tag body (for video it includes the composition-time offset, so pts is kept). */
  readonly data: Uint8Array;
  /** The whole encoded FLV tag, `data` included (a view into the same buffer). */
  readonly tag: Uint8Array;
  /** A video frame a decoder can start from (not a sequence header). */
  readonly keyframe: boolean;
  /** A codec configuration record (AVC/HEVC/AV1 sequence header, AAC AudioSpecificConfig). */
  readonly sequenceHeader: boolean;
}

/** Bytes an FLV tag adds around its body. */
export const TAG_OVERHEAD = TAG_HEADER_SIZE + 4;

/**
 * A buffer with room for the tag header before and the previous-tag-size after a body of
 * `bodySize` bytes; ingest writes the body at offset TAG_HEADER_SIZE so no copy is needed later.
 */
export function allocTagBuffer(bodySize: number): Uint8Array {
  return new Uint8Array(bodySize + TAG_OVERHEAD);
}

/** Returns the body view of a buffer made by `allocTagBuffer`. */
export function tagBody(tagBuffer: Uint8Array): Uint8Array {
  return tagBuffer.subarray(TAG_HEADER_SIZE, tagBuffer.byteLength - 4);
}

/** Writes header and trailer into a buffer made by `allocTagBuffer` and wraps it as a frame. */
export function frameFromTagBuffer(
  type: TagType,
  timestamp: number,
  tagBuffer: Uint8Array,
  flags: { keyframe: boolean; sequenceHeader: boolean },
): MediaFrame {
  const bodySize = tagBuffer.byteLength - TAG_OVERHEAD;
  writeTagHeader(tagBuffer, 0, type, timestamp, bodySize);
  new DataView(tagBuffer.buffer, tagBuffer.byteOffset, tagBuffer.byteLength)
    .setUint32(tagBuffer.byteLength - 4, TAG_HEADER_SIZE + bodySize);
  return {
    type,
    timestamp,
    data: tagBuffer.subarray(TAG_HEADER_SIZE, TAG_HEADER_SIZE + bodySize),
    tag: tagBuffer,
    keyframe: flags.keyframe,
    sequenceHeader: flags.sequenceHeader,
  };
}

/** Copies `body` into a fresh tag buffer (for sources that do not fill one themselves). */
export function makeFrame(
  type: TagType,
  timestamp: number,
  body: Uint8Array,
  flags: { keyframe: boolean; sequenceHeader: boolean },
): MediaFrame {
  const buf = allocTagBuffer(body.byteLength);
  buf.set(body, TAG_HEADER_SIZE);
  return frameFromTagBuffer(type, timestamp, buf, flags);
}

/** The same frame at another timestamp; rewrites the header in place (the frame is not shared yet). */
export function retimeFrame(frame: MediaFrame, timestamp: number): MediaFrame {
  writeTagHeader(frame.tag, 0, frame.type, timestamp, frame.data.byteLength);
  return { ...frame, timestamp };
}

/**
 * Wraps a complete encoded FLV tag (as the relay carries it) as a frame without copying.
 * Throws `RangeError` if the tag's declared size does not match its length.
 */
export function frameFromEncodedTag(
  tag: Uint8Array,
  flags: { keyframe: boolean; sequenceHeader: boolean },
): MediaFrame {
  if (tag.byteLength < TAG_OVERHEAD) throw new RangeError("tag shorter than its header");
  const type = tag[0]!;
  if (type !== TagType.Audio && type !== TagType.Video && type !== TagType.Script) {
    throw new RangeError(`bad tag type ${type}`);
  }
  const size = (tag[1]! << 16) | (tag[2]! << 8) | tag[3]!;
  if (size + TAG_OVERHEAD !== tag.byteLength) throw new RangeError("tag size does not match its length");
  const timestamp = ((tag[7]! << 24) | (tag[4]! << 16) | (tag[5]! << 8) | tag[6]!) >>> 0;
  return {
    type,
    timestamp,
    data: tag.subarray(TAG_HEADER_SIZE, TAG_HEADER_SIZE + size),
    tag,
    keyframe: flags.keyframe,
    sequenceHeader: flags.sequenceHeader,
  };
}
