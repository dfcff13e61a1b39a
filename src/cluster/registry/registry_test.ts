/**
 * SessionRegistry is pure state: each test feeds records and explicit times and checks what
 * the registry holds. Ordering is (origin_incarnation, version); tombstones outlive replays
 * for `tombstoneTtlMs`; Offline origins are refused until admitted again.
 */

import assert from "node:assert/strict";
import type { SessionRecord } from "../protocol/types.ts";
import { SessionRegistry } from "./registry.ts";

const TTL = 60_000;

function rec(path: string, over: Partial<SessionRecord> = {}): SessionRecord {
  return {
    stream_path: path,
    origin_id: "o1",
    origin_address: "10.0.0.1:8180",
    origin_incarnation: 1,
    publisher_protocol: "rtmp",
    video_codec: "h264",
    audio_codec: "aac",
    width: 320,
    height: 240,
    started_at: 1000,
    subscribe_nodes: [],
    version: 1,
    active: true,
    ...over,
  };
}

function paths(r: SessionRegistry): string[] {
  return r.active().map((s) => `${s.stream_path}@${s.origin_id}`);
}

Deno.test("registry: a newer version replaces, an older or equal one is ignored", () => {
  const r = new SessionRegistry({ tombstoneTtlMs: TTL });
  assert.equal(r.apply(rec("live/a", { version: 2, width: 640 }), 0), true);
  assert.equal(r.apply(rec("live/a", { version: 1, width: 111 }), 0), false, "older");
  assert.equal(r.apply(rec("live/a", { version: 2, width: 222 }), 0), false, "equal (a replay)");
  assert.equal(r.get("o1", "live/a")?.width, 640);
  assert.equal(r.apply(rec("live/a", { version: 3, width: 1280 }), 0), true);
  assert.equal(r.get("o1", "live/a")?.width, 1280);
});

Deno.test("registry: a higher origin incarnation wins regardless of version", () => {
  const r = new SessionRegistry({ tombstoneTtlMs: TTL });
  r.apply(rec("live/a", { origin_incarnation: 1, version: 50 }), 0);
  // The restarted origin counts versions from 1 again.
  assert.equal(r.apply(rec("live/a", { origin_incarnation: 2, version: 1, started_at: 9 }), 0), true);
  assert.equal(r.get("o1", "live/a")?.origin_incarnation, 2);
  // A late update from the old process, even with a big version, loses.
  assert.equal(r.apply(rec("live/a", { origin_incarnation: 1, version: 99 }), 0), false);
  assert.equal(r.get("o1", "live/a")?.started_at, 9);
});

Deno.test("registry: a tombstone ends the session and a replayed older update cannot resurrect it", () => {
  const r = new SessionRegistry({ tombstoneTtlMs: TTL });
  r.apply(rec("live/a", { version: 1 }), 0);
  assert.equal(r.apply(rec("live/a", { version: 2, active: false }), 100), true);
  assert.deepEqual(r.active(), []);
  assert.equal(r.lookup("live/a"), null);
  assert.equal(r.get("o1", "live/a")?.active, false, "the tombstone is kept");
  assert.equal(r.all().length, 1, "tombstones travel to peers so they converge");
  // The publish message arriving late (or replayed) is ignored.
  assert.equal(r.apply(rec("live/a", { version: 1 }), 200), false);
  assert.deepEqual(r.active(), []);
  // A real republish comes with a newer version and is accepted.
  assert.equal(r.apply(rec("live/a", { version: 3 }), 300), true);
  assert.deepEqual(paths(r), ["live/a@o1"]);
});

Deno.test("registry: a tombstone arriving before the record it ends still wins", () => {
  const r = new SessionRegistry({ tombstoneTtlMs: TTL });
  assert.equal(r.apply(rec("live/a", { version: 2, active: false }), 0), true);
  assert.equal(r.apply(rec("live/a", { version: 1 }), 10), false);
  assert.deepEqual(r.active(), []);
});

