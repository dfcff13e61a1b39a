/**
 * AllocationManager and RedirectManager: the I/O-free policy (`policy.ts`) applied to the
 * cluster as this node sees it (membership summaries with their loads, the session registry,
 * this node's own tickets).
 */

import type { ClusterApiService } from "../api/routes.ts";
import { ApiError } from "../api/routes.ts";
import type { NodeSummary } from "../protocol/types.ts";
import { isOverloaded, type NodeView, rankNodes, type Thresholds } from "./policy.ts";
import { TicketBook } from "./tickets.ts";
import { type ClientProtocol, clientUrl, normaliseProtocol, REDIRECT_MARKER } from "./urls.ts";

/** What the managers read of the cluster. */
export interface ClusterView {
  selfId: string;
  /** Every known node, this one included, with its staleness. */
  nodes(): { summary: NodeSummary; stale: boolean }[];
  /** The stream's live origin, or null. */
  originOf(path: string): string | null;
  /** Nodes carrying the stream now: its origin and the edges whose players pull it. */
  carriersOf(path: string): Set<string>;
  /** The first heartbeat round / full sync has completed. */
  synced(): boolean;
  /** Valid canonical stream path, or throws. */
  canonicalPath(raw: string): string;
}

export interface Counters {
  allocations: number;
  redirects: number;
}

function toView(n: { summary: NodeSummary; stale: boolean }): NodeView {
  return {
    serverId: n.summary.server_id,
    state: n.summary.state,
    stale: n.stale,
    roles: n.summary.role,
    load: n.summary.load,
  };
}

export class AllocationManager implements NonNullable<ReturnType<ClusterApiService["allocation"]>> {
  readonly tickets: TicketBook;
  readonly counters: Counters = { allocations: 0, redirects: 0 };

  constructor(
    readonly view: ClusterView,
    readonly thresholds: Thresholds,
    ticketTtlMs: number,
    readonly candidateLimit: number,
    readonly now: () => number = Date.now,
  ) {
    this.tickets = new TicketBook(ticketTtlMs);
  }

  #path(raw: string): string {
    try {
      return this.view.canonicalPath(raw);
    } catch (err) {
      throw new ApiError(400, `invalid stream_path: ${err instanceof Error ? err.message : "invalid"}`);
    }
  }

  allocate(
    kind: "publish" | "play",
    req: { stream_path: string; protocol: string; limit?: number | undefined },
  ) {
    if (!this.view.synced()) {
      throw new ApiError(503, "allocation unavailable: the node has not completed its first sync");
    }
    const path = this.#path(req.stream_path);
    const protocol: ClientProtocol = kind === "publish" ? "rtmp" : normaliseProtocol(req.protocol);
    const nodes = this.view.nodes();
    const byId = new Map(nodes.map((n) => [n.summary.server_id, n.summary]));
    const now = this.now();
    const originId = this.view.originOf(path);
    const ranked = rankNodes({
      kind,
      nodes: nodes.map(toView),
      thresholds: this.thresholds,
      pending: this.tickets.pending(now),
      originId,
      carriers: this.view.carriersOf(path),
      limit: Math.min(req.limit ?? this.candidateLimit, this.candidateLimit),
    });
    const best = ranked[0];
    const ticket = best ? this.tickets.issue(best.serverId, path, kind, now) : null;
    this.counters.allocations++;
    return {
      stream_path: path,
      kind,
      protocol,
      ticket: ticket ? { id: ticket.id, server_id: ticket.serverId, expires_at: ticket.expiresAt } : null,
      reason: ranked.length === 0
        ? "no Online node can take it"
        : kind === "publish" && originId
        ? "stream is live: its origin is the only candidate"
        : best?.overloaded
        ? "every candidate is over a threshold; least loaded first"
        : "ranked by load",
      candidates: ranked.map((r) => {
        const s = byId.get(r.serverId)!;
        return {
          server_id: r.serverId,
          address: s.address,
          rtmp_addr: s.rtmp_addr,
          url: clientUrl(s, path, protocol),
          score: Math.round(r.score * 1000) / 1000,
          overloaded: r.overloaded,
          carries_stream: r.carriesStream,
          pending_tickets: r.pending,
          load: r.load,
        };
      }),
    };
  }

  /** A client arrived on `serverId` for `path`: its ticket (if this node issued one) ends. */
  arrived(serverId: string, path: string, kind: "publish" | "play"): void {
    this.tickets.consume(serverId, path, kind);
  }
}

export class RedirectManager {
  readonly counters = { decisions: 0, redirects: 0 };

  constructor(
    readonly view: ClusterView,
    readonly thresholds: Thresholds,
    readonly allocation: AllocationManager,
  ) {}

  selfOverloaded(): boolean {
    const self = this.view.nodes().find((n) => n.summary.server_id === this.view.selfId);
    return !!self && isOverloaded(self.summary.load, this.thresholds);
  }

  /** Whether a new player of `path` should go elsewhere, where, and why. */
  decision(rawPath: string, protocolName: string, query?: URLSearchParams) {
    let path: string;
    try {
      path = this.view.canonicalPath(rawPath);
    } catch (err) {
      throw new ApiError(400, `invalid stream_path: ${err instanceof Error ? err.message : "invalid"}`);
    }
    const protocol = normaliseProtocol(protocolName);
    this.counters.decisions++;
    const self = this.view.nodes().find((n) => n.summary.server_id === this.view.selfId)?.summary;
    const base = {
      stream_path: path,
      protocol,
      overloaded: false,
      redirect: false,
      target: null,
      load: self?.load ?? null,
    };
    if (!self || !isOverloaded(self.load, this.thresholds)) {
      return { ...base, reason: "this node is under its thresholds" };
    }
    const now = this.allocation.now();
    const ranked = rankNodes({
      kind: "play",
      nodes: this.view.nodes().filter((n) => n.summary.server_id !== this.view.selfId).map(toView),
      thresholds: this.thresholds,
      pending: this.allocation.tickets.pending(now),
      originId: this.view.originOf(path),
      carriers: this.view.carriersOf(path),
      limit: 1,
    });
    const target = ranked[0];
    if (!target || target.overloaded) {
      return { ...base, overloaded: true, reason: "overloaded, but no other node is under its thresholds" };
    }
    const summary = this.view.nodes().find((n) => n.summary.server_id === target.serverId)!.summary;
    const q = new URLSearchParams(query);
    q.set(REDIRECT_MARKER, "1");
    return {
      ...base,
      overloaded: true,
      redirect: true,
      reason: target.carriesStream
        ? "overloaded; target already carries the stream"
        : "overloaded; least loaded node",
      target: {
        server_id: target.serverId,
        address: summary.address,
        url: clientUrl(summary, path, protocol, q),
      },
    };
  }

  /** For the play gates: the URL to send this player to, or null to serve it here. */
  redirectUrl(path: string, params: URLSearchParams, protocol: ClientProtocol): string | null {
    if (params.has(REDIRECT_MARKER)) return null; // at most one hop
    if (!this.selfOverloaded()) return null;
    const d = this.decision(path, protocol, params);
    if (!d.redirect || !d.target) return null;
    // Only a redirect that happens reserves capacity on the target; asking the API does not.
    this.allocation.tickets.issue(d.target.server_id, d.stream_path, "play", this.allocation.now());
    this.counters.redirects++;
    return d.target.url;
  }
}
