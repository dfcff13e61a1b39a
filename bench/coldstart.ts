/**
 * Cold start over RTMP, the counterpart of bench/relay_latency.ts part (a) (which measures our
 * node over HTTP-FLV): same stream, same loop. Each try plays the stream on an edge that does
 * not carry it (then on the origin), from the play request (before the TCP connect) to the
 * first coded video frame and to the first key frame. The two differ for nginx-rtmp, which has
 * no GOP cache and starts a player mid-GOP; our node starts every player on a key frame.
 * Between tries the edge lets go of its relay: ours runs with `cluster.relay.release_delay:
 * 0.2` and is polled until it lists no relay for the stream; nginx-rtmp closes an on-demand
 * pull when the last player leaves (we wait 0.5 s). Each request waits a random part of a GOP
 * first: without it, every try would start right after the previous one's key frame and
 * nginx-rtmp (no GOP cache) would always wait a whole GOP.
 */

import { type Protocol, startPlayers } from "./players.ts";
import { percentile } from "./players.ts";
import { sleep, until } from "./procs.ts";
import {
  LATENCY_STREAM,
  publishLatencyStream,
  type RelayPair,
  type RelaySystem,
  startRelayPair,
} from "./relay.ts";
import { targetFor, waitLive } from "./fanout.ts";
import type { Server } from "./servers.ts";

export interface ColdStats {
  ok: number;
  /** To the first coded video frame of any kind. */
  anyP50: number;
  anyP99: number;
  /** To the first key frame (the first picture a decoder can show). */
  keyP50: number;
  keyP99: number;
}

export interface ColdResult {
  system: RelaySystem;
  protocol: Protocol;
  tries: number;
  edge: ColdStats;
  origin: ColdStats;
  note: string;
}

async function once(server: Server, protocol: Protocol, path: string) {
  const [p] = await startPlayers(targetFor(server, protocol, path), 1, { timeoutMs: 10_000 });
  const s = p!.stats;
  await until(() => s.firstKeyAt > 0 || s.error !== null, 10_000, "a key frame", 5).catch(() => {});
  const r = {
    key: s.firstKeyAt ? s.firstKeyAt - s.connectAt : NaN,
    any: s.firstVideoAt ? s.firstVideoAt - s.connectAt : NaN,
    err: s.error,
  };
  p!.close();
  await p!.done;
  return r;
}

function stats(rs: { key: number; any: number }[]): ColdStats {
  const key = rs.map((r) => r.key).filter(Number.isFinite).sort((a, b) => a - b);
  const any = rs.map((r) => r.any).filter(Number.isFinite).sort((a, b) => a - b);
  return {
    ok: key.length,
    anyP50: percentile(any, 0.5),
    anyP99: percentile(any, 0.99),
    keyP50: percentile(key, 0.5),
    keyP99: percentile(key, 0.99),
  };
}

/** Waits until the edge carries no relay for `path` any more. */
async function released(pair: RelayPair, path: string): Promise<void> {
  if (pair.oursEdge) {
    const api = pair.oursEdge.api;
    await until(
      async () => !(await api.relaySessions()).some((r) => r.stream_path === path),
      5000,
      "edge relay released",
      20,
    ).catch(() => {});
  } else {
    await sleep(500);
  }
}

/**
 * `tries` tries spread over `lanes` streams published at once (each lane plays its own stream,
 * sequentially); in each try the edge and the origin player start concurrently, each after a
 * random pause of up to one GOP so that requests land at every point of the GOP.
 */
export async function coldStart(
  system: RelaySystem,
  protocol: Protocol,
  tries: number,
  lanes = 3,
): Promise<ColdResult> {
  const pair = await startRelayPair(system, 0.2);
  const pubs: { stop(): Promise<unknown> }[] = [];
  try {
    const paths = Array.from({ length: lanes }, (_, i) => `${LATENCY_STREAM.path}${i + 1}`);
    for (const p of paths) pubs.push(publishLatencyStream(pair.origin.rtmpUrl(p)));
    await Promise.all(paths.map((p) => waitLive(targetFor(pair.origin, protocol, p))));
    if (pair.oursEdge) {
      const api = pair.oursEdge.api;
      await until(
        async () => {
          const known = await api.sessions();
          return paths.every((p) => known.some((s) => s.stream_path === p));
        },
        15_000,
        "edge knows the streams",
      );
    }
    const gopMs = (1000 * LATENCY_STREAM.gop) / LATENCY_STREAM.fps;
    const edge: { key: number; any: number }[] = [];
    const origin: { key: number; any: number }[] = [];
    const errors = new Set<string>();
    let next = 0;
    await Promise.all(paths.map(async (path) => {
      while (next < tries) {
        next++;
        await released(pair, path);
        const [e, o] = await Promise.all([
          sleep(Math.random() * gopMs).then(() => once(pair.edge, protocol, path)),
          sleep(Math.random() * gopMs).then(() => once(pair.origin, protocol, path)),
        ]);
        edge.push(e);
        origin.push(o);
        for (const err of [e.err, o.err]) if (err && err !== "closed") errors.add(err);
      }
    }));
    return {
      system,
      protocol,
      tries,
      edge: stats(edge),
      origin: stats(origin),
      note: [...errors].slice(0, 3).join("; "),
    };
  } finally {
    await Promise.all(pubs.map((p) => p.stop()));
    await pair.stop();
  }
}
