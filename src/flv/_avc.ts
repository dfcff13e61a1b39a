import { BitReader, unescapeRbsp } from "./_bits.ts";
import { inspectVideo } from "./_video.ts";

export interface AvcConfig {
  /** Display size after frame cropping. */
  width: number;
  height: number;
  /** profile_idc: 66 Baseline, 77 Main, 100 High, 244 High 4:4:4 Predictive, ... */
  profile: number;
  /** level_idc, e.g. 31 for 3.1. */
  level: number;
  /** 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4. */
  chromaFormat: number;
  bitDepth: number;
  /** RFC 6381 codec string, e.g. "avc1.64001f". */
  codecString: string;
}

export interface AvcSps {
  profile: number;
  constraintFlags: number;
  level: number;
  width: number;
  height: number;
  chromaFormat: number;
  bitDepth: number;
  frameMbsOnly: boolean;
}

const MAX_MBS = 4096;
const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

/** Reads the first SPS of an AVC sequence header tag (legacy or enhanced "avc1"); null if unparseable. */
export function parseAvcDecoderConfig(body: Uint8Array): AvcConfig | null {
  const info = inspectVideo(body);
  if (info.codec !== "h264" || !info.sequenceHeader) return null;
  const rec = body.subarray(info.payloadOffset);
  if (rec.byteLength < 8 || (rec[5]! & 0x1f) === 0) return null;
  const len = (rec[6]! << 8) | rec[7]!;
  if (8 + len > rec.byteLength) return null;
  const sps = parseAvcSps(rec.subarray(8, 8 + len));
  if (!sps) return null;
  return {
    width: sps.width,
    height: sps.height,
    profile: sps.profile,
    level: sps.level,
    chromaFormat: sps.chromaFormat,
    bitDepth: sps.bitDepth,
    codecString: `avc1.${hex2(sps.profile)}${hex2(sps.constraintFlags)}${hex2(sps.level)}`,
  };
}

/** Parses one H.264 SPS NAL unit (with its 1-byte header, still escaped). */
export function parseAvcSps(nal: Uint8Array): AvcSps | null {
  if (nal.byteLength < 4 || (nal[0]! & 0x1f) !== 7) return null;
  try {
    return readSps(new BitReader(unescapeRbsp(nal.subarray(1))));
  } catch (e) {
    if (e instanceof RangeError) return null;
    throw e;
  }
}

function readSps(r: BitReader): AvcSps | null {
  const profile = r.bits(8);
  const constraintFlags = r.bits(8);
  const level = r.bits(8);
  r.ue();
  let chromaFormat = 1;
  let separateColourPlane = false;
  let bitDepth = 8;
  if (HIGH_PROFILES.has(profile)) {
    chromaFormat = r.ue();
    if (chromaFormat > 3) return null;
    if (chromaFormat === 3) separateColourPlane = r.bool();
    bitDepth = r.ue() + 8;
    r.ue();
    r.skip(1);
    if (r.bool()) {
      const lists = chromaFormat === 3 ? 12 : 8;
      for (let i = 0; i < lists; i++) {
        if (r.bool()) skipScalingList(r, i < 6 ? 16 : 64);
      }
    }
  }
  r.ue();
  const pocType = r.ue();
  if (pocType === 0) {
    r.ue();
  } else if (pocType === 1) {
    r.skip(1);
    r.se();
    r.se();
    const cycle = r.ue();
    if (cycle > 255) return null;
    for (let i = 0; i < cycle; i++) r.se();
  } else if (pocType !== 2) {
    return null;
  }
  r.ue();
  r.skip(1);
  const widthMbs = r.ue() + 1;
  const heightMapUnits = r.ue() + 1;
  if (widthMbs > MAX_MBS || heightMapUnits > MAX_MBS) return null;
  const frameMbsOnly = r.bool();
  if (!frameMbsOnly) r.skip(1);
  r.skip(1);
  let cropLeft = 0, cropRight = 0, cropTop = 0, cropBottom = 0;
  if (r.bool()) {
    cropLeft = r.ue();
    cropRight = r.ue();
    cropTop = r.ue();
    cropBottom = r.ue();
  }
  const chromaArrayType = separateColourPlane ? 0 : chromaFormat;
  const subWidthC = chromaArrayType === 3 ? 1 : 2;
  const subHeightC = chromaArrayType === 1 ? 2 : 1;
  const cropUnitX = chromaArrayType === 0 ? 1 : subWidthC;
  const cropUnitY = (chromaArrayType === 0 ? 1 : subHeightC) * (frameMbsOnly ? 1 : 2);
  const width = widthMbs * 16 - cropUnitX * (cropLeft + cropRight);
  const height = (frameMbsOnly ? 1 : 2) * heightMapUnits * 16 - cropUnitY * (cropTop + cropBottom);
  if (width <= 0 || height <= 0) return null;
  return { profile, constraintFlags, level, width, height, chromaFormat, bitDepth, frameMbsOnly };
}

function skipScalingList(r: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.se() + 256) % 256;
    if (next !== 0) last = next;
  }
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}
