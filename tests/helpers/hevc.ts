/**
 * Real HEVC for the Enhanced RTMP test: the static ffmpeg (libx265) encodes a short clip as an
 * Annex B elementary stream; this module splits it into access units, builds the
 * HEVCDecoderConfigurationRecord (hvcC) from its VPS/SPS/PPS and wraps everything as
 * Enhanced RTMP video tag bodies (FourCC "hvc1").
 */

import { runFfmpeg } from "./media.ts";

export const HevcNal = { VPS: 32, SPS: 33, PPS: 34, AUD: 35, PrefixSEI: 39 } as const;

export function nalType(nal: Uint8Array): number {
  return (nal[0]! >> 1) & 0x3f;
}

/** Splits an Annex B byte stream at 3- and 4-byte start codes. */
export function splitAnnexB(bytes: Uint8Array): Uint8Array[] {
  const starts: { at: number; len: number }[] = [];
  for (let i = 0; i + 2 < bytes.byteLength; i++) {
    if (bytes[i] === 0 && bytes[i + 1] === 0 && bytes[i + 2] === 1) {
      const four = i > 0 && bytes[i - 1] === 0;
      starts.push({ at: four ? i - 1 : i, len: four ? 4 : 3 });
      i += 2;
    }
  }
  const nals: Uint8Array[] = [];
  for (let k = 0; k < starts.length; k++) {
    const begin = starts[k]!.at + starts[k]!.len;
    const end = k + 1 < starts.length ? starts[k + 1]!.at : bytes.byteLength;
    if (end > begin) nals.push(bytes.subarray(begin, end));
  }
  return nals;
}

export interface HevcAccessUnit {
  nals: Uint8Array[];
  /** Starts with an IRAP picture (BLA/IDR/CRA, types 16..21). */
  keyframe: boolean;
}

export interface HevcStream {
  vps: Uint8Array;
  sps: Uint8Array;
  pps: Uint8Array;
  units: HevcAccessUnit[];
}

/**
 * Groups NAL units into access units. Parameter sets go to the hvcC, not into frames; a VCL NAL
 * whose first_slice_segment_in_pic_flag is set starts a new picture, prefix NALs (SEI, AUD)
 * attach to the next picture.
 */
export function parseHevcStream(bytes: Uint8Array): HevcStream {
  let vps: Uint8Array | null = null;
  let sps: Uint8Array | null = null;
  let pps: Uint8Array | null = null;
  const units: HevcAccessUnit[] = [];
  let prefix: Uint8Array[] = [];
  let current: HevcAccessUnit | null = null;
  for (const nal of splitAnnexB(bytes)) {
    const t = nalType(nal);
    if (t === HevcNal.VPS) vps ??= nal;
    else if (t === HevcNal.SPS) sps ??= nal;
    else if (t === HevcNal.PPS) pps ??= nal;
    else if (t < 32) {
      const firstSlice = (nal[2]! & 0x80) !== 0;
      if (firstSlice || !current) {
        current = { nals: [...prefix], keyframe: t >= 16 && t <= 21 };
        prefix = [];
        units.push(current);
      }
      current.nals.push(nal);
    } else if (t === HevcNal.AUD || t === HevcNal.PrefixSEI || (t >= 41 && t <= 44) || (t >= 48 && t <= 55)) {
      prefix.push(nal);
    } else if (current) {
      current.nals.push(nal); // suffix SEI, end of sequence, ...
    }
  }
  if (!vps || !sps || !pps) throw new Error("HEVC stream without VPS/SPS/PPS");
  return { vps, sps, pps, units };
}

