/**
 * Assertions on what a player received: stream start (metadata, sequence headers, keyframe
 * first), per-track timestamp order, codec and picture size. Shared by the HTTP-FLV, WS-FLV
 * (in-process tags) and ffprobe (packets) checks.
 */

import assert from "node:assert/strict";
import { decodeAmf0 } from "../../src/amf/mod.ts";
import { parseAacConfig, parseAvcDecoderConfig, parseHevcDecoderConfig } from "../../src/flv/mod.ts";
import { type FlvReadResult, isCodedAudio, isCodedVideo, type ProbeResult, type ReadTag } from "./media.ts";

export interface ExpectedMedia {
  videoCodec: "h264" | "hevc";
  /** null: no audio track expected. */
  audioCodec: "aac" | null;
  width: number;
  height: number;
}

export const H264_AAC_320x240: ExpectedMedia = {
  videoCodec: "h264",
  audioCodec: "aac",
  width: 320,
  height: 240,
};

export function videoFrames(tags: readonly ReadTag[]): ReadTag[] {
  return tags.filter(isCodedVideo);
}

export function audioFrames(tags: readonly ReadTag[]): ReadTag[] {
  return tags.filter(isCodedAudio);
}

/** Picture size from a video sequence header tag (H.264 or HEVC), or null. */
export function sequenceHeaderSize(tag: ReadTag): { width: number; height: number } | null {
  const cfg = tag.video?.codec === "h264"
    ? parseAvcDecoderConfig(tag.data)
    : parseHevcDecoderConfig(tag.data);
  return cfg ? { width: cfg.width, height: cfg.height } : null;
}

/**
 * The first tags are onMetaData, the video sequence header, the audio sequence header (when
 * audio is expected), and the first coded video frame is a keyframe.
 */
export function assertFlvStart(read: FlvReadResult, expected: ExpectedMedia, who = "player"): void {
  const tags = read.tags;
  assert.equal(
    read.status === 200 || read.status === 101,
    true,
    `${who}: status ${read.status} ${read.errorBody}`,
  );
  assert.ok(read.header, `${who}: no FLV header`);
  assert.ok(tags.length >= 3, `${who}: only ${tags.length} tags`);
  const [meta, vsh] = tags;
  assert.equal(meta!.type, 18, `${who}: first tag is type ${meta!.type}, not onMetaData`);
  assert.equal(decodeAmf0(meta!.data)[0], "onMetaData", `${who}: first script tag is not onMetaData`);
  assert.equal(vsh!.type, 9, `${who}: second tag is not video`);
  assert.equal(vsh!.video?.sequenceHeader, true, `${who}: second tag is not the video sequence header`);
  assert.equal(vsh!.video?.codec, expected.videoCodec, `${who}: video codec`);
  assert.deepEqual(
    sequenceHeaderSize(vsh!),
    { width: expected.width, height: expected.height },
    `${who}: picture size`,
  );
  if (expected.audioCodec) {
    const ash = tags[2]!;
    assert.equal(ash.type, 8, `${who}: third tag is not audio`);
    assert.equal(ash.audio?.sequenceHeader, true, `${who}: third tag is not the audio sequence header`);
    assert.equal(ash.audio?.codec, expected.audioCodec, `${who}: audio codec`);
    assert.ok(parseAacConfig(ash.data), `${who}: AudioSpecificConfig does not parse`);
  }
  const firstVideo = videoFrames(tags)[0];
  assert.ok(firstVideo, `${who}: no coded video frame`);
  assert.equal(firstVideo.video?.keyframe, true, `${who}: first video frame is not a keyframe`);
  const firstVideoIndex = tags.indexOf(firstVideo);
  const headerCount = expected.audioCodec ? 3 : 2;
  assert.ok(firstVideoIndex >= headerCount, `${who}: a frame came before the sequence headers`);
}

/** Coded frames have non-decreasing timestamps per track, and video DTS strictly increase. */
export function assertMonotonicTags(tags: readonly ReadTag[], who = "player"): void {
  let lastV = -1;
  let lastA = -1;
  for (const [i, t] of tags.entries()) {
    if (isCodedVideo(t)) {
      assert.ok(t.timestamp > lastV, `${who}: video DTS ${t.timestamp} after ${lastV} (tag ${i})`);
      lastV = t.timestamp;
    } else if (isCodedAudio(t)) {
      assert.ok(t.timestamp >= lastA, `${who}: audio timestamp ${t.timestamp} after ${lastA} (tag ${i})`);
      lastA = t.timestamp;
    }
  }
}

export function probeVideo(p: ProbeResult) {
  return p.packets.filter((x) => x.codec_type === "video");
}

export function probeAudio(p: ProbeResult) {
  return p.packets.filter((x) => x.codec_type === "audio");
}

/** ffprobe succeeded and saw the expected codecs and size, keyframe first, monotonic DTS. */
export function assertProbe(p: ProbeResult, expected: ExpectedMedia, who = "ffprobe"): void {
  assert.equal(p.code, 0, `${who}: exit ${p.code}: ${p.stderr}`);
  const v = p.streams.find((s) => s.codec_type === "video");
  assert.ok(v, `${who}: no video stream`);
  assert.equal(v.codec_name, expected.videoCodec, `${who}: video codec`);
  assert.equal(v.width, expected.width, `${who}: width`);
  assert.equal(v.height, expected.height, `${who}: height`);
  const a = p.streams.find((s) => s.codec_type === "audio");
  if (expected.audioCodec) {
    assert.ok(a, `${who}: no audio stream`);
    assert.equal(a.codec_name, expected.audioCodec, `${who}: audio codec`);
  }
  const video = probeVideo(p);
  assert.ok(video.length > 0, `${who}: no video packets`);
  assert.equal(video[0]!.keyframe, true, `${who}: first video packet is not a keyframe (${video[0]!.flags})`);
  for (const kind of ["video", "audio"] as const) {
    let last = -Infinity;
    for (const pk of p.packets.filter((x) => x.codec_type === kind)) {
      assert.ok(Number.isFinite(pk.dts), `${who}: ${kind} packet without dts`);
      if (kind === "video") assert.ok(pk.dts > last, `${who}: video dts ${pk.dts} after ${last}`);
      else assert.ok(pk.dts >= last, `${who}: audio dts ${pk.dts} after ${last}`);
      last = pk.dts;
    }
  }
}

/** `actual` is within `tolerance` (absolute) of `expected`. */
export function assertNear(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= tolerance,
    `${what}: ${actual}, expected ${expected} ± ${tolerance}`,
  );
}
