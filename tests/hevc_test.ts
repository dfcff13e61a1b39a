/**
 * Enhanced RTMP HEVC passes through untouched. The static ffmpeg cannot publish Enhanced RTMP,
 * so a TS publisher sends a real libx265 clip (SequenceStart with an hvcC built from its
 * VPS/SPS/PPS, then CodedFrames), and players must receive identical tag bodies.
 */

import assert from "node:assert/strict";
import { sequenceHeaderSize } from "./helpers/checks.ts";
import { buildHvcC, encodeHevcClip, exCodedFrames, exSequenceStart } from "./helpers/hevc.ts";
import { probePackets, readFlv, type ReadTag, readWsFlv } from "./helpers/media.ts";
import { startNode } from "./helpers/node.ts";
import { RtmpTestClient } from "./helpers/rtmp.ts";
import { waitFor } from "./helpers/wait.ts";

const WIDTH = 384;
const HEIGHT = 216; // not a multiple of the coding block size: exercises the conformance window
const FPS = 25;

function hex(b: Uint8Array): string {
  return Array.from(b.subarray(0, 16), (x) => x.toString(16).padStart(2, "0")).join("");
}

function assertSameBodies(
  got: readonly ReadTag[],
  sent: readonly { ts: number; body: Uint8Array }[],
  who: string,
) {
  assert.equal(got.length, sent.length, `${who}: ${got.length} video tags, sent ${sent.length}`);
  for (const [i, s] of sent.entries()) {
    const g = got[i]!;
    assert.equal(g.timestamp, s.ts, `${who}: tag ${i} timestamp`);
    assert.equal(g.data.byteLength, s.body.byteLength, `${who}: tag ${i} size`);
    assert.ok(
      g.data.every((b, k) => b === s.body[k]),
      `${who}: tag ${i} differs (${hex(g.data)} vs ${hex(s.body)})`,
    );
  }
}

Deno.test("hevc: Enhanced RTMP HEVC reaches HTTP-FLV, WS-FLV and RTMP players byte for byte", async () => {
  const clip = await encodeHevcClip({ size: `${WIDTH}x${HEIGHT}`, fps: FPS, frames: 50, gop: 25 });
  assert.equal(clip.units.length, 50);
  assert.deepEqual(clip.units.map((u) => u.keyframe), clip.units.map((_, i) => i % 25 === 0));

  await using node = await startNode({ cluster: { relay: { republish_grace: 0 } } }, { label: "hevc" });
  const path = "live/hevc";
  await using pub = await RtmpTestClient.connect(node.host, node.rtmpPort);
  const connected = await pub.connectApp("live", node.rtmpUrl("live"), { fourCcList: ["hvc1"] });
  assert.equal((connected[3] as { code?: string }).code, "NetConnection.Connect.Success");
  const sid = await pub.createStream();
  assert.equal((await pub.publish(sid, "hevc"))["code"], "NetStream.Publish.Start");

  await pub.sendMetadata(sid, { width: WIDTH, height: HEIGHT, framerate: FPS });
  const sent: { ts: number; body: Uint8Array }[] = [{ ts: 0, body: exSequenceStart(buildHvcC(clip)) }];
  // Composition times are arbitrary bytes to the server; vary them to catch any rewriting.
  clip.units.forEach((u, i) =>
    sent.push({ ts: i * 40, body: exCodedFrames(u, { compositionTime: (i % 3) * 40 }) })
  );
  await pub.sendVideo(sid, 0, sent[0]!.body);

  const info = await waitFor(
    async () => {
      const s = await node.stream(path);
      return s?.video.codec ? s : null;
    },
    5000,
    { message: "HEVC stream in /api/streams" },
  );
  assert.deepEqual(info.video, { codec: "hevc", width: WIDTH, height: HEIGHT });
  assert.equal(info.audio.codec, null);

  // A player attached before the first frame gets everything; one attached after the clip
  // gets the sequence header and the cached GOP (from the last keyframe).
  const fullP = readFlv(node.flvUrl(path), { timeoutMs: 20_000 });
  const wsP = readWsFlv(node.wsUrl(path), { timeoutMs: 20_000 });
  await using rtmpPlayer = await RtmpTestClient.connect(node.host, node.rtmpPort);
  await rtmpPlayer.connectApp("live", node.rtmpUrl("live"), { fourCcList: ["hvc1"] });
  const playSid = await rtmpPlayer.createStream();
  assert.equal((await rtmpPlayer.play(playSid, "hevc"))["code"], "NetStream.Play.Start");
  await waitFor(async () => (await node.stream(path))?.players.total === 3, 5000, {
    message: "players attached",
  });
  for (const s of sent.slice(1)) await pub.sendVideo(sid, s.ts, s.body);
  // metadata + sequence header + 50 frames ingested: the GOP cache now holds frames 25..49.
  await waitFor(async () => (await node.stream(path))?.frames_in === 52, 5000, {
    message: "all frames ingested",
  });
  const late = await readFlv(node.flvUrl(path), { maxVideoFrames: 25, timeoutMs: 10_000 });
  await pub.close();

  const full = await fullP;
  assert.equal(full.ended, true, "player did not end at unpublish");
  assert.equal(full.tags[0]?.type, 18, "onMetaData first");
  const fullVideo = full.tags.filter((t) => t.type === 9);
  assertSameBodies(fullVideo, sent, "player from the start");
  assert.deepEqual(sequenceHeaderSize(fullVideo[0]!), { width: WIDTH, height: HEIGHT });
  assert.equal(fullVideo[0]!.video?.fourCc, "hvc1");
  assert.equal(fullVideo[1]!.video?.keyframe, true);

  const ws = await wsP;
  assertSameBodies(ws.tags.filter((t) => t.type === 9), sent, "ws-flv player");
  await rtmpPlayer.waitUntil(() => rtmpPlayer.closed, 5000, "rtmp player end").catch(() => {});
  const rtmpVideo = rtmpPlayer.media.filter((m) => m.type === 9);
  assertSameBodies(
    rtmpVideo.map((m) => ({ type: 9, timestamp: m.timestamp, data: m.payload, arrivalMs: 0 })),
    sent,
    "rtmp player",
  );

  const lateVideo = late.tags.filter((t) => t.type === 9);
  assertSameBodies(lateVideo, [sent[0]!, ...sent.slice(26)], "late player");
});

