/**
 * The QUIC relay between real node processes: node 1 (127.0.0.1, the seed) is the origin of a
 * real ffmpeg H.264 + AAC publish; nodes 2 and 3 (127.0.0.2 / .3) are cold edges.
 *
 * 1. Players on the edges (ffprobe over HTTP-FLV and RTMP, the in-process HTTP-FLV and WS-FLV
 *    readers) get the origin's codecs and picture size, keyframe first, monotonic DTS, and as
 *    many frames as a reader on the origin over the same window (within one GOP).
 * 2. 50 players arriving at once on a cold edge share one relay (one pull on the edge, one
 *    served relay for that edge on the origin), and all of them get media.
 * 3. The relay is released `release_delay` after its last player leaves; a player arriving
 *    inside that window reuses it (same session id).
 * 4. A query string (`?token=abc`) passes through the relay.
 * 5. SIGKILL of the origin mid-relay: edge players end cleanly within offline detection plus
 *    `republish_grace`, the edge's relays are cleaned up, and the edge keeps one UDP socket.
 */

import assert from "node:assert/strict";
import {
  assertFlvStart,
  assertMonotonicTags,
  assertProbe,
  H264_AAC_320x240,
  probeVideo,
  videoFrames,
} from "./helpers/checks.ts";
import { ClusterApi, clusterNodeConfig, type ClusterNodeOptions } from "./helpers/cluster.ts";
import { type FlvReadResult, probePackets, publish, readFlv, readWsFlv } from "./helpers/media.ts";
import { deepMerge, type NodeProcess, startNode } from "./helpers/node.ts";
import { delay, waitFor, withTimeout } from "./helpers/wait.ts";

const PATH = "live/relayed";
const FPS = 25;
const GOP = FPS; // one keyframe a second
const HEARTBEAT_S = 0.25;
const OFFLINE = 4;
const RELAY = {
  establish_timeout: 3,
  release_delay: 2,
  max_retry_attempts: 2,
  retry_delay: 0.5,
  health_check_interval: 1,
  republish_grace: 1,
};
/** Allowance for a busy 2-core machine running other test files at the same time. */
const SLACK_MS = 2500;

interface Member extends NodeProcess {
  readonly serverId: string;
  readonly address: string;
  readonly api: ClusterApi;
}

async function startMember(ip: string, serverId: string, seeds: string[]): Promise<Member> {
  const o: ClusterNodeOptions = {
    ip,
    serverId,
    seeds,
    heartbeatInterval: HEARTBEAT_S,
    heartbeatTtl: 1,
    syncInterval: 2,
    suspectThreshold: 2,
    offlineThreshold: OFFLINE,
  };
  const config = deepMerge(clusterNodeConfig(o), {
    flv: { wait_timeout: 10 },
    cluster: {
      relay: RELAY,
      // Never redirect players away from the edge under test, however busy the machine is.
      routing: { cpu_threshold: 100, bandwidth_threshold: 1_000_000, subscriber_threshold: 100_000 },
    },
  });
  const node = await startNode(config, { label: `relay-${serverId}` });
  return Object.assign(node, {
    serverId,
    address: `${node.host}:${node.httpPort}`,
    api: new ClusterApi(node.httpUrl),
  });
}

interface RelayRow {
  direction: "pull" | "serve";
  stream_path: string;
  state: string;
  session_id: string;
  source_node_id?: string;
  source_quic_addr?: string;
  target_node_id?: string;
  subscriber_count: number;
  frame_count: number;
  bytes: number;
  reconnects?: number;
}

async function relays(m: Member): Promise<RelayRow[]> {
  return (await m.api.ok<{ sessions: RelayRow[] }>("GET", "relay/sessions")).sessions;
}

async function pulls(m: Member): Promise<RelayRow[]> {
  return (await relays(m)).filter((r) => r.direction === "pull" && r.stream_path === PATH);
}

async function servedTo(origin: Member, edge: Member): Promise<RelayRow[]> {
  return (await relays(origin)).filter((r) => r.direction === "serve" && r.target_node_id === edge.serverId);
}

