/**
 * Fan-out without head-of-line blocking: a player that stops reading must not slow the
 * others, and is disconnected once it has made no progress for `player_stall_timeout`.
 */

import assert from "node:assert/strict";
import { assertMonotonicTags } from "./helpers/checks.ts";
import { isCodedVideo, publish, readFlv } from "./helpers/media.ts";
import { startNode } from "./helpers/node.ts";
import { waitForClose, writeAll } from "./helpers/rtmp.ts";
import { waitFor } from "./helpers/wait.ts";

const FPS = 25;

/** Reads for `ms` and returns video frames received per second of wall time. */
async function measureRate(url: string, ms: number): Promise<{ fps: number; frames: number }> {
  // Skip the GOP-cache burst at the start: count from the first frame that arrives live.
  let frames = 0;
  let firstLiveAt = -1;
  const read = await readFlv(url, {
    durationMs: ms,
    timeoutMs: ms + 10_000,
    onTag: (t) => {
      if (!isCodedVideo(t) || t.arrivalMs < 300) return;
      if (firstLiveAt < 0) firstLiveAt = t.arrivalMs;
      else frames++;
    },
  });
  assertMonotonicTags(read.tags);
  const seconds = (read.elapsedMs - firstLiveAt) / 1000;
  return { fps: frames / seconds, frames };
}

Deno.test("slow player: a stalled HTTP-FLV reader does not slow others and is disconnected", async () => {
  await using node = await startNode(
    { flv: { player_queue_frames: 40, player_stall_timeout: 1.5 } },
    { label: "stalled-reader" },
  );
  const path = "live/stall";
  // ~8 Mbit/s constant bitrate (x264 filler): the stalled socket's kernel buffers fill in
  // seconds, so the server-side queue backs up soon after.
  await using _pub = publish(node.rtmpUrl(path), {
    seconds: 60,
    fps: FPS,
    gop: FPS,
    extraArgs: [
      "-b:v",
      "8M",
      "-minrate",
      "8M",
      "-maxrate",
      "8M",
      "-bufsize",
      "1M",
      "-x264-params",
      "nal-hrd=cbr",
    ],
  });
  await waitFor(async () => ((await node.stream(path))?.frames_in ?? 0) > 30, 15_000, {
    message: "stream live",
  });

  const baseline = await measureRate(node.flvUrl(path), 2500);
  assert.ok(baseline.fps > FPS * 0.8, `baseline player got ${baseline.fps.toFixed(1)} fps`);

  // The stalled player: sends its request, reads the first bytes once, then never again.
  const stalled = await Deno.connect({ hostname: node.host, port: node.httpPort });
  try {
    await writeAll(
      stalled,
      new TextEncoder().encode(`GET /${path}.flv HTTP/1.1\r\nHost: ${node.host}:${node.httpPort}\r\n\r\n`),
    );
    const first = new Uint8Array(1024);
    const n = await stalled.read(first);
    assert.ok(n !== null && n > 0, "stalled player got no response");
    assert.match(new TextDecoder().decode(first.subarray(0, n)), /^HTTP\/1\.1 200/);
    await waitFor(async () => (await node.stream(path))?.players["http-flv"] === 1, 5000);

    const t0 = performance.now();
    const withStalled = await measureRate(node.flvUrl(path), 3000);
    assert.ok(
      withStalled.fps > FPS * 0.8,
      `player next to a stalled one got ${withStalled.fps.toFixed(1)} fps`,
    );
    assert.ok(
      withStalled.fps > baseline.fps * 0.85,
      `rate dropped from ${baseline.fps.toFixed(1)} to ${withStalled.fps.toFixed(1)} fps`,
    );

    // The stalled player is dropped: the player count falls back to zero.
    await waitFor(async () => (await node.stream(path))?.players.total === 0, 30_000, {
      message: "stalled player disconnected",
    });
    const droppedAfter = performance.now() - t0;
    assert.match(node.logs(), /player dropped.*reason=stalled|reason=stalled/);
    console.log(`stalled player dropped ${Math.round(droppedAfter)} ms after the measurement started`);
    // Its connection is closed by the server: draining what the kernel buffered ends in EOF.
    assert.notEqual(await waitForClose(stalled, 10_000), null, "stalled connection still open");
  } finally {
    try {
      stalled.close();
    } catch {
      // closed by waitForClose
    }
  }
  // The node still serves new players normally.
  const after = await measureRate(node.flvUrl(path), 1500);
  assert.ok(after.fps > FPS * 0.7, `player after the drop got ${after.fps.toFixed(1)} fps`);
});
