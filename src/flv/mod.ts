/**
 * FLV tags and codec inspection, with no I/O.
 *
 * An FLV stream is a 9-byte header, PreviousTagSize0, then tags of an 11-byte header
 * (type, 24-bit body size, 24+8-bit timestamp, stream id 0), the body, and a 4-byte
 * PreviousTagSize. `FlvDemuxer` reassembles tags from any chunking; the encoders write
 * the same layout. Inspection functions read only the first bytes of a tag body (legacy
 * FLV and Enhanced RTMP headers) and never throw on short or odd bodies: they answer
 * "unknown" or null. The SPS parsers decode just far enough for the picture size.
 */

export {
  DEFAULT_MAX_TAG_SIZE,
  encodedTagSize,
  encodeTag,
  encodeTagInto,
  FLV_HEADER_AV,
  FLV_HEADER_SIZE,
  FlvDemuxer,
  type FlvFileHeader,
  flvHeader,
  type FlvTag,
  TAG_HEADER_SIZE,
  writeTagHeader,
} from "./_tag.ts";
export {
  inspectVideo,
  type VideoCodec,
  VideoFrameType,
  VideoPacketType,
  type VideoTagInfo,
} from "./_video.ts";
export {
  type AacConfig,
  type AudioCodec,
  AudioPacketType,
  type AudioTagInfo,
  inspectAudio,
  parseAacConfig,
  parseAudioSpecificConfig,
} from "./_audio.ts";
export { type AvcConfig, type AvcSps, parseAvcDecoderConfig, parseAvcSps } from "./_avc.ts";
export { type HevcConfig, type HevcSps, parseHevcDecoderConfig, parseHevcSps } from "./_hevc.ts";
export { classifyTag } from "./_classify.ts";
