/**
 * Publishing rules seen from outside: republish with a new picture size, one publisher per
 * path, missing streams, and stream names (query strings stripped, invalid names refused) on
 * every protocol.
 */

import assert from "node:assert/strict";
import {
  assertFlvStart,
  assertMonotonicTags,
  assertProbe,
  H264_AAC_320x240,
  sequenceHeaderSize,
  videoFrames,
} from "./helpers/checks.ts";
import { isCodedVideo, probePackets, publish, readFlv, type ReadTag, readWsFlv } from "./helpers/media.ts";
import { startNode } from "./helpers/node.ts";
import { RtmpTestClient } from "./helpers/rtmp.ts";
import { waitFor, withTimeout } from "./helpers/wait.ts";

const H264_AAC_640x360 = { ...H264_AAC_320x240, width: 640, height: 360 };

Deno.test("publish: republishing at another resolution reaches the API, new players and players that stayed", async () => {
  await using node = await startNode({ cluster: { relay: { republish_grace: 8 } } }, { label: "republish" });
  const path = "live/resize";
  const first = publish(node.rtmpUrl(path), { seconds: 30, size: "320x240" });
  try {
    await waitFor(async () => (await node.stream(path))?.video.width === 320, 15_000, {
      message: "320x240 live",
    });
    // This player stays connected through the republish (within the grace period).
    const acrossP = readFlv(node.flvUrl(path), {
      timeoutMs: 30_000,
      until: (tags) => {
        const sh = tags.findLastIndex((t) => t.video?.sequenceHeader === true);
        return sh > 1 && sequenceHeaderSize(tags[sh]!)?.width === 640 &&
          tags.slice(sh).filter(isCodedVideo).length >= 10;
      },
    });
    await waitFor(async () => ((await node.stream(path))?.players.total ?? 0) >= 1, 10_000, {
      message: "player attached",
    });
    await waitFor(async () => ((await node.stream(path))?.frames_in ?? 0) > 60, 10_000);
    await first.stop("SIGTERM");
    await waitFor(async () => (await node.stream(path)) === undefined, 10_000, { message: "unpublished" });

    await using _second = publish(node.rtmpUrl(path), { seconds: 30, size: "640x360" });
    const info = await waitFor(
      async () => {
        const s = await node.stream(path);
        return s?.video.width === 640 ? s : null;
      },
      15_000,
      { message: "640x360 live" },
    );
    assert.deepEqual(info.video, { codec: "h264", width: 640, height: 360 });
    assert.equal(info.audio.codec, "aac");

    const across = await acrossP;
    assertMonotonicTags(across.tags, "player across republish");
    const headers = across.tags.filter((t) => t.video?.sequenceHeader);
    assert.deepEqual(headers.map(sequenceHeaderSize), [{ width: 320, height: 240 }, {
      width: 640,
      height: 360,
    }]);
    const afterSwitch = across.tags.slice(across.tags.indexOf(headers[1]!));
    assert.equal(
      videoFrames(afterSwitch)[0]?.video?.keyframe,
      true,
      "first frame after the new header is a keyframe",
    );

    const fresh = await readFlv(node.flvUrl(path), { maxVideoFrames: 5, timeoutMs: 10_000 });
    assertFlvStart(fresh, H264_AAC_640x360, "new http-flv player");
    const [probeHttp, probeRtmp] = await Promise.all([
      probePackets(node.flvUrl(path), { maxPackets: 20, timeoutMs: 15_000 }),
      probePackets(node.rtmpUrl(path), { maxPackets: 20, timeoutMs: 15_000 }),
    ]);
    assertProbe(probeHttp, H264_AAC_640x360, "new ffprobe http-flv");
    assertProbe(probeRtmp, H264_AAC_640x360, "new ffprobe rtmp");
  } finally {
    await first.stop("SIGKILL");
  }
});

