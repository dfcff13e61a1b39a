/**
 * SyncManager: the I/O shell around `Membership`. Every heartbeat_interval it sends this
 * node's summary to the seeds and every known peer and merges what they answer; every
 * sync_interval it pulls `servers` and `sessions` from the seeds. Transitions go to
 * listeners (the session registry and the relay manager clean up after Offline nodes).
 */

import { errorMessage, type Logger } from "../../log/mod.ts";
import { Emitter } from "../../media/mod.ts";
import { type PeerClient, PeerError } from "../protocol/peer_client.ts";
import { NodeState, type NodeSummary, type SessionRecord } from "../protocol/types.ts";
import { Membership, type Transition } from "./membership.ts";
import { heartbeatAnswer, serversAnswer, sessionsAnswer } from "../protocol/schemas.ts";

export interface SyncOptions {
  serverId: string;
  address: string;
  seeds: string[];
  heartbeatIntervalMs: number;
  syncIntervalMs: number;
  heartbeatTtlMs: number;
  suspectThreshold: number;
  offlineThreshold: number;
}

/** What the rest of the node contributes to this node's summary and heartbeat answers. */
export interface SyncProviders {
  selfSummary(): Omit<NodeSummary, "state" | "last_heartbeat">;
  sessions(): SessionRecord[];
  mergeSessions(records: SessionRecord[], from: string): void;
}

export class DuplicateServerIdError extends Error {
  override name = "DuplicateServerIdError";
}

export type SyncEvents = {
  transition: (t: Transition, summary: NodeSummary | null) => void;
};

export interface HeartbeatAnswer {
  summaries: NodeSummary[];
  sessions: SessionRecord[];
}

export class SyncManager implements Disposable {
  readonly membership: Membership;
  readonly events = new Emitter<SyncEvents>();
  /** True once a heartbeat round or full sync has completed (or there is nobody to ask). */
  synced = false;
  readonly #inFlight = new Set<string>();
  #timers: ReturnType<typeof setInterval>[] = [];
  #refusalLogged = new Set<string>();
  /** Heartbeat round-trip times in ms by server_id (for metrics). */
  readonly rtts = new Map<string, number>();

  constructor(
    readonly options: SyncOptions,
    readonly client: PeerClient,
    readonly providers: SyncProviders,
    readonly log: Logger,
    readonly now: () => number = Date.now,
  ) {
    this.membership = new Membership(options.serverId, {
      suspectThreshold: options.suspectThreshold,
      offlineThreshold: options.offlineThreshold,
      heartbeatTtlMs: options.heartbeatTtlMs,
    });
  }

  start(): void {
    this.#timers.push(setInterval(() => this.heartbeatRound(), this.options.heartbeatIntervalMs));
    this.#timers.push(setInterval(() => this.fullSync(), this.options.syncIntervalMs));
    void this.heartbeatRound();
    void this.fullSync();
  }

