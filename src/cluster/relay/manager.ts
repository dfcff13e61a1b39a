/**
 * RelayManager: both sides of the relay on one node, and the rules around them.
 *
 * - A local player asks for a stream that is not here → `ensure(path)`: if the registry names
 *   a live origin on another reachable node, start one `PullRelay` for it (single flight:
 *   every later player, on any protocol, shares it).
 * - The relay closes `releaseDelayMs` after its last local player leaves; a player who
 *   arrives inside that window keeps it.
 * - The origin's session moving to another node re-points the relay; the origin going
 *   Offline stops relays sourced from it (and relays served to it).
 * - No loops: only origins (nodes whose own publisher feeds the stream) serve pulls, and a
 *   relayed stream is never registered as originating here.
 */

import type { Logger } from "../../log/mod.ts";
import type { StreamHub, StreamPath } from "../../media/mod.ts";
import type { PeerClient } from "../protocol/peer_client.ts";
import type { relayPullRequest } from "../protocol/schemas.ts";
import type { RelayTransport } from "../transport/mod.ts";
import type { SessionRecord } from "../protocol/types.ts";
import type { RelayApi } from "../api/routes.ts";
import { PullRelay } from "./pull.ts";
import { RelayServer } from "./serve.ts";
import type { z } from "zod";

/** A relay this long without frames may be moved to a newly announced origin at once. */
const REPOINT_AFTER_SILENCE_MS = 250;

export interface RelayManagerOptions {
  selfId: string;
  /** false on origin-only nodes: they never pull. */
  canPull: boolean;
  establishTimeoutMs: number;
  releaseDelayMs: number;
  maxRetryAttempts: number;
  retryDelayMs: number;
  healthCheckIntervalMs: number;
}

export interface RelayLookup {
  /** The live session of `path` whose origin is another node, with that node's relay certificate. */
  origin(path: StreamPath): { record: SessionRecord; peerCert: string } | null;
  /** Whether `originId` still has a live session of `path` and is not Offline. */
  isLive(originId: string, path: StreamPath): boolean;
}

export class RelayManager implements RelayApi, AsyncDisposable {
  readonly #pulls = new Map<StreamPath, PullRelay>();
  readonly #releaseTimers = new Map<StreamPath, ReturnType<typeof setTimeout>>();
  readonly server: RelayServer;
  readonly #offHub: (() => void)[] = [];
  readonly now: () => number = Date.now;
  #endedReconnects = 0;

  constructor(
    readonly options: RelayManagerOptions,
    readonly hub: StreamHub,
    readonly client: PeerClient,
    readonly transport: RelayTransport,
    readonly lookup: RelayLookup,
    readonly log: Logger,
  ) {
    this.server = new RelayServer(hub, options.establishTimeoutMs, log.child({ svc: "relay" }));
    transport.onStream((stream, remote) => void this.server.serve(stream, remote));
    this.#offHub.push(
      hub.events.on("subscribe", (s, sub) => {
        if (sub.info.protocol !== "relay") this.#cancelRelease(s.path);
      }),
      hub.events.on("unsubscribe", (s) => this.#maybeScheduleRelease(s.path)),
    );
  }

