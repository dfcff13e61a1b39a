import { at, fourCcAt, s24, skipModEx } from "./_read.ts";

export type VideoCodec =
  | "h264"
  | "hevc"
  | "av1"
  | "vp9"
  | "vp8"
  | "h263"
  | "screen"
  | "vp6"
  | "vp6a"
  | "screen2"
  | "unknown";

/** Enhanced RTMP VideoPacketType; legacy AVC/HEVC AVCPacketType 0/1/2 map onto the first three. */
export const VideoPacketType = {
  SequenceStart: 0,
  CodedFrames: 1,
  SequenceEnd: 2,
  CodedFramesX: 3,
  Metadata: 4,
  MPEG2TSSequenceStart: 5,
  Multitrack: 6,
  ModEx: 7,
} as const;

export const VideoFrameType = { Key: 1, Inter: 2, DisposableInter: 3, GeneratedKey: 4, Command: 5 } as const;

export interface VideoTagInfo {
  codec: VideoCodec;
  /** 1 key, 2 inter, 3 disposable inter, 4 generated key, 5 command (see `VideoFrameType`). */
  frameType: number;
  /** A coded frame a decoder can start from: frame type 1 and not a config/end/metadata packet. */
  keyframe: boolean;
  /** AVC/HEVC/AV1/VP9 configuration record (SequenceStart or MPEG2TSSequenceStart). */
  sequenceHeader: boolean;
  endOfSequence: boolean;
  /** Enhanced RTMP (IsExHeader set). */
  enhanced: boolean;
  /** Enhanced RTMP multitrack; the other fields then describe the first track. */
  multitrack: boolean;
  /** A command frame (seek start/end); carries no video. */
  command: boolean;
  /** `VideoPacketType` value, or -1 for legacy codecs that have none. */
  packetType: number;
  /** The FourCC of an enhanced tag, e.g. "hvc1"; null for legacy tags. */
  fourCc: string | null;
  /** pts - dts in ms (signed); 0 where the format has no composition time. */
  compositionTime: number;
  /** Where the config record or coded data starts in the body; -1 if there is none. */
  payloadOffset: number;
}

const LEGACY_CODECS: Record<number, VideoCodec> = {
  2: "h263",
  3: "screen",
  4: "vp6",
  5: "vp6a",
  6: "screen2",
  7: "h264",
  12: "hevc",
};

const FOURCC_CODECS: Record<string, VideoCodec> = {
  avc1: "h264",
  hvc1: "hevc",
  av01: "av1",
  vp09: "vp9",
  vp08: "vp8",
};

const UNKNOWN: Readonly<VideoTagInfo> = {
  codec: "unknown",
  frameType: 0,
  keyframe: false,
  sequenceHeader: false,
  endOfSequence: false,
  enhanced: false,
  multitrack: false,
  command: false,
  packetType: -1,
  fourCc: null,
  compositionTime: 0,
  payloadOffset: -1,
};

export function inspectVideo(body: Uint8Array): VideoTagInfo {
  try {
    const b0 = at(body, 0);
    return b0 & 0x80 ? inspectEnhanced(body, b0) : inspectLegacy(body, b0);
  } catch (e) {
    if (e instanceof RangeError) return { ...UNKNOWN };
    throw e;
  }
}

function inspectLegacy(body: Uint8Array, b0: number): VideoTagInfo {
  const frameType = b0 >> 4;
  const codec = LEGACY_CODECS[b0 & 0x0f] ?? "unknown";
  const info: VideoTagInfo = { ...UNKNOWN, codec, frameType };
  if (frameType === VideoFrameType.Command) {
    info.command = true;
    return info;
  }
  if (codec === "h264" || codec === "hevc") {
    const packetType = at(body, 1);
    info.compositionTime = s24(body, 2);
    info.packetType = packetType;
    info.payloadOffset = 5;
    info.sequenceHeader = packetType === VideoPacketType.SequenceStart;
    info.endOfSequence = packetType === VideoPacketType.SequenceEnd;
    info.keyframe = frameType === VideoFrameType.Key && packetType === VideoPacketType.CodedFrames;
    return info;
  }
  if (codec !== "unknown") {
    info.payloadOffset = 1;
    info.keyframe = frameType === VideoFrameType.Key;
  }
  return info;
}

function inspectEnhanced(body: Uint8Array, b0: number): VideoTagInfo {
  const frameType = (b0 >> 4) & 0x07;
  let { packetType, pos } = skipModEx(body, b0);
  const info: VideoTagInfo = { ...UNKNOWN, frameType, enhanced: true, packetType };
  if (packetType !== VideoPacketType.Metadata && frameType === VideoFrameType.Command) {
    info.command = true;
    return info;
  }
  let fourCc: string;
  if (packetType === VideoPacketType.Multitrack) {
    const b = at(body, pos++);
    const multitrackType = b >> 4;
    packetType = b & 0x0f;
    info.multitrack = true;
    info.packetType = packetType;
    fourCc = fourCcAt(body, pos);
    pos += 5;
    if (multitrackType !== 0) pos += 3;
  } else {
    fourCc = fourCcAt(body, pos);
    pos += 4;
  }
  info.fourCc = fourCc;
  const codec = FOURCC_CODECS[fourCc] ?? "unknown";
  if ((codec === "h264" || codec === "hevc") && packetType === VideoPacketType.CodedFrames) {
    info.compositionTime = s24(body, pos);
    pos += 3;
  }
  if (pos > body.byteLength) return { ...UNKNOWN };
  info.codec = codec;
  info.payloadOffset = pos;
  info.sequenceHeader = packetType === VideoPacketType.SequenceStart ||
    packetType === VideoPacketType.MPEG2TSSequenceStart;
  info.endOfSequence = packetType === VideoPacketType.SequenceEnd;
  info.keyframe = frameType === VideoFrameType.Key &&
    (packetType === VideoPacketType.CodedFrames || packetType === VideoPacketType.CodedFramesX);
  return info;
}