Deno.test("hevc: CodedFramesX HEVC through the node decodes in ffprobe", async () => {
  const clip = await encodeHevcClip({ size: `${WIDTH}x${HEIGHT}`, fps: FPS, frames: 25, gop: 25 });
  await using node = await startNode({ cluster: { relay: { republish_grace: 0 } } }, { label: "hevc-x" });
  await using pub = await RtmpTestClient.connect(node.host, node.rtmpPort);
  await pub.connectApp("live", node.rtmpUrl("live"), { fourCcList: ["hvc1"] });
  const sid = await pub.createStream();
  assert.equal((await pub.publish(sid, "hevcx"))["code"], "NetStream.Publish.Start");
  await pub.sendVideo(sid, 0, exSequenceStart(buildHvcC(clip)));
  await waitFor(async () => (await node.stream("live/hevcx"))?.video.codec === "hevc", 5000);

  // ffprobe decodes every frame (this ffprobe build mis-parses HEVC CodedFrames with a
  // composition time, so this stream uses CodedFramesX).
  const probeP = probePackets(node.flvUrl("live/hevcx"), {
    timeoutMs: 20_000,
    extraArgs: ["-count_frames"],
  });
  await waitFor(async () => (await node.stream("live/hevcx"))?.players.total === 1, 10_000, {
    message: "ffprobe attached",
  });
  for (const [i, u] of clip.units.entries()) await pub.sendVideo(sid, i * 40, exCodedFrames(u, { x: true }));
  await pub.close();
  const probe = await probeP;
  assert.equal(probe.code, 0, probe.stderr);
  assert.equal(probe.stderr.trim(), "", "ffprobe complained");
  const v = probe.streams.find((s) => s.codec_type === "video");
  assert.equal(v?.codec_name, "hevc");
  assert.equal(v?.width, WIDTH);
  assert.equal(v?.height, HEIGHT);
  assert.equal(Number(v?.["nb_read_frames"]), 25);
  assert.equal(probe.packets.length, 25);
  assert.equal(probe.packets[0]!.keyframe, true);
});
