/**
 * rankNodes as a table: who is a candidate (state, staleness, role, a live stream's origin),
 * the overload thresholds at their edges (above is overloaded, at is not; pending tickets count
 * as subscribers), the order (healthy first, carriers first for play, score, server_id), the
 * all-overloaded fallback and the limit.
 */

import assert from "node:assert/strict";
import type { NodeLoad } from "../protocol/types.ts";
import {
  isOverloaded,
  type NodeView,
  type RankedNode,
  type RankInput,
  rankNodes,
  type Thresholds,
  TICKET_WEIGHT,
  utilisation,
} from "./policy.ts";

const T: Thresholds = { cpuPercent: 85, egressMbps: 8000, subscribers: 2000 };

function load(over: Partial<NodeLoad> = {}): NodeLoad {
  return { cpu_percent: 0, egress_mbps: 0, subscriber_count: 0, stream_count: 0, relay_count: 0, ...over };
}

function node(
  serverId: string,
  l: Partial<NodeLoad> = {},
  over: Partial<Omit<NodeView, "serverId" | "load">> = {},
): NodeView {
  return { serverId, state: "Online", stale: false, roles: ["origin", "edge"], load: load(l), ...over };
}

function rank(over: Partial<RankInput> & Pick<RankInput, "nodes">): RankedNode[] {
  return rankNodes({
    kind: "play",
    thresholds: T,
    pending: new Map(),
    originId: null,
    carriers: new Set(),
    limit: 10,
    ...over,
  });
}

const ids = (r: RankedNode[]) => r.map((n) => n.serverId);

Deno.test("policy: equal nodes come back ordered by server_id, for play and publish", () => {
  const nodes = [node("node-c"), node("node-a"), node("node-b")];
  for (const kind of ["play", "publish"] as const) {
    const r = rank({ kind, nodes });
    assert.deepEqual(ids(r), ["node-a", "node-b", "node-c"], kind);
    assert.ok(r.every((n) => n.score === 0 && !n.overloaded && n.pending === 0), kind);
  }
});

Deno.test("policy: lower utilisation first; the highest of the three ratios is the score", () => {
  const r = rank({
    nodes: [
      node("a", { cpu_percent: 42.5 }), // 0.5
      node("b", { egress_mbps: 2000 }), // 0.25
      node("c", { subscriber_count: 1500 }), // 0.75
      node("d", { cpu_percent: 8.5, egress_mbps: 800, subscriber_count: 1800 }), // 0.9
    ],
  });
  assert.deepEqual(ids(r), ["b", "a", "c", "d"]);
  assert.deepEqual(r.map((n) => n.score), [0.25, 0.5, 0.75, 0.9]);
});

Deno.test("policy: each threshold — just below and at are fine, just above is overloaded", () => {
  const cases: { what: string; load: Partial<NodeLoad>; pending?: number; overloaded: boolean }[] = [
    { what: "cpu below", load: { cpu_percent: 84.99 }, overloaded: false },
    { what: "cpu at", load: { cpu_percent: 85 }, overloaded: false },
    { what: "cpu above", load: { cpu_percent: 85.01 }, overloaded: true },
    { what: "egress below", load: { egress_mbps: 7999.99 }, overloaded: false },
    { what: "egress at", load: { egress_mbps: 8000 }, overloaded: false },
    { what: "egress above", load: { egress_mbps: 8000.01 }, overloaded: true },
    { what: "subscribers below", load: { subscriber_count: 1999 }, overloaded: false },
    { what: "subscribers at", load: { subscriber_count: 2000 }, overloaded: false },
    { what: "subscribers above", load: { subscriber_count: 2001 }, overloaded: true },
    { what: "subscribers + tickets below", load: { subscriber_count: 1990 }, pending: 9, overloaded: false },
    { what: "subscribers + tickets at", load: { subscriber_count: 1990 }, pending: 10, overloaded: false },
    { what: "subscribers + tickets above", load: { subscriber_count: 1990 }, pending: 11, overloaded: true },
    { what: "tickets alone above", load: {}, pending: 2001, overloaded: true },
    // Streams and relays are reported but are not thresholds.
    {
      what: "many streams and relays",
      load: { stream_count: 10_000, relay_count: 10_000 },
      overloaded: false,
    },
  ];
  for (const c of cases) {
    const pending = c.pending ?? 0;
    assert.equal(isOverloaded(load(c.load), T, pending), c.overloaded, `isOverloaded: ${c.what}`);
    for (const kind of ["play", "publish"] as const) {
      const pendingMap = new Map(pending ? [["x", pending]] : []);
      // Alone, the node is always returned, marked as it is.
      const alone = rank({ kind, nodes: [node("x", c.load)], pending: pendingMap });
      assert.equal(alone.length, 1, `${kind} ${c.what}: alone`);
      assert.equal(alone[0]!.overloaded, c.overloaded, `${kind} ${c.what}: marked`);
      assert.equal(alone[0]!.pending, pending, `${kind} ${c.what}: pending`);
      // Next to a healthy node, an overloaded one is not offered at all.
      const withPeer = rank({
        kind,
        nodes: [node("x", c.load), node("y", { cpu_percent: 84 })],
        pending: pendingMap,
      });
      assert.deepEqual(
        ids(withPeer).sort(),
        c.overloaded ? ["y"] : ["x", "y"],
        `${kind} ${c.what}: with a peer`,
      );
    }
  }
});

