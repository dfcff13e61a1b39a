/**
 * RedirectManager and AllocationManager over a fake ClusterView: when a player is redirected
 * and where to (carriers first, never itself, at most one hop), the URLs per protocol (query
 * kept, `cluster_redirected=1` added), and the API errors (400 invalid stream_path, 503 before
 * the first sync).
 */

import assert from "node:assert/strict";
import { parseStreamPath } from "../../media/mod.ts";
import { ApiError } from "../api/routes.ts";
import type { NodeLoad, NodeSummary } from "../protocol/types.ts";
import { AllocationManager, type ClusterView, RedirectManager } from "./manager.ts";
import { REDIRECT_MARKER } from "./urls.ts";

const THRESHOLDS = { cpuPercent: 85, egressMbps: 8000, subscribers: 2000 };
const IDLE: NodeLoad = {
  cpu_percent: 5,
  egress_mbps: 1,
  subscriber_count: 0,
  stream_count: 0,
  relay_count: 0,
};
const HOT: NodeLoad = { ...IDLE, subscriber_count: 5000 };

function summary(n: number, load: NodeLoad = IDLE, over: Partial<NodeSummary> = {}): NodeSummary {
  return {
    server_id: `node-${n}`,
    address: `127.0.0.${n}:8180`,
    quic_addr: `127.0.0.${n}:44944`,
    rtmp_addr: `127.0.0.${n}:1935`,
    quic_cert: "",
    state: "Online",
    role: ["origin", "edge"],
    load,
    version: "test",
    started_at: 0,
    incarnation: 1,
    last_heartbeat: 0,
    ...over,
  };
}

/** A mutable fake of what the managers read; `self` is node-3 unless told otherwise. */
class FakeView implements ClusterView {
  selfId = "node-3";
  list: { summary: NodeSummary; stale: boolean }[] = [];
  origins = new Map<string, string>();
  carriers = new Map<string, Set<string>>();
  isSynced = true;

  constructor(summaries: NodeSummary[]) {
    this.list = summaries.map((summary) => ({ summary, stale: false }));
  }

  nodes() {
    return this.list;
  }
  originOf(path: string): string | null {
    return this.origins.get(path) ?? null;
  }
  carriersOf(path: string): Set<string> {
    return new Set(this.carriers.get(path) ?? []);
  }
  synced(): boolean {
    return this.isSynced;
  }
  canonicalPath(raw: string): string {
    return parseStreamPath(raw).path;
  }
  /** `live/x` is published on `origin` and relayed by `relays`. */
  live(path: string, origin: string, ...relays: string[]): this {
    this.origins.set(path, origin);
    this.carriers.set(path, new Set([origin, ...relays]));
    return this;
  }
}

function managers(view: FakeView, now = () => 1_000_000) {
  const allocation = new AllocationManager(view, THRESHOLDS, 30_000, 3, now);
  return { allocation, redirect: new RedirectManager(view, THRESHOLDS, allocation) };
}

function assertApiError(fn: () => unknown, status: number, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ApiError, `expected an ApiError, got ${err}`);
    assert.equal(err.status, status);
    assert.match(err.message, message);
    return true;
  });
}

Deno.test("redirect: a node under its thresholds serves its players itself", () => {
  const view = new FakeView([summary(1), summary(2), summary(3, { ...IDLE, subscriber_count: 2000 })]);
  view.live("live/x", "node-1");
  const { allocation, redirect } = managers(view);
  assert.equal(redirect.selfOverloaded(), false, "at the threshold is not over it");
  const d = redirect.decision("live/x", "http-flv");
  assert.equal(d.redirect, false);
  assert.equal(d.overloaded, false);
  assert.equal(d.target, null);
  assert.equal(d.stream_path, "live/x");
  assert.deepEqual(d.load, view.list[2]!.summary.load);
  for (const p of ["http-flv", "ws-flv", "rtmp"] as const) {
    assert.equal(redirect.redirectUrl("live/x", new URLSearchParams("token=t"), p), null, p);
  }
  assert.equal(allocation.tickets.size, 0, "no redirect, no ticket");
  assert.equal(redirect.counters.redirects, 0);
});

