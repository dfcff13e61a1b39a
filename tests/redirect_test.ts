/**
 * Load-based redirect and allocation on three real nodes (127.0.0.1/.2/.3, seed node-1,
 * heartbeats every 0.25 s). node-3 reports 5000 subscribers through the test-only
 * `cluster.test_load` (over the default subscriber_threshold 2000), so it redirects new
 * HTTP-FLV and RTMP players to a node that carries the stream, and allocation never offers it
 * while a healthy node exists. node-1 and node-2 report a fixed light load the same way, so
 * the busy 2-core test machine's real CPU cannot push them over cpu_threshold (and the ranking
 * between them is exact).
 */

import assert from "node:assert/strict";
import {
  assertFlvStart,
  assertMonotonicTags,
  assertProbe,
  H264_AAC_320x240,
  videoFrames,
} from "./helpers/checks.ts";
import {
  assertFailure,
  type ClusterNode,
  clusterNodeConfig,
  type ClusterNodeOptions,
  startClusterNode,
} from "./helpers/cluster.ts";
import { probePackets, publish, readFlv } from "./helpers/media.ts";
import { RtmpTestClient } from "./helpers/rtmp.ts";
import { waitFor } from "./helpers/wait.ts";

const STREAM = "live/x";
const MARKER = "cluster_redirected";
const LIGHT = { cpu: 20, egress_mbps: 5, subscribers: 0 };
const BUSY = { subscribers: 5000 };

/** Options for one node of this test: generous liveness limits, the given injected load. */
function options(n: 1 | 2 | 3, testLoad: Record<string, number>, seeds: string[]): ClusterNodeOptions {
  const o: ClusterNodeOptions = {
    ip: `127.0.0.${n}`,
    serverId: `node-${n}`,
    seeds,
    heartbeatInterval: 0.25,
    // A busy machine can stall a process for a second: no spurious Suspect / stale node.
    heartbeatTtl: 5,
    suspectThreshold: 8,
    offlineThreshold: 16,
    syncInterval: 2,
  };
  // `extra` replaces whole top-level sections, so the cluster section is rebuilt in full.
  const cluster = clusterNodeConfig(o)["cluster"] as Record<string, unknown>;
  return { ...o, extra: { cluster: { ...cluster, test_load: testLoad }, flv: { wait_timeout: 20 } } };
}

interface Candidate {
  server_id: string;
  address: string;
  url: string;
  overloaded: boolean;
  carries_stream: boolean;
  pending_tickets: number;
}

interface Allocation {
  stream_path: string;
  kind: string;
  ticket: { id: string; server_id: string; expires_at: number } | null;
  candidates: Candidate[];
}

interface Decision {
  redirect: boolean;
  overloaded: boolean;
  target: { server_id: string; address: string; url: string } | null;
}

/** `node` sees every other node Online with the load it reports (node-3's 5000 subscribers). */
async function seesCluster(node: ClusterNode, all: ClusterNode[]): Promise<boolean> {
  const servers = await node.api.servers();
  return all.filter((n) => n !== node).every((peer) => {
    const s = servers.find((x) => x.server_id === peer.serverId);
    const subscribers = peer.serverId === "node-3" ? 5000 : 0;
    return s?.state === "Online" && s.load.subscriber_count === subscribers;
  });
}