/** UDP sockets the process holds, from `ss -uapn`; null if `ss` is not available. */
async function udpSockets(pid: number): Promise<number | null> {
  try {
    const out = await new Deno.Command("ss", { args: ["-uapn"], stdout: "piped", stderr: "null" }).output();
    if (!out.success) return null;
    return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.includes(`pid=${pid},`)).length;
  } catch {
    return null;
  }
}

function videoCount(r: FlvReadResult): number {
  return videoFrames(r.tags).length;
}

function log(name: string, value: unknown): void {
  console.log(`[relay] ${name} = ${typeof value === "number" ? Math.round(value) : JSON.stringify(value)}`);
}

Deno.test("relay: three real nodes, cold edges, shared relays, release, query strings, origin killed", async (t) => {
  await using n1 = await startMember("127.0.0.1", "node-1", []);
  const seeds = [n1.address];
  const [n2raw, n3raw] = await Promise.all([
    startMember("127.0.0.2", "node-2", seeds),
    startMember("127.0.0.3", "node-3", seeds),
  ]);
  await using n2 = n2raw;
  await using n3 = n3raw;
  const members = [n1, n2, n3];
  await waitFor(
    async () => {
      for (const m of members) {
        const servers = await m.api.servers();
        const others = members.filter((o) => o !== m);
        if (
          !others.every((o) => servers.some((s) => s.server_id === o.serverId && s.state === "Online"))
        ) return false;
      }
      return true;
    },
    20_000,
    { message: "the three nodes see each other Online" },
  );

  await using pub = publish(n1.rtmpUrl(PATH), { seconds: 300, fps: FPS, gop: GOP });
  await waitFor(async () => ((await n1.stream(PATH))?.frames_in ?? 0) > 2 * FPS, 20_000, {
    message: "the stream is live on the origin",
  });
  for (const m of [n2, n3]) {
    await waitFor(
      async () => (await m.api.sessions()).some((s) => s.stream_path === PATH && s.origin_id === n1.serverId),
      10_000,
      {
        message: `${m.serverId} knows the session`,
      },
    );
    assert.deepEqual(await relays(m), [], `${m.serverId} is a cold edge`);
  }

  await t.step("edge players on every protocol get the origin's media", async () => {
    const WINDOW_MS = 4000;
    const read = { durationMs: WINDOW_MS, timeoutMs: 30_000 };
    const [origin, edgeHttp, edgeWs, probeHttp, probeRtmp] = await Promise.all([
      readFlv(n1.flvUrl(PATH), read),
      readFlv(n2.flvUrl(PATH), read),
      readWsFlv(n3.wsUrl(PATH), read),
      probePackets(n2.flvUrl(PATH), { seconds: WINDOW_MS / 1000, timeoutMs: 30_000 }),
      probePackets(n2.rtmpUrl(PATH), { seconds: WINDOW_MS / 1000, timeoutMs: 30_000 }),
    ]);
    for (
      const [who, r] of [["origin http-flv", origin], ["edge http-flv", edgeHttp], [
        "edge ws-flv",
        edgeWs,
      ]] as const
    ) {
      assertFlvStart(r, H264_AAC_320x240, who);
      assertMonotonicTags(r.tags, who);
    }
    assertProbe(probeHttp, H264_AAC_320x240, "ffprobe edge http-flv");
    assertProbe(probeRtmp, H264_AAC_320x240, "ffprobe edge rtmp");
    const counts = {
      origin: videoCount(origin),
      edgeHttp: videoCount(edgeHttp),
      edgeWs: videoCount(edgeWs),
      probeHttp: probeVideo(probeHttp).length,
      probeRtmp: probeVideo(probeRtmp).length,
    };
    log("video frames in a 4 s window", counts);
    // Same window: the edge readers start later (cold relay) but get the cached GOP, so
    // they see as much as the origin's reader, give or take one GOP.
    for (const [who, n] of Object.entries(counts)) {
      assert.ok(
        Math.abs(n - counts.origin) <= GOP + 5,
        `${who}: ${n} video frames vs ${counts.origin} on the origin`,
      );
    }
    assert.ok(counts.origin >= (WINDOW_MS / 1000 - 1) * FPS, `origin reader got ${counts.origin} frames`);
    log("edge http-flv first video frame after (ms)", videoFrames(edgeHttp.tags)[0]!.arrivalMs);
    // One relay per edge, whatever the number of players and protocols on it.
    const [p2] = await pulls(n2);
    assert.ok(p2, "node-2 pulled the stream");
    assert.equal((await pulls(n2)).length, 1);
    assert.equal(p2.source_node_id, n1.serverId);
    assert.match(p2.source_quic_addr ?? "", /^127\.0\.0\.1:\d+$/);
    assert.equal((await servedTo(n1, n2)).length, 1);
    assert.equal((await servedTo(n1, n3)).length <= 1, true);
  });

  await t.step("50 players at once on a cold edge share one relay", async () => {
    // node-3 served one WS player above; wait for that relay's release so the edge is cold.
    await waitFor(async () => (await relays(n3)).length === 0, RELAY.release_delay * 1000 + SLACK_MS + 2000, {
      message: "node-3 cold again",
    });
    await waitFor(async () => (await servedTo(n1, n3)).length === 0, 5000, {
      message: "origin served nothing to node-3",
    });
    const N = 50;
    const stop = new AbortController();
    const got = new Array<number>(N).fill(0);
    const readers = Array.from({ length: N }, (_, i) =>
      readFlv(n3.flvUrl(PATH), {
        signal: stop.signal,
        timeoutMs: 60_000,
        onTag: () => void got[i]!++,
      }));
    try {
      await waitFor(() => got.every((n) => n >= 10), 30_000, {
        message: "every player got 10 tags",
        intervalMs: 50,
      });
      // While all 50 are attached.
      const edgeRows = await pulls(n3);
      assert.equal(edgeRows.length, 1, `node-3 relays: ${JSON.stringify(edgeRows)}`);
      assert.equal(edgeRows[0]!.state, "active");
      assert.equal(edgeRows[0]!.subscriber_count, N);
      assert.equal(edgeRows[0]!.reconnects, 0);
      const served = await servedTo(n1, n3);
      assert.equal(served.length, 1, `origin serves node-3: ${JSON.stringify(served)}`);
      assert.equal(served[0]!.session_id, edgeRows[0]!.session_id);
      const status = await n3.api.status();
      assert.equal(status.relay_session_count, 1);
      assert.equal(status.active_relay_sessions, 1);
    } finally {
      stop.abort();
    }
    const results = await Promise.all(readers);
    results.forEach((r, i) => {
      assertFlvStart(r, H264_AAC_320x240, `player ${i}`);
      assertMonotonicTags(r.tags, `player ${i}`);
    });
  });

  await t.step(
    "the relay is released after release_delay; a player inside the window reuses it",
    async () => {
      // The 50 players just left.
      const left = performance.now();
      const [row] = await pulls(n3);
      assert.ok(row, "relay still there right after the players left");
      await delay(1000);
      const still = await pulls(n3);
      assert.equal(still.length, 1, "still there ~1 s after the last player left");
      assert.equal(still[0]!.session_id, row.session_id);
      await waitFor(
        async () => (await pulls(n3)).length === 0,
        4000 + SLACK_MS - (performance.now() - left),
        {
          message: "relay released by ~4 s",
          intervalMs: 100,
        },
      );
      const releasedAfter = performance.now() - left;
      log("relay released after (ms)", releasedAfter);
      assert.ok(releasedAfter >= RELAY.release_delay * 1000 - 200, `released after only ${releasedAfter} ms`);
      await waitFor(async () => (await servedTo(n1, n3)).length === 0, 5000, {
        message: "origin stopped serving node-3",
      });

      // A player comes, goes, and another arrives inside the window: same relay, same session.
      const first = await readFlv(n3.flvUrl(PATH), { maxVideoFrames: 5, timeoutMs: 20_000 });
      assertFlvStart(first, H264_AAC_320x240, "first player");
      const [relay] = await pulls(n3);
      assert.ok(relay);
      await delay(RELAY.release_delay * 1000 / 2);
      const second = await readFlv(n3.flvUrl(PATH), { maxVideoFrames: 5, timeoutMs: 20_000 });
      assertFlvStart(second, H264_AAC_320x240, "second player");
      const after = await pulls(n3);
      assert.equal(after.length, 1);
      assert.equal(after[0]!.session_id, relay.session_id, "the same relay session carried both players");
      assert.equal(after[0]!.reconnects, 0);
      assert.ok(after[0]!.frame_count > relay.frame_count);
    },
  );

  await t.step("a query string passes through the relay", async () => {
    const http = await readFlv(n2.flvUrl(`${PATH}?token=abc`), { maxVideoFrames: 5, timeoutMs: 20_000 });
    assertFlvStart(http, H264_AAC_320x240, "http-flv ?token=abc");
    const ws = await readWsFlv(n3.wsUrl(`${PATH}?token=abc&x=1`), { maxVideoFrames: 5, timeoutMs: 20_000 });
    assertFlvStart(ws, H264_AAC_320x240, "ws-flv ?token=abc");
    for (const m of [n2, n3]) {
      const rows = await pulls(m);
      assert.equal(rows.length, 1, `${m.serverId}: one relay for ${PATH}`);
    }
    assert.ok(
      (await relays(n2)).every((r) => r.stream_path === PATH),
      "no relay for a path with the query in it",
    );
  });

  await t.step(
    "the origin killed mid-relay: edge players end cleanly, relays and connections are cleaned up",
    async () => {
      const udpBefore = await udpSockets(n2.pid);
      if (udpBefore !== null) assert.equal(udpBefore, 1, "node-2 has one UDP socket (its QUIC endpoint)");
      const stop = new AbortController();
      const ended: Record<string, number> = {};
      const watch = (who: string, p: Promise<FlvReadResult>) =>
        p.then((r) => {
          ended[who] = performance.now();
          return r;
        });
      const edge2 = watch(
        "node-2 http-flv",
        readFlv(n2.flvUrl(PATH), { signal: stop.signal, timeoutMs: 60_000 }),
      );
      const edge3 = watch(
        "node-3 ws-flv",
        readWsFlv(n3.wsUrl(PATH), { signal: stop.signal, timeoutMs: 60_000 }),
      );
      try {
        await waitFor(
          async () =>
            (await pulls(n2))[0]?.subscriber_count === 1 && (await pulls(n3))[0]?.subscriber_count === 1,
          20_000,
          {
            message: "both edge players attached",
          },
        );
        await delay(500);
        const killed = performance.now();
        n1.kill("SIGKILL");
        await n1.exited;
        const budget = (OFFLINE + 1) * HEARTBEAT_S * 1000 + RELAY.republish_grace * 1000 + SLACK_MS;
        const [r2, r3] = await withTimeout(
          Promise.all([edge2, edge3]),
          budget + 10_000,
          "edge players ending",
        );
        for (const [who, r] of [["node-2 http-flv", r2], ["node-3 ws-flv", r3]] as const) {
          assert.equal(r.ended, true, `${who}: the server ended the stream (not our stop or a timeout)`);
          assertFlvStart(r, H264_AAC_320x240, who);
          assertMonotonicTags(r.tags, who);
          const after = ended[who]! - killed;
          log(`${who} ended after kill (ms)`, after);
          assert.ok(
            after <= budget,
            `${who}: ended ${Math.round(after)} ms after the kill (budget ${budget})`,
          );
          assert.ok(after >= RELAY.republish_grace * 1000 - 100, `${who}: ended before the republish grace`);
        }
      } finally {
        stop.abort();
        await Promise.allSettled([edge2, edge3]);
      }
      for (const m of [n2, n3]) {
        await waitFor(async () => (await relays(m)).length === 0, 10_000, {
          message: `${m.serverId} relays cleaned up`,
        });
        const status = await m.api.status();
        assert.equal(status.relay_session_count, 0);
        assert.equal(await m.api.stateOf(n1.serverId), "Offline");
        assert.equal((await m.api.sessions()).some((s) => s.stream_path === PATH), false);
        assert.equal(await m.stream(PATH), undefined, `${m.serverId} no longer carries the stream`);
      }
      const udpAfter = await udpSockets(n2.pid);
      if (udpAfter !== null) assert.equal(udpAfter, 1, "node-2 still has exactly one UDP socket");
      log("node-2 udp sockets before/after", [udpBefore, udpAfter]);
    },
  );
  await pub.stop("SIGKILL");
});
