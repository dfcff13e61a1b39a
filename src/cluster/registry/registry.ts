/**
 * SessionRegistry: which node publishes which stream, cluster-wide. Pure state, no I/O.
 *
 * Records are keyed by (origin, stream path) and ordered by (origin_incarnation, version):
 * an update that is not newer than what we hold is ignored, so a late or replayed message
 * can neither resurrect an unpublished stream (its tombstone is newer) nor overwrite a newer
 * state. Tombstones are kept for `tombstoneTtlMs`, long enough to outlive any delayed copy.
 * Records of an Offline node, or of an older incarnation of a restarted node, are dropped
 * and refused while that holds.
 */

import type { SessionRecord } from "../protocol/types.ts";

export interface RegistryOptions {
  tombstoneTtlMs: number;
}

interface Entry {
  record: SessionRecord;
  /** When a tombstone was recorded (Unix ms); 0 for active records. */
  endedAt: number;
}

function key(originId: string, path: string): string {
  return `${originId}\u0000${path}`;
}

function newer(a: SessionRecord, b: SessionRecord): boolean {
  return a.origin_incarnation !== b.origin_incarnation
    ? a.origin_incarnation > b.origin_incarnation
    : a.version > b.version;
}

export class SessionRegistry {
  readonly #entries = new Map<string, Entry>();
  /** Origins whose records we refuse: Offline nodes (value Infinity) or minimum incarnation. */
  readonly #minIncarnation = new Map<string, number>();

  constructor(readonly options: RegistryOptions) {}

  /** Applies a record if it is newer than what we hold; true if it changed anything. */
  apply(record: SessionRecord, now: number): boolean {
    const floor = this.#minIncarnation.get(record.origin_id);
    if (floor !== undefined && record.origin_incarnation < floor) return false;
    const k = key(record.origin_id, record.stream_path);
    const cur = this.#entries.get(k);
    if (cur && !newer(record, cur.record)) return false;
    this.#entries.set(k, {
      record: { ...record, subscribe_nodes: [...record.subscribe_nodes] },
      endedAt: record.active ? 0 : now,
    });
    return true;
  }

  /** Drops every record of `originId` and refuses its records until it is heard from again. */
  invalidateOrigin(originId: string): SessionRecord[] {
    this.#minIncarnation.set(originId, Number.POSITIVE_INFINITY);
    return this.#dropWhere((r) => r.origin_id === originId);
  }

  /** The origin is alive as `incarnation`: accept its records again, drop older incarnations'. */
  admitOrigin(originId: string, incarnation: number): SessionRecord[] {
    this.#minIncarnation.set(originId, incarnation);
    return this.#dropWhere((r) => r.origin_id === originId && r.origin_incarnation < incarnation);
  }

  #dropWhere(pred: (r: SessionRecord) => boolean): SessionRecord[] {
    const dropped: SessionRecord[] = [];
    for (const [k, e] of this.#entries) {
      if (pred(e.record)) {
        this.#entries.delete(k);
        if (e.record.active) dropped.push(e.record);
      }
    }
    return dropped;
  }

  /** Adds or removes `nodeId` in the active record(s) for `path`; returns the updated record. */
  participate(path: string, nodeId: string, subscribe: boolean): SessionRecord | null {
    let out: SessionRecord | null = null;
    for (const e of this.#entries.values()) {
      const r = e.record;
      if (r.stream_path !== path || !r.active) continue;
      const has = r.subscribe_nodes.includes(nodeId);
      if (subscribe && !has) r.subscribe_nodes.push(nodeId), r.subscribe_nodes.sort();
      if (!subscribe && has) r.subscribe_nodes = r.subscribe_nodes.filter((n) => n !== nodeId);
      out = r;
    }
    return out;
  }

  /** The live session of `path` (the most recently started one if two origins claim it). */
  lookup(path: string): SessionRecord | null {
    let best: SessionRecord | null = null;
    for (const e of this.#entries.values()) {
      const r = e.record;
      if (r.stream_path === path && r.active && (!best || r.started_at > best.started_at)) best = r;
    }
    return best;
  }

  get(originId: string, path: string): SessionRecord | null {
    return this.#entries.get(key(originId, path))?.record ?? null;
  }

  /** Active sessions sorted by stream_path. */
  active(): SessionRecord[] {
    return [...this.#entries.values()].filter((e) => e.record.active).map((e) => e.record)
      .sort((a, b) =>
        a.stream_path < b.stream_path
          ? -1
          : a.stream_path > b.stream_path
          ? 1
          : a.origin_id < b.origin_id
          ? -1
          : 1
      );
  }

  /** Active sessions and live tombstones: what a peer needs to converge. */
  all(): SessionRecord[] {
    return [...this.#entries.values()].map((e) => e.record);
  }

  /** Forgets tombstones older than the TTL. */
  prune(now: number): void {
    for (const [k, e] of this.#entries) {
      if (!e.record.active && now - e.endedAt > this.options.tombstoneTtlMs) this.#entries.delete(k);
    }
  }
}