Deno.test("policy: pending tickets add to the score and break ties of equal loads", () => {
  const pending = new Map([["a", 2], ["b", 1]]);
  const r = rank({ kind: "publish", nodes: [node("a"), node("b"), node("c")], pending });
  assert.deepEqual(ids(r), ["c", "b", "a"]);
  assert.equal(r[1]!.score, utilisation(load(), T, 1) + TICKET_WEIGHT);
  assert.equal(r[2]!.score, 2 / 2000 + 2 * TICKET_WEIGHT);
  assert.deepEqual(r.map((n) => n.pending), [0, 1, 2]);
});

Deno.test("policy: stale summaries are never candidates", () => {
  const nodes = [
    node("a", {}, { stale: true }),
    node("b", { cpu_percent: 80 }),
    node("c", {}, { stale: true }),
  ];
  for (const kind of ["play", "publish"] as const) {
    assert.deepEqual(ids(rank({ kind, nodes })), ["b"], kind);
  }
  // Not even as the live stream's origin, nor as a carrier.
  assert.deepEqual(ids(rank({ kind: "publish", nodes, originId: "a", carriers: new Set(["a"]) })), []);
  assert.deepEqual(ids(rank({ kind: "play", nodes, originId: "a", carriers: new Set(["a"]) })), ["b"]);
  assert.deepEqual(rank({ nodes: [node("a", {}, { stale: true })] }), [], "all stale: nobody");
});

Deno.test("policy: Suspect and Offline nodes are never candidates", () => {
  const nodes = [
    node("a", {}, { state: "Suspect" }),
    node("b", {}, { state: "Offline" }),
    node("c", { subscriber_count: 1000 }),
  ];
  for (const kind of ["play", "publish"] as const) {
    assert.deepEqual(ids(rank({ kind, nodes })), ["c"], kind);
    assert.deepEqual(ids(rank({ kind, nodes, carriers: new Set(["a", "b"]) })), ["c"], `${kind} carriers`);
  }
  assert.deepEqual(ids(rank({ kind: "publish", nodes, originId: "a" })), [], "live on a Suspect origin");
  assert.deepEqual(rank({ nodes: nodes.slice(0, 2) }), [], "nobody Online");
});

Deno.test("policy: roles — edge-only nodes never take publishers, origin-only nodes never take players", () => {
  const nodes = [
    node("both", { cpu_percent: 40 }),
    node("edge", {}, { roles: ["edge"] }),
    node("origin", {}, { roles: ["origin"] }),
    node("none", {}, { roles: [] }),
  ];
  assert.deepEqual(ids(rank({ kind: "publish", nodes })), ["origin", "both"]);
  assert.deepEqual(ids(rank({ kind: "play", nodes })), ["edge", "both"]);
  // ... except that the stream's origin can always serve its own stream.
  const r = rank({ kind: "play", nodes, originId: "origin", carriers: new Set(["origin"]) });
  assert.deepEqual(ids(r), ["origin", "edge", "both"]);
  assert.equal(r[0]!.carriesStream, true);
  // An origin-only node that merely carries a stream it is not the origin of is still no edge.
  assert.deepEqual(
    ids(rank({ kind: "play", nodes, originId: "both", carriers: new Set(["both", "origin"]) })),
    [
      "both",
      "edge",
    ],
  );
  // A live stream on an edge-only node (it cannot be: the node refuses publishers) is not
  // published again anywhere.
  assert.deepEqual(ids(rank({ kind: "publish", nodes, originId: "edge" })), []);
});

