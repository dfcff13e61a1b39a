/**
 * Playback integration: a real node, ffmpeg publishing H.264 + AAC over RTMP, and players on
 * every protocol (HTTP-FLV and WS-FLV read in-process, HTTP-FLV and RTMP through ffprobe).
 */

import assert from "node:assert/strict";
import {
  assertFlvStart,
  assertMonotonicTags,
  assertNear,
  assertProbe,
  audioFrames,
  H264_AAC_320x240,
  probeAudio,
  probeVideo,
  videoFrames,
} from "./helpers/checks.ts";
import { probePackets, publish, readFlv, readWsFlv } from "./helpers/media.ts";
import { startNode } from "./helpers/node.ts";
import { waitFor, withTimeout } from "./helpers/wait.ts";

const FPS = 25;

Deno.test("playback: HTTP-FLV, WS-FLV and RTMP players each receive every published frame", async () => {
  await using node = await startNode(
    { flv: { wait_timeout: 15 }, cluster: { relay: { republish_grace: 0 } } },
    { label: "playback-all" },
  );
  const path = "live/all";
  const seconds = 3;
  // One GOP for the whole clip: a player that attaches after the first keyframe still gets
  // every video frame from the GOP cache, so the counts below are exact whatever the timing.
  await using pub = publish(node.rtmpUrl(path), { seconds, fps: FPS, gop: 250 });
  const opts = { timeoutMs: 25_000 };
  const [http, ws, probeHttp, probeRtmp] = await Promise.all([
    readFlv(node.flvUrl(path), opts),
    readWsFlv(node.wsUrl(path), opts),
    probePackets(node.flvUrl(path), opts),
    probePackets(node.rtmpUrl(path), opts),
  ]);
  const published = await pub.done;
  assert.equal(published.code, 0, `ffmpeg failed: ${published.stderr}`);

  const frames = seconds * FPS;
  const audioPackets = (seconds * 44100) / 1024;
  for (const [who, read] of [["http-flv", http], ["ws-flv", ws]] as const) {
    assert.equal(read.ended, true, `${who}: the stream did not end at unpublish`);
    assertFlvStart(read, H264_AAC_320x240, who);
    assertMonotonicTags(read.tags, who);
    assert.equal(videoFrames(read.tags).length, frames, `${who}: video frames`);
    assertNear(audioFrames(read.tags).length, audioPackets, 6, `${who}: audio frames`);
    // Timestamps span the clip: 40 ms apart, first to last = (frames - 1) * 40.
    const v = videoFrames(read.tags);
    assertNear(v.at(-1)!.timestamp - v[0]!.timestamp, (frames - 1) * (1000 / FPS), 2, `${who}: video span`);
  }
  for (const [who, probe] of [["ffprobe http-flv", probeHttp], ["ffprobe rtmp", probeRtmp]] as const) {
    assertProbe(probe, H264_AAC_320x240, who);
    assert.equal(probeVideo(probe).length, frames, `${who}: video packets`);
    assertNear(probeAudio(probe).length, audioPackets, 6, `${who}: audio packets`);
  }
  // Both FLV transports carry the same bytes.
  assert.deepEqual(
    videoFrames(ws.tags).map((t) => t.data.byteLength),
    videoFrames(http.tags).map((t) => t.data.byteLength),
  );
});

Deno.test("playback: a late joiner starts at once from the GOP cache, headers and keyframe first", async () => {
  await using node = await startNode({}, { label: "playback-late" });
  const path = "live/late";
  // 10-second GOPs: without the GOP cache a player joining ~2 s in would wait ~8 s for a keyframe.
  await using _pub = publish(node.rtmpUrl(path), { seconds: 30, fps: FPS, gop: 250 });
  await waitFor(async () => ((await node.stream(path))?.frames_in ?? 0) >= 2 * (FPS + 43), 15_000, {
    message: "2 s of media published",
  });

  const read = await readFlv(node.flvUrl(path), { maxVideoFrames: 40, timeoutMs: 5000 });
  assertFlvStart(read, H264_AAC_320x240, "late http-flv");
  assertMonotonicTags(read.tags, "late http-flv");
  const video = videoFrames(read.tags);
  // The cached GOP starts at the stream's first keyframe and arrives as a burst.
  assert.ok(
    video[0]!.timestamp < 500,
    `first frame is from ${video[0]!.timestamp} ms, not the cached GOP start`,
  );
  assert.ok(video[0]!.arrivalMs < 1500, `first keyframe after ${Math.round(video[0]!.arrivalMs)} ms`);
  assert.ok(
    video[39]!.arrivalMs - video[0]!.arrivalMs < 1000,
    `40 cached frames took ${Math.round(video[39]!.arrivalMs - video[0]!.arrivalMs)} ms (no burst)`,
  );

  const ws = await readWsFlv(node.wsUrl(path), { maxVideoFrames: 10, timeoutMs: 5000 });
  assertFlvStart(ws, H264_AAC_320x240, "late ws-flv");
  const [probeHttp, probeRtmp] = await Promise.all([
    probePackets(node.flvUrl(path), { maxPackets: 30, timeoutMs: 10_000 }),
    probePackets(node.rtmpUrl(path), { maxPackets: 30, timeoutMs: 10_000 }),
  ]);
  assertProbe(probeHttp, H264_AAC_320x240, "late ffprobe http-flv");
  assertProbe(probeRtmp, H264_AAC_320x240, "late ffprobe rtmp");
  for (const p of [probeHttp, probeRtmp]) {
    assert.ok(p.elapsedMs < 5000, `ffprobe needed ${Math.round(p.elapsedMs)} ms for 30 packets`);
  }
});

