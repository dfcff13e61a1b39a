/**
 * Node ranking for allocation and redirect, as a pure function of (nodes, thresholds,
 * pending tickets, where the stream is). No clock, no I/O: table tests cover it.
 *
 * - Only Online, non-stale nodes with the right role are candidates.
 * - A node is overloaded when any of cpu, egress or subscribers (pending tickets counted as
 *   subscribers) is above its threshold.
 * - Score = the highest utilisation of the three (0 = idle, 1 = at a threshold) plus
 *   `TICKET_WEIGHT` per pending ticket, so a burst of allocations fans out instead of piling
 *   onto the node that looked idlest a moment ago. Lower is better; ties go by server_id.
 * - Play: nodes already carrying the stream (its origin, or an edge relaying it) come first.
 * - Publish of a live stream: its current origin only (one origin per stream).
 * - When every candidate is overloaded, the least loaded are still returned, marked so.
 */

import type { NodeLoad } from "../protocol/types.ts";

export const TICKET_WEIGHT = 0.05;

export interface Thresholds {
  cpuPercent: number;
  egressMbps: number;
  subscribers: number;
}

export interface NodeView {
  serverId: string;
  state: "Online" | "Suspect" | "Offline";
  stale: boolean;
  roles: readonly string[];
  load: NodeLoad;
}

export interface RankInput {
  kind: "publish" | "play";
  nodes: readonly NodeView[];
  thresholds: Thresholds;
  /** Outstanding tickets per server_id. */
  pending: ReadonlyMap<string, number>;
  /** The stream's current origin, if it is live. */
  originId: string | null;
  /** Nodes that carry the stream now (origin and relaying edges). */
  carriers: ReadonlySet<string>;
  limit: number;
}

export interface RankedNode {
  serverId: string;
  score: number;
  overloaded: boolean;
  carriesStream: boolean;
  pending: number;
  load: NodeLoad;
}

export function isOverloaded(load: NodeLoad, t: Thresholds, pending = 0): boolean {
  return load.cpu_percent > t.cpuPercent || load.egress_mbps > t.egressMbps ||
    load.subscriber_count + pending > t.subscribers;
}

export function utilisation(load: NodeLoad, t: Thresholds, pending = 0): number {
  return Math.max(
    load.cpu_percent / t.cpuPercent,
    load.egress_mbps / t.egressMbps,
    (load.subscriber_count + pending) / t.subscribers,
  );
}

export function rankNodes(input: RankInput): RankedNode[] {
  const { kind, thresholds: t } = input;
  const role = kind === "publish" ? "origin" : "edge";
  const ranked: RankedNode[] = [];
  for (const n of input.nodes) {
    if (n.state !== "Online" || n.stale) continue;
    const isOrigin = n.serverId === input.originId;
    if (kind === "publish" && input.originId !== null && !isOrigin) continue;
    // The origin can always serve its own stream; other nodes need the edge role to play.
    if (!n.roles.includes(role) && !(kind === "play" && isOrigin)) continue;
    const pending = input.pending.get(n.serverId) ?? 0;
    ranked.push({
      serverId: n.serverId,
      score: utilisation(n.load, t, pending) + TICKET_WEIGHT * pending,
      overloaded: isOverloaded(n.load, t, pending),
      carriesStream: input.carriers.has(n.serverId),
      pending,
      load: n.load,
    });
  }
  ranked.sort((a, b) =>
    Number(a.overloaded) - Number(b.overloaded) ||
    (kind === "play" ? Number(b.carriesStream) - Number(a.carriesStream) : 0) ||
    a.score - b.score ||
    (a.serverId < b.serverId ? -1 : a.serverId > b.serverId ? 1 : 0)
  );
  const healthy = ranked.filter((r) => !r.overloaded);
  return (healthy.length > 0 ? healthy : ranked).slice(0, Math.max(0, input.limit));
}
