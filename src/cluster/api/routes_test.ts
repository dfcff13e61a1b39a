/**
 * The /cluster/api app in-process, with a fake service: what a real node cannot show because
 * all its managers run (a missing manager answers 503), and the order of the checks
 * (auth → size → route → manager → body) documented in docs/cluster-api.md.
 */

import assert from "node:assert/strict";
import { configureLogging, rootLogger } from "../../log/mod.ts";
import { buildClusterApi, type ClusterApiService } from "./routes.ts";

configureLogging("silent", "text");

const KEY = "k-123";

function fakeService(over: Partial<ClusterApiService> = {}): ClusterApiService {
  return {
    status: () => ({
      server_id: "n1",
      address: "127.0.0.1:1",
      has_sync: true,
      node_count: 1,
      session_count: 0,
      relay_session_count: 0,
      active_relay_sessions: 0,
    }),
    summaries: () => [],
    heartbeat: () => ({ summaries: [], sessions: [] }),
    receiveSummaries: () => [],
    sessions: () => [],
    receiveSessions: () => ({ accepted: 0 }),
    participation: (path) => ({ stream_path: path, subscribe_nodes: [] }),
    relay: () => null,
    allocation: () => null,
    redirect: () => null,
    ...over,
  };
}

async function call(
  app: ReturnType<typeof buildClusterApi>,
  method: string,
  path: string,
  body?: string,
  key: string | null = KEY,
): Promise<{ status: number; json: { code: number; message: string; data: unknown } }> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key !== null) headers["x-cluster-api-key"] = key;
  const res = await app.request(path, { method, headers, ...(body !== undefined ? { body } : {}) });
  return { status: res.status, json: await res.json() };
}

function failed(r: Awaited<ReturnType<typeof call>>, status: number, message?: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.equal(r.json.code, status);
  assert.equal(r.json.data, null);
  if (message) assert.match(r.json.message, message);
}

Deno.test("routes: a route whose manager is not running answers 503 with a non-zero code", async () => {
  const app = buildClusterApi(fakeService(), KEY, rootLogger);
  const alloc = JSON.stringify({ stream_path: "live/x" });
  const pull = JSON.stringify({
    request_id: "r",
    stream_path: "live/x",
    requestor_id: "e",
    quic_addr: "127.0.0.1:2",
    session_id: "s",
    timestamp: 1,
  });
  failed(await call(app, "POST", "/allocate/publish", alloc), 503, /allocation manager unavailable/);
  failed(await call(app, "POST", "/allocate/play", alloc), 503, /allocation/);
  failed(
    await call(app, "GET", "/redirect/decision?stream_path=live/x"),
    503,
    /redirect manager unavailable/,
  );
  failed(await call(app, "POST", "/relay/pull", pull), 503, /relay manager unavailable/);
  failed(await call(app, "GET", "/relay/sessions"), 503, /relay/);
  // The manager is checked before the body or query.
  failed(await call(app, "POST", "/allocate/play", "{bad"), 503);
  failed(await call(app, "POST", "/relay/pull", "{}"), 503);
  failed(await call(app, "GET", "/redirect/decision"), 503);
  // The routes without a manager keep working.
  assert.equal((await call(app, "GET", "/sessions")).status, 200);
});

Deno.test("routes: auth is checked first, then size, then the route", async () => {
  const app = buildClusterApi(fakeService(), KEY, rootLogger);
  const big = "x".repeat(4 * 1024 * 1024 + 1);
  failed(await call(app, "POST", "/nope", big, null), 401);
  failed(await call(app, "POST", "/nope", big, "wrong"), 401);
  failed(await call(app, "POST", "/nope", big), 413);
  failed(await call(app, "POST", "/nope", "{}"), 404, /no route POST/);
  failed(await call(app, "GET", "/relay/pull"), 404);
});

Deno.test("routes: with no key configured the API is open", async () => {
  const app = buildClusterApi(fakeService(), "", rootLogger);
  const r = await call(app, "GET", "/status/local", undefined, null);
  assert.equal(r.status, 200);
  assert.deepEqual({ code: r.json.code, message: r.json.message }, { code: 0, message: "success" });
  // A key sent anyway is ignored.
  assert.equal((await call(app, "GET", "/status/local", undefined, "anything")).status, 200);
});

Deno.test("routes: an unexpected error answers 500 in the envelope, without details", async () => {
  const app = buildClusterApi(
    fakeService({
      sessions: () => {
        throw new Error("boom");
      },
    }),
    KEY,
    rootLogger,
  );
  failed(await call(app, "GET", "/sessions"), 500, /internal error/);
});
