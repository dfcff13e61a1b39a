/**
 * TicketBook with a fake clock (issue, consume, expire), and what tickets are for: a burst of
 * allocations through the AllocationManager fans out over equal nodes instead of piling onto
 * the one that looked idlest.
 */

import assert from "node:assert/strict";
import { parseStreamPath } from "../../media/mod.ts";
import type { NodeSummary } from "../protocol/types.ts";
import { AllocationManager, type ClusterView } from "./manager.ts";
import { TicketBook } from "./tickets.ts";

Deno.test("tickets: issue reserves until now + ttl and counts per server", () => {
  const book = new TicketBook(30_000);
  const a = book.issue("n1", "live/a", "publish", 1000);
  const b = book.issue("n1", "live/b", "play", 1500);
  const c = book.issue("n2", "live/a", "play", 2000);
  assert.equal(a.expiresAt, 31_000);
  assert.equal(b.expiresAt, 31_500);
  assert.deepEqual({ ...c, id: "" }, {
    id: "",
    serverId: "n2",
    streamPath: "live/a",
    kind: "play",
    expiresAt: 32_000,
  });
  assert.equal(new Set([a.id, b.id, c.id]).size, 3, "ids are unique");
  assert.equal(book.size, 3);
  assert.deepEqual(book.pending(2000), new Map([["n1", 2], ["n2", 1]]));
});

Deno.test("tickets: consume ends the oldest ticket matching server, stream and kind", () => {
  const book = new TicketBook(30_000);
  const first = book.issue("n1", "live/a", "play", 0);
  book.issue("n1", "live/a", "play", 10);
  book.issue("n1", "live/a", "publish", 20);
  assert.equal(book.consume("n2", "live/a", "play"), false, "other server");
  assert.equal(book.consume("n1", "live/b", "play"), false, "other stream");
  assert.equal(book.size, 3);
  assert.equal(book.consume("n1", "live/a", "play"), true);
  assert.equal(book.size, 2);
  // The oldest went: at its expiry time the other two still count.
  assert.deepEqual(book.pending(first.expiresAt), new Map([["n1", 2]]), "the older one was consumed");
  assert.equal(book.consume("n1", "live/a", "play"), true);
  assert.equal(book.consume("n1", "live/a", "play"), false, "none left of that kind");
  assert.equal(book.consume("n1", "live/a", "publish"), true);
  assert.equal(book.size, 0);
  assert.deepEqual(book.pending(0), new Map());
});

Deno.test("tickets: a ticket counts until just before expiresAt and is gone at it", () => {
  const book = new TicketBook(1000);
  book.issue("n1", "live/a", "play", 5000);
  book.issue("n2", "live/a", "play", 5500);
  assert.deepEqual(book.pending(5999), new Map([["n1", 1], ["n2", 1]]));
  assert.deepEqual(book.pending(6000), new Map([["n2", 1]]), "expires at now + ttl");
  assert.equal(book.size, 1, "pending() drops expired tickets");
  book.expire(6500);
  assert.equal(book.size, 0);
  assert.equal(book.consume("n2", "live/a", "play"), false, "an expired ticket cannot be consumed");
  // issue() also sweeps expired tickets first.
  book.issue("n1", "live/a", "play", 7000);
  book.issue("n1", "live/b", "play", 8000);
  assert.equal(book.size, 1);
});

function summary(serverId: string): NodeSummary {
  return {
    server_id: serverId,
    address: `127.0.0.1:${8180 + Number(serverId.slice(-1))}`,
    quic_addr: "",
    rtmp_addr: "",
    quic_cert: "",
    state: "Online",
    role: ["origin", "edge"],
    load: { cpu_percent: 10, egress_mbps: 1, subscriber_count: 3, stream_count: 0, relay_count: 0 },
    version: "test",
    started_at: 0,
    incarnation: 1,
    last_heartbeat: 0,
  };
}

function equalView(): ClusterView {
  const nodes = ["node-1", "node-2", "node-3"].map((id) => ({ summary: summary(id), stale: false }));
  return {
    selfId: "node-1",
    nodes: () => nodes,
    originOf: () => null,
    carriersOf: () => new Set(),
    synced: () => true,
    canonicalPath: (raw) => parseStreamPath(raw).path,
  };
}

const THRESHOLDS = { cpuPercent: 85, egressMbps: 8000, subscribers: 2000 };

Deno.test("tickets: a burst of 20 publish allocations spreads over 3 equal nodes (6–7 each)", () => {
  let now = 1_000_000;
  const alloc = new AllocationManager(equalView(), THRESHOLDS, 30_000, 3, () => now);
  const counts = new Map<string, number>();
  for (let i = 0; i < 20; i++) {
    now += 5; // a burst: well within the ticket TTL
    const d = alloc.allocate("publish", { stream_path: `live/burst-${i}`, protocol: "rtmp" });
    assert.ok(d.ticket, `allocation ${i} has a ticket`);
    assert.equal(d.ticket.server_id, d.candidates[0]!.server_id, "the ticket is for the first candidate");
    assert.equal(d.ticket.expires_at, now + 30_000);
    assert.equal(d.candidates.length, 3);
    counts.set(d.ticket.server_id, (counts.get(d.ticket.server_id) ?? 0) + 1);
  }
  assert.deepEqual([...counts.keys()].sort(), ["node-1", "node-2", "node-3"]);
  for (const [id, n] of counts) {
    assert.ok(n >= 6 && n <= 7, `${id} got ${n} of 20: ${JSON.stringify([...counts])}`);
  }
  assert.equal(alloc.tickets.size, 20);
  assert.equal(alloc.counters.allocations, 20);
});

Deno.test("tickets: arrivals and expiry give the capacity back", () => {
  let now = 0;
  const alloc = new AllocationManager(equalView(), THRESHOLDS, 30_000, 3, () => now);
  const first = alloc.allocate("play", { stream_path: "live/x", protocol: "http-flv" });
  assert.equal(first.ticket?.server_id, "node-1", "equal nodes: by server_id");
  const second = alloc.allocate("play", { stream_path: "live/x", protocol: "http-flv" });
  assert.equal(second.ticket?.server_id, "node-2", "node-1 has a pending ticket");
  assert.equal(second.candidates.find((c) => c.server_id === "node-1")?.pending_tickets, 1);
  // The player showed up on node-1: its ticket ends, node-1 is first again.
  alloc.arrived("node-1", "live/x", "play");
  now += 10;
  assert.equal(
    alloc.allocate("play", { stream_path: "live/x", protocol: "http-flv" }).ticket?.server_id,
    "node-1",
  );
  // Once every ticket has expired, the allocation starts over.
  now += 30_000;
  assert.equal(alloc.tickets.pending(now).size, 0);
  assert.equal(
    alloc.allocate("play", { stream_path: "live/x", protocol: "http-flv" }).ticket?.server_id,
    "node-1",
  );
});