Deno.test("redirect: an overloaded node sends players to a node carrying the stream first", () => {
  // node-1 is the origin, node-2 relays it but is busier than the idle node-4.
  const view = new FakeView([
    summary(1, { ...IDLE, cpu_percent: 60 }),
    summary(2, { ...IDLE, subscriber_count: 1500 }),
    summary(3, HOT),
    summary(4),
  ]).live("live/x", "node-1", "node-2");
  const { allocation, redirect } = managers(view);
  assert.equal(redirect.selfOverloaded(), true);
  const d = redirect.decision("live/x", "http-flv");
  assert.equal(d.overloaded, true);
  assert.equal(d.redirect, true);
  assert.equal(d.target?.server_id, "node-1", "the least loaded carrier");
  assert.equal(d.target?.address, "127.0.0.1:8180");
  assert.equal(d.target?.url, `http://127.0.0.1:8180/live/x.flv?${REDIRECT_MARKER}=1`);
  assert.match(d.reason, /carries/);
  // Asking for a decision reserves nothing; an actual redirect reserves the target.
  assert.equal(allocation.tickets.size, 0);
  assert.ok(redirect.redirectUrl("live/x", new URLSearchParams(), "http-flv"));
  assert.deepEqual(allocation.tickets.pending(1_000_000), new Map([["node-1", 1]]));

  // A stream nobody carries yet: the least loaded other node.
  const other = redirect.decision("live/new", "http-flv");
  assert.equal(other.target?.server_id, "node-4");
  assert.match(other.reason, /least loaded/);

  // The origin carrier overloaded: the relaying edge, though busier than node-4.
  view.list[0]!.summary = summary(1, { ...IDLE, cpu_percent: 90 });
  assert.equal(redirect.decision("live/x", "http-flv").target?.server_id, "node-2");
});

Deno.test("redirect: never to itself, nor to a node that is overloaded, stale, Suspect, Offline or origin-only", () => {
  const view = new FakeView([
    summary(1, { ...IDLE, egress_mbps: 9000 }),
    summary(2, IDLE, { state: "Suspect" }),
    summary(3, HOT),
    summary(4, IDLE, { state: "Offline" }),
    summary(5, IDLE, { role: ["origin"] }),
    summary(6),
  ]).live("live/x", "node-3");
  view.list[5]!.stale = true;
  const { allocation, redirect } = managers(view);
  const d = redirect.decision("live/x", "rtmp");
  assert.equal(d.overloaded, true);
  assert.equal(d.redirect, false);
  assert.equal(d.target, null);
  assert.match(d.reason, /no other node/);
  assert.equal(redirect.redirectUrl("live/x", new URLSearchParams(), "rtmp"), null);
  assert.equal(allocation.tickets.size, 0);
  // node-6 becomes fresh: it is the target, though node-3 (self) is the origin.
  view.list[5]!.stale = false;
  assert.equal(redirect.decision("live/x", "rtmp").target?.server_id, "node-6");
});

Deno.test("redirect: a request carrying the marker is never redirected again", () => {
  const view = new FakeView([summary(1), summary(3, HOT)]).live("live/x", "node-1");
  const { allocation, redirect } = managers(view);
  for (const p of ["http-flv", "ws-flv", "rtmp"] as const) {
    assert.equal(
      redirect.redirectUrl("live/x", new URLSearchParams(`${REDIRECT_MARKER}=1&token=t`), p),
      null,
      p,
    );
    assert.equal(
      redirect.redirectUrl("live/x", new URLSearchParams(`${REDIRECT_MARKER}=`), p),
      null,
      `${p} empty`,
    );
  }
  assert.equal(redirect.counters.redirects, 0);
  assert.equal(allocation.tickets.size, 0);
  assert.ok(
    redirect.redirectUrl("live/x", new URLSearchParams("token=t"), "http-flv"),
    "without it: redirected",
  );
  assert.equal(redirect.counters.redirects, 1);
});

