import assert from "node:assert/strict";
import { decodeAmf0 } from "../amf/mod.ts";
import {
  FlvDemuxer,
  type FlvTag,
  inspectAudio,
  inspectVideo,
  parseAacConfig,
  parseAvcDecoderConfig,
  parseAvcSps,
  parseHevcDecoderConfig,
} from "./mod.ts";

const fixture = (name: string) => Deno.readFile(new URL(`./testdata/${name}`, import.meta.url));

async function demuxFixture(name: string): Promise<FlvTag[]> {
  const bytes = await fixture(name);
  const whole = new FlvDemuxer().push(bytes);
  const d = new FlvDemuxer();
  const bytewise: FlvTag[] = [];
  for (let i = 0; i < bytes.byteLength; i++) bytewise.push(...d.push(bytes.subarray(i, i + 1)));
  assert.deepStrictEqual(bytewise, whole);
  assert.equal(d.buffered, 0);
  return whole;
}

function firstOf(tags: FlvTag[], type: number): FlvTag {
  const t = tags.find((t) => t.type === type);
  assert.ok(t, `no tag of type ${type}`);
  return t;
}

Deno.test("ffmpeg H.264 + AAC FLV: metadata, SPS, keyframes, B-frame composition times", async () => {
  const tags = await demuxFixture("h264_aac_320x180.flv");
  assert.equal(tags[0]!.type, 18);
  const [name, meta] = decodeAmf0(tags[0]!.data) as [string, Record<string, unknown>];
  assert.equal(name, "onMetaData");
  assert.equal(meta["width"], 320);
  assert.equal(meta["height"], 180);

  const video = tags.filter((t) => t.type === 9);
  const infos = video.map((t) => inspectVideo(t.data));
  assert.ok(infos.every((i) => i.codec === "h264" && !i.enhanced));
  assert.equal(infos[0]!.sequenceHeader, true);
  assert.equal(infos[1]!.keyframe, true);
  assert.equal(infos.filter((i) => i.sequenceHeader).length, 1);
  assert.ok(infos.slice(2).some((i) => !i.keyframe));
  assert.ok(infos.every((i) => i.compositionTime >= 0));
  assert.ok(infos.some((i) => i.compositionTime > 0), "B-frames give positive composition times");
  for (let i = 1; i < video.length; i++) assert.ok(video[i]!.timestamp >= video[i - 1]!.timestamp);

  assert.deepStrictEqual(parseAvcDecoderConfig(video[0]!.data), {
    width: 320,
    height: 180,
    profile: 100,
    level: 12,
    chromaFormat: 1,
    bitDepth: 8,
    codecString: "avc1.64000c",
  });
  assert.equal(parseAvcDecoderConfig(video[1]!.data), null);

  const audio = tags.filter((t) => t.type === 8);
  assert.ok(audio.every((t) => inspectAudio(t.data).codec === "aac"));
  assert.equal(inspectAudio(audio[0]!.data).sequenceHeader, true);
  assert.equal(audio.filter((t) => inspectAudio(t.data).sequenceHeader).length, 1);
  assert.deepStrictEqual(parseAacConfig(audio[0]!.data), { sampleRate: 44100, channels: 2, objectType: 2 });
});

Deno.test("ffmpeg H.264 High 4:4:4 interlaced: 1920x1080 cropped from 1088 in field pairs, AAC 48 kHz mono", async () => {
  const tags = await demuxFixture("h264_high444_interlaced_1920x1080.flv");
  const seq = firstOf(tags, 9).data;
  const spsLen = (seq[11]! << 8) | seq[12]!;
  const raw = parseAvcSps(seq.subarray(13, 13 + spsLen));
  assert.equal(raw?.frameMbsOnly, false);
  const sps = parseAvcDecoderConfig(seq);
  assert.deepStrictEqual(sps, {
    width: 1920,
    height: 1080,
    profile: 244,
    level: 40,
    chromaFormat: 3,
    bitDepth: 8,
    codecString: "avc1.f40028",
  });
  assert.deepStrictEqual(parseAacConfig(firstOf(tags, 8).data), {
    sampleRate: 48000,
    channels: 1,
    objectType: 2,
  });
});

Deno.test("ffmpeg H.264 Constrained Baseline: 176x144", async () => {
  const tags = await demuxFixture("h264_baseline_176x144.flv");
  assert.equal(tags.some((t) => t.type === 8), false);
  const video = tags.filter((t) => t.type === 9);
  assert.ok(video.slice(1).every((t) => inspectVideo(t.data).compositionTime === 0));
  const sps = parseAvcDecoderConfig(video[0]!.data);
  assert.equal(sps?.width, 176);
  assert.equal(sps?.height, 144);
  assert.equal(sps?.profile, 66);
  assert.equal(sps?.level, 11);
  assert.match(sps?.codecString ?? "", /^avc1\.42[0-9a-f]{2}0b$/);
});

function findBox(bytes: Uint8Array, type: string): Uint8Array {
  const t = Array.from(type, (c) => c.charCodeAt(0));
  for (let i = 4; i + 4 <= bytes.byteLength; i++) {
    if (bytes[i] === t[0] && bytes[i + 1] === t[1] && bytes[i + 2] === t[2] && bytes[i + 3] === t[3]) {
      const size = new DataView(bytes.buffer, bytes.byteOffset + i - 4, 4).getUint32(0);
      if (size >= 8 && i - 4 + size <= bytes.byteLength) return bytes.subarray(i + 4, i - 4 + size);
    }
  }
  throw new Error(`no ${type} box`);
}

Deno.test("HEVC sequence headers built from an x265 hvcC: legacy id 12 and enhanced hvc1", async () => {
  const hvcc = findBox(await fixture("hevc_main_1280x718.mp4"), "hvcC");
  const enhanced = new Uint8Array([0x90, ...Array.from("hvc1", (c) => c.charCodeAt(0)), ...hvcc]);
  const legacy = new Uint8Array([0x1c, 0, 0, 0, 0, ...hvcc]);
  const expected = {
    width: 1280,
    height: 718,
    profile: 1,
    level: 93,
    chromaFormat: 1,
    bitDepth: 8,
    codecString: "hvc1.1.6.L93.90",
  };
  assert.deepStrictEqual(parseHevcDecoderConfig(enhanced), expected);
  assert.deepStrictEqual(parseHevcDecoderConfig(legacy), expected);
  assert.equal(inspectVideo(enhanced).sequenceHeader, true);
  assert.equal(parseHevcDecoderConfig(enhanced.subarray(0, 40)), null);
  assert.equal(parseAvcDecoderConfig(enhanced), null);
});