Deno.test("playback: B-frames keep pts >= dts, and some pts > dts, on every protocol", async () => {
  await using node = await startNode({}, { label: "playback-bframes" });
  const path = "live/bframes";
  await using _pub = publish(node.rtmpUrl(path), { seconds: 30, fps: FPS, gop: FPS, bframes: 3 });
  await waitFor(async () => (await node.stream(path))?.video.codec === "h264", 15_000, {
    message: "stream live",
  });

  const [http, ws, probeHttp, probeRtmp] = await Promise.all([
    readFlv(node.flvUrl(path), { maxVideoFrames: 50, timeoutMs: 10_000 }),
    readWsFlv(node.wsUrl(path), { maxVideoFrames: 50, timeoutMs: 10_000 }),
    probePackets(node.flvUrl(path), { seconds: 2, timeoutMs: 15_000 }),
    probePackets(node.rtmpUrl(path), { seconds: 2, timeoutMs: 15_000 }),
  ]);
  for (const [who, read] of [["http-flv", http], ["ws-flv", ws]] as const) {
    assertFlvStart(read, H264_AAC_320x240, who);
    assertMonotonicTags(read.tags, who);
    const cts = videoFrames(read.tags).map((t) => t.video!.compositionTime);
    assert.ok(cts.every((c) => c >= 0), `${who}: negative composition time in ${cts}`);
    assert.ok(cts.some((c) => c > 0), `${who}: no frame with pts > dts`);
  }
  for (const [who, probe] of [["ffprobe http-flv", probeHttp], ["ffprobe rtmp", probeRtmp]] as const) {
    assertProbe(probe, H264_AAC_320x240, who);
    const video = probeVideo(probe);
    assert.ok(video.length >= 40, `${who}: only ${video.length} video packets`);
    for (const pk of video) assert.ok(pk.pts >= pk.dts, `${who}: pts ${pk.pts} < dts ${pk.dts}`);
    assert.ok(video.some((pk) => pk.pts > pk.dts), `${who}: no packet with pts > dts`);
  }
});

Deno.test("playback: SIGTERM stops the node cleanly with a publisher and players attached", async () => {
  await using node = await startNode({}, { label: "shutdown" });
  const path = "live/bye";
  await using pub = publish(node.rtmpUrl(path), { seconds: 30 });
  await waitFor(async () => (await node.stream(path))?.video.codec === "h264", 15_000, {
    message: "stream live",
  });
  const http = readFlv(node.flvUrl(path), { timeoutMs: 15_000 });
  const ws = readWsFlv(node.wsUrl(path), { timeoutMs: 15_000 });
  await waitFor(async () => (await node.stream(path))?.players.total === 2, 10_000, {
    message: "players attached",
  });

  const t0 = performance.now();
  const status = await node.stop(5000);
  assert.equal(status.code, 0, `exit ${status.code}`);
  assert.ok(performance.now() - t0 < 3000, `shutdown took ${Math.round(performance.now() - t0)} ms`);
  for (const [who, read] of [["http-flv", await http], ["ws-flv", await ws]] as const) {
    assert.equal(read.ended, true, `${who} was not ended by the shutdown`);
    assertFlvStart(read, H264_AAC_320x240, who);
  }
  const published = await withTimeout(pub.done, 5000, "ffmpeg exit after the node stopped");
  assert.notEqual(published.code, 0, "ffmpeg should notice the server going away");
  assert.match(node.logs(), /shutting down/);
});
