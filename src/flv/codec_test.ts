import assert from "node:assert/strict";
import {
  classifyTag,
  inspectAudio,
  inspectVideo,
  parseAacConfig,
  parseAudioSpecificConfig,
  parseAvcDecoderConfig,
  parseHevcDecoderConfig,
  type VideoTagInfo,
} from "./mod.ts";

const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0));
const body = (...parts: (number | number[])[]) => new Uint8Array(parts.flat());

function video(bytes: Uint8Array, expected: Partial<VideoTagInfo>): void {
  const info = inspectVideo(bytes);
  const picked = Object.fromEntries(Object.keys(expected).map((k) => [k, info[k as keyof VideoTagInfo]]));
  assert.deepStrictEqual(picked, expected);
}

Deno.test("legacy AVC packets", () => {
  video(body(0x17, 0, 0, 0, 0, 1, 0x64), {
    codec: "h264",
    frameType: 1,
    sequenceHeader: true,
    keyframe: false,
    enhanced: false,
    packetType: 0,
    payloadOffset: 5,
    fourCc: null,
  });
  video(body(0x17, 1, 0, 0, 80, 0, 0, 0, 1), { keyframe: true, sequenceHeader: false, compositionTime: 80 });
  video(body(0x27, 1, 0xff, 0xff, 0xd8), { keyframe: false, frameType: 2, compositionTime: -40 });
  video(body(0x17, 2, 0, 0, 0), { endOfSequence: true, keyframe: false, sequenceHeader: false });
  video(body(0x57, 0), { codec: "h264", command: true, keyframe: false, payloadOffset: -1 });
});

Deno.test("legacy HEVC (codec id 12) and other legacy codecs", () => {
  video(body(0x1c, 1, 0, 0, 0x28, 9), {
    codec: "hevc",
    keyframe: true,
    compositionTime: 40,
    payloadOffset: 5,
  });
  video(body(0x1c, 0, 0, 0, 0), { codec: "hevc", sequenceHeader: true });
  video(body(0x12, 0), { codec: "h263", keyframe: true, payloadOffset: 1, packetType: -1 });
  video(body(0x24, 0), { codec: "vp6", keyframe: false });
  video(body(0x1f, 0), { codec: "unknown", keyframe: false, payloadOffset: -1 });
});

Deno.test("enhanced RTMP video packets", () => {
  video(body(0x91, ascii("hvc1"), 0, 0, 0x28, 7), {
    codec: "hevc",
    enhanced: true,
    fourCc: "hvc1",
    keyframe: true,
    compositionTime: 40,
    payloadOffset: 8,
    packetType: 1,
  });
  video(body(0x93, ascii("hvc1"), 7), {
    codec: "hevc",
    keyframe: true,
    compositionTime: 0,
    payloadOffset: 5,
  });
  video(body(0xa1, ascii("avc1"), 0xff, 0xff, 0xff), { codec: "h264", keyframe: false, compositionTime: -1 });
  video(body(0x90, ascii("av01"), 0x81), {
    codec: "av1",
    sequenceHeader: true,
    keyframe: false,
    payloadOffset: 5,
  });
  video(body(0x95, ascii("av01"), 0x81), { codec: "av1", sequenceHeader: true, packetType: 5 });
  video(body(0xa1, ascii("vp09"), 1, 2, 3), {
    codec: "vp9",
    keyframe: false,
    compositionTime: 0,
    payloadOffset: 5,
  });
  video(body(0x93, ascii("vp08")), { codec: "vp8", keyframe: true });
  video(body(0x92, ascii("hvc1")), { endOfSequence: true, keyframe: false, payloadOffset: 5 });
  video(body(0x94, ascii("hvc1"), 2, 0, 9), { packetType: 4, keyframe: false, sequenceHeader: false });
  video(body(0xd1, 0), { command: true, keyframe: false, codec: "unknown" });
  video(body(0x91, ascii("xyz1"), 0, 0, 0), {
    codec: "unknown",
    fourCc: "xyz1",
    keyframe: true,
    payloadOffset: 5,
  });
});