Deno.test("publish: a second publisher on a live path is refused and the first keeps flowing", async () => {
  await using node = await startNode({}, { label: "second-publisher" });
  const path = "live/busy";
  await using _first = publish(node.rtmpUrl(path), { seconds: 30 });
  const before = await waitFor(
    async () => {
      const s = await node.stream(path);
      return s && s.frames_in > 30 ? s : null;
    },
    15_000,
    { message: "first publisher live" },
  );

  let video = 0;
  const stop = new AbortController();
  const playerP = readFlv(node.flvUrl(path), {
    timeoutMs: 30_000,
    signal: stop.signal,
    onTag: (t) => {
      if (isCodedVideo(t)) video++;
    },
  });
  try {
    await waitFor(() => video >= 5, 10_000, { message: "player receiving" });

    await using second = publish(node.rtmpUrl(path), { seconds: 10, size: "640x360" });
    const refused = await withTimeout(second.done, 15_000, "second publisher exit");
    assert.notEqual(refused.code, 0, "the second publisher was not refused");
    assert.match(refused.stderr, /already publishing|error/i);

    // The first stream keeps flowing to the player in real time: 1 s of frames within 2.5 s.
    const mark = video;
    await waitFor(() => video >= mark + 25, 2500, { message: "frames after the refusal" });
    const after = await node.stream(path);
    assert.ok(after, "stream gone from /api/streams");
    assert.deepEqual(after.publisher, before.publisher);
    assert.equal(after.started_at, before.started_at);
    assert.deepEqual(after.video, before.video);
    assert.equal((await node.streams()).length, 1);
    assert.ok(after.frames_in > before.frames_in);
  } finally {
    stop.abort();
  }
  const player = await playerP;
  assertFlvStart(player, H264_AAC_320x240, "player");
  assertMonotonicTags(player.tags, "player");
});

Deno.test("publish: a missing stream is 404 after wait_timeout on HTTP-FLV and fails on RTMP play", async () => {
  await using node = await startNode({ flv: { wait_timeout: 1 } }, { label: "missing" });
  const timed = async <T>(f: () => Promise<T>) => {
    const t0 = performance.now();
    const v = await f();
    return { v, ms: performance.now() - t0 };
  };

  const http = await timed(() => readFlv(node.flvUrl("live/nothing"), { timeoutMs: 6000 }));
  assert.equal(http.v.status, 404, http.v.errorBody);
  assert.ok(http.ms >= 900 && http.ms < 4000, `404 after ${Math.round(http.ms)} ms, expected ~1000`);
  assert.equal(JSON.parse(http.v.errorBody).code, 404);

  const alt = await readFlv(`${node.httpUrl}/flv/live/nothing`, { timeoutMs: 6000 });
  assert.equal(alt.status, 404);

  const ws = await readWsFlv(node.wsUrl("live/nothing"), { timeoutMs: 6000 });
  assert.notEqual(ws.status, 101, "websocket upgrade for a missing stream");
  assert.equal(ws.tags.length, 0);

  const rtmp = await timed(() => probePackets(node.rtmpUrl("live/nothing"), { timeoutMs: 10_000 }));
  assert.notEqual(rtmp.v.code, 0, "ffprobe played a missing stream");
  assert.ok(rtmp.ms >= 900, `RTMP play failed after ${Math.round(rtmp.ms)} ms, before wait_timeout`);

  await using client = await RtmpTestClient.connect(node.host, node.rtmpPort);
  await client.connectApp("live", node.rtmpUrl("live"));
  const sid = await client.createStream();
  const status = await client.play(sid, "nothing", 6000);
  assert.equal(status["code"], "NetStream.Play.StreamNotFound");
  assert.equal(status["level"], "error");
  assert.deepEqual(await node.streams(), []);
});