/** Removes emulation-prevention bytes (00 00 03 → 00 00). */
function unescape(nal: Uint8Array): Uint8Array {
  const out: number[] = [];
  let zeros = 0;
  for (const b of nal) {
    if (zeros >= 2 && b === 3) {
      zeros = 0;
      continue;
    }
    out.push(b);
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return new Uint8Array(out);
}

/**
 * HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3) with one VPS, SPS and PPS array.
 * The 12 general profile/tier/level bytes are copied from the SPS; chroma format and bit depth
 * are those of the clip the tests encode (4:2:0, 8 bit).
 */
export function buildHvcC(s: Pick<HevcStream, "vps" | "sps" | "pps">): Uint8Array {
  const rbsp = unescape(s.sps.subarray(2));
  const ptl = rbsp.subarray(1, 13);
  if (ptl.byteLength !== 12) throw new Error("SPS too short");
  const out: number[] = [1, ...ptl];
  out.push(0xf0, 0x00); // reserved 1111 + min_spatial_segmentation_idc 0
  out.push(0xfc); // reserved 111111 + parallelismType 0
  out.push(0xfc | 1); // chroma_format_idc 1 (4:2:0)
  out.push(0xf8 | 0); // bit_depth_luma_minus8
  out.push(0xf8 | 0); // bit_depth_chroma_minus8
  out.push(0, 0); // avgFrameRate unknown
  out.push((0 << 6) | (1 << 3) | (1 << 2) | 3); // constantFrameRate 0, 1 temporal layer, nested, 4-byte lengths
  const arrays: [number, Uint8Array][] = [[HevcNal.VPS, s.vps], [HevcNal.SPS, s.sps], [HevcNal.PPS, s.pps]];
  out.push(arrays.length);
  for (const [type, nal] of arrays) {
    out.push(0x80 | type, 0, 1, nal.byteLength >> 8, nal.byteLength & 0xff, ...nal);
  }
  return new Uint8Array(out);
}

const HVC1 = [0x68, 0x76, 0x63, 0x31]; // "hvc1"

/** Enhanced RTMP SequenceStart: IsExHeader | FrameType key | PacketType 0, FourCC, hvcC. */
export function exSequenceStart(hvcc: Uint8Array): Uint8Array {
  return new Uint8Array([0x80 | (1 << 4) | 0, ...HVC1, ...hvcc]);
}

/**
 * Enhanced RTMP coded frame: FourCC, then for CodedFrames (packet type 1) an SI24 composition
 * time, then 4-byte length-prefixed NAL units. `x: true` gives CodedFramesX (packet type 3,
 * composition time implied 0).
 */
export function exCodedFrames(
  unit: HevcAccessUnit,
  opts: { compositionTime?: number; x?: boolean } = {},
): Uint8Array {
  const size = unit.nals.reduce((n, nal) => n + 4 + nal.byteLength, 0);
  const ctsBytes = opts.x ? 0 : 3;
  const out = new Uint8Array(1 + 4 + ctsBytes + size);
  out[0] = 0x80 | ((unit.keyframe ? 1 : 2) << 4) | (opts.x ? 3 : 1);
  out.set(HVC1, 1);
  let p = 5;
  if (!opts.x) {
    const cts = (opts.compositionTime ?? 0) & 0xffffff;
    out[5] = cts >> 16;
    out[6] = (cts >> 8) & 0xff;
    out[7] = cts & 0xff;
    p = 8;
  }
  const view = new DataView(out.buffer);
  for (const nal of unit.nals) {
    view.setUint32(p, nal.byteLength);
    out.set(nal, p + 4);
    p += 4 + nal.byteLength;
  }
  return out;
}

/** Enhanced RTMP SequenceEnd. */
export function exSequenceEnd(): Uint8Array {
  return new Uint8Array([0x80 | (1 << 4) | 2, ...HVC1]);
}

/** Encodes testsrc with libx265 (no B-frames, closed GOPs) and parses the result. */
export async function encodeHevcClip(
  opts: { size: string; fps: number; frames: number; gop: number },
): Promise<HevcStream> {
  const dir = await Deno.makeTempDir({ prefix: "hevc-test-" });
  try {
    const file = `${dir}/clip.hevc`;
    await runFfmpeg([
      "-f",
      "lavfi",
      "-i",
      `testsrc=size=${opts.size}:rate=${opts.fps}`,
      "-frames:v",
      String(opts.frames),
      "-c:v",
      "libx265",
      "-preset",
      "ultrafast",
      "-pix_fmt",
      "yuv420p",
      "-x265-params",
      `log-level=error:keyint=${opts.gop}:min-keyint=${opts.gop}:scenecut=0:bframes=0:open-gop=0`,
      "-f",
      "hevc",
      file,
    ]);
    return parseHevcStream(await Deno.readFile(file));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
