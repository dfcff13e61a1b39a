/**
 * Membership is a pure core: every test drives it with explicit timestamps (a fake clock is
 * just a number we pass in), so thresholds, staleness and incarnations are checked exactly,
 * with no timers and no sleeps.
 */

import assert from "node:assert/strict";
import { NodeState, type NodeSummary } from "../protocol/types.ts";
import { Membership, type MembershipOptions, type Transition } from "./membership.ts";

const OPTS: MembershipOptions = { suspectThreshold: 2, offlineThreshold: 4, heartbeatTtlMs: 1000 };

function summary(id: string, over: Partial<NodeSummary> = {}): NodeSummary {
  return {
    server_id: id,
    address: `${id}.test:8180`,
    quic_addr: "",
    rtmp_addr: "",
    quic_cert: "",
    state: NodeState.Online,
    role: ["origin", "edge"],
    load: { cpu_percent: 0, egress_mbps: 0, subscriber_count: 0, stream_count: 0, relay_count: 0 },
    version: "test",
    started_at: 1,
    incarnation: 1,
    last_heartbeat: 0,
    ...over,
  };
}

function t(serverId: string, from: NodeState | null, to: NodeState, restarted = false): Transition {
  return { serverId, from, to, restarted };
}

/** Calls `missed` `n` times and returns every transition in order. */
function missN(m: Membership, id: string, n: number): Transition[] {
  const out: Transition[] = [];
  for (let i = 0; i < n; i++) out.push(...m.missed(id));
  return out;
}

Deno.test("membership: a node heard directly for the first time is Online", () => {
  const m = new Membership("self", OPTS);
  assert.deepEqual(m.heard(summary("a"), 1000), [t("a", null, NodeState.Online)]);
  assert.equal(m.state("a"), NodeState.Online);
  // Hearing it again while Online changes nothing.
  assert.deepEqual(m.heard(summary("a"), 1100), []);
  assert.equal(m.state("unknown"), null);
});

Deno.test("membership: this node never appears in its own table", () => {
  const m = new Membership("self", OPTS);
  assert.deepEqual(m.heard(summary("self"), 1000), []);
  assert.deepEqual(m.gossip(summary("self")), []);
  assert.equal(m.state("self"), null);
  assert.deepEqual(m.list(), []);
});

Deno.test("membership: Suspect exactly at suspect_threshold misses, Offline exactly at offline_threshold", () => {
  const m = new Membership("self", OPTS);
  m.heard(summary("a"), 0);
  assert.deepEqual(m.missed("a"), [], "1 miss: still Online");
  assert.equal(m.state("a"), NodeState.Online);
  assert.deepEqual(m.missed("a"), [t("a", NodeState.Online, NodeState.Suspect)], "2nd miss → Suspect");
  assert.deepEqual(m.missed("a"), [], "3 misses: still Suspect");
  assert.equal(m.state("a"), NodeState.Suspect);
  assert.deepEqual(m.missed("a"), [t("a", NodeState.Suspect, NodeState.Offline)], "4th miss → Offline");
  assert.deepEqual(missN(m, "a", 10), [], "further misses change nothing");
  assert.equal(m.state("a"), NodeState.Offline);
  assert.equal(m.summary("a")?.state, NodeState.Offline);
});

Deno.test("membership: suspect_threshold == offline_threshold goes straight to Offline", () => {
  const m = new Membership("self", { ...OPTS, suspectThreshold: 3, offlineThreshold: 3 });
  m.heard(summary("a"), 0);
  assert.deepEqual(missN(m, "a", 3), [t("a", NodeState.Online, NodeState.Offline)]);
});

Deno.test("membership: thresholds of 1 make the first miss count", () => {
  const m = new Membership("self", { ...OPTS, suspectThreshold: 1, offlineThreshold: 2 });
  m.heard(summary("a"), 0);
  assert.deepEqual(m.missed("a"), [t("a", NodeState.Online, NodeState.Suspect)]);
  assert.deepEqual(m.missed("a"), [t("a", NodeState.Suspect, NodeState.Offline)]);
});

Deno.test("membership: a miss for an unknown node is ignored", () => {
  const m = new Membership("self", OPTS);
  assert.deepEqual(m.missed("ghost"), []);
  assert.equal(m.state("ghost"), null);
});

Deno.test("membership: hearing a Suspect node makes it Online and resets the miss count", () => {
  const m = new Membership("self", OPTS);
  m.heard(summary("a"), 0);
  missN(m, "a", 3);
  assert.equal(m.state("a"), NodeState.Suspect);
  assert.deepEqual(m.heard(summary("a"), 500), [t("a", NodeState.Suspect, NodeState.Online)]);
  // The count restarted: one miss is not enough for Suspect again, two are.
  assert.deepEqual(m.missed("a"), []);
  assert.deepEqual(m.missed("a"), [t("a", NodeState.Online, NodeState.Suspect)]);
});

