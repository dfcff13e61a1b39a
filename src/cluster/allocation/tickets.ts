/**
 * Allocation tickets: each allocation reserves a little capacity on the node it chose, for
 * `ttlMs`, so the next allocations see it as busier. A ticket ends when the client shows up
 * on that node for that stream (`consume`) or when it expires. Pure: time comes in as `now`.
 */

export interface Ticket {
  id: string;
  serverId: string;
  streamPath: string;
  kind: "publish" | "play";
  expiresAt: number;
}

const MAX_TICKETS = 100_000;

export class TicketBook {
  readonly #tickets = new Map<string, Ticket>();

  constructor(readonly ttlMs: number) {}

  issue(serverId: string, streamPath: string, kind: "publish" | "play", now: number): Ticket {
    this.expire(now);
    if (this.#tickets.size >= MAX_TICKETS) {
      const oldest = this.#tickets.keys().next().value;
      if (oldest !== undefined) this.#tickets.delete(oldest);
    }
    const t: Ticket = { id: crypto.randomUUID(), serverId, streamPath, kind, expiresAt: now + this.ttlMs };
    this.#tickets.set(t.id, t);
    return t;
  }

  /** The client arrived: ends the oldest matching ticket. */
  consume(serverId: string, streamPath: string, kind: "publish" | "play"): boolean {
    for (const [id, t] of this.#tickets) {
      if (t.serverId === serverId && t.streamPath === streamPath && t.kind === kind) {
        this.#tickets.delete(id);
        return true;
      }
    }
    return false;
  }

  expire(now: number): void {
    for (const [id, t] of this.#tickets) if (t.expiresAt <= now) this.#tickets.delete(id);
  }

  /** Outstanding tickets per server_id. */
  pending(now: number): Map<string, number> {
    this.expire(now);
    const out = new Map<string, number>();
    for (const t of this.#tickets.values()) out.set(t.serverId, (out.get(t.serverId) ?? 0) + 1);
    return out;
  }

  get size(): number {
    return this.#tickets.size;
  }
}