  [Symbol.dispose](): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
  }

  /** This node's summary as it goes on the wire. */
  self(): NodeSummary {
    return { ...this.providers.selfSummary(), state: NodeState.Online, last_heartbeat: this.now() };
  }

  /** All summaries this node can see, itself first. */
  summaries(): NodeSummary[] {
    return [this.self(), ...this.membership.list().sort((a, b) => a.server_id.localeCompare(b.server_id))];
  }

  /** HTTP addresses of every peer worth talking to (all known but Offline ones). */
  peerAddresses(): string[] {
    return this.membership.list().filter((s) => s.state !== NodeState.Offline).map((s) => s.address);
  }

  #apply(transitions: Transition[]): void {
    for (const t of transitions) {
      const summary = this.membership.summary(t.serverId);
      const level = t.to === NodeState.Online || t.from === null ? "info" : "warn";
      this.log[level]("peer state changed", {
        peer: t.serverId,
        from: t.from ?? "unknown",
        to: t.to,
        restarted: t.restarted || undefined,
      });
      this.events.emit("transition", t, summary);
    }
  }

  /** Handles a heartbeat another node sent us. Throws `DuplicateServerIdError`. */
  receiveHeartbeat(summary: NodeSummary): HeartbeatAnswer {
    this.#checkDuplicate(summary);
    this.#apply(this.membership.heard(summary, this.now()));
    return { summaries: this.summaries(), sessions: this.providers.sessions() };
  }

  /** Handles `servers/sync`: summaries another node pushes to us. */
  receiveSummaries(summaries: NodeSummary[]): void {
    for (const s of summaries) this.#apply(this.membership.gossip(s));
  }

  #checkDuplicate(summary: NodeSummary): void {
    const self = this.self();
    if (summary.server_id === self.server_id && summary.incarnation !== self.incarnation) {
      throw new DuplicateServerIdError(
        `server_id ${summary.server_id} is this node's own id, claimed by ${summary.address}`,
      );
    }
    const known = this.membership.summary(summary.server_id);
    if (
      known && known.address !== summary.address && known.state === NodeState.Online &&
      !this.membership.isStale(summary.server_id, this.now())
    ) {
      throw new DuplicateServerIdError(
        `server_id ${summary.server_id} is already used by the live node at ${known.address}`,
      );
    }
  }

  /** One round: heartbeat every seed and known peer in parallel. */
  async heartbeatRound(): Promise<void> {
    const targets = new Map<string, string | null>(); // address → server_id if known
    for (const s of this.membership.list()) targets.set(s.address, s.server_id);
    for (const seed of this.options.seeds) if (!targets.has(seed)) targets.set(seed, null);
    targets.delete(this.options.address);
    const self = this.self();
    await Promise.all([...targets].map(([address, id]) => this.#heartbeat(address, id, self)));
    this.synced = true;
  }

  async #heartbeat(address: string, id: string | null, self: NodeSummary): Promise<void> {
    if (this.#inFlight.has(address)) {
      if (id) this.#apply(this.membership.missed(id));
      return;
    }
    this.#inFlight.add(address);
    const started = performance.now();
    try {
      const answer = await this.client.call(
        address,
        "POST",
        "heartbeat",
        { summary: self },
        Math.max(100, Math.min(this.options.heartbeatIntervalMs * 0.9, 5000)),
        heartbeatAnswer,
      );
      this.#merge(answer, address, performance.now() - started);
      this.#refusalLogged.delete(address);
    } catch (err) {
      const refusal = err instanceof PeerError
        ? err.status === 409
          ? "duplicate server_id"
          : err.status === 401
          ? "wrong or missing internal_api_key"
          : null
        : null;
      if (refusal) {
        // Said once per peer (until it accepts us): a misconfigured node must hear why it cannot join.
        if (!this.#refusalLogged.has(address)) {
          this.#refusalLogged.add(address);
          this.log.error(`peer refused this node: ${refusal}`, { peer: address, error: errorMessage(err) });
        }
      } else {
        this.log.debug("heartbeat failed", { peer: address, error: errorMessage(err) });
      }
      if (id) this.#apply(this.membership.missed(id));
    } finally {
      this.#inFlight.delete(address);
    }
  }

  #merge(answer: HeartbeatAnswer, address: string, rttMs: number): void {
    const [responder, ...others] = answer.summaries;
    if (!responder) return;
    if (responder.server_id === this.options.serverId) {
      this.log.error("a peer answers with this node's server_id", { peer: address });
      return;
    }
    this.rtts.set(responder.server_id, rttMs);
    // A node that moved to another address: forget the old entry at this address.
    const previous = this.membership.byAddress(address);
    if (previous && previous.server_id !== responder.server_id) this.membership.remove(previous.server_id);
    this.#apply(this.membership.heard(responder, this.now()));
    for (const s of others) this.#apply(this.membership.gossip(s));
    this.providers.mergeSessions(answer.sessions, responder.server_id);
  }

  /** Pulls `servers` and `sessions` from every seed. */
  async fullSync(): Promise<void> {
    const timeout = Math.max(500, Math.min(this.options.syncIntervalMs, 5000));
    await Promise.all(
      this.options.seeds.filter((a) => a !== this.options.address).map(async (seed) => {
        try {
          const servers = await this.client.call(seed, "GET", "servers", undefined, timeout, serversAnswer);
          this.receiveSummaries(servers.summaries);
          const sessions = await this.client.call(
            seed,
            "GET",
            "sessions",
            undefined,
            timeout,
            sessionsAnswer,
          );
          this.providers.mergeSessions(sessions.sessions, seed);
        } catch (err) {
          this.log.debug("full sync failed", { peer: seed, error: errorMessage(err) });
        }
      }),
    );
  }
}
