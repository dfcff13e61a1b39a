/**
 * zod schemas for everything that crosses the cluster's trust boundary: request bodies of
 * /cluster/api/* and the answers peers give us. Strings and arrays are length-bounded so a
 * hostile body cannot make us hold more than it took to send.
 */

import { z } from "zod";

const id = z.string().min(1).max(128);
const addr = z.string().max(300);
const num = z.number().finite();

export const nodeLoadSchema = z.object({
  cpu_percent: num.min(0),
  egress_mbps: num.min(0),
  subscriber_count: z.int().min(0),
  stream_count: z.int().min(0),
  relay_count: z.int().min(0).default(0),
});

const loadDefaults = { cpu_percent: 0, egress_mbps: 0, subscriber_count: 0, stream_count: 0, relay_count: 0 };

/** A node summary. Only server_id and address are required (the spec's minimum). */
export const nodeSummarySchema = z.object({
  server_id: id,
  address: addr.min(1),
  quic_addr: addr.default(""),
  rtmp_addr: addr.default(""),
  quic_cert: z.string().max(16384).default(""),
  state: z.enum(["Online", "Suspect", "Offline"]).default("Online"),
  role: z.array(z.enum(["origin", "edge"])).max(2).default(["origin", "edge"]),
  load: nodeLoadSchema.default(loadDefaults),
  version: z.string().max(64).default("unknown"),
  started_at: num.default(0),
  incarnation: num.default(0),
  last_heartbeat: num.default(0),
});

export const sessionRecordSchema = z.object({
  stream_path: z.string().min(1).max(256),
  origin_id: id,
  origin_address: addr,
  origin_incarnation: num,
  publisher_protocol: z.string().max(32),
  video_codec: z.string().max(32).nullable(),
  audio_codec: z.string().max(32).nullable(),
  width: z.int().nullable(),
  height: z.int().nullable(),
  started_at: num,
  subscribe_nodes: z.array(id).max(1024),
  version: num,
  active: z.boolean(),
});

const MAX_LIST = 10_000;

export const heartbeatRequest = z.object({ summary: nodeSummarySchema });
export const heartbeatAnswer = z.object({
  summaries: z.array(nodeSummarySchema).max(MAX_LIST),
  sessions: z.array(sessionRecordSchema).max(MAX_LIST).default([]),
});
export const serversSyncRequest = z.object({ summaries: z.array(nodeSummarySchema).max(MAX_LIST) });
export const serversAnswer = z.object({ summaries: z.array(nodeSummarySchema).max(MAX_LIST) });
export const sessionsSyncRequest = z.object({ sessions: z.array(sessionRecordSchema).max(MAX_LIST) });
export const sessionsAnswer = z.object({ sessions: z.array(sessionRecordSchema).max(MAX_LIST) });
export const participationRequest = z.object({
  stream_path: z.string().min(1).max(256),
  node_id: id,
  action: z.enum(["subscribe", "unsubscribe"]),
});

export const relayPullRequest = z.object({
  request_id: z.string().min(1).max(128),
  stream_path: z.string().min(1).max(256),
  requestor_id: id,
  quic_addr: addr,
  session_id: z.string().min(1).max(128),
  timestamp: num,
});

export const relayPullResponse = z.object({
  request_id: z.string(),
  accepted: z.boolean(),
  quic_addr: addr,
  session_id: z.string(),
  reason: z.string().max(300).default(""),
  stream_path: z.string().max(256).default(""),
});

export const allocateRequest = z.object({
  stream_path: z.string().min(1).max(256),
  protocol: z.string().max(32).default("unknown"),
  limit: z.int().min(1).max(100).optional(),
});