Deno.test("membership: an Offline node heard again is Online (same process, not a restart)", () => {
  const m = new Membership("self", OPTS);
  m.heard(summary("a"), 0);
  missN(m, "a", 4);
  assert.equal(m.state("a"), NodeState.Offline);
  assert.deepEqual(m.heard(summary("a"), 5000), [t("a", NodeState.Offline, NodeState.Online, false)]);
  assert.deepEqual(missN(m, "a", 3), [t("a", NodeState.Online, NodeState.Suspect)]);
});

Deno.test("membership: stale once the last direct contact is older than heartbeat_ttl", () => {
  const m = new Membership("self", OPTS);
  assert.equal(m.isStale("a", 0), true, "an unknown node is stale");
  m.heard(summary("a"), 10_000);
  assert.equal(m.isStale("a", 10_000), false);
  assert.equal(m.isStale("a", 11_000), false, "exactly ttl: not yet stale");
  assert.equal(m.isStale("a", 11_001), true, "ttl + 1 ms: stale");
  // Heard again: fresh again, measured from the new contact.
  m.heard(summary("a"), 11_500);
  assert.equal(m.isStale("a", 12_500), false);
  assert.equal(m.isStale("a", 12_501), true);
  // Misses do not refresh the contact time.
  m.missed("a");
  assert.equal(m.isStale("a", 12_501), true);
});

Deno.test("membership: a node known only by gossip is stale (never heard directly)", () => {
  const m = new Membership("self", OPTS);
  m.gossip(summary("b", { last_heartbeat: 99_999 }));
  assert.equal(m.isStale("b", 100_000), true);
});

Deno.test("membership: last_heartbeat in the view is the time of our last direct contact", () => {
  const m = new Membership("self", OPTS);
  m.heard(summary("a", { last_heartbeat: 1 }), 4242);
  assert.equal(m.summary("a")?.last_heartbeat, 4242);
  // Known only by gossip: the reporter's figure is all we have.
  m.gossip(summary("b", { last_heartbeat: 777 }));
  assert.equal(m.summary("b")?.last_heartbeat, 777);
});

Deno.test("membership: a higher incarnation is a restart, reported even while Online", () => {
  const m = new Membership("self", OPTS);
  m.heard(summary("a", { incarnation: 100 }), 0);
  assert.deepEqual(m.heard(summary("a", { incarnation: 200 }), 10), [
    t("a", NodeState.Online, NodeState.Online, true),
  ]);
  assert.equal(m.summary("a")?.incarnation, 200);
  // A restart seen after the node went Offline: Online again, and flagged as a restart.
  missN(m, "a", 4);
  assert.deepEqual(m.heard(summary("a", { incarnation: 300 }), 20), [
    t("a", NodeState.Offline, NodeState.Online, true),
  ]);
});

Deno.test("membership: a delayed message from an old incarnation is ignored", () => {
  const m = new Membership("self", OPTS);
  m.heard(summary("a", { incarnation: 200, address: "new:1" }), 1000);
  assert.deepEqual(m.heard(summary("a", { incarnation: 100, address: "old:1" }), 2000), []);
  const s = m.summary("a");
  assert.equal(s?.incarnation, 200);
  assert.equal(s?.address, "new:1");
  assert.equal(s?.last_heartbeat, 1000, "the old message is not a sign of life");
  assert.equal(m.isStale("a", 2001), true, "the old message did not refresh the contact time");
  // Nor does it revive the node once it is Offline.
  missN(m, "a", 4);
  assert.deepEqual(m.heard(summary("a", { incarnation: 100 }), 3000), []);
  assert.equal(m.state("a"), NodeState.Offline);
});

Deno.test("membership: gossip adds an unknown node as Suspect, never as Online", () => {
  const m = new Membership("self", OPTS);
  assert.deepEqual(m.gossip(summary("b", { state: NodeState.Online })), [t("b", null, NodeState.Suspect)]);
  assert.equal(m.state("b"), NodeState.Suspect);
  assert.equal(m.summary("b")?.state, NodeState.Suspect);
  // Gossip repeated, even claiming Online, changes nothing.
  assert.deepEqual(m.gossip(summary("b", { state: NodeState.Online, last_heartbeat: 5 })), []);
  assert.equal(m.state("b"), NodeState.Suspect);
  // Our own heartbeat getting through is what makes it Online.
  assert.deepEqual(m.heard(summary("b"), 100), [t("b", NodeState.Suspect, NodeState.Online)]);
});

