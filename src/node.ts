/**
 * Explicit wiring of one node: config in, running services out. Nothing reads globals, so
 * tests can build a node in-process. `Symbol.asyncDispose` stops everything in reverse order.
 */

import type { Hono } from "hono";
import { type Config, parseListenAddr } from "./config/mod.ts";
import { buildHttpApp, type PlayGate } from "./http/mod.ts";
import { type Logger, rootLogger } from "./log/mod.ts";
import { StreamHub } from "./media/mod.ts";
import { type RtmpGate, RtmpServer } from "./rtmp/mod.ts";

export interface NodeHandle extends AsyncDisposable {
  readonly hub: StreamHub;
  readonly httpPort: number;
  readonly rtmpPort: number;
}

export interface NodeExtensions {
  mounts?: Record<string, Hono>;
  playGate?: PlayGate;
  rtmpGate?: RtmpGate;
}

export function createHub(config: Config): StreamHub {
  return new StreamHub({
    gopCache: config.flv.gop_cache,
    maxGopFrames: config.flv.max_gop_frames,
    playerQueueFrames: config.flv.player_queue_frames,
    playerStallTimeoutMs: config.flv.player_stall_timeout * 1000,
    republishGraceMs: config.cluster.relay.republish_grace * 1000,
  });
}

/** Starts the media node: RTMP listener and the HTTP port. */
export function startMediaNode(
  config: Config,
  hub: StreamHub,
  ext: NodeExtensions = {},
  log: Logger = rootLogger,
): NodeHandle {
  const rtmpAddr = parseListenAddr(config.rtmp.tcp.listenaddr);
  const rtmp = new RtmpServer(rtmpAddr.hostname, rtmpAddr.port, {
    hub,
    chunkSize: config.rtmp.chunk_size,
    maxMessageSize: config.rtmp.max_message_size,
    handshakeTimeoutMs: config.rtmp.handshake_timeout * 1000,
    waitTimeoutMs: config.flv.wait_timeout * 1000,
    publishIdleTimeoutMs: config.rtmp.publish_idle_timeout * 1000,
    ...(ext.rtmpGate ? { gate: ext.rtmpGate } : {}),
  }, log.child({ svc: "rtmp" }));

  const app = buildHttpApp({
    hub,
    waitTimeoutMs: config.flv.wait_timeout * 1000,
    log: log.child({ svc: "http" }),
    ...(ext.playGate ? { gate: ext.playGate } : {}),
    ...(ext.mounts ? { mounts: ext.mounts } : {}),
  });
  const httpAddr = parseListenAddr(config.global.http.listenaddr);
  const httpLog = log.child({ svc: "http" });
  const server = Deno.serve({
    hostname: httpAddr.hostname,
    port: httpAddr.port,
    onListen: () => {},
    onError: (err) => {
      httpLog.warn("http request failed", { error: err instanceof Error ? err.message : String(err) });
      return new Response("internal error", { status: 500 });
    },
  }, (req, info) => app.fetch(req, info));

  log.info("node listening", {
    http: `${httpAddr.hostname}:${server.addr.port}`,
    rtmp: `${rtmpAddr.hostname}:${rtmp.port}`,
  });

  return {
    hub,
    httpPort: server.addr.port,
    rtmpPort: rtmp.port,
    async [Symbol.asyncDispose]() {
      hub.closeAll();
      await rtmp[Symbol.asyncDispose]();
      await server.shutdown();
    },
  };
}
