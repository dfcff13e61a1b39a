/**
 * Cold start over RTMP, the counterpart of bench/relay_latency.ts part (a) (which measures our
 * node over HTTP-FLV): same stream, same loop. Each try plays the stream on an edge that does
 * not carry it (then on the origin), from the play request (before the TCP connect) to the
 * first coded video frame and to the first key frame. The two differ for nginx-rtmp, which has
 * no GOP cache and starts a player mid-GOP; our node starts every player on a key frame.
 * Between tries the edge lets go of its relay: ours runs with `cluster.relay.release_delay:
 * 0.2` and is polled until it reports no relay; nginx-rtmp closes an on-demand pull when the
 * last player leaves (we wait 0.5 s). Tries are spread over the GOP by a 137 ms pause.
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

/** Waits until the edge carries no relay any more. */
async function released(pair: RelayPair): Promise<void> {
  if (pair.oursEdge) {
    const api = pair.oursEdge.api;
    await until(async () => (await api.relayCount()) === 0, 5000, "edge relay released", 20).catch(() => {});
  } else {
    await sleep(500);
  }
}

export async function coldStart(system: RelaySystem, protocol: Protocol, tries: number): Promise<ColdResult> {
  const pair = await startRelayPair(system, 0.2);
  let pub: { stop(): Promise<unknown> } | null = null;
  try {
    const path = LATENCY_STREAM.path;
    pub = publishLatencyStream(pair.origin.rtmpUrl(path));
    await waitLive(targetFor(pair.origin, protocol, path));
    if (pair.oursEdge) {
      const api = pair.oursEdge.api;
      await until(
        async () => (await api.sessions()).some((s) => s.stream_path === path),
        15_000,
        "edge knows",
      );
    }
    const edge: { key: number; any: number }[] = [];
    const origin: { key: number; any: number }[] = [];
    const errors = new Set<string>();
    for (let i = 0; i < tries; i++) {
      await released(pair);
      const e = await once(pair.edge, protocol, path);
      const o = await once(pair.origin, protocol, path);
      edge.push(e);
      origin.push(o);
      for (const err of [e.err, o.err]) if (err && err !== "closed") errors.add(err);
      await sleep(137);
    }
    return {
      system,
      protocol,
      tries,
      edge: stats(edge),
      origin: stats(origin),
      note: [...errors].slice(0, 3).join("; "),
    };
  } finally {
    await pub?.stop();
    await pair.stop();
  }
}