Deno.test("membership: a gossiped node we cannot reach goes Offline after the remaining misses", () => {
  const m = new Membership("self", OPTS);
  m.gossip(summary("b"));
  // It starts at suspect_threshold misses, so offline - suspect more make it Offline.
  assert.deepEqual(m.missed("b"), []);
  assert.deepEqual(m.missed("b"), [t("b", NodeState.Suspect, NodeState.Offline)]);
});

Deno.test("membership: gossip of a node reported Suspect or Offline adds it as Offline (probed, not pushed to)", () => {
  const m = new Membership("self", OPTS);
  assert.deepEqual(m.gossip(summary("c", { state: NodeState.Offline })), [t("c", null, NodeState.Offline)]);
  assert.equal(m.state("c"), NodeState.Offline);
  assert.deepEqual(missN(m, "c", 5), [], "already Offline");
  // A node another peer suspects is unconfirmed for us too.
  assert.deepEqual(m.gossip(summary("d", { state: NodeState.Suspect })), [t("d", null, NodeState.Offline)]);
});

Deno.test("membership: gossip never changes the state of a node we probe ourselves", () => {
  const m = new Membership("self", OPTS);
  m.heard(summary("a"), 0);
  missN(m, "a", 4);
  assert.equal(m.state("a"), NodeState.Offline);
  // Another node still thinks it is Online, with a newer contact time: we keep our own view.
  assert.deepEqual(m.gossip(summary("a", { state: NodeState.Online, last_heartbeat: 10_000 })), []);
  assert.equal(m.state("a"), NodeState.Offline);
  // And the reverse: a peer reporting Offline does not take down a node we hear from.
  m.heard(summary("e"), 0);
  assert.deepEqual(m.gossip(summary("e", { state: NodeState.Offline, last_heartbeat: 10_000 })), []);
  assert.equal(m.state("e"), NodeState.Online);
  // Nor does gossip of a newer incarnation count as a restart: only direct contact does.
  assert.deepEqual(m.gossip(summary("e", { incarnation: 99, last_heartbeat: 20_000 })), []);
  assert.equal(m.summary("e")?.incarnation, 1);
});

Deno.test("membership: gossip refreshes load and quic_addr only when newer, same incarnation, Online", () => {
  const m = new Membership("self", OPTS);
  const load = { cpu_percent: 50, egress_mbps: 7, subscriber_count: 3, stream_count: 1, relay_count: 0 };
  m.heard(summary("a", { last_heartbeat: 100 }), 100);
  // Older report: ignored.
  m.gossip(summary("a", { last_heartbeat: 50, load, quic_addr: "old:1" }));
  assert.equal(m.summary("a")?.load.cpu_percent, 0);
  // Newer report: load and quic_addr taken, nothing else.
  m.gossip(summary("a", { last_heartbeat: 200, load, quic_addr: "q:1", address: "elsewhere:1" }));
  const s = m.summary("a");
  assert.deepEqual(s?.load, load);
  assert.equal(s?.quic_addr, "q:1");
  assert.equal(s?.address, "a.test:8180");
  assert.equal(s?.last_heartbeat, 100, "gossip is not direct contact");
  // Another incarnation: ignored.
  m.gossip(summary("a", { last_heartbeat: 300, incarnation: 2, quic_addr: "other:1" }));
  assert.equal(m.summary("a")?.quic_addr, "q:1");
  // Not Online: ignored.
  missN(m, "a", 2);
  m.gossip(summary("a", { last_heartbeat: 400, quic_addr: "late:1" }));
  assert.equal(m.summary("a")?.quic_addr, "q:1");
});

Deno.test("membership: list, byAddress and remove", () => {
  const m = new Membership("self", OPTS);
  m.heard(summary("a", { address: "10.0.0.1:8180" }), 0);
  m.gossip(summary("b", { address: "10.0.0.2:8180" }));
  assert.deepEqual(m.list().map((s) => [s.server_id, s.state]).sort(), [
    ["a", NodeState.Online],
    ["b", NodeState.Suspect],
  ]);
  assert.equal(m.byAddress("10.0.0.2:8180")?.server_id, "b");
  assert.equal(m.byAddress("10.0.0.9:8180"), null);
  m.remove("b");
  assert.equal(m.state("b"), null);
  assert.deepEqual(m.list().map((s) => s.server_id), ["a"]);
  // A removed node heard again starts fresh.
  assert.deepEqual(m.heard(summary("b"), 10), [t("b", null, NodeState.Online)]);
});

Deno.test("membership: views are copies; mutating them does not change the table", () => {
  const m = new Membership("self", OPTS);
  const input = summary("a");
  m.heard(input, 0);
  input.address = "mutated:1";
  const view = m.summary("a");
  assert.ok(view);
  view.address = "mutated:2";
  assert.equal(m.summary("a")?.address, "a.test:8180");
});