Deno.test("registry: prune forgets tombstones only after the TTL, never active records", () => {
  const r = new SessionRegistry({ tombstoneTtlMs: 1000 });
  r.apply(rec("live/live", { started_at: 0 }), 0);
  r.apply(rec("live/gone", { version: 2, active: false }), 5000);
  r.prune(6000); // exactly TTL after the tombstone: kept
  assert.equal(r.get("o1", "live/gone")?.active, false);
  r.prune(6001);
  assert.equal(r.get("o1", "live/gone"), null);
  assert.deepEqual(paths(r), ["live/live@o1"], "active records are never pruned");
  r.prune(1e12);
  assert.deepEqual(paths(r), ["live/live@o1"]);
  // Once pruned, the tombstone no longer protects against a replay: the TTL must outlive
  // any delayed copy (the cluster uses max(60 s, 4 × heartbeat_ttl)).
  assert.equal(r.apply(rec("live/gone", { version: 1 }), 7000), true);
});

Deno.test("registry: the tombstone age counts from when it was recorded here", () => {
  const r = new SessionRegistry({ tombstoneTtlMs: 1000 });
  r.apply(rec("live/a", { version: 1, active: false }), 0);
  // A newer tombstone (e.g. after participation changes) restarts the clock.
  r.apply(rec("live/a", { version: 2, active: false }), 900);
  r.prune(1500);
  assert.notEqual(r.get("o1", "live/a"), null);
  r.prune(1901);
  assert.equal(r.get("o1", "live/a"), null);
});

Deno.test("registry: invalidateOrigin drops the origin's records and refuses new ones", () => {
  const r = new SessionRegistry({ tombstoneTtlMs: TTL });
  r.apply(rec("live/a"), 0);
  r.apply(rec("live/b", { version: 2, active: false }), 0);
  r.apply(rec("live/c", { origin_id: "o2" }), 0);
  const dropped = r.invalidateOrigin("o1");
  assert.deepEqual(
    dropped.map((d) => d.stream_path),
    ["live/a"],
    "only active sessions are reported as ended",
  );
  assert.equal(r.get("o1", "live/b"), null, "its tombstones go too");
  assert.deepEqual(paths(r), ["live/c@o2"], "other origins are untouched");
  // Gossip about the Offline node is refused, whatever the incarnation or version.
  assert.equal(r.apply(rec("live/a", { version: 10 }), 0), false);
  assert.equal(r.apply(rec("live/a", { origin_incarnation: 99, version: 10 }), 0), false);
  assert.deepEqual(paths(r), ["live/c@o2"]);
  assert.deepEqual(r.invalidateOrigin("nobody"), []);
});

Deno.test("registry: admitOrigin accepts the origin again from that incarnation on", () => {
  const r = new SessionRegistry({ tombstoneTtlMs: TTL });
  r.apply(rec("live/a", { origin_incarnation: 5 }), 0);
  r.invalidateOrigin("o1");
  assert.deepEqual(r.admitOrigin("o1", 5), [], "nothing left to drop");
  assert.equal(r.apply(rec("live/a", { origin_incarnation: 4, version: 9 }), 0), false, "older process");
  assert.equal(r.apply(rec("live/a", { origin_incarnation: 5, version: 1 }), 0), true, "same process back");
  assert.deepEqual(paths(r), ["live/a@o1"]);
});

Deno.test("registry: admitOrigin with a new incarnation drops the old process's sessions", () => {
  const r = new SessionRegistry({ tombstoneTtlMs: TTL });
  r.apply(rec("live/a", { origin_incarnation: 1 }), 0);
  r.apply(rec("live/b", { origin_incarnation: 2 }), 0);
  r.apply(rec("live/c", { origin_incarnation: 1, version: 3, active: false }), 0);
  r.apply(rec("live/x", { origin_id: "o2", origin_incarnation: 1 }), 0);
  const dropped = r.admitOrigin("o1", 2);
  assert.deepEqual(dropped.map((d) => d.stream_path), ["live/a"]);
  assert.equal(r.get("o1", "live/c"), null);
  assert.deepEqual(paths(r), ["live/b@o1", "live/x@o2"]);
  assert.equal(r.apply(rec("live/a", { origin_incarnation: 1, version: 7 }), 0), false, "late copy refused");
});

