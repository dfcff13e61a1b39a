import { BitReader, unescapeRbsp } from "./_bits.ts";
import { inspectVideo } from "./_video.ts";

export interface HevcConfig {
  /** Display size after the conformance window. */
  width: number;
  height: number;
  /** general_profile_idc: 1 Main, 2 Main 10, 4 Range extensions, ... */
  profile: number;
  /** general_level_idc: 30 × level, e.g. 93 for 3.1. */
  level: number;
  /** 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4. */
  chromaFormat: number;
  bitDepth: number;
  /** RFC 6381 / ISO 14496-15 codec string, e.g. "hvc1.1.6.L93.B0"; empty if the record header is short. */
  codecString: string;
}

export interface HevcSps {
  width: number;
  height: number;
  profile: number;
  tier: number;
  level: number;
  chromaFormat: number;
  bitDepth: number;
}

const HVCC_HEADER_SIZE = 23;
const NAL_SPS = 33;
const MAX_LUMA_SAMPLES = 65536;

/**
 * Reads the first SPS in the HEVCDecoderConfigurationRecord of a sequence header tag,
 * legacy (codec id 12) or enhanced ("hvc1"); null if it cannot be found or parsed.
 */
export function parseHevcDecoderConfig(body: Uint8Array): HevcConfig | null {
  const info = inspectVideo(body);
  if (info.codec !== "hevc" || !info.sequenceHeader) return null;
  const rec = body.subarray(info.payloadOffset);
  const nal = findSps(rec);
  const sps = nal && parseHevcSps(nal);
  if (!sps) return null;
  return {
    width: sps.width,
    height: sps.height,
    profile: sps.profile,
    level: sps.level,
    chromaFormat: sps.chromaFormat,
    bitDepth: sps.bitDepth,
    codecString: codecString(rec),
  };
}

function findSps(rec: Uint8Array): Uint8Array | null {
  if (rec.byteLength < HVCC_HEADER_SIZE) return null;
  const arrays = rec[22]!;
  let pos = HVCC_HEADER_SIZE;
  for (let a = 0; a < arrays; a++) {
    if (pos + 3 > rec.byteLength) return null;
    const type = rec[pos]! & 0x3f;
    const count = (rec[pos + 1]! << 8) | rec[pos + 2]!;
    pos += 3;
    for (let i = 0; i < count; i++) {
      if (pos + 2 > rec.byteLength) return null;
      const len = (rec[pos]! << 8) | rec[pos + 1]!;
      pos += 2;
      if (pos + len > rec.byteLength) return null;
      if (type === NAL_SPS) return rec.subarray(pos, pos + len);
      pos += len;
    }
  }
  return null;
}

/** Parses one H.265 SPS NAL unit (with its 2-byte header, still escaped). */
export function parseHevcSps(nal: Uint8Array): HevcSps | null {
  if (nal.byteLength < 3 || ((nal[0]! >> 1) & 0x3f) !== NAL_SPS) return null;
  try {
    return readSps(new BitReader(unescapeRbsp(nal.subarray(2))));
  } catch (e) {
    if (e instanceof RangeError) return null;
    throw e;
  }
}

function readSps(r: BitReader): HevcSps | null {
  r.skip(4);
  const maxSubLayersMinus1 = r.bits(3);
  r.skip(1);
  r.skip(2);
  const tier = r.bit();
  const profile = r.bits(5);
  r.skip(32 + 4 + 43 + 1);
  const level = r.bits(8);
  const subProfile: boolean[] = [];
  const subLevel: boolean[] = [];
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    subProfile.push(r.bool());
    subLevel.push(r.bool());
  }
  if (maxSubLayersMinus1 > 0) r.skip(2 * (8 - maxSubLayersMinus1));
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    if (subProfile[i]) r.skip(88);
    if (subLevel[i]) r.skip(8);
  }
  r.ue();
  const chromaFormat = r.ue();
  if (chromaFormat > 3) return null;
  const separateColourPlane = chromaFormat === 3 && r.bool();
  const lumaWidth = r.ue();
  const lumaHeight = r.ue();
  if (lumaWidth > MAX_LUMA_SAMPLES || lumaHeight > MAX_LUMA_SAMPLES) return null;
  let left = 0, right = 0, top = 0, bottom = 0;
  if (r.bool()) {
    left = r.ue();
    right = r.ue();
    top = r.ue();
    bottom = r.ue();
  }
  const bitDepth = r.ue() + 8;
  const chromaArrayType = separateColourPlane ? 0 : chromaFormat;
  const subWidthC = chromaArrayType === 1 || chromaArrayType === 2 ? 2 : 1;
  const subHeightC = chromaArrayType === 1 ? 2 : 1;
  const width = lumaWidth - subWidthC * (left + right);
  const height = lumaHeight - subHeightC * (top + bottom);
  if (width <= 0 || height <= 0) return null;
  return { width, height, profile, tier, level, chromaFormat, bitDepth };
}

function codecString(rec: Uint8Array): string {
  if (rec.byteLength < HVCC_HEADER_SIZE) return "";
  const b1 = rec[1]!;
  const space = ["", "A", "B", "C"][b1 >> 6]!;
  const tier = b1 & 0x20 ? "H" : "L";
  const compat = ((rec[2]! << 24) | (rec[3]! << 16) | (rec[4]! << 8) | rec[5]!) >>> 0;
  let reversed = 0;
  for (let i = 0; i < 32; i++) reversed = reversed * 2 + ((compat >>> i) & 1);
  const constraints = Array.from(rec.subarray(6, 12));
  while (constraints.length > 0 && constraints[constraints.length - 1] === 0) constraints.pop();
  const tail = constraints.map((c) => "." + c.toString(16).toUpperCase()).join("");
  return `hvc1.${space}${b1 & 0x1f}.${reversed.toString(16).toUpperCase()}.${tier}${rec[12]!}${tail}`;
}
