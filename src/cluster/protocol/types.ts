/**
 * Wire types of the cluster control plane, snake_case exactly as they travel in JSON.
 * The zod schemas in `api/` validate them at the trust boundary; code inside trusts them.
 */

import type { z } from "zod";
import type { nodeLoadSchema, nodeSummarySchema, sessionRecordSchema } from "./schemas.ts";

export const NodeState = { Online: "Online", Suspect: "Suspect", Offline: "Offline" } as const;
export type NodeState = typeof NodeState[keyof typeof NodeState];

/** Load figures a node reports about itself. */
export type NodeLoad = z.output<typeof nodeLoadSchema>;

/**
 * A node as described in heartbeats: server_id, address (HTTP control plane), quic_addr and
 * quic_cert (its relay endpoint and certificate), state (as the reporter sees it), role, load,
 * version, started_at (Unix ms), incarnation (grows on every restart) and last_heartbeat (Unix
 * ms the reporter last heard from it directly).
 */
export type NodeSummary = z.output<typeof nodeSummarySchema>;

/**
 * Which node publishes a stream. Ordered by (origin_incarnation, version); `active: false`
 * is a tombstone that stops late updates from resurrecting an unpublished stream.
 */
export type SessionRecord = z.output<typeof sessionRecordSchema>;

export interface ApiEnvelope<T> {
  code: number;
  message: string;
  data: T;
}
