/**
 * Cluster control-plane helpers for integration tests: a small client for `/cluster/api/*`
 * (envelope, auth header forms, raw bodies), strict shape checks of the documented data types
 * (docs/cluster-api.md), fake summaries and session records, and a config builder for cluster
 * nodes started with `startNode` from ./node.ts. Every request is bounded in time.
 */

import assert from "node:assert/strict";
import type { NodeProcess, StartNodeOptions } from "./node.ts";
import { deepMerge, startNode } from "./node.ts";
import { withTimeout } from "./wait.ts";

export interface Envelope<T = unknown> {
  code: number;
  message: string;
  data: T;
}

export interface ApiResult<T = unknown> {
  status: number;
  body: Envelope<T>;
}

/** How a request presents the API key. */
export type Auth =
  | { kind: "none" }
  | { kind: "header"; key: string }
  | { kind: "bearer"; key: string };

export interface CallOptions {
  /** A value to JSON-encode, or a string sent as is (for malformed bodies). */
  body?: unknown;
  auth?: Auth;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export interface NodeSummaryJson {
  server_id: string;
  address: string;
  quic_addr: string;
  rtmp_addr: string;
  quic_cert: string;
  state: "Online" | "Suspect" | "Offline";
  role: ("origin" | "edge")[];
  load: {
    cpu_percent: number;
    egress_mbps: number;
    subscriber_count: number;
    stream_count: number;
    relay_count: number;
  };
  version: string;
  started_at: number;
  incarnation: number;
  last_heartbeat: number;
}

export interface SessionRecordJson {
  stream_path: string;
  origin_id: string;
  origin_address: string;
  origin_incarnation: number;
  publisher_protocol: string;
  video_codec: string | null;
  audio_codec: string | null;
  width: number | null;
  height: number | null;
  started_at: number;
  subscribe_nodes: string[];
  version: number;
  active: boolean;
}

export interface LocalStatusJson {
  server_id: string;
  address: string;
  has_sync: boolean;
  node_count: number;
  session_count: number;
  relay_session_count: number;
  active_relay_sessions: number;
}

/** A client for one node's `/cluster/api`, presenting `defaultAuth` unless told otherwise. */
export class ClusterApi {
  constructor(readonly baseUrl: string, readonly defaultAuth: Auth = { kind: "none" }) {}

