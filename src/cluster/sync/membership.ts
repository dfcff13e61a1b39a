/**
 * Membership, as a pure core: who is in the cluster and whether they are alive, from this
 * node's point of view. Fed events (a heartbeat answered, a heartbeat missed, a summary heard
 * through gossip) with the time; returns the state transitions they cause. No timers, no I/O,
 * so it is tested with a fake clock.
 *
 * Rules:
 * - only direct contact (our heartbeat answered, or theirs received) makes a node Online;
 * - `suspectThreshold` misses in a row → Suspect, `offlineThreshold` → Offline;
 * - gossip adds nodes we did not know (so we start probing them) and refreshes their
 *   descriptive fields, but never changes the state of a node we probe ourselves;
 * - a summary whose last direct contact is older than `heartbeatTtlMs` is stale;
 * - a higher incarnation means the node restarted: the transition says so, and the
 *   caller drops what belonged to the old process.
 */

import { NodeState, type NodeSummary } from "../protocol/types.ts";

export interface MembershipOptions {
  suspectThreshold: number;
  offlineThreshold: number;
  heartbeatTtlMs: number;
}

export interface Transition {
  serverId: string;
  from: NodeState | null;
  to: NodeState;
  /** The node came back as a new process (higher incarnation). */
  restarted: boolean;
}

interface Member {
  summary: NodeSummary;
  state: NodeState;
  missed: number;
  /** Unix ms of the last direct contact; 0 = never. */
  lastHeard: number;
}

export class Membership {
  readonly #members = new Map<string, Member>();

  constructor(readonly selfId: string, readonly options: MembershipOptions) {}

  /** Direct contact: the node answered our heartbeat or sent us one. */
  heard(summary: NodeSummary, now: number): Transition[] {
    if (summary.server_id === this.selfId) return [];
    const m = this.#members.get(summary.server_id);
    if (!m) {
      this.#members.set(summary.server_id, {
        summary: { ...summary },
        state: NodeState.Online,
        missed: 0,
        lastHeard: now,
      });
      return [{ serverId: summary.server_id, from: null, to: NodeState.Online, restarted: false }];
    }
    if (summary.incarnation < m.summary.incarnation) return []; // a delayed message from a dead process
    const restarted = summary.incarnation > m.summary.incarnation;
    const from = m.state;
    m.summary = { ...summary };
    m.missed = 0;
    m.lastHeard = now;
    m.state = NodeState.Online;
    return from !== NodeState.Online || restarted
      ? [{ serverId: summary.server_id, from, to: NodeState.Online, restarted }]
      : [];
  }

  /** Our heartbeat to this node failed or timed out. */
  missed(serverId: string): Transition[] {
    const m = this.#members.get(serverId);
    if (!m) return [];
    m.missed++;
    const { suspectThreshold, offlineThreshold } = this.options;
    const from = m.state;
    const to = m.missed >= offlineThreshold
      ? NodeState.Offline
      : m.missed >= suspectThreshold
      ? NodeState.Suspect
      : from;
    if (to === from) return [];
    m.state = to;
    return [{ serverId, from, to, restarted: false }];
  }

  /**
   * A summary reported by a third node. Adds unknown nodes (in the state reported, so an
   * Offline one stays Offline until we hear from it ourselves) and refreshes descriptive
   * fields of known ones when the report is newer.
   */
  gossip(summary: NodeSummary): Transition[] {
    if (summary.server_id === this.selfId) return [];
    const m = this.#members.get(summary.server_id);
    if (!m) {
      const state = summary.state === NodeState.Online ? NodeState.Suspect : NodeState.Offline;
      // Unconfirmed until our own heartbeat gets through: Suspect, never Online on hearsay.
      this.#members.set(summary.server_id, {
        summary: { ...summary, state },
        state,
        missed: state === NodeState.Offline ? this.options.offlineThreshold : this.options.suspectThreshold,
        lastHeard: 0,
      });
      return [{ serverId: summary.server_id, from: null, to: state, restarted: false }];
    }
    if (
      summary.incarnation === m.summary.incarnation && summary.last_heartbeat > m.summary.last_heartbeat &&
      m.state === NodeState.Online
    ) {
      m.summary = { ...m.summary, load: summary.load, quic_addr: summary.quic_addr };
    }
    return [];
  }

  state(serverId: string): NodeState | null {
    return this.#members.get(serverId)?.state ?? null;
  }

  summary(serverId: string): NodeSummary | null {
    const m = this.#members.get(serverId);
    return m ? this.#view(m) : null;
  }

  /** The node known at `address`, if any. */
  byAddress(address: string): NodeSummary | null {
    for (const m of this.#members.values()) if (m.summary.address === address) return this.#view(m);
    return null;
  }

  isStale(serverId: string, now: number): boolean {
    const m = this.#members.get(serverId);
    return !m || now - m.lastHeard > this.options.heartbeatTtlMs;
  }

  /** Every known peer (not this node), as this node sees it. */
  list(): NodeSummary[] {
    return [...this.#members.values()].map((m) => this.#view(m));
  }

  /** Forgets a node entirely (e.g. it was refused as a duplicate). */
  remove(serverId: string): void {
    this.#members.delete(serverId);
  }

  #view(m: Member): NodeSummary {
    return { ...m.summary, state: m.state, last_heartbeat: m.lastHeard || m.summary.last_heartbeat };
  }
}