Deno.test("policy: play — nodes carrying the stream come first, busier or not", () => {
  const nodes = [
    node("idle"),
    node("origin", { cpu_percent: 70 }),
    node("relay-1", { subscriber_count: 1500 }),
    node("relay-2", { subscriber_count: 500 }),
    node("busy", { cpu_percent: 80 }),
  ];
  const carriers = new Set(["origin", "relay-1", "relay-2"]);
  const r = rank({ kind: "play", nodes, originId: "origin", carriers });
  assert.deepEqual(ids(r), ["relay-2", "relay-1", "origin", "idle", "busy"]);
  assert.deepEqual(r.map((n) => n.carriesStream), [true, true, true, false, false]);
  // An overloaded carrier is not offered while a healthy node exists.
  const over = rank({
    kind: "play",
    nodes: [node("origin", { cpu_percent: 99 }), node("edge", { cpu_percent: 50 })],
    originId: "origin",
    carriers: new Set(["origin"]),
  });
  assert.deepEqual(ids(over), ["edge"]);
  assert.equal(over[0]!.carriesStream, false);
  // Publish ignores carriers.
  assert.deepEqual(ids(rank({ kind: "publish", nodes, carriers })), [
    "idle",
    "relay-2",
    "relay-1",
    "origin",
    "busy",
  ]);
});

Deno.test("policy: publish of a live stream offers its origin only, loaded or not", () => {
  const nodes = [node("a"), node("b", { cpu_percent: 80 }), node("c")];
  const r = rank({ kind: "publish", nodes, originId: "b", carriers: new Set(["b", "a"]) });
  assert.deepEqual(ids(r), ["b"]);
  assert.equal(r[0]!.overloaded, false);
  const hot = rank({ kind: "publish", nodes: [node("a"), node("b", { cpu_percent: 99 })], originId: "b" });
  assert.deepEqual(ids(hot), ["b"]);
  assert.equal(hot[0]!.overloaded, true, "the origin is returned even overloaded, marked so");
  // A stream that is not live: any origin-capable node.
  assert.deepEqual(ids(rank({ kind: "publish", nodes })), ["a", "c", "b"]);
});

Deno.test("policy: when every node is overloaded the least loaded are returned, marked overloaded", () => {
  const nodes = [
    node("a", { cpu_percent: 99 }), // 99/85 = 1.165
    node("b", { subscriber_count: 2100 }), // 1.05
    node("c", { egress_mbps: 12_000 }), // 1.5
    node("d", { subscriber_count: 1990 }), // 1.005 with 20 tickets... see pending
  ];
  const pending = new Map([["d", 20]]); // 2010 subscribers → overloaded; score 1.005 + 1
  for (const kind of ["play", "publish"] as const) {
    const r = rank({ kind, nodes, pending, limit: 3 });
    assert.deepEqual(ids(r), ["b", "a", "c"], kind);
    assert.ok(r.every((n) => n.overloaded), kind);
  }
  // For play the carriers still come first among the overloaded.
  const r = rank({ kind: "play", nodes, pending, carriers: new Set(["c"]) });
  assert.deepEqual(ids(r), ["c", "b", "a", "d"]);
});

Deno.test("policy: a single node", () => {
  for (const kind of ["play", "publish"] as const) {
    const r = rank({ kind, nodes: [node("only", { cpu_percent: 17 })] });
    assert.deepEqual(ids(r), ["only"]);
    assert.equal(r[0]!.score, 0.2);
    assert.equal(r[0]!.overloaded, false);
    assert.equal(r[0]!.carriesStream, false);
    assert.deepEqual(r[0]!.load, load({ cpu_percent: 17 }));
  }
  assert.deepEqual(rank({ nodes: [] }), [], "no nodes");
});

Deno.test("policy: limit caps the candidates, best first", () => {
  const nodes = ["d", "c", "b", "a"].map((id, i) => node(id, { cpu_percent: 10 * i }));
  assert.deepEqual(ids(rank({ nodes, limit: 2 })), ["d", "c"]);
  assert.deepEqual(ids(rank({ nodes, limit: 1 })), ["d"]);
  assert.deepEqual(ids(rank({ nodes, limit: 4 })), ["d", "c", "b", "a"]);
  assert.deepEqual(ids(rank({ nodes, limit: 100 })), ["d", "c", "b", "a"]);
  assert.deepEqual(rank({ nodes, limit: 0 }), []);
  assert.deepEqual(rank({ nodes, limit: -1 }), []);
  // The limit applies after healthy nodes are preferred.
  const mixed = [node("hot", { cpu_percent: 90 }), node("ok", { cpu_percent: 80 })];
  assert.deepEqual(ids(rank({ nodes: mixed, limit: 2 })), ["ok"]);
});