Deno.test("enhanced RTMP multitrack and ModEx video", () => {
  video(body(0x96, 0x01, ascii("hvc1"), 0, 0, 0, 0x28, 9), {
    codec: "hevc",
    multitrack: true,
    keyframe: true,
    compositionTime: 40,
    payloadOffset: 10,
  });
  video(body(0x96, 0x13, ascii("av01"), 0, 0, 0, 1, 9), { codec: "av1", keyframe: true, payloadOffset: 10 });
  video(body(0x96, 0x20, ascii("avc1"), 0, 0, 0, 1, 9), {
    codec: "h264",
    sequenceHeader: true,
    payloadOffset: 10,
  });
  video(body(0x97, 2, 0xaa, 0xbb, 0xcc, 0x01, ascii("hvc1"), 0, 0, 0x28, 9), {
    codec: "hevc",
    keyframe: true,
    packetType: 1,
    compositionTime: 40,
    payloadOffset: 13,
  });
  const longModEx = new Uint8Array([
    0x97,
    0xff,
    0x01,
    0x00,
    ...new Array(257).fill(0),
    0x03,
    ...ascii("av01"),
  ]);
  video(longModEx, { codec: "av1", keyframe: true, payloadOffset: longModEx.byteLength });
});

Deno.test("short video bodies are unknown, never a throw", () => {
  for (
    const b of [
      body(),
      body(0x17),
      body(0x17, 1, 0, 0),
      body(0x91, ascii("hv")),
      body(0x91, ascii("hvc1"), 0),
    ]
  ) {
    video(b, { codec: "unknown", keyframe: false, sequenceHeader: false, payloadOffset: -1 });
  }
  video(body(0x97, 5, 1), { codec: "unknown" });
  video(body(0x96, 0x01, ascii("hvc1")), { codec: "unknown" });
});

Deno.test("legacy audio packets", () => {
  assert.deepStrictEqual(inspectAudio(body(0xaf, 0, 0x12, 0x10)), {
    codec: "aac",
    soundFormat: 10,
    sequenceHeader: true,
    enhanced: false,
    multitrack: false,
    packetType: 0,
    fourCc: null,
    payloadOffset: 2,
  });
  assert.equal(inspectAudio(body(0xaf, 1, 0x21)).sequenceHeader, false);
  assert.equal(inspectAudio(body(0x2f, 0xff)).codec, "mp3");
  assert.equal(inspectAudio(body(0x2f)).payloadOffset, 1);
  assert.equal(inspectAudio(body(0x82, 0)).codec, "g711u");
  assert.equal(inspectAudio(body(0xaf)).codec, "unknown");
  assert.equal(inspectAudio(body()).codec, "unknown");
  assert.equal(inspectAudio(body(0xd0, 0)).codec, "unknown");
});

Deno.test("enhanced RTMP audio packets", () => {
  const opusHead = ascii("OpusHead");
  assert.deepStrictEqual(inspectAudio(body(0x90, ascii("Opus"), opusHead)), {
    codec: "opus",
    soundFormat: 9,
    sequenceHeader: true,
    enhanced: true,
    multitrack: false,
    packetType: 0,
    fourCc: "Opus",
    payloadOffset: 5,
  });
  assert.equal(inspectAudio(body(0x91, ascii("Opus"), 1)).sequenceHeader, false);
  assert.equal(inspectAudio(body(0x91, ascii("fLaC"), 1)).codec, "flac");
  assert.equal(inspectAudio(body(0x91, ascii("ec-3"), 1)).codec, "eac3");
  assert.equal(inspectAudio(body(0x91, ascii(".mp3"), 1)).codec, "mp3");
  assert.equal(inspectAudio(body(0x91, ascii("zzzz"), 1)).codec, "unknown");
  const multi = inspectAudio(body(0x95, 0x00, ascii("Opus"), 0, 1));
  assert.equal(multi.codec, "opus");
  assert.equal(multi.multitrack, true);
  assert.equal(multi.sequenceHeader, true);
  assert.equal(multi.payloadOffset, 7);
  const many = inspectAudio(body(0x95, 0x11, ascii("mp4a"), 0, 0, 0, 1, 1));
  assert.equal(many.payloadOffset, 10);
  const modEx = inspectAudio(body(0x97, 0, 0x55, 0x00, ascii("mp4a"), 0x12, 0x10));
  assert.equal(modEx.codec, "aac");
  assert.equal(modEx.sequenceHeader, true);
  assert.equal(modEx.payloadOffset, 8);
  assert.equal(inspectAudio(body(0x91, ascii("Op"))).codec, "unknown");
});

