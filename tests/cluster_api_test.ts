/**
 * The cluster control-plane API of one real node process, checked against docs/cluster-api.md:
 * the envelope, data shapes, authentication (both header forms), body validation and limits,
 * unknown routes, and what heartbeats, servers/sync, sessions/sync and participation do to the
 * node's view. Peers are faked by this test: it speaks for them over HTTP. Slow timers keep the
 * node from probing (and demoting) the fake peers meanwhile. The 503 answers of routes whose
 * manager is missing cannot happen on a fully wired node; src/cluster/api/routes_test.ts covers
 * them in-process.
 */

import assert from "node:assert/strict";
import {
  assertFailure,
  assertLocalStatus,
  assertNodeSummary,
  assertSessionRecord,
  assertShape,
  ClusterApi,
  fakeSession,
  fakeSummary,
  type NodeSummaryJson,
  type SessionRecordJson,
  startClusterNode,
} from "./helpers/cluster.ts";

const KEY = "api-test-key-0123";
const SELF = "api-node";
const NOBODY = "127.0.0.1:9"; // a closed port: fake peers "live" here

Deno.test("cluster API: every /cluster/api route against the documented contract", async (t) => {
  await using node = await startClusterNode({
    ip: "127.0.0.1",
    serverId: SELF,
    apiKey: KEY,
    // Long periods: the node must not probe (and demote) the fake peers during the test.
    heartbeatInterval: 30,
    syncInterval: 60,
    heartbeatTtl: 60,
    // Fixed load figures: allocation and redirect answers must not depend on how busy the test
    // machine is.
    extra: { cluster: { test_load: { cpu: 0, egress_mbps: 0, subscribers: 0 } } },
  });
  const api = node.api; // X-Cluster-Api-Key: KEY
  const noKey = new ClusterApi(node.httpUrl);
  const bearer = new ClusterApi(node.httpUrl, { kind: "bearer", key: KEY });

  let self!: NodeSummaryJson;

  await t.step("GET status/local: identity and counters", async () => {
    const s = await api.status();
    assertLocalStatus(s);
    assert.equal(s.server_id, SELF);
    assert.equal(s.address, node.address);
    assert.equal(s.has_sync, true);
    assert.equal(s.node_count, 1);
    assert.equal(s.session_count, 0);
    assert.equal(s.relay_session_count, 0);
    assert.equal(s.active_relay_sessions, 0);
  });

  await t.step("GET servers: this node first, Online, complete summary", async () => {
    const before = Date.now();
    const list = await api.servers();
    assert.equal(list.length, 1);
    list.forEach((s) => assertNodeSummary(s));
    self = list[0]!;
    assert.equal(self.server_id, SELF);
    assert.equal(self.address, node.address);
    assert.equal(self.state, "Online");
    assert.deepEqual(self.role, ["origin", "edge"], "role: [] means both");
    assert.ok(self.incarnation > 0);
    assert.ok(self.started_at > 0 && self.started_at <= before);
    assert.ok(Math.abs(self.last_heartbeat - before) < 5000, "last_heartbeat of itself is now");
    assert.equal(self.rtmp_addr, `127.0.0.1:${node.rtmpPort}`);
    assert.match(self.quic_addr, /^127\.0\.0\.1:\d+$/, "the relay endpoint is advertised");
  });

  await t.step("auth: no key, wrong key, wrong scheme → 401; both header forms accepted", async () => {
    assertFailure(await noKey.call("GET", "status/local"), 401, /X-Cluster-Api-Key/);
    assertFailure(await noKey.call("GET", "servers"), 401);
    assertFailure(
      await noKey.call("POST", "heartbeat", { body: { summary: fakeSummary("x", NOBODY) } }),
      401,
    );
    assertFailure(await api.call("GET", "servers", { auth: { kind: "header", key: "wrong" } }), 401);
    assertFailure(await api.call("GET", "servers", { auth: { kind: "header", key: `${KEY}x` } }), 401);
    assertFailure(await api.call("GET", "servers", { auth: { kind: "header", key: "" } }), 401);
    assertFailure(await api.call("GET", "servers", { auth: { kind: "bearer", key: "wrong" } }), 401);
    assertFailure(
      await api.call("GET", "servers", {
        auth: { kind: "none" },
        headers: { authorization: `Basic ${KEY}` },
      }),
      401,
    );
    // X-Cluster-Api-Key, when present, is the one checked.
    assertFailure(
      await api.call("GET", "servers", {
        auth: { kind: "header", key: "wrong" },
        headers: { authorization: `Bearer ${KEY}` },
      }),
      401,
    );
    assert.equal((await api.call("GET", "servers")).status, 200);
    assert.equal((await bearer.call("GET", "servers")).status, 200);
    assert.equal((await bearer.status()).server_id, SELF);
    // Authentication comes before routing: an unauthenticated caller learns no routes.
    assertFailure(await noKey.call("GET", "no/such/route"), 401);
  });

  await t.step("unknown route or wrong method → 404 in the envelope", async () => {
    assertFailure(await api.call("GET", "no/such/route"), 404);
    assertFailure(await api.call("POST", "no/such/route", { body: {} }), 404);
    assertFailure(await api.call("GET", "heartbeat"), 404);
    assertFailure(await api.call("DELETE", "sessions"), 404);
    assertFailure(await api.call("POST", "status/local", { body: {} }), 404);
  });

  await t.step("bad JSON → 400 on every POST route", async () => {
    for (const path of ["heartbeat", "servers/sync", "sessions/sync", "sessions/participation"]) {
      assertFailure(await api.call("POST", path, { body: "{not json" }), 400, /not valid JSON/);
      assertFailure(await api.call("POST", path, { body: "" }), 400);
    }
  });

  await t.step("schema violations → 400 naming the field", async () => {
    const cases: [string, unknown, RegExp][] = [
      ["heartbeat", {}, /summary/],
      ["heartbeat", { summary: { server_id: "x" } }, /summary\.address/],
      ["heartbeat", { summary: { server_id: "", address: NOBODY } }, /summary\.server_id/],
      ["heartbeat", { summary: { server_id: "x", address: NOBODY, state: "Dead" } }, /summary\.state/],
      ["heartbeat", { summary: { server_id: "x", address: NOBODY, role: ["king"] } }, /summary\.role/],
      ["heartbeat", { summary: { server_id: 7, address: NOBODY } }, /summary\.server_id/],
      ["servers/sync", { summaries: [{ address: NOBODY }] }, /summaries\.0\.server_id/],
      ["servers/sync", { summaries: "all" }, /summaries/],
      ["sessions/sync", { sessions: [{ ...fakeSession("live/x"), version: "2" }] }, /sessions\.0\.version/],
      [
        "sessions/sync",
        { sessions: [{ ...fakeSession("live/x"), stream_path: "" }] },
        /sessions\.0\.stream_path/,
      ],
      ["sessions/sync", { sessions: [{ ...fakeSession("live/x"), width: 1.5 }] }, /sessions\.0\.width/],
      ["sessions/sync", { sessions: [{ stream_path: "live/x" }] }, /sessions\.0\./],
      ["sessions/participation", { stream_path: "live/x", node_id: "e", action: "watch" }, /action/],
      ["sessions/participation", { node_id: "e", action: "subscribe" }, /stream_path/],
      ["sessions/participation", { stream_path: "live/x", action: "subscribe" }, /node_id/],
      ["sessions/participation", [], /body/],
    ];
    for (const [path, body, field] of cases) {
      const r = await api.call("POST", path, { body });
      assertFailure(r, 400, field);
      assert.match(r.body.message, /^invalid request: /);
    }
    // Nothing of the above was applied.
    assert.equal((await api.servers()).length, 1);
    assert.deepEqual(await api.sessions(), []);
  });

  await t.step("body over 4 MiB → 413 (after auth)", async () => {
    const big = JSON.stringify({ sessions: [], pad: "x".repeat(4 * 1024 * 1024) });
    assertFailure(await api.call("POST", "sessions/sync", { body: big, timeoutMs: 15_000 }), 413);
    assertFailure(await api.call("POST", "heartbeat", { body: big, timeoutMs: 15_000 }), 413);
    assertFailure(await noKey.call("POST", "sessions/sync", { body: big, timeoutMs: 15_000 }), 401);
    // Just under the limit is parsed (and valid).
    const fits = JSON.stringify({ sessions: [], pad: "x".repeat(4 * 1024 * 1024 - 64) });
    const r = await api.call("POST", "sessions/sync", { body: fits, timeoutMs: 15_000 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.data, { accepted: 0 });
  });

  await t.step("POST allocate/publish and allocate/play: a decision with ranked candidates", async () => {
    type Candidate = Record<string, unknown> & { server_id: string; url: string; load: unknown };
    type Decision = {
      stream_path: string;
      kind: string;
      protocol: string;
      ticket: { id: string; server_id: string; expires_at: number } | null;
      reason: string;
      candidates: Candidate[];
    };
    const check = (d: Decision, kind: string, protocol: string, url: string) => {
      assert.equal(d.stream_path, "live/x");
      assert.equal(d.kind, kind);
      assert.equal(d.protocol, protocol);
      assert.equal(typeof d.reason, "string");
      assert.ok(d.ticket, "a ticket for the chosen node");
      assert.equal(typeof d.ticket.id, "string");
      assert.equal(d.ticket.server_id, SELF);
      assert.ok(d.ticket.expires_at > Date.now());
      assert.equal(d.candidates.length, 1, "a lone node is the only candidate");
      const c = d.candidates[0]!;
      assertShape(c, {
        server_id: "string",
        address: "string",
        rtmp_addr: "string",
        url: "string",
        score: "number",
        overloaded: "boolean",
        carries_stream: "boolean",
        pending_tickets: "integer",
        load: "object",
      });
      assert.equal(c.server_id, SELF);
      assert.equal(c.address, node.address);
      assert.equal(c.url, url);
    };
    const pub = await api.ok<Decision>("POST", "allocate/publish", { body: { stream_path: "live/x" } });
    check(pub, "publish", "rtmp", `rtmp://${self.rtmp_addr}/live/x`);
    const play = await api.ok<Decision>("POST", "allocate/play", {
      body: { stream_path: "live/x", protocol: "http-flv", limit: 2 },
    });
    check(play, "play", "http-flv", `http://${node.address}/live/x.flv`);
    // protocol is optional.
    const any = await api.ok<Decision>("POST", "allocate/play", { body: { stream_path: "live/x" } });
    assert.equal(any.protocol, "http-flv", "an unknown protocol plays over HTTP-FLV");
    // Bad bodies.
    assertFailure(await api.call("POST", "allocate/play", { body: "{bad" }), 400, /not valid JSON/);
    assertFailure(await api.call("POST", "allocate/play", { body: {} }), 400, /stream_path/);
    assertFailure(await api.call("POST", "allocate/play", { body: { stream_path: "" } }), 400, /stream_path/);
    assertFailure(
      await api.call("POST", "allocate/play", { body: { stream_path: "nopath" } }),
      400,
      /stream_path/,
    );
    const badLimits = [0, 1.5, 101, "2"];
    for (const limit of badLimits) {
      const r = await api.call("POST", "allocate/publish", { body: { stream_path: "live/x", limit } });
      assertFailure(r, 400, /limit/);
    }
    // Behind auth like everything else.
    assertFailure(await noKey.call("POST", "allocate/play", { body: { stream_path: "live/x" } }), 401);
  });

  await t.step("GET redirect/decision: a decision; missing stream_path → 400", async () => {
    const d = await api.ok<Record<string, unknown>>(
      "GET",
      "redirect/decision?stream_path=live/x&protocol=http-flv",
    );
    assertShape(d, {
      stream_path: "string",
      protocol: "string",
      overloaded: "boolean",
      redirect: "boolean",
      reason: "string",
    });
    assert.equal(d["stream_path"], "live/x");
    assert.equal(d["protocol"], "http-flv");
    assert.equal(d["overloaded"], false);
    assert.equal(d["redirect"], false, "an idle node keeps its players");
    assert.equal(d["target"], null);
    assertFailure(await api.call("GET", "redirect/decision"), 400, /stream_path/);
    assertFailure(await api.call("GET", "redirect/decision?stream_path="), 400, /stream_path/);
    assertFailure(await api.call("GET", "redirect/decision?protocol=rtmp"), 400, /stream_path/);
    assertFailure(await api.call("GET", "redirect/decision?stream_path=live/../x"), 400, /stream_path/);
    assertFailure(await noKey.call("GET", "redirect/decision?stream_path=live/x"), 401);
  });

  await t.step("relay/sessions and relay/pull: shapes; a pull for a stream not here is refused", async () => {
    const sessions = await api.ok<{ sessions: unknown[] }>("GET", "relay/sessions");
    assert.deepEqual(sessions, { sessions: [] });
    const pull = {
      request_id: crypto.randomUUID(),
      stream_path: "live/x",
      requestor_id: "edge-1",
      quic_addr: "127.0.0.1:44944",
      session_id: crypto.randomUUID(),
      timestamp: Date.now(),
    };
    const answer = await api.ok<Record<string, unknown>>("POST", "relay/pull", { body: pull });
    assertShape(answer, {
      request_id: "string",
      accepted: "boolean",
      quic_addr: "string",
      session_id: "string",
      reason: "string",
      stream_path: "string",
    });
    assert.equal(answer["request_id"], pull.request_id);
    assert.equal(answer["session_id"], pull.session_id);
    assert.equal(answer["accepted"], false, "live/x is not published here");
    assert.notEqual(answer["reason"], "");
    assert.equal(answer["quic_addr"], self.quic_addr, "the origin's QUIC endpoint");
    assertFailure(await api.call("POST", "relay/pull", { body: "{bad" }), 400, /not valid JSON/);
    assertFailure(
      await api.call("POST", "relay/pull", { body: { ...pull, stream_path: "" } }),
      400,
      /stream_path/,
    );
    const { timestamp: _, ...noTimestamp } = pull;
    assertFailure(await api.call("POST", "relay/pull", { body: noTimestamp }), 400, /timestamp/);
    assertFailure(await noKey.call("GET", "relay/sessions"), 401);
  });

  const peerInc = Date.now() - 1000;

  await t.step("POST heartbeat from a fake peer: answered with nodes and sessions, peer Online", async () => {
    const data = await api.ok<{ summaries: NodeSummaryJson[]; sessions: SessionRecordJson[] }>(
      "POST",
      "heartbeat",
      { body: { summary: fakeSummary("peer-a", NOBODY, { incarnation: peerInc, role: ["edge"] }) } },
    );
    assert.ok(Array.isArray(data.summaries) && Array.isArray(data.sessions));
    data.summaries.forEach((s) => assertNodeSummary(s));
    assert.equal(data.summaries[0]?.server_id, SELF, "the answering node comes first");
    assert.equal(data.summaries[0]?.state, "Online");

    const list = await api.servers();
    list.forEach((s) => assertNodeSummary(s));
    const peer = list.find((s) => s.server_id === "peer-a");
    assert.ok(peer, `peer-a listed: ${JSON.stringify(list)}`);
    assert.equal(peer.state, "Online");
    assert.equal(peer.address, NOBODY);
    assert.equal(peer.incarnation, peerInc);
    assert.deepEqual(peer.role, ["edge"]);
    assert.ok(Date.now() - peer.last_heartbeat < 5000, "last_heartbeat = when it was heard");
    // Defaults filled in for the fields a minimal heartbeat leaves out.
    assert.equal(peer.quic_addr, "");
    assert.equal(peer.version, "unknown");
    assert.equal((await api.status()).node_count, 2);
  });

  await t.step("heartbeat: a delayed message from an older incarnation changes nothing", async () => {
    const r = await api.call("POST", "heartbeat", {
      body: { summary: fakeSummary("peer-a", NOBODY, { incarnation: peerInc - 500, role: ["origin"] }) },
    });
    assert.equal(r.status, 200);
    const peer = (await api.servers()).find((s) => s.server_id === "peer-a");
    assert.equal(peer?.incarnation, peerInc);
    assert.deepEqual(peer?.role, ["edge"]);
  });

  await t.step("heartbeat: duplicate server_id → 409", async () => {
    // This node's own id from another process (other incarnation).
    assertFailure(
      await api.call("POST", "heartbeat", {
        body: { summary: fakeSummary(SELF, "127.0.0.1:19", { incarnation: self.incarnation + 1 }) },
      }),
      409,
      new RegExp(SELF),
    );
    assertFailure(
      await api.call("POST", "heartbeat", {
        body: { summary: fakeSummary(SELF, node.address, { incarnation: self.incarnation - 1 }) },
      }),
      409,
    );
    // A live, fresh peer's id claimed from another address.
    assertFailure(
      await api.call("POST", "heartbeat", {
        body: { summary: fakeSummary("peer-a", "127.0.0.1:29", { incarnation: peerInc + 1 }) },
      }),
      409,
      /peer-a/,
    );
    const list = await api.servers();
    assert.equal(list.filter((s) => s.server_id === SELF).length, 1);
    assert.equal(
      list.find((s) => s.server_id === "peer-a")?.address,
      NOBODY,
      "the live peer keeps its entry",
    );
  });

  await t.step("POST servers/sync: gossiped nodes are added, but never as Online", async () => {
    const data = await api.ok<{ summaries: NodeSummaryJson[] }>("POST", "servers/sync", {
      body: {
        summaries: [
          fakeSummary("gossip-b", "127.0.0.1:39", { state: "Online" }),
          fakeSummary("gossip-c", "127.0.0.1:49", { state: "Offline" }),
          fakeSummary(SELF, "127.0.0.1:59", { state: "Offline" }), // about ourselves: ignored
          fakeSummary("peer-a", NOBODY, { state: "Offline", last_heartbeat: Date.now() + 10_000 }),
        ],
      },
    });
    data.summaries.forEach((s) => assertNodeSummary(s));
    const ids = data.summaries.map((s) => s.server_id);
    assert.deepEqual(
      ids,
      [SELF, "gossip-b", "gossip-c", "peer-a"],
      "this node first, then sorted by server_id",
    );
    const list = await api.servers();
    const state = (id: string) => list.find((s) => s.server_id === id)?.state;
    assert.equal(state("gossip-b"), "Suspect");
    assert.equal(state("gossip-c"), "Offline");
    assert.equal(state(SELF), "Online");
    assert.equal(list[0]?.address, node.address);
    assert.equal(state("peer-a"), "Online", "gossip does not override direct contact");
    // Suspect peers count as members, Offline ones do not.
    assert.equal((await api.status()).node_count, 3);
  });

  const zeta = fakeSession("live/zeta", { origin_id: "origin-x", version: 2, started_at: 1000 });
  const alpha = fakeSession("live/alpha", { origin_id: "origin-x", version: 5 });
  const app = fakeSession("app/one", { origin_id: "origin-y", video_codec: null, width: null, height: null });

  await t.step("sessions/sync: records of an origin this node does not know are refused", async () => {
    const forged = fakeSession("live/forged", { origin_id: "never-heard-of", version: 99 });
    assert.deepEqual(await api.ok("POST", "sessions/sync", { body: { sessions: [forged] } }), {
      accepted: 0,
    });
    assert.ok(!(await api.sessions()).some((s) => s.stream_path === "live/forged"));
    // The origins of the records below introduce themselves first, as real peers do.
    for (const id of ["origin-x", "origin-y"]) {
      await api.ok("POST", "heartbeat", { body: { summary: fakeSummary(id, NOBODY, { incarnation: 1 }) } });
    }
  });

  await t.step("POST sessions/sync: records show up in GET sessions, sorted by stream_path", async () => {
    const data = await api.ok<{ accepted: number }>("POST", "sessions/sync", {
      body: { sessions: [zeta, alpha, app] },
    });
    assert.deepEqual(data, { accepted: 3 });
    const sessions = await api.sessions();
    sessions.forEach((s) => assertSessionRecord(s));
    assert.deepEqual(sessions.map((s) => s.stream_path), ["app/one", "live/alpha", "live/zeta"]);
    assert.deepEqual(sessions[2], zeta, "stored exactly as sent");
    assert.equal(sessions[0]?.video_codec, null);
    assert.equal((await api.status()).session_count, 3);
  });

  await t.step("sessions/sync: a replayed or older version is ignored", async () => {
    const replay = await api.ok("POST", "sessions/sync", { body: { sessions: [zeta] } });
    assert.deepEqual(replay, { accepted: 0 });
    const older = await api.ok("POST", "sessions/sync", {
      body: { sessions: [{ ...zeta, version: 1, width: 1920, height: 1080 }] },
    });
    assert.deepEqual(older, { accepted: 0 });
    const z = (await api.sessions()).find((s) => s.stream_path === "live/zeta");
    assert.equal(z?.width, 320);
    // A newer one is applied.
    const newer = await api.ok("POST", "sessions/sync", {
      body: { sessions: [{ ...zeta, version: 3, width: 640 }] },
    });
    assert.deepEqual(newer, { accepted: 1 });
    assert.equal((await api.sessions()).find((s) => s.stream_path === "live/zeta")?.width, 640);
  });

  await t.step("sessions/sync: records claiming this node as origin are ignored", async () => {
    const r = await api.ok("POST", "sessions/sync", {
      body: { sessions: [fakeSession("live/mine", { origin_id: SELF, version: 99 })] },
    });
    assert.deepEqual(r, { accepted: 0 });
    assert.equal((await api.sessions()).some((s) => s.stream_path === "live/mine"), false);
  });

  await t.step(
    "sessions/sync: a tombstone removes the session; the old record cannot come back",
    async () => {
      const tomb = { ...zeta, version: 4, active: false };
      assert.deepEqual(await api.ok("POST", "sessions/sync", { body: { sessions: [tomb] } }), {
        accepted: 1,
      });
      assert.deepEqual((await api.sessions()).map((s) => s.stream_path), ["app/one", "live/alpha"]);
      const again = await api.ok("POST", "sessions/sync", { body: { sessions: [{ ...zeta, version: 3 }] } });
      assert.deepEqual(again, { accepted: 0 });
      assert.deepEqual((await api.sessions()).map((s) => s.stream_path), ["app/one", "live/alpha"]);
      assert.equal((await api.status()).session_count, 2);
      // The tombstone still travels in heartbeat answers, so peers converge.
      const hb = await api.ok<{ sessions: SessionRecordJson[] }>("POST", "heartbeat", {
        body: { summary: fakeSummary("peer-a", NOBODY, { incarnation: peerInc }) },
      });
      hb.sessions.forEach((s) => assertSessionRecord(s));
      const t = hb.sessions.find((s) => s.stream_path === "live/zeta");
      assert.equal(t?.active, false);
      assert.equal(t?.version, 4);
    },
  );

  await t.step("POST sessions/participation updates subscribe_nodes", async () => {
    type P = { stream_path: string; subscribe_nodes: string[] };
    const part = (node_id: string, action: string) =>
      api.ok<P>("POST", "sessions/participation", { body: { stream_path: "live/alpha", node_id, action } });
    assert.deepEqual(await part("edge-9", "subscribe"), {
      stream_path: "live/alpha",
      subscribe_nodes: ["edge-9"],
    });
    assert.deepEqual((await part("edge-1", "subscribe")).subscribe_nodes, ["edge-1", "edge-9"]);
    assert.deepEqual((await part("edge-1", "subscribe")).subscribe_nodes, ["edge-1", "edge-9"], "idempotent");
    const alphaNow = (await api.sessions()).find((s) => s.stream_path === "live/alpha");
    assert.deepEqual(alphaNow?.subscribe_nodes, ["edge-1", "edge-9"]);
    assert.deepEqual((await part("edge-9", "unsubscribe")).subscribe_nodes, ["edge-1"]);
    assert.deepEqual((await api.sessions()).find((s) => s.stream_path === "live/alpha")?.subscribe_nodes, [
      "edge-1",
    ]);
    // A stream with no live session: nothing to update, nothing stored.
    const none = await api.ok<P>("POST", "sessions/participation", {
      body: { stream_path: "live/zeta", node_id: "edge-1", action: "subscribe" },
    });
    assert.deepEqual(none, { stream_path: "live/zeta", subscribe_nodes: [] });
    // This node itself joining a remote stream (would start a relay once the relay manager runs).
    const selfJoin = await api.ok<P>("POST", "sessions/participation", {
      body: { stream_path: "app/one", node_id: SELF, action: "subscribe" },
    });
    assert.deepEqual(selfJoin.subscribe_nodes, [SELF]);
  });
});
