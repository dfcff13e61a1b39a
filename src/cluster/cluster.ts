/**
 * The cluster side of a node, wired explicitly: membership (SyncManager), the session
 * registry and the hooks that feed it, the load monitor, the /cluster/api routes, and the
 * gates the media servers consult (edge-only nodes refuse publishes). The relay, allocation
 * and redirect managers plug into the seams left here (`relay`, `allocation`, `redirect`).
 */

import type { Hono } from "hono";
import type { Config } from "../config/mod.ts";
import type { PlayGate } from "../http/mod.ts";
import type { Logger } from "../log/mod.ts";
import { Emitter, parseStreamPath, type StreamHub, type StreamPath } from "../media/mod.ts";
import type { RtmpGate } from "../rtmp/mod.ts";
import { buildClusterApi, type ClusterApiService, type LocalStatus } from "./api/routes.ts";
import { AllocationManager, type ClusterView, RedirectManager } from "./allocation/manager.ts";
import { ClusterHooks } from "./hooks.ts";
import { LoadMonitor } from "./load.ts";
import { PeerClient } from "./protocol/peer_client.ts";
import { SessionRegistry } from "./registry/registry.ts";
import { SyncManager } from "./sync/manager.ts";
import { RelayManager } from "./relay/mod.ts";
import type { RelayTransport } from "./transport/mod.ts";
import { NodeState, type NodeSummary, type SessionRecord } from "./protocol/types.ts";

export const VERSION = "0.1.0";

export interface ClusterIdentity {
  serverId: string;
  address: string;
}

export type ClusterEvents = {
  /** A session this node knew of is gone (unpublished, or its origin went Offline). */
  sessionEnded: (record: SessionRecord) => void;
  /** A session appeared or changed. */
  sessionUpdated: (record: SessionRecord) => void;
  /** A peer went Offline: relays sourced from it must be cleaned up. */
  nodeOffline: (serverId: string) => void;
};

export class Cluster implements AsyncDisposable {
  readonly events = new Emitter<ClusterEvents>();
  readonly incarnation = Date.now();
  readonly startedAt = Date.now();
  readonly client: PeerClient;
  readonly registry: SessionRegistry;
  readonly sync: SyncManager;
  readonly hooks: ClusterHooks;
  readonly load: LoadMonitor;
  readonly roles: readonly ("origin" | "edge")[];
  relay: RelayManager | null = null;
  readonly allocation: AllocationManager;
  readonly redirect: RedirectManager;
  /** host:port of this node's RTMP listener, advertised so allocation can hand out RTMP URLs. */
  rtmpAddress = "";
  readonly #pruneTimer: ReturnType<typeof setInterval>;