Deno.test("AAC AudioSpecificConfig from legacy and enhanced tags", () => {
  assert.deepStrictEqual(parseAacConfig(body(0xaf, 0, 0x12, 0x10)), {
    sampleRate: 44100,
    channels: 2,
    objectType: 2,
  });
  assert.deepStrictEqual(parseAacConfig(body(0x90, ascii("mp4a"), 0x11, 0x90)), {
    sampleRate: 48000,
    channels: 2,
    objectType: 2,
  });
  assert.equal(parseAacConfig(body(0xaf, 1, 0x12, 0x10)), null);
  assert.equal(parseAacConfig(body(0x2f, 0, 0x12, 0x10)), null);
  assert.equal(parseAacConfig(body(0xaf, 0, 0x12)), null);
  assert.equal(parseAacConfig(body(0xaf, 0, 0x16, 0x90)), null);
});

Deno.test("AudioSpecificConfig: HE-AAC explicit SBR and escaped sample rates", () => {
  assert.deepStrictEqual(parseAudioSpecificConfig(body(0x2b, 0x11, 0x88, 0x00)), {
    sampleRate: 48000,
    channels: 2,
    objectType: 5,
  });
  assert.deepStrictEqual(parseAudioSpecificConfig(body(0x17, 0x80, 0x2a, 0xf8, 0x08)), {
    sampleRate: 22000,
    channels: 1,
    objectType: 2,
  });
  assert.deepStrictEqual(parseAudioSpecificConfig(body(0xf8, 0x08, 0x20)), {
    sampleRate: 44100,
    channels: 1,
    objectType: 32,
  });
});

Deno.test("classifyTag", () => {
  assert.deepStrictEqual(classifyTag(9, body(0x17, 1, 0, 0, 0)), { keyframe: true, sequenceHeader: false });
  assert.deepStrictEqual(classifyTag(9, body(0x17, 0, 0, 0, 0)), { keyframe: false, sequenceHeader: true });
  assert.deepStrictEqual(classifyTag(9, body(0x27, 1, 0, 0, 0)), { keyframe: false, sequenceHeader: false });
  assert.deepStrictEqual(classifyTag(8, body(0xaf, 0, 0x12, 0x10)), {
    keyframe: false,
    sequenceHeader: true,
  });
  assert.deepStrictEqual(classifyTag(8, body(0xaf, 1)), { keyframe: false, sequenceHeader: false });
  assert.deepStrictEqual(classifyTag(18, body(0x17, 0)), { keyframe: false, sequenceHeader: false });
});

Deno.test("random bodies never make inspection or parsing throw", () => {
  let seed = 4242;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const prefixes = [
    [0x17, 0],
    [0x1c, 0],
    [0x90, ...ascii("hvc1"), 1],
    [0x90, ...ascii("avc1"), 1],
    [0xaf, 0],
    [
      0x90,
      ...ascii("mp4a"),
    ],
    [0x96],
    [0x97],
    [0x95],
  ];
  for (let i = 0; i < 20_000; i++) {
    const prefix = prefixes[i % prefixes.length]!;
    const b = new Uint8Array(prefix.length + Math.floor(rand() * 48));
    b.set(prefix);
    for (let j = prefix.length; j < b.length; j++) b[j] = rand() < 0.3 ? 0 : Math.floor(rand() * 256);
    inspectVideo(b);
    inspectAudio(b);
    parseAvcDecoderConfig(b);
    parseHevcDecoderConfig(b);
    parseAacConfig(b);
  }
});