Deno.test("redirect: URLs per protocol keep the query and add cluster_redirected=1", () => {
  const view = new FakeView([summary(1), summary(3, HOT)]).live("live/x", "node-1");
  const { redirect } = managers(view);
  const params = () => new URLSearchParams("token=a%2Bb&x=1");
  const q = `token=a%2Bb&x=1&${REDIRECT_MARKER}=1`;
  assert.equal(redirect.redirectUrl("live/x", params(), "http-flv"), `http://127.0.0.1:8180/live/x.flv?${q}`);
  assert.equal(redirect.redirectUrl("live/x", params(), "ws-flv"), `ws://127.0.0.1:8180/live/x.flv?${q}`);
  assert.equal(redirect.redirectUrl("live/x", params(), "rtmp"), `rtmp://127.0.0.1:1935/live/x?${q}`);
  // Without a query, only the marker.
  assert.equal(
    redirect.redirectUrl("live/x", new URLSearchParams(), "rtmp"),
    `rtmp://127.0.0.1:1935/live/x?${REDIRECT_MARKER}=1`,
  );
  // The decision API normalises protocol names the way clients spell them.
  const d = (p: string) => redirect.decision("live/x", p, params());
  assert.equal(d("ws").protocol, "ws-flv");
  assert.equal(d("RTMP").target?.url, `rtmp://127.0.0.1:1935/live/x?${q}`);
  assert.equal(d("webrtc").target?.url, `http://127.0.0.1:8180/live/x.flv?${q}`);
  assert.equal(d("unknown").protocol, "http-flv");
  // A stream path given with a leading slash / nested app comes back canonical.
  assert.equal(
    redirect.decision("/live/sub/x", "http-flv").target?.url.split("?")[0],
    "http://127.0.0.1:8180/live/sub/x.flv",
  );
  // A node that does not advertise an RTMP address: its host:port from the summary.
  view.list[0]!.summary = summary(1, IDLE, { rtmp_addr: "" });
  assert.equal(
    redirect.redirectUrl("live/x", new URLSearchParams(), "rtmp"),
    `rtmp://127.0.0.1:8180/live/x?${REDIRECT_MARKER}=1`,
  );
});

Deno.test("redirect and allocation: an invalid stream_path is ApiError 400", () => {
  const view = new FakeView([summary(1), summary(3, HOT)]);
  const { allocation, redirect } = managers(view);
  for (const bad of ["", "nope", "live/../x", "live/a b", "a/b/c/d/e", "live/%zz"]) {
    assertApiError(() => redirect.decision(bad, "http-flv"), 400, /invalid stream_path/);
    for (const kind of ["publish", "play"] as const) {
      assertApiError(
        () => allocation.allocate(kind, { stream_path: bad, protocol: "rtmp" }),
        400,
        /invalid stream_path/,
      );
    }
  }
  assert.equal(allocation.tickets.size, 0);
});

Deno.test("allocation: before the first sync it is ApiError 503, after it answers", () => {
  const view = new FakeView([summary(1), summary(3)]);
  view.isSynced = false;
  const { allocation, redirect } = managers(view);
  for (const kind of ["publish", "play"] as const) {
    assertApiError(() => allocation.allocate(kind, { stream_path: "live/x", protocol: "rtmp" }), 503, /sync/);
    // ... also for a path that is invalid: unavailability is reported first.
    assertApiError(() => allocation.allocate(kind, { stream_path: "nope", protocol: "rtmp" }), 503, /sync/);
  }
  assert.equal(allocation.counters.allocations, 0);
  // The redirect gate does not depend on the sync: a node under its thresholds just serves.
  assert.equal(redirect.decision("live/x", "http-flv").redirect, false);
  view.isSynced = true;
  const d = allocation.allocate("play", { stream_path: "live/x", protocol: "ws" });
  assert.equal(d.protocol, "ws-flv");
  assert.equal(d.candidates[0]?.url, "ws://127.0.0.1:8180/live/x.flv");
});

Deno.test("allocation: play lists carriers first, never an overloaded node while a healthy one exists", () => {
  const view = new FakeView([
    summary(1, { ...IDLE, cpu_percent: 50 }),
    summary(2),
    summary(3, HOT),
  ]).live("live/x", "node-1");
  const { allocation } = managers(view);
  const d = allocation.allocate("play", { stream_path: "live/x", protocol: "http-flv", limit: 10 });
  assert.deepEqual(d.candidates.map((c) => [c.server_id, c.carries_stream]), [["node-1", true], [
    "node-2",
    false,
  ]]);
  assert.equal(d.ticket?.server_id, "node-1");
  assert.equal(d.candidates[0]!.url, "http://127.0.0.1:8180/live/x.flv");
  // Publish of the live stream: its origin only, with an RTMP URL.
  const p = allocation.allocate("publish", { stream_path: "live/x", protocol: "whatever" });
  assert.deepEqual(p.candidates.map((c) => c.server_id), ["node-1"]);
  assert.equal(p.protocol, "rtmp");
  assert.equal(p.candidates[0]!.url, "rtmp://127.0.0.1:1935/live/x");
  assert.match(p.reason, /origin/);
  // The limit is capped by candidate_limit (3) and honoured below it.
  view.list.push({ summary: summary(4), stale: false }, { summary: summary(5), stale: false });
  assert.equal(
    allocation.allocate("publish", { stream_path: "live/y", protocol: "rtmp", limit: 100 }).candidates.length,
    3,
  );
  assert.equal(
    allocation.allocate("publish", { stream_path: "live/y", protocol: "rtmp", limit: 1 }).candidates.length,
    1,
  );
});