  /** Any request; returns the status and the parsed envelope (throws if it is not JSON). */
  async call<T = unknown>(method: string, path: string, opts: CallOptions = {}): Promise<ApiResult<T>> {
    const headers: Record<string, string> = { ...opts.headers };
    const auth = opts.auth ?? this.defaultAuth;
    if (auth.kind === "header") headers["x-cluster-api-key"] = auth.key;
    if (auth.kind === "bearer") headers["authorization"] = `Bearer ${auth.key}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
      headers["content-type"] ??= "application/json";
    }
    const url = `${this.baseUrl}/cluster/api/${path.replace(/^\/+/, "")}`;
    const run = async () => {
      const res = await fetch(url, { method, headers, ...(body !== undefined ? { body } : {}) });
      const text = await res.text();
      let parsed: Envelope<T>;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new Error(`${method} ${url}: HTTP ${res.status}, body is not JSON: ${text.slice(0, 200)}`);
      }
      return { status: res.status, body: parsed };
    };
    return await withTimeout(run(), opts.timeoutMs ?? 5000, `${method} ${url}`);
  }

  /** A request that must succeed (HTTP 200, code 0); returns `data`. */
  async ok<T = unknown>(method: string, path: string, opts: CallOptions = {}): Promise<T> {
    const r = await this.call<T>(method, path, opts);
    assert.equal(r.status, 200, `${method} ${path}: ${JSON.stringify(r.body)}`);
    assertSuccess(r.body);
    return r.body.data;
  }

  async status(): Promise<LocalStatusJson> {
    return await this.ok<LocalStatusJson>("GET", "status/local");
  }

  async servers(): Promise<NodeSummaryJson[]> {
    return (await this.ok<{ summaries: NodeSummaryJson[] }>("GET", "servers")).summaries;
  }

  async sessions(): Promise<SessionRecordJson[]> {
    return (await this.ok<{ sessions: SessionRecordJson[] }>("GET", "sessions")).sessions;
  }

  /** The state this node sees for `serverId`, or null if it does not know it. */
  async stateOf(serverId: string): Promise<NodeSummaryJson["state"] | null> {
    return (await this.servers()).find((s) => s.server_id === serverId)?.state ?? null;
  }
}

/** `{code: 0, message: "success", data}` */
export function assertSuccess(body: Envelope): void {
  assert.equal(body.code, 0, JSON.stringify(body));
  assert.equal(body.message, "success");
  assert.ok("data" in body, "envelope has data");
}

/** An error envelope: non-zero `code` equal to the HTTP status, a message, `data: null`. */
export function assertFailure(r: ApiResult, status: number, message?: RegExp): void {
  assert.equal(r.status, status, `expected HTTP ${status}: ${JSON.stringify(r.body)}`);
  assert.equal(r.body.code, status, JSON.stringify(r.body));
  assert.equal(typeof r.body.message, "string");
  assert.ok(r.body.message.length > 0);
  assert.equal(r.body.data, null);
  if (message) assert.match(r.body.message, message);
}

type FieldType =
  | "string"
  | "number"
  | "integer"
  | "boolean"
  | "array"
  | "object"
  | "string|null"
  | "integer|null";

/** Asserts `obj` has every field of `shape` with the given type. */
export function assertShape(obj: unknown, shape: Record<string, FieldType>, what = "object"): void {
  assert.ok(typeof obj === "object" && obj !== null && !Array.isArray(obj), `${what} is an object`);
  const o = obj as Record<string, unknown>;
  for (const [field, type] of Object.entries(shape)) {
    assert.ok(field in o, `${what}.${field} is present: ${JSON.stringify(o)}`);
    const v = o[field];
    const ok = (t: string): boolean => {
      switch (t) {
        case "null":
          return v === null;
        case "integer":
          return Number.isInteger(v);
        case "number":
          return typeof v === "number" && Number.isFinite(v);
        case "array":
          return Array.isArray(v);
        case "object":
          return typeof v === "object" && v !== null && !Array.isArray(v);
        case "string":
          return typeof v === "string";
        case "boolean":
          return typeof v === "boolean";
        default:
          throw new Error(`unknown field type ${t}`);
      }
    };
    assert.ok(type.split("|").some(ok), `${what}.${field} should be ${type}, got ${JSON.stringify(v)}`);
  }
}

export function assertLocalStatus(s: unknown): asserts s is LocalStatusJson {
  assertShape(s, {
    server_id: "string",
    address: "string",
    has_sync: "boolean",
    node_count: "integer",
    session_count: "integer",
    relay_session_count: "integer",
    active_relay_sessions: "integer",
  }, "status");
}

export function assertNodeSummary(s: unknown): asserts s is NodeSummaryJson {
  assertShape(s, {
    server_id: "string",
    address: "string",
    quic_addr: "string",
    rtmp_addr: "string",
    quic_cert: "string",
    state: "string",
    role: "array",
    load: "object",
    version: "string",
    started_at: "number",
    incarnation: "number",
    last_heartbeat: "number",
  }, "summary");
  const n = s as NodeSummaryJson;
  assert.ok(["Online", "Suspect", "Offline"].includes(n.state), `state ${n.state}`);
  assert.ok(n.role.every((r) => r === "origin" || r === "edge"), `role ${JSON.stringify(n.role)}`);
  assertShape(n.load, {
    cpu_percent: "number",
    egress_mbps: "number",
    subscriber_count: "integer",
    stream_count: "integer",
    relay_count: "integer",
  }, "summary.load");
}

export function assertSessionRecord(r: unknown): asserts r is SessionRecordJson {
  assertShape(r, {
    stream_path: "string",
    origin_id: "string",
    origin_address: "string",
    origin_incarnation: "number",
    publisher_protocol: "string",
    video_codec: "string|null",
    audio_codec: "string|null",
    width: "integer|null",
    height: "integer|null",
    started_at: "number",
    subscribe_nodes: "array",
    version: "number",
    active: "boolean",
  }, "session");
  assert.ok((r as SessionRecordJson).subscribe_nodes.every((n) => typeof n === "string"));
}

/** A summary as a peer would send it: only the fields given plus the required two. */
export function fakeSummary(serverId: string, address: string, over: Partial<NodeSummaryJson> = {}) {
  return { server_id: serverId, address, ...over };
}

/** A complete session record for `sessions/sync`. */
export function fakeSession(path: string, over: Partial<SessionRecordJson> = {}): SessionRecordJson {
  return {
    stream_path: path,
    origin_id: "fake-origin",
    origin_address: "127.0.0.1:9",
    origin_incarnation: 1,
    publisher_protocol: "rtmp",
    video_codec: "h264",
    audio_codec: "aac",
    width: 320,
    height: 240,
    started_at: Date.now(),
    subscribe_nodes: [],
    version: 1,
    active: true,
    ...over,
  };
}

export interface ClusterNodeOptions {
  /** Loopback address to bind, e.g. "127.0.0.2". */
  ip: string;
  serverId: string;
  /** HTTP control addresses of the seeds. */
  seeds?: string[];
  /** HTTP port (0 = any free one); a restarted node passes its old port. */
  httpPort?: number;
  rtmpPort?: number;
  apiKey?: string;
  role?: ("origin" | "edge")[];
  /** Seconds. */
  heartbeatInterval?: number;
  heartbeatTtl?: number;
  syncInterval?: number;
  suspectThreshold?: number;
  offlineThreshold?: number;
  /** More config overrides, deep-merged last (e.g. `{ cluster: { routing: {...} } }`). */
  extra?: Record<string, unknown>;
}

/** The config overrides for one cluster node (see `startNode`). */
export function clusterNodeConfig(o: ClusterNodeOptions): Record<string, unknown> {
  const sync: Record<string, unknown> = {
    enabled: true,
    server_id: o.serverId,
    seed_servers: o.seeds ?? [],
    heartbeat_interval: o.heartbeatInterval ?? 0.25,
    heartbeat_ttl: o.heartbeatTtl ?? 1,
    sync_interval: o.syncInterval ?? 2,
    suspect_threshold: o.suspectThreshold ?? 2,
    offline_threshold: o.offlineThreshold ?? 4,
    internal_api_key: o.apiKey ?? "",
  };
  const base = {
    global: { http: { listenaddr: `${o.ip}:${o.httpPort ?? 0}` } },
    rtmp: { tcp: { listenaddr: `${o.ip}:${o.rtmpPort ?? 0}` } },
    cluster: { sync, role: o.role ?? [], quic: { listenaddr: `${o.ip}:0` } },
  };
  return deepMerge(base, o.extra ?? {});
}

export interface ClusterNode extends NodeProcess {
  readonly serverId: string;
  /** The node's HTTP control address, `ip:port`. */
  readonly address: string;
  readonly api: ClusterApi;
  readonly options: ClusterNodeOptions;
}

/** Starts a cluster node process; `api` presents the node's own key. */
export async function startClusterNode(
  o: ClusterNodeOptions,
  opts: StartNodeOptions = {},
): Promise<ClusterNode> {
  const node = await startNode(clusterNodeConfig(o), { label: `cluster-${o.serverId}`, ...opts });
  const address = `${node.host}:${node.httpPort}`;
  const api = new ClusterApi(node.httpUrl, o.apiKey ? { kind: "header", key: o.apiKey } : { kind: "none" });
  return Object.assign(node, { serverId: o.serverId, address, api, options: o });
}