  /** Starts (or keeps) the relay for `path` if its origin is another node. */
  ensure(path: StreamPath): void {
    if (!this.options.canPull) return;
    const existing = this.#pulls.get(path);
    if (existing && !existing.stopped) return;
    const stream = this.hub.get(path);
    if (stream?.live && stream.publisher?.protocol !== "relay") return; // published here
    if (!this.lookup.origin(path)) return;
    const relay = new PullRelay(path, {
      selfId: this.options.selfId,
      hub: this.hub,
      client: this.client,
      transport: this.transport,
      origin: (p) => this.lookup.origin(p),
      establishTimeoutMs: this.options.establishTimeoutMs,
      maxRetryAttempts: this.options.maxRetryAttempts,
      retryDelayMs: this.options.retryDelayMs,
      healthCheckIntervalMs: this.options.healthCheckIntervalMs,
      now: this.now,
    }, this.log.child({ svc: "relay", stream: path, relay: `p${this.#pulls.size + 1}` }));
    this.#pulls.set(path, relay);
    this.log.info("relay starting", { stream: path });
    relay.done.finally(() => {
      this.#endedReconnects += relay.reconnects;
      if (this.#pulls.get(path) === relay) this.#pulls.delete(path);
      this.#cancelRelease(path);
      // Players still waiting (e.g. the stream moved while we retried): try once more, but
      // not against the origin whose retries just ran out (a new session record re-ensures).
      const next = this.lookup.origin(path);
      if (
        !relay.stopped && (this.hub.playerCount(path) > 0 || this.hub.hasWaiters(path)) && next &&
        !(relay.gaveUp && next.record.origin_id === relay.sourceNodeId)
      ) {
        this.ensure(path);
      }
    });
    // Pulled on a participation request with no local player yet: release if none comes.
    this.#maybeScheduleRelease(path);
  }

  /** A session appeared or changed somewhere in the cluster. */
  onSessionUpdated(record: SessionRecord, recheck = true): void {
    if (!record.active || record.origin_id === this.options.selfId) return;
    const path = record.stream_path as StreamPath;
    const relay = this.#pulls.get(path);
    if (relay && !relay.stopped) {
      if (!relay.sourceNodeId || relay.sourceNodeId === record.origin_id) return;
      // Move only once the current origin has let go: a second claim (e.g. a late or forged
      // record) must not take a working relay away from an origin that still publishes. A
      // crashed origin still looks live until it is Offline, but its relay goes silent: look
      // again shortly, and move if no frame came meanwhile.
      const silent = this.now() - relay.lastFrameAt > REPOINT_AFTER_SILENCE_MS;
      if (silent || !this.lookup.isLive(relay.sourceNodeId, path)) {
        relay.repoint("stream moved to another origin");
      } else if (recheck) setTimeout(() => this.onSessionUpdated(record, false), REPOINT_AFTER_SILENCE_MS);
      return;
    }
    if (this.hub.playerCount(path) > 0 || this.hub.hasWaiters(path)) this.ensure(path);
  }

  /** A session ended: a relay from that origin moves to another origin that has the stream now. */
  onSessionEnded(record: SessionRecord): void {
    const path = record.stream_path as StreamPath;
    const relay = this.#pulls.get(path);
    if (!relay || relay.stopped || relay.sourceNodeId !== record.origin_id) return;
    const next = this.lookup.origin(path);
    if (next && next.record.origin_id !== record.origin_id) relay.repoint("stream moved to another origin");
  }

  /** A peer went Offline: stop relays from it and relays we serve to it. */
  onNodeOffline(serverId: string): void {
    for (const relay of this.#pulls.values()) {
      if (relay.sourceNodeId === serverId) relay.repoint("origin offline");
    }
    this.server.dropRequestor(serverId);
  }

  /** `relay/pull` from an edge: grant a single-use session for a stream published here. */
  pull(req: z.output<typeof relayPullRequest>) {
    const path = req.stream_path as StreamPath;
    const stream = this.hub.get(path);
    const refuse = (reason: string) => {
      this.log.info("relay pull refused", { stream: path, edge: req.requestor_id, reason });
      return {
        request_id: req.request_id,
        accepted: false,
        quic_addr: this.transport.address,
        session_id: req.session_id,
        reason,
        stream_path: path,
      };
    };
    if (!stream?.live) return refuse("stream is not live on this node");
    if (stream.publisher?.protocol === "relay") {
      return refuse("this node relays the stream; it is not its origin");
    }
    if (req.requestor_id === this.options.selfId) return refuse("a node cannot pull from itself");
    try {
      this.server.grant(req.session_id, {
        path,
        requestorId: req.requestor_id,
        expiresAt: this.now() + this.options.establishTimeoutMs,
      });
    } catch (err) {
      if (err instanceof RangeError) return refuse("too many pending relay requests; retry later");
      throw err;
    }
    return {
      request_id: req.request_id,
      accepted: true,
      quic_addr: this.transport.address,
      session_id: req.session_id,
      reason: "",
      stream_path: path,
    };
  }

  #maybeScheduleRelease(path: StreamPath): void {
    const relay = this.#pulls.get(path);
    if (!relay || relay.stopped || this.hub.playerCount(path) > 0 || this.#releaseTimers.has(path)) return;
    this.#releaseTimers.set(
      path,
      setTimeout(() => {
        this.#releaseTimers.delete(path);
        if (this.hub.playerCount(path) > 0) return;
        // Players still waiting for the stream: look again later. Once served they reschedule
        // on leaving; if they give up waiting no event comes, so this timer must not lapse.
        if (this.hub.hasWaiters(path)) this.#maybeScheduleRelease(path);
        else relay.stop("released: no players");
      }, this.options.releaseDelayMs),
    );
  }

  #cancelRelease(path: StreamPath): void {
    const t = this.#releaseTimers.get(path);
    if (t !== undefined) {
      clearTimeout(t);
      this.#releaseTimers.delete(path);
    }
  }

  /** Rows for `relay/sessions`: pulls (this node as edge) then served (this node as origin). */
  sessions() {
    const pulls = [...this.#pulls.values()].map((r) => ({
      direction: "pull" as const,
      stream_path: r.path,
      state: r.state,
      session_id: r.sessionId,
      source_node_id: r.sourceNodeId,
      source_quic_addr: r.sourceQuicAddr,
      subscriber_count: this.hub.playerCount(r.path),
      frame_count: r.frames,
      bytes: r.bytes,
      reconnects: r.reconnects,
      started_at: r.startedAt,
      last_frame_at: r.lastFrameAt,
    }));
    const served = [...this.server.served].map((s) => ({
      direction: "serve" as const,
      stream_path: s.path,
      state: "active" as const,
      session_id: s.sessionId,
      target_node_id: s.requestorId,
      target_addr: s.remote,
      subscriber_count: 1,
      frame_count: s.frames,
      bytes: s.bytes,
      started_at: s.startedAt,
      last_frame_at: s.lastFrameAt,
    }));
    return [...pulls, ...served].sort((a, b) => a.stream_path.localeCompare(b.stream_path));
  }

  /** Reconnects of pull relays since start, ended relays included (a monotonic counter). */
  reconnectsTotal(): number {
    let n = this.#endedReconnects;
    for (const r of this.#pulls.values()) n += r.reconnects;
    return n;
  }

  count(): { total: number; active: number } {
    let active = 0;
    for (const r of this.#pulls.values()) if (r.state === "active") active++;
    return { total: this.#pulls.size, active };
  }

  quicAddr(): string {
    return this.transport.address;
  }

  quicCert(): string {
    return this.transport.certPem;
  }

  pullFor(path: StreamPath): PullRelay | undefined {
    return this.#pulls.get(path);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const off of this.#offHub) off();
    for (const t of this.#releaseTimers.values()) clearTimeout(t);
    const done = [...this.#pulls.values()].map((r) => (r.stop("shutdown"), r.done));
    for (const s of this.server.served) s.stream.abort("shutdown");
    await Promise.allSettled(done);
  }
}