  constructor(
    readonly config: Config,
    readonly identity: ClusterIdentity,
    readonly hub: StreamHub,
    readonly log: Logger,
  ) {
    const sync = config.cluster.sync;
    this.roles = config.cluster.role.length === 0 ? ["origin", "edge"] : config.cluster.role;
    this.client = new PeerClient(sync.internal_api_key);
    this.registry = new SessionRegistry({ tombstoneTtlMs: Math.max(60_000, sync.heartbeat_ttl * 4000) });
    this.load = new LoadMonitor(hub, config.cluster.test_load);
    this.sync = new SyncManager(
      {
        serverId: identity.serverId,
        address: identity.address,
        seeds: sync.seed_servers,
        heartbeatIntervalMs: sync.heartbeat_interval * 1000,
        syncIntervalMs: sync.sync_interval * 1000,
        heartbeatTtlMs: sync.heartbeat_ttl * 1000,
        suspectThreshold: sync.suspect_threshold,
        offlineThreshold: sync.offline_threshold,
      },
      this.client,
      {
        selfSummary: () => this.#selfSummary(),
        sessions: () => this.registry.all(),
        mergeSessions: (records) => this.receiveSessions(records),
      },
      log.child({ svc: "sync" }),
    );
    this.hooks = new ClusterHooks(
      { serverId: identity.serverId, address: identity.address, incarnation: this.incarnation },
      hub,
      this.registry,
      this.client,
      () => this.sync.peerAddresses(),
      log.child({ svc: "hooks" }),
    );
    this.sync.events.on("transition", (t, summary) => {
      if (t.to === NodeState.Offline) {
        for (const r of this.registry.invalidateOrigin(t.serverId)) {
          this.log.info("session dropped: origin offline", { stream: r.stream_path, origin: r.origin_id });
          this.events.emit("sessionEnded", r);
        }
        this.events.emit("nodeOffline", t.serverId);
      } else if (t.to === NodeState.Online && summary) {
        for (const r of this.registry.admitOrigin(t.serverId, summary.incarnation)) {
          this.log.info("session dropped: origin restarted", { stream: r.stream_path, origin: r.origin_id });
          this.events.emit("sessionEnded", r);
        }
      }
    });
    this.#pruneTimer = setInterval(() => this.registry.prune(Date.now()), 10_000);

    const routing = config.cluster.routing;
    const thresholds = {
      cpuPercent: routing.cpu_threshold,
      egressMbps: routing.bandwidth_threshold,
      subscribers: routing.subscriber_threshold,
    };
    const view = this.#view();
    this.allocation = new AllocationManager(
      view,
      thresholds,
      config.cluster.allocation.ticket_ttl * 1000,
      config.cluster.allocation.candidate_limit,
    );
    this.redirect = new RedirectManager(view, thresholds, this.allocation);
    // Tickets end when their client shows up: here, or on a peer (seen through the registry).
    hub.events.on("publish", (s) => this.allocation.arrived(identity.serverId, s.path, "publish"));
    hub.events.on("subscribe", (s, sub) => {
      if (sub.info.protocol !== "relay") this.allocation.arrived(identity.serverId, s.path, "play");
    });
    this.events.on("sessionUpdated", (r) => this.allocation.arrived(r.origin_id, r.stream_path, "publish"));
  }