Deno.test("registry: records of an origin never admitted or invalidated are accepted", () => {
  const r = new SessionRegistry({ tombstoneTtlMs: TTL });
  assert.equal(r.apply(rec("live/a", { origin_id: "fresh", origin_incarnation: 0 }), 0), true);
});

Deno.test("registry: participation adds and removes a node in the active record, sorted, idempotent", () => {
  const r = new SessionRegistry({ tombstoneTtlMs: TTL });
  r.apply(rec("live/a"), 0);
  assert.deepEqual(r.participate("live/a", "edge-2", true)?.subscribe_nodes, ["edge-2"]);
  assert.deepEqual(r.participate("live/a", "edge-1", true)?.subscribe_nodes, ["edge-1", "edge-2"]);
  assert.deepEqual(r.participate("live/a", "edge-1", true)?.subscribe_nodes, ["edge-1", "edge-2"]);
  assert.deepEqual(r.get("o1", "live/a")?.subscribe_nodes, ["edge-1", "edge-2"]);
  assert.deepEqual(r.participate("live/a", "edge-2", false)?.subscribe_nodes, ["edge-1"]);
  assert.deepEqual(r.participate("live/a", "edge-9", false)?.subscribe_nodes, ["edge-1"]);
  assert.equal(r.get("o1", "live/a")?.version, 1, "participation alone does not re-version");
});

Deno.test("registry: participation for an unknown or ended stream changes nothing", () => {
  const r = new SessionRegistry({ tombstoneTtlMs: TTL });
  assert.equal(r.participate("live/none", "edge-1", true), null);
  r.apply(rec("live/a", { version: 2, active: false }), 0);
  assert.equal(r.participate("live/a", "edge-1", true), null);
  assert.deepEqual(r.get("o1", "live/a")?.subscribe_nodes, []);
});

Deno.test("registry: a newer record from the origin replaces the subscriber list", () => {
  const r = new SessionRegistry({ tombstoneTtlMs: TTL });
  r.apply(rec("live/a"), 0);
  r.participate("live/a", "edge-1", true);
  r.apply(rec("live/a", { version: 2, subscribe_nodes: ["edge-3"] }), 0);
  assert.deepEqual(r.get("o1", "live/a")?.subscribe_nodes, ["edge-3"]);
});

Deno.test("registry: stored records are copies of what was applied", () => {
  const r = new SessionRegistry({ tombstoneTtlMs: TTL });
  const input = rec("live/a", { subscribe_nodes: ["e1"] });
  r.apply(input, 0);
  input.subscribe_nodes.push("mutated");
  input.width = 1;
  assert.deepEqual(r.get("o1", "live/a")?.subscribe_nodes, ["e1"]);
  assert.equal(r.get("o1", "live/a")?.width, 320);
});

Deno.test("registry: active() is sorted by stream_path, then origin", () => {
  const r = new SessionRegistry({ tombstoneTtlMs: TTL });
  for (
    const [p, o] of [["live/b", "o1"], ["app/z", "o2"], ["live/a", "o2"], ["live/a", "o1"], ["Live/c", "o1"]]
  ) {
    r.apply(rec(p!, { origin_id: o! }), 0);
  }
  r.apply(rec("live/0", { version: 2, active: false }), 0);
  // Code-unit order, not locale order ("L" < "a" < "l"): every node sorts the same way.
  assert.deepEqual(paths(r), ["Live/c@o1", "app/z@o2", "live/a@o1", "live/a@o2", "live/b@o1"]);
  assert.equal(r.all().length, 6);
});

Deno.test("registry: lookup picks the most recently started live session of a path", () => {
  const r = new SessionRegistry({ tombstoneTtlMs: TTL });
  r.apply(rec("live/a", { origin_id: "o1", started_at: 100 }), 0);
  r.apply(rec("live/a", { origin_id: "o2", started_at: 200 }), 0);
  assert.equal(r.lookup("live/a")?.origin_id, "o2");
  r.apply(rec("live/a", { origin_id: "o2", started_at: 200, version: 2, active: false }), 0);
  assert.equal(r.lookup("live/a")?.origin_id, "o1");
  assert.equal(r.lookup("live/other"), null);
});
