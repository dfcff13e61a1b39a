/**
 * The node's one HTTP port: FLV playback (HTTP and WebSocket), the streams API, and
 * whatever sub-apps the node mounts (cluster API, admin, metrics). Stream paths go through
 * the same `parseStreamPath` as RTMP, so names are valid or invalid the same way everywhere.
 */

import { Hono } from "hono";
import { errorMessage, type Logger } from "../log/mod.ts";
import {
  InvalidStreamPathError,
  type LiveStream,
  parseStreamPath,
  type StreamHub,
  type StreamPath,
} from "../media/mod.ts";
import { flvResponseStream, pumpWebSocket } from "./_play.ts";

export interface PlayGate {
  /** Where to send this HTTP player instead (absolute URL), or null to serve it here. */
  redirectPlay?(path: StreamPath, params: URLSearchParams, protocol: "http-flv"): string | null;
}

export interface HttpAppOptions {
  hub: StreamHub;
  waitTimeoutMs: number;
  log: Logger;
  gate?: PlayGate;
  /** Sub-apps mounted under their prefix, e.g. `{ "/cluster/api": clusterApp }`. */
  mounts?: Record<string, Hono>;
}

let nextPlayerId = 1;

export function buildHttpApp(opts: HttpAppOptions): Hono {
  const app = new Hono();
  const { hub, log } = opts;

  app.onError((err, c) => {
    log.error("http handler failed", { path: c.req.path, error: errorMessage(err) });
    return c.json({ code: 500, message: "internal error" }, 500);
  });

  for (const [prefix, sub] of Object.entries(opts.mounts ?? {})) app.route(prefix, sub);

  app.get("/api/streams", (c) => {
    const streams = hub.liveStreams().sort((a, b) => a.path.localeCompare(b.path)).map(describeStream);
    return c.json({ code: 0, message: "success", data: { streams } });
  });

  app.get("*", async (c) => {
    const url = new URL(c.req.url);
    const raw = playPathFromUrl(url.pathname);
    if (raw === null) return c.json({ code: 404, message: "not found" }, 404);
    let path: StreamPath;
    let params: URLSearchParams;
    try {
      ({ path, params } = parseStreamPath(raw + url.search));
    } catch (err) {
      if (err instanceof InvalidStreamPathError) return c.json({ code: 400, message: err.message }, 400);
      throw err;
    }
    const isWs = c.req.header("upgrade")?.toLowerCase() === "websocket";
    const protocol = isWs ? "ws-flv" : "http-flv";
    if (!isWs) {
      const target = opts.gate?.redirectPlay?.(path, params, "http-flv") ?? null;
      if (target) {
        log.info("http-flv player redirected", { stream: path });
        return c.redirect(target, 302);
      }
    }
    const id = `h${nextPlayerId++}`;
    const plog = log.child({ conn: id, stream: path, protocol });
    const info = c.env as { remoteAddr?: Deno.NetAddr } | undefined;
    const remoteAddr = info?.remoteAddr ? `${info.remoteAddr.hostname}:${info.remoteAddr.port}` : "unknown";
    const abort = new AbortController();
    const sub = await hub.subscribeWhenLive(
      path,
      { id, protocol, remoteAddr },
      opts.waitTimeoutMs,
      abort.signal,
    );
    if (!sub) {
      plog.info("play: stream not found");
      return c.json({ code: 404, message: `stream ${path} is not live` }, 404);
    }
    plog.info("play started");
    if (isWs) {
      const { socket, response } = Deno.upgradeWebSocket(c.req.raw);
      socket.binaryType = "arraybuffer";
      pumpWebSocket(socket, sub, hub, plog);
      return response;
    }
    return new Response(flvResponseStream(sub, hub, plog), {
      headers: {
        "content-type": "video/x-flv",
        "cache-control": "no-cache, no-store",
        "access-control-allow-origin": "*",
      },
    });
  });

  return app;
}

/** `/{app}/{name}.flv` or `/flv/{app}/{name}` → "app/name" (still percent-encoded); else null. */
export function playPathFromUrl(pathname: string): string | null {
  if (pathname.startsWith("/flv/")) return pathname.slice(5).replace(/\.flv$/, "");
  if (pathname.endsWith(".flv")) return pathname.slice(1, -4);
  return null;
}

export function describeStream(s: LiveStream) {
  const players = s.playerCounts();
  const total = Object.values(players).reduce((a, b) => a + b, 0);
  return {
    stream_path: s.path,
    publisher: s.publisher
      ? { id: s.publisher.id, protocol: s.publisher.protocol, remote_addr: s.publisher.remoteAddr }
      : null,
    video: { codec: s.codec.videoCodec, width: s.codec.width, height: s.codec.height },
    audio: {
      codec: s.codec.audioCodec,
      sample_rate: s.codec.audioSampleRate,
      channels: s.codec.audioChannels,
    },
    bitrate_kbps: s.bitrateKbps,
    frames_in: s.framesIn,
    bytes_in: s.bytesIn,
    started_at: new Date(s.publishedAt).toISOString(),
    players: { ...players, total },
  };
}