  #view(): ClusterView {
    return {
      selfId: this.identity.serverId,
      nodes: () => {
        const now = Date.now();
        return [
          { summary: this.sync.self(), stale: false },
          ...this.sync.membership.list().map((s) => ({
            summary: s,
            stale: this.sync.membership.isStale(s.server_id, now),
          })),
        ];
      },
      originOf: (path) => this.registry.lookup(path)?.origin_id ?? null,
      carriersOf: (path) => {
        const r = this.registry.lookup(path);
        return new Set(r ? [r.origin_id, ...r.subscribe_nodes] : []);
      },
      synced: () => this.config.cluster.sync.enabled && this.sync.synced,
      canonicalPath: (raw) => parseStreamPath(raw).path,
    };
  }

  start(): void {
    if (this.config.cluster.sync.enabled) this.sync.start();
    else this.sync.synced = true;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    clearInterval(this.#pruneTimer);
    await this.relay?.[Symbol.asyncDispose]();
    this.sync[Symbol.dispose]();
    this.hooks[Symbol.dispose]();
    this.load[Symbol.dispose]();
    await Promise.resolve();
  }

  #selfSummary(): Omit<NodeSummary, "state" | "last_heartbeat"> {
    return {
      server_id: this.identity.serverId,
      address: this.identity.address,
      quic_addr: this.relay?.quicAddr() ?? "",
      rtmp_addr: this.rtmpAddress,
      quic_cert: this.relay?.quicCert() ?? "",
      role: [...this.roles],
      load: this.load.current(),
      version: VERSION,
      started_at: this.startedAt,
      incarnation: this.incarnation,
    };
  }

  /** Merges session records from a peer; this node is the only authority on its own. */
  receiveSessions(records: SessionRecord[]): { accepted: number } {
    let accepted = 0;
    const now = Date.now();
    for (const r of records) {
      if (r.origin_id === this.identity.serverId) continue;
      // Only records of origins this node knows and that are not Offline: a record naming an
      // unknown node (forged, or from a node long gone) could otherwise claim a live stream.
      const originState = this.sync.membership.state(r.origin_id);
      if (originState === null || originState === NodeState.Offline) continue;
      if (!this.registry.apply(r, now)) continue;
      accepted++;
      this.events.emit(r.active ? "sessionUpdated" : "sessionEnded", r);
    }
    return { accepted };
  }

  status(): LocalStatus {
    const relays = this.relay?.count() ?? { total: 0, active: 0 };
    return {
      server_id: this.identity.serverId,
      address: this.identity.address,
      has_sync: this.config.cluster.sync.enabled,
      node_count: 1 + this.sync.membership.list().filter((s) => s.state !== NodeState.Offline).length,
      session_count: this.registry.active().length,
      relay_session_count: relays.total,
      active_relay_sessions: relays.active,
    };
  }

  /** Starts the relay over `transport`: pulls for local players, serves pulls from edges. */
  attachRelay(transport: RelayTransport): RelayManager {
    const r = this.config.cluster.relay;
    const relay = new RelayManager(
      {
        selfId: this.identity.serverId,
        canPull: this.roles.includes("edge"),
        establishTimeoutMs: r.establish_timeout * 1000,
        releaseDelayMs: r.release_delay * 1000,
        maxRetryAttempts: r.max_retry_attempts,
        retryDelayMs: r.retry_delay * 1000,
        healthCheckIntervalMs: r.health_check_interval * 1000,
      },
      this.hub,
      this.client,
      transport,
      {
        origin: (path) => this.#remoteOrigin(path),
        isLive: (originId, path) =>
          this.registry.get(originId, path)?.active === true &&
          this.sync.membership.state(originId) !== NodeState.Offline,
      },
      this.log,
    );
    this.relay = relay;
    this.load.relayCount = () => relay.count().total;
    this.hub.missingStreamHandler = (path) => relay.ensure(path);
    this.events.on("sessionUpdated", (rec) => relay.onSessionUpdated(rec));
    this.events.on("sessionEnded", (rec) => relay.onSessionEnded(rec));
    this.events.on("nodeOffline", (id) => relay.onNodeOffline(id));
    return relay;
  }

  /** The live session of `path` on another node that is not Offline, with its relay certificate. */
  #remoteOrigin(path: StreamPath): { record: SessionRecord; peerCert: string } | null {
    const record = this.registry.lookup(path);
    if (!record || record.origin_id === this.identity.serverId) return null;
    const peer = this.sync.membership.summary(record.origin_id);
    if (!peer || peer.state === NodeState.Offline || !peer.quic_addr) return null;
    return { record, peerCert: peer.quic_cert };
  }

  /** The /cluster/api app. */
  api(): Hono {
    const service: ClusterApiService = {
      status: () => this.status(),
      summaries: () => this.sync.summaries(),
      heartbeat: (summary) => this.sync.receiveHeartbeat(summary),
      receiveSummaries: (summaries) => {
        this.sync.receiveSummaries(summaries);
        return this.sync.summaries();
      },
      sessions: () => this.registry.active(),
      receiveSessions: (records) => this.receiveSessions(records),
      participation: (path, nodeId, subscribe) => {
        const rec = this.hooks.applyParticipation(path, nodeId, subscribe);
        if (subscribe) this.allocation.arrived(nodeId, path, "play");
        if (subscribe && nodeId === this.identity.serverId && rec && rec.origin_id !== nodeId) {
          this.relay?.ensure(path as StreamPath);
        }
        return { stream_path: path, subscribe_nodes: rec?.subscribe_nodes ?? [] };
      },
      relay: () => this.relay,
      allocation: () => this.allocation,
      redirect: () => this.redirect,
    };
    return buildClusterApi(
      service,
      this.config.cluster.sync.internal_api_key,
      this.log.child({ svc: "cluster-api" }),
    );
  }

  /** Edge-only nodes refuse publishers; an overloaded node redirects new RTMP players. */
  rtmpGate(): RtmpGate {
    return {
      refusePublish: () =>
        this.roles.includes("origin") ? null : "this node is edge-only and does not accept publishers",
      redirectPlay: (path, params) => this.redirect.redirectUrl(path, params, "rtmp"),
    };
  }

  /** An overloaded node redirects new HTTP-FLV players (WebSocket cannot follow a redirect). */
  playGate(): PlayGate {
    return { redirectPlay: (path, params) => this.redirect.redirectUrl(path, params, "http-flv") };
  }
}