Deno.test("publish: query strings never become part of a stream name; invalid names are refused", async () => {
  await using node = await startNode({ cluster: { relay: { republish_grace: 0 } } }, { label: "names" });
  await using _pub = publish(node.rtmpUrl("live/cam?token=abc"), { seconds: 30 });
  await waitFor(async () => (await node.stream("live/cam"))?.video.codec === "h264", 15_000, {
    message: "live/cam live",
  });
  assert.deepEqual((await node.streams()).map((s) => s.stream_path), ["live/cam"]);

  const first5 = { maxVideoFrames: 5, timeoutMs: 10_000 };
  const reads: [string, Promise<{ tags: ReadTag[] } & Parameters<typeof assertFlvStart>[0]>][] = [
    ["http-flv with query", readFlv(node.flvUrl("live/cam?token=xyz&x=1"), first5)],
    ["/flv/ prefix with query", readFlv(`${node.httpUrl}/flv/live/cam?token=1`, first5)],
    ["percent-encoded name", readFlv(`${node.httpUrl}/live/%63am.flv`, first5)],
    ["ws-flv with query", readWsFlv(node.wsUrl("live/cam?token=abc"), first5)],
  ];
  for (const [who, p] of reads) assertFlvStart(await p, H264_AAC_320x240, who);
  assertProbe(
    await probePackets(node.rtmpUrl("live/cam?token=abc"), { maxPackets: 10, timeoutMs: 10_000 }),
    H264_AAC_320x240,
    "rtmp play with query",
  );

  // RTMP: the query may also ride on the app (tcUrl); the path is still app/name.
  await using client = await RtmpTestClient.connect(node.host, node.rtmpPort);
  await client.connectApp("live?token=abc", node.rtmpUrl("live?token=abc"));
  const sid = await client.createStream();
  assert.equal((await client.publish(sid, "cam2?token=def"))["code"], "NetStream.Publish.Start");
  await waitFor(async () => (await node.stream("live/cam2")) !== undefined, 5000, { message: "live/cam2" });
  assert.deepEqual((await node.streams()).map((s) => s.stream_path), ["live/cam", "live/cam2"]);

  for (
    const bad of [
      "/live/bad$name.flv",
      "/onlyapp.flv",
      "/a/b/c/d/e.flv",
      "/live/%ZZ.flv",
      "/live/with%20space.flv",
      "/live/..%2F..%2Fetc.flv",
      "/flv/live",
    ]
  ) {
    const res = await fetch(node.httpUrl + bad);
    await res.body?.cancel();
    assert.equal(res.status, 400, `${bad} → ${res.status}`);
  }
  const badWs = await readWsFlv(`ws://${node.host}:${node.httpPort}/live/bad$name.flv`, { timeoutMs: 5000 });
  assert.notEqual(badWs.status, 101);

  await using rtmpBad = await RtmpTestClient.connect(node.host, node.rtmpPort);
  await rtmpBad.connectApp("live", node.rtmpUrl("live"));
  const badSid = await rtmpBad.createStream();
  const refused = await rtmpBad.publish(badSid, "bad$name");
  assert.equal(refused["level"], "error");
  assert.equal(refused["code"], "NetStream.Publish.BadName");
  assert.deepEqual((await node.streams()).map((s) => s.stream_path), ["live/cam", "live/cam2"]);
});

Deno.test("publish: a publisher that sends no media is dropped after publish_idle_timeout", async () => {
  await using node = await startNode({ rtmp: { publish_idle_timeout: 1 } }, { label: "idle-publisher" });
  await using client = await RtmpTestClient.connect(node.host, node.rtmpPort);
  await client.connectApp("live", node.rtmpUrl("live"));
  const sid = await client.createStream();
  assert.equal((await client.publish(sid, "idle"))["code"], "NetStream.Publish.Start");
  await client.sendMetadata(sid, { width: 320, height: 240 }); // metadata is not media
  const t0 = performance.now();
  assert.ok(await node.stream("live/idle"), "stream live after publish");
  await client.waitUntil(() => client.closed, 5000, "the server to drop the idle publisher");
  const ms = performance.now() - t0;
  assert.ok(ms >= 900, `dropped after ${Math.round(ms)} ms, before publish_idle_timeout`);
  await waitFor(async () => (await node.stream("live/idle")) === undefined, 2000, {
    message: "stream removed",
  });
  assert.match(node.logs(), /publisher sent no media/);
});
