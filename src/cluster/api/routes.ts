/**
 * The Cluster HTTP API under /cluster/api/*: envelope `{code, message, data}`, bodies
 * validated with zod, the API key checked in constant time on every route, bodies over
 * `MAX_BODY_BYTES` refused. Managers that are not running answer 503.
 */

import { Hono } from "hono";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { z } from "zod";
import { timingSafeEqual } from "node:crypto";
import { errorMessage, type Logger } from "../../log/mod.ts";
import {
  allocateRequest,
  heartbeatRequest,
  participationRequest,
  relayPullRequest,
  serversSyncRequest,
  sessionsSyncRequest,
} from "../protocol/schemas.ts";
import type { NodeSummary, SessionRecord } from "../protocol/types.ts";
import { DuplicateServerIdError } from "../sync/manager.ts";

const MAX_BODY_BYTES = 4 * 1024 * 1024;

export class ApiError extends Error {
  override name = "ApiError";
  constructor(readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 503, message: string) {
    super(message);
  }
}

export interface LocalStatus {
  server_id: string;
  address: string;
  has_sync: boolean;
  node_count: number;
  session_count: number;
  relay_session_count: number;
  active_relay_sessions: number;
}

/** What the routes need from the cluster; a manager left null answers 503. */
export interface ClusterApiService {
  status(): LocalStatus;
  summaries(): NodeSummary[];
  heartbeat(summary: NodeSummary): { summaries: NodeSummary[]; sessions: SessionRecord[] };
  receiveSummaries(summaries: NodeSummary[]): NodeSummary[];
  sessions(): SessionRecord[];
  receiveSessions(records: SessionRecord[]): { accepted: number };
  participation(
    path: string,
    nodeId: string,
    subscribe: boolean,
  ): { stream_path: string; subscribe_nodes: string[] };
  relay(): RelayApi | null;
  allocation(): AllocationApi | null;
  redirect(): RedirectApi | null;
}

export interface RelayApi {
  pull(req: z.output<typeof relayPullRequest>): unknown;
  sessions(): unknown[];
}
export interface AllocationApi {
  allocate(kind: "publish" | "play", req: z.output<typeof allocateRequest>): Promise<unknown> | unknown;
}
export interface RedirectApi {
  decision(streamPath: string, protocol: string): unknown;
}

const encoder = new TextEncoder();
async function sha256(s: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(s)));
}

function presentedKey(c: Context): string | null {
  const header = c.req.header("x-cluster-api-key");
  if (header !== undefined) return header;
  const auth = c.req.header("authorization");
  if (auth?.startsWith("Bearer ")) return auth.slice(7).trim();
  return null;
}

function ok(c: Context, data: unknown) {
  return c.json({ code: 0, message: "success", data });
}

async function body<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  let raw: unknown;
  try {
    raw = await c.req.json();
  } catch {
    throw new ApiError(400, "request body is not valid JSON");
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join(".") : "body";
    throw new ApiError(400, `invalid request: ${where}: ${issue?.message ?? "invalid"}`);
  }
  return parsed.data;
}

function need<T>(manager: T | null, name: string): T {
  if (!manager) throw new ApiError(503, `${name} manager unavailable`);
  return manager;
}

export function buildClusterApi(service: ClusterApiService, apiKey: string, log: Logger): Hono {
  const app = new Hono();
  const keyHash = apiKey ? sha256(apiKey) : null;

  app.onError((err, c) => {
    if (err instanceof ApiError) {
      return c.json({ code: err.status, message: err.message, data: null }, err.status);
    }
    if (err instanceof DuplicateServerIdError) {
      log.error("refused heartbeat: duplicate server_id", { error: err.message });
      return c.json({ code: 409, message: err.message, data: null }, 409);
    }
    log.error("cluster api failed", { path: c.req.path, error: errorMessage(err) });
    return c.json({ code: 500, message: "internal error", data: null }, 500);
  });
  app.notFound((c) =>
    c.json({ code: 404, message: `no route ${c.req.method} ${c.req.path}`, data: null }, 404)
  );

  app.use("*", async (c, next) => {
    if (keyHash) {
      const given = presentedKey(c);
      const okKey = given !== null && timingSafeEqual(await sha256(given), await keyHash);
      if (!okKey) {
        log.warn("cluster api call refused: missing or wrong API key", { path: c.req.path });
        throw new ApiError(401, "missing or wrong X-Cluster-Api-Key");
      }
    }
    await next();
  });
  app.use(
    "*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) =>
        c.json({ code: 413, message: `body larger than ${MAX_BODY_BYTES} bytes`, data: null }, 413),
    }),
  );

  app.get("/status/local", (c) => ok(c, service.status()));
  app.get("/servers", (c) => ok(c, { summaries: service.summaries() }));
  app.post("/heartbeat", async (c) => {
    const req = await body(c, heartbeatRequest);
    return ok(c, service.heartbeat(req.summary as NodeSummary));
  });
  app.post("/servers/sync", async (c) => {
    const req = await body(c, serversSyncRequest);
    return ok(c, { summaries: service.receiveSummaries(req.summaries as NodeSummary[]) });
  });
  app.get("/sessions", (c) => ok(c, { sessions: service.sessions() }));
  app.post("/sessions/sync", async (c) => {
    const req = await body(c, sessionsSyncRequest);
    return ok(c, service.receiveSessions(req.sessions));
  });
  app.post("/sessions/participation", async (c) => {
    const req = await body(c, participationRequest);
    return ok(c, service.participation(req.stream_path, req.node_id, req.action === "subscribe"));
  });
  app.post("/relay/pull", async (c) => {
    const relay = need(service.relay(), "relay");
    return ok(c, await relay.pull(await body(c, relayPullRequest)));
  });
  app.get("/relay/sessions", (c) => ok(c, { sessions: need(service.relay(), "relay").sessions() }));
  for (const kind of ["publish", "play"] as const) {
    app.post(`/allocate/${kind}`, async (c) => {
      const allocation = need(service.allocation(), "allocation");
      return ok(c, await allocation.allocate(kind, await body(c, allocateRequest)));
    });
  }
  app.get("/redirect/decision", (c) => {
    const redirect = need(service.redirect(), "redirect");
    const streamPath = c.req.query("stream_path");
    if (!streamPath) throw new ApiError(400, "stream_path is required");
    return ok(c, redirect.decision(streamPath, c.req.query("protocol") ?? "unknown"));
  });
  // Mounted with `app.route()`, this app's `notFound` is never consulted (Hono asks only the
  // top-level app), so unknown /cluster/api paths and wrong methods would fall through to the
  // playback routes' 404 or Hono's plain-text one. A catch-all keeps them in the envelope.
  app.all("*", (c) => {
    throw new ApiError(404, `no route ${c.req.method} ${c.req.path}`);
  });
  return app;
}
