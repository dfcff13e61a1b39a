/**
 * The admin console under `/admin`: one static page (HTML, vanilla JS, CSS, the vendored
 * mpegts.js player) that polls this node's JSON APIs from the browser, plus one small route
 * the page cannot do without: `api/nodes/:id/streams`, this node fetching a peer's
 * `/api/streams` (which sends no CORS headers) so the page can show the origin's bitrate.
 *
 * The files are read once at startup, relative to this module (`deno compile` needs
 * `--include src/admin/static`), and served with an ETag and a precompressed gzip body.
 * The page holds the cluster API key only in a JS variable; this module never logs it.
 */

import { Hono } from "hono";
import type { Context } from "hono";
import { timingSafeEqual } from "node:crypto";
import { errorMessage, type Logger } from "../log/mod.ts";

export interface AdminOptions {
  /** `cluster.sync.internal_api_key`; "" = none. When set, the peer proxy requires it too. */
  apiKey: string;
  /** The HTTP control address (host:port) of a known peer that is not Offline, else null. */
  peerAddress?: (serverId: string) => string | null;
  log: Logger;
  /** Peer fetch timeout (ms, default 2000). */
  peerTimeoutMs?: number;
}

interface Asset {
  body: Uint8Array;
  gzip: Uint8Array;
  etag: string;
  type: string;
}

const FILES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "style.css": "text/css; charset=utf-8",
  "vendor/mpegts.js": "text/javascript; charset=utf-8",
  "vendor/LICENSE-mpegts.js.txt": "text/plain; charset=utf-8",
  "vendor/mpegts.js.LICENSE.txt": "text/plain; charset=utf-8",
};

/** Same-origin only; media and mpegts.js' workers come from blob: URLs. */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "media-src 'self' blob:",
  "worker-src 'self' blob:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

const MAX_PEER_BODY = 4 * 1024 * 1024;

/** Reads the static files (relative to this module) and builds the `/admin` sub-app. */
export async function buildAdminApp(opts: AdminOptions): Promise<Hono> {
  const assets = new Map<string, Asset>();
  for (const [name, type] of Object.entries(FILES)) {
    assets.set(name, await loadAsset(new URL(`./static/${name}`, import.meta.url), type));
  }
  const keyHash = opts.apiKey ? await sha256(opts.apiKey) : null;
  const log = opts.log.child({ svc: "admin" });
  const app = new Hono();

  const serve = (name: string) => (c: Context) => {
    const a = assets.get(name)!;
    const headers: Record<string, string> = {
      "content-type": a.type,
      "cache-control": "no-cache",
      etag: a.etag,
      vary: "accept-encoding",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
    };
    if (name === "index.html") headers["content-security-policy"] = CSP;
    if (c.req.header("if-none-match") === a.etag) return c.body(null, 304, headers);
    if (/\bgzip\b/.test(c.req.header("accept-encoding") ?? "")) {
      return c.body(a.gzip.slice().buffer, 200, { ...headers, "content-encoding": "gzip" });
    }
    return c.body(a.body.slice().buffer, 200, headers);
  };

  app.get("/", serve("index.html"));
  for (const name of Object.keys(FILES)) app.get(`/${name}`, serve(name));

  app.get("/api/nodes/:id/streams", async (c) => {
    if (keyHash) {
      const given = c.req.header("x-cluster-api-key");
      if (given === undefined || !timingSafeEqual(await sha256(given), keyHash)) {
        return c.json({ code: 401, message: "missing or wrong X-Cluster-Api-Key", data: null }, 401);
      }
    }
    const id = c.req.param("id");
    const address = opts.peerAddress?.(id) ?? null;
    if (!address) return c.json({ code: 404, message: "no such peer (or it is Offline)", data: null }, 404);
    try {
      const res = await fetch(`http://${address}/api/streams`, {
        redirect: "manual",
        signal: AbortSignal.timeout(opts.peerTimeoutMs ?? 2000),
      });
      const text = await res.text();
      if (!res.ok || text.length > MAX_PEER_BODY) throw new Error(`HTTP ${res.status}`);
      return c.json(JSON.parse(text));
    } catch (err) {
      log.debug("peer streams fetch failed", { peer: id, error: errorMessage(err) });
      return c.json({ code: 502, message: `peer ${id} did not answer`, data: null }, 502);
    }
  });

  app.all("*", (c) => {
    // `/admin/` → `/admin` (the page's asset URLs are absolute, so either would work).
    if (c.req.method === "GET" && c.req.path.endsWith("/")) {
      return c.redirect(c.req.path.replace(/\/+$/, ""), 301);
    }
    return c.json({ code: 404, message: "not found", data: null }, 404);
  });
  return app;
}

async function loadAsset(url: URL, type: string): Promise<Asset> {
  const body = await Deno.readFile(url);
  const gzip = new Uint8Array(
    await new Response(new Blob([body.slice()]).stream().pipeThrough(new CompressionStream("gzip")))
      .arrayBuffer(),
  );
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body.slice()));
  const etag = `"${Array.from(digest.subarray(0, 12), (b) => b.toString(16).padStart(2, "0")).join("")}"`;
  return { body, gzip, etag, type };
}

async function sha256(s: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
}
