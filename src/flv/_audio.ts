import { at, fourCcAt, skipModEx } from "./_read.ts";
import { BitReader } from "./_bits.ts";

export type AudioCodec =
  | "aac"
  | "mp3"
  | "opus"
  | "flac"
  | "ac3"
  | "eac3"
  | "pcm"
  | "adpcm"
  | "nellymoser"
  | "g711a"
  | "g711u"
  | "speex"
  | "unknown";

/** Enhanced RTMP AudioPacketType; legacy AACPacketType 0/1 map onto the first two. */
export const AudioPacketType = {
  SequenceStart: 0,
  CodedFrames: 1,
  SequenceEnd: 2,
  MultichannelConfig: 4,
  Multitrack: 5,
  ModEx: 7,
} as const;

export interface AudioTagInfo {
  codec: AudioCodec;
  /** The legacy SoundFormat nibble (9 = enhanced ExHeader). */
  soundFormat: number;
  /** AAC AudioSpecificConfig, or an enhanced SequenceStart. */
  sequenceHeader: boolean;
  enhanced: boolean;
  multitrack: boolean;
  /** `AudioPacketType` value, or -1 for legacy codecs that have none. */
  packetType: number;
  /** The FourCC of an enhanced tag, e.g. "Opus"; null for legacy tags. */
  fourCc: string | null;
  /** Where the config or coded data starts in the body; -1 if there is none. */
  payloadOffset: number;
}

const LEGACY_CODECS: Record<number, AudioCodec> = {
  0: "pcm",
  1: "adpcm",
  2: "mp3",
  3: "pcm",
  4: "nellymoser",
  5: "nellymoser",
  6: "nellymoser",
  7: "g711a",
  8: "g711u",
  10: "aac",
  11: "speex",
  14: "mp3",
};

const FOURCC_CODECS: Record<string, AudioCodec> = {
  mp4a: "aac",
  Opus: "opus",
  ".mp3": "mp3",
  fLaC: "flac",
  "ac-3": "ac3",
  "ec-3": "eac3",
};

const EX_HEADER = 9;

const UNKNOWN: Readonly<AudioTagInfo> = {
  codec: "unknown",
  soundFormat: -1,
  sequenceHeader: false,
  enhanced: false,
  multitrack: false,
  packetType: -1,
  fourCc: null,
  payloadOffset: -1,
};

export function inspectAudio(body: Uint8Array): AudioTagInfo {
  try {
    const b0 = at(body, 0);
    const soundFormat = b0 >> 4;
    if (soundFormat === EX_HEADER) return inspectEnhanced(body, b0);
    const codec = LEGACY_CODECS[soundFormat] ?? "unknown";
    const info: AudioTagInfo = { ...UNKNOWN, codec, soundFormat };
    if (codec === "aac") {
      info.packetType = at(body, 1);
      info.sequenceHeader = info.packetType === AudioPacketType.SequenceStart;
      info.payloadOffset = 2;
    } else if (codec !== "unknown") {
      info.payloadOffset = 1;
    }
    return info;
  } catch (e) {
    if (e instanceof RangeError) return { ...UNKNOWN };
    throw e;
  }
}

function inspectEnhanced(body: Uint8Array, b0: number): AudioTagInfo {
  let { packetType, pos } = skipModEx(body, b0);
  const info: AudioTagInfo = { ...UNKNOWN, soundFormat: EX_HEADER, enhanced: true };
  if (packetType === AudioPacketType.Multitrack) {
    const b = at(body, pos++);
    const multitrackType = b >> 4;
    packetType = b & 0x0f;
    info.multitrack = true;
    info.fourCc = fourCcAt(body, pos);
    pos += 5;
    if (multitrackType !== 0) pos += 3;
  } else {
    info.fourCc = fourCcAt(body, pos);
    pos += 4;
  }
  if (pos > body.byteLength) return { ...UNKNOWN };
  info.codec = FOURCC_CODECS[info.fourCc] ?? "unknown";
  info.packetType = packetType;
  info.sequenceHeader = packetType === AudioPacketType.SequenceStart;
  info.payloadOffset = pos;
  return info;
}

export interface AacConfig {
  /** Output sample rate (the SBR rate for HE-AAC with explicit signalling). */
  sampleRate: number;
  /** 0 means the layout is in a program config element. */
  channels: number;
  /** MPEG-4 Audio Object Type: 2 LC, 5 SBR (HE-AAC), 29 PS (HE-AACv2), ... */
  objectType: number;
}

const AAC_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/** The AudioSpecificConfig of an AAC sequence header tag (legacy or enhanced "mp4a"). */
export function parseAacConfig(body: Uint8Array): AacConfig | null {
  const info = inspectAudio(body);
  if (info.codec !== "aac" || !info.sequenceHeader) return null;
  return parseAudioSpecificConfig(body.subarray(info.payloadOffset));
}

export function parseAudioSpecificConfig(asc: Uint8Array): AacConfig | null {
  try {
    const r = new BitReader(asc);
    const objectType = readObjectType(r);
    let sampleRate = readSampleRate(r);
    const channels = r.bits(4);
    if (sampleRate !== null && (objectType === 5 || objectType === 29)) sampleRate = readSampleRate(r);
    if (sampleRate === null || objectType === 0) return null;
    return { sampleRate, channels, objectType };
  } catch (e) {
    if (e instanceof RangeError) return null;
    throw e;
  }
}

function readObjectType(r: BitReader): number {
  const t = r.bits(5);
  return t === 31 ? 32 + r.bits(6) : t;
}

function readSampleRate(r: BitReader): number | null {
  const index = r.bits(4);
  if (index === 15) return r.bits(24);
  return AAC_RATES[index] ?? null;
}
