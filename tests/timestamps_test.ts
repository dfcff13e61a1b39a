/**
 * Timestamps beyond 24 bits (a stream live for more than 4h39m): RTMP carries them as
 * extended timestamps, including on every type-3 continuation chunk, and FLV in the extra
 * timestamp byte. Real ffmpeg H.264 + AAC tags are published at a clock that crosses
 * 0xFFFFFF, with 128-byte chunks both ways so large frames span many chunks, and every
 * player (including ffprobe's independent RTMP implementation) must see the same values.
 */

import assert from "node:assert/strict";
import { decodeAmf0 } from "../src/amf/mod.ts";
import { FlvDemuxer } from "../src/flv/mod.ts";
import { probePackets, readFlv, type ReadTag, readWsFlv } from "./helpers/media.ts";
import { REPO_ROOT, startNode } from "./helpers/node.ts";
import { RtmpTestClient } from "./helpers/rtmp.ts";
import { waitFor } from "./helpers/wait.ts";

const BASE = 0xffffff - 250; // the clip is 0.57 s long, so it crosses 2^24 ms a quarter second in

interface Sent {
  type: number;
  timestamp: number;
  data: Uint8Array;
}

function same(
  got: readonly { type: number; timestamp: number; data: Uint8Array }[],
  sent: readonly Sent[],
  who: string,
) {
  const av = got.filter((t) => t.type === 8 || t.type === 9);
  assert.deepEqual(
    av.map((t) => `${t.type}@${t.timestamp}/${t.data.byteLength}`),
    sent.map((t) => `${t.type}@${t.timestamp}/${t.data.byteLength}`),
    `${who}: tags differ`,
  );
  for (const [i, s] of sent.entries()) {
    assert.ok(av[i]!.data.every((b, k) => b === s.data[k]), `${who}: tag ${i} body differs`);
  }
}

Deno.test("timestamps: values past 0xFFFFFF survive ingest and every playback protocol", async () => {
  const bytes = await Deno.readFile(`${REPO_ROOT}/src/flv/testdata/h264_aac_320x180.flv`);
  const tags = new FlvDemuxer().push(bytes);
  const meta = decodeAmf0(tags[0]!.data);
  const media: Sent[] = tags.filter((t) => t.type !== 18).map((t) => ({
    ...t,
    timestamp: BASE + t.timestamp,
  }));
  assert.ok(media.some((t) => t.timestamp > 0xffffff) && media.some((t) => t.timestamp < 0xffffff));

  await using node = await startNode(
    { rtmp: { chunk_size: 128 }, cluster: { relay: { republish_grace: 0 } } },
    { label: "timestamps" },
  );
  const path = "live/long";
  await using pub = await RtmpTestClient.connect(node.host, node.rtmpPort, { chunkSize: 128 });
  await pub.connectApp("live", node.rtmpUrl("live"));
  const sid = await pub.createStream();
  assert.equal((await pub.publish(sid, "long"))["code"], "NetStream.Publish.Start");
  await pub.sendMetadata(sid, meta[1] as Record<string, never>);
  const [vsh, ash, ...frames] = media;
  await pub.sendVideo(sid, vsh!.timestamp, vsh!.data);
  await pub.sendAudio(sid, ash!.timestamp, ash!.data);
  await waitFor(async () => (await node.stream(path))?.audio.codec === "aac", 5000, {
    message: "headers ingested",
  });

  const opts = { timeoutMs: 20_000 };
  const httpP = readFlv(node.flvUrl(path), opts);
  const wsP = readWsFlv(node.wsUrl(path), opts);
  const probeRtmpP = probePackets(node.rtmpUrl(path), opts);
  const probeHttpP = probePackets(node.flvUrl(path), opts);
  await using player = await RtmpTestClient.connect(node.host, node.rtmpPort, { chunkSize: 128 });
  await player.connectApp("live", node.rtmpUrl("live"));
  assert.equal((await player.play(await player.createStream(), "long"))["code"], "NetStream.Play.Start");
  await waitFor(async () => (await node.stream(path))?.players.total === 5, 10_000, { message: "5 players" });

  for (const f of frames) {
    if (f.type === 9) await pub.sendVideo(sid, f.timestamp, f.data);
    else await pub.sendAudio(sid, f.timestamp, f.data);
  }
  await waitFor(async () => (await node.stream(path))?.frames_in === tags.length, 5000, {
    message: "all ingested",
  });
  await pub.close();

  const http: ReadTag[] = (await httpP).tags;
  same(http, media, "http-flv");
  same((await wsP).tags, media, "ws-flv");
  await player.waitUntil(() => player.closed, 5000, "rtmp player end");
  same(player.media.map((m) => ({ type: m.type, timestamp: m.timestamp, data: m.payload })), media, "rtmp");

  // ffmpeg's own RTMP and FLV parsers read the same timestamps.
  const coded = media.filter((t) => t.data[1] !== 0 && !(t.type === 9 && t.data[1] === 2));
  const want = coded.map((t) => `${t.type === 9 ? "v" : "a"}@${t.timestamp}`);
  const probes = { "ffprobe rtmp": await probeRtmpP, "ffprobe http-flv": await probeHttpP };
  for (const [who, probe] of Object.entries(probes)) {
    assert.equal(probe.code, 0, `${who}: ${probe.stderr}`);
    const got = probe.packets.map((p) => `${p.codec_type[0]}@${p.dts}`);
    assert.deepEqual(got.sort(), [...want].sort(), `${who}: packet timestamps`);
  }
});