/** fetch without following redirects, bounded; the caller consumes or cancels the body. */
async function fetchManual(url: string, timeoutMs: number): Promise<Response> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    return await fetch(url, { redirect: "manual", signal: abort.signal });
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("redirect: an overloaded node sends new players to a node carrying the stream", async (t) => {
  await using n1 = await startClusterNode(options(1, LIGHT, []), { startTimeoutMs: 60_000 });
  const seeds = [n1.address];
  const [started2, started3] = await Promise.allSettled([
    startClusterNode(options(2, LIGHT, seeds), { startTimeoutMs: 60_000 }),
    startClusterNode(options(3, BUSY, seeds), { startTimeoutMs: 60_000 }),
  ]);
  await using n2 = started2.status === "fulfilled" ? started2.value : null;
  await using n3 = started3.status === "fulfilled" ? started3.value : null;
  for (const s of [started2, started3]) if (s.status === "rejected") throw s.reason;
  assert.ok(n2 && n3);
  const nodes = [n1, n2, n3];
  await waitFor(
    async () => (await Promise.all(nodes.map((n) => seesCluster(n, nodes)))).every(Boolean),
    30_000,
    {
      message: "every node sees the other two Online with their loads",
    },
  );

  await t.step("a burst of 20 publish allocations spreads over node-1 and node-2, never node-3", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        n1.api.ok<Allocation>("POST", "allocate/publish", {
          body: { stream_path: `live/burst-${i}`, protocol: "rtmp" },
          timeoutMs: 15_000,
        })),
    );
    const counts = new Map<string, number>();
    for (const r of results) {
      assert.ok(r.ticket, JSON.stringify(r));
      assert.equal(r.kind, "publish");
      assert.notEqual(r.candidates[0]?.server_id, "node-3", JSON.stringify(r.candidates));
      assert.ok(r.candidates.every((c) => c.server_id !== "node-3"), "node-3 is overloaded: not a candidate");
      assert.ok(r.candidates[0]!.url.startsWith("rtmp://"), r.candidates[0]!.url);
      counts.set(r.ticket.server_id, (counts.get(r.ticket.server_id) ?? 0) + 1);
    }
    const spread = JSON.stringify(Object.fromEntries(counts));
    assert.deepEqual([...counts.keys()].sort(), ["node-1", "node-2"], spread);
    for (const n of counts.values()) assert.ok(n <= 12, `one node got more than 12 of 20: ${spread}`);
  });

  await using pub = publish(n1.rtmpUrl(STREAM), { seconds: 120 });
  await waitFor(async () => ((await n1.stream(STREAM))?.frames_in ?? 0) >= 50, 30_000, {
    message: `${STREAM} live on node-1`,
  });
  // Every node knows where the stream is (it reaches them with the heartbeats).
  await waitFor(
    async () =>
      (await Promise.all(
        nodes.map(async (n) => (await n.api.sessions()).find((s) => s.stream_path === STREAM)),
      ))
        .every((s) => s?.origin_id === "node-1"),
    30_000,
    { message: `every node knows node-1 is the origin of ${STREAM}` },
  );

  let target = ""; // server_id the 302 pointed to
  await t.step(
    "HTTP-FLV on node-3: 302 to node-1 with path and query kept, the player plays there",
    async () => {
      const res = await fetchManual(n3.flvUrl(`${STREAM}?token=abc&foo=b%20r`), 15_000);
      await res.body?.cancel();
      assert.equal(res.status, 302, `node-3 answered ${res.status}`);
      const location = res.headers.get("location");
      assert.ok(location, "302 without Location");
      const url = new URL(location);
      const byAddress = new Map(nodes.map((n) => [n.address, n.serverId]));
      target = byAddress.get(url.host) ?? "";
      // node-1 publishes the stream and is the only node carrying it: carriers come first.
      assert.equal(target, "node-1", `redirected to ${location}`);
      assert.equal(url.protocol, "http:");
      assert.equal(url.pathname, `/${STREAM}.flv`);
      assert.equal(url.searchParams.get("token"), "abc");
      assert.equal(url.searchParams.get("foo"), "b r");
      assert.equal(url.searchParams.get(MARKER), "1");

      const read = await readFlv(location, { maxVideoFrames: 10, timeoutMs: 20_000 });
      assertFlvStart(read, H264_AAC_320x240, "redirected http-flv");
      assertMonotonicTags(read.tags, "redirected http-flv");
      assert.ok(videoFrames(read.tags).length >= 10);
    },
  );

  await t.step("ffprobe on node-3 follows the redirect and plays", async () => {
    const before = n3.logs().split("http-flv player redirected").length;
    const probe = await probePackets(n3.flvUrl(`${STREAM}?token=probe`), {
      maxPackets: 40,
      timeoutMs: 30_000,
    });
    assertProbe(probe, H264_AAC_320x240, "ffprobe via node-3");
    assert.ok(n3.logs().split("http-flv player redirected").length > before, "node-3 redirected ffprobe");
  });

  await t.step("a request already carrying cluster_redirected=1 is served by node-3 itself", async () => {
    const res = await fetchManual(n3.flvUrl(`${STREAM}?${MARKER}=1&token=abc`), 30_000);
    assert.ok(res.body);
    if (res.status !== 200) {
      const body = await res.text();
      assert.fail(`node-3 answered ${res.status} ${res.headers.get("location") ?? ""} ${body}`);
    }
    // node-3 relays the stream from node-1 for this player.
    const read = await readFlv(res.body, { maxVideoFrames: 10, timeoutMs: 30_000 });
    assertFlvStart(read, H264_AAC_320x240, "node-3 marked player");
    assertMonotonicTags(read.tags, "node-3 marked player");
  });

  await t.step("redirect/decision on node-3 names the same target as the 302", async () => {
    const d = await n3.api.ok<Decision>(
      "GET",
      `redirect/decision?stream_path=${encodeURIComponent(STREAM)}&protocol=http-flv`,
    );
    assert.equal(d.overloaded, true);
    assert.equal(d.redirect, true, JSON.stringify(d));
    assert.equal(d.target?.server_id, target);
    assert.equal(d.target?.address, n1.address);
    assert.equal(d.target?.url, `http://${n1.address}/${STREAM}.flv?${MARKER}=1`);
    // node-1 is under its thresholds: it never redirects.
    const d1 = await n1.api.ok<Decision>("GET", `redirect/decision?stream_path=${STREAM}&protocol=http-flv`);
    assert.equal(d1.redirect, false);
    assert.equal(d1.target, null);
  });

  await t.step("allocate/play on every node: carriers first, node-3 never first", async () => {
    for (const n of nodes) {
      const a = await n.api.ok<Allocation>("POST", "allocate/play", {
        body: { stream_path: STREAM, protocol: "http-flv", limit: 3 },
      });
      const who = `allocate/play on ${n.serverId}: ${JSON.stringify(a.candidates)}`;
      assert.ok(a.candidates.length >= 1, who);
      assert.notEqual(a.candidates[0]!.server_id, "node-3", who);
      assert.equal(a.candidates[0]!.server_id, "node-1", who);
      assert.equal(a.candidates[0]!.carries_stream, true, who);
      assert.equal(a.ticket?.server_id, "node-1", who);
      const firstNonCarrier = a.candidates.findIndex((c) => !c.carries_stream);
      if (firstNonCarrier >= 0) {
        assert.ok(
          a.candidates.slice(firstNonCarrier).every((c) => !c.carries_stream),
          `carriers first: ${who}`,
        );
      }
      for (const c of a.candidates) if (c.server_id === "node-3") assert.equal(c.overloaded, true, who);
      assert.equal(a.candidates[0]!.url, `http://${n1.address}/${STREAM}.flv`, who);
    }
  });

  await t.step("RTMP play on node-3 is rejected with a redirect to node-1", async () => {
    await using client = await RtmpTestClient.connect(n3.host, n3.rtmpPort);
    await client.connectApp("live", `rtmp://${n3.host}:${n3.rtmpPort}/live`);
    const sid = await client.createStream();
    const status = await client.play(sid, "x?token=abc", 15_000);
    assert.equal(status["level"], "error", JSON.stringify(status));
    assert.equal(status["code"], "NetConnection.Connect.Rejected", JSON.stringify(status));
    const ex = status["ex"] as Record<string, unknown> | undefined;
    const redirect = String(ex?.["redirect"]);
    assert.ok(redirect.startsWith("rtmp://"), redirect);
    const url = new URL(redirect);
    assert.equal(url.host, `${n1.host}:${n1.rtmpPort}`, redirect);
    assert.equal(url.pathname, `/${STREAM}`);
    assert.equal(url.searchParams.get("token"), "abc");
    assert.equal(url.searchParams.get(MARKER), "1", redirect);
    assert.equal(ex?.["code"], 302);

    // Following it: node-1 plays the stream to this RTMP client.
    await using again = await RtmpTestClient.connect(n1.host, n1.rtmpPort);
    await again.connectApp("live", `rtmp://${url.host}/live`);
    const sid2 = await again.createStream();
    const started = await again.play(sid2, `x${url.search}`, 15_000);
    assert.equal(started["code"], "NetStream.Play.Start", JSON.stringify(started));
    await again.waitUntil(() => again.media.some((m) => m.type === 9), 15_000, "video over RTMP from node-1");
  });

  await t.step("RTMP play on node-3 with the marker is served there", async () => {
    await using client = await RtmpTestClient.connect(n3.host, n3.rtmpPort);
    await client.connectApp("live", `rtmp://${n3.host}:${n3.rtmpPort}/live`);
    const sid = await client.createStream();
    const status = await client.play(sid, `x?${MARKER}=1`, 30_000);
    assert.equal(status["code"], "NetStream.Play.Start", JSON.stringify(status));
    await client.waitUntil(
      () => client.media.some((m) => m.type === 9),
      20_000,
      "video over RTMP from node-3",
    );
  });

  await t.step("allocate/publish of the live stream: its origin node-1 only", async () => {
    for (const n of nodes) {
      const a = await n.api.ok<Allocation>("POST", "allocate/publish", { body: { stream_path: STREAM } });
      assert.deepEqual(a.candidates.map((c) => c.server_id), ["node-1"], `on ${n.serverId}`);
      assert.equal(a.candidates[0]!.url, `rtmp://${n1.host}:${n1.rtmpPort}/${STREAM}`);
      assert.equal(a.ticket?.server_id, "node-1");
    }
  });

  await t.step("bad requests are 400", async () => {
    for (const kind of ["publish", "play"]) {
      assertFailure(await n1.api.call("POST", `allocate/${kind}`, { body: "{not json" }), 400);
      assertFailure(await n1.api.call("POST", `allocate/${kind}`, { body: {} }), 400);
      assertFailure(await n1.api.call("POST", `allocate/${kind}`, { body: { stream_path: 7 } }), 400);
      assertFailure(await n1.api.call("POST", `allocate/${kind}`, { body: { stream_path: "nope" } }), 400);
      assertFailure(
        await n1.api.call("POST", `allocate/${kind}`, { body: { stream_path: STREAM, limit: 0 } }),
        400,
      );
    }
    assertFailure(await n3.api.call("GET", "redirect/decision?protocol=http-flv"), 400, /stream_path/);
    assertFailure(await n3.api.call("GET", "redirect/decision?stream_path=live/a/b/c/d"), 400);
  });

  await pub.stop();
});
