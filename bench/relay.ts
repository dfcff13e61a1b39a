/**
 * Relay: origin → edge, ours (two nodes clustered through a seed, QUIC relay) against nginx-rtmp
 * (an origin and a second nginx whose `live` application pulls from it).
 *
 * - Hop delay: one player on the origin and one on the edge, in this process so both stamp
 *   arrivals on one clock; for every coded video frame both received (matched by dts), the
 *   extra delay is `arrival_edge - arrival_origin`.
 * - Throughput: K streams published to the origin, one player per stream on the edge; the
 *   share of late frames (as in fan-out) and of frames delivered, and the edge's CPU.
 */

import { type Player, type PlayTarget, type Protocol, startPlayers, summarize, wallNow, type Window } from "./players.ts";
import { type Proc, sleep, until, usageOf } from "./procs.ts";
import { publishFfmpeg } from "./media.ts";
import {
  type OursNode,
  type Server,
  startClusterNode,
  startNginx,
  startOurs,
  waitClusterFormed,
} from "./servers.ts";
import { FPS, STREAM, targetFor, waitLive } from "./fanout.ts";
import { percentile } from "./players.ts";

export type RelaySystem = "ours" | "nginx";

export interface RelayPair {
  origin: Server;
  edge: Server;
  /** Our edge's cluster API (ours only). */
  oursEdge?: OursNode;
  stop(): Promise<void>;
}

/** Ours: origin (role origin) + edge (role edge, seeded with the origin). nginx: origin + pull edge. */
export async function startRelayPair(system: RelaySystem, releaseDelay = 10): Promise<RelayPair> {
  if (system === "nginx") {
    const origin = await startNginx({ label: "origin" });
    try {
      const edge = await startNginx({ label: "edge", pullFrom: origin.rtmpPort });
      return { origin, edge, stop: async () => void await Promise.all([edge.stop(), origin.stop()]) };
    } catch (e) {
      await origin.stop();
      throw e;
    }
  }
  const origin = await startClusterNode({ id: "bench-origin", seeds: [], role: ["origin"] });
  let edge: OursNode | null = null;
  try {
    edge = await startClusterNode({
      id: "bench-edge",
      seeds: [origin.address],
      role: ["edge"],
      relay: { release_delay: releaseDelay },
    });
    await waitClusterFormed([origin, edge]);
  } catch (e) {
    await edge?.stop();
    await origin.stop();
    throw e;
  }
  const e = edge;
  return { origin, edge: e, oursEdge: e, stop: async () => void await Promise.all([e.stop(), origin.stop()]) };
}

/** Waits until the edge knows the stream exists (ours: through the session registry). */
export async function waitEdgeKnows(pair: RelayPair, path: string): Promise<void> {
  if (!pair.oursEdge) return;
  const api = pair.oursEdge.api;
  await until(async () => (await api.sessions()).some((s) => s.stream_path === path), 15_000, `edge to know ${path}`);
}

export interface HopResult {
  system: RelaySystem;
  protocol: Protocol;
  frames: number;
  p50: number;
  p99: number;
  max: number;
  /** Absolute end-to-end context: the origin player's own p50 delay over its best frame. */
  note: string;
}

function arrivals(p: Player): Map<number, number> {
  const m = new Map<number, number>();
  const s = p.stats;
  s.winOffsets.forEach((off, i) => m.set(s.winDts![i]!, s.winDts![i]! + off));
  return m;
}

/** Hop delay over `windowS` for each protocol (pairs run side by side on one publisher). */
export async function relayHop(
  system: RelaySystem,
  protocols: Protocol[],
  windowS: number,
  warmupS: number,
): Promise<HopResult[]> {
  const pair = await startRelayPair(system);
  let pub: Proc | null = null;
  const players: Player[] = [];
  try {
    pub = publishFfmpeg(pair.origin.rtmpUrl(STREAM), `publisher-hop-${system}`);
    await waitLive(targetFor(pair.origin, protocols[0]!));
    await waitEdgeKnows(pair, STREAM);
    const win: Window = { start: Infinity, end: -Infinity };
    const pairs: [Protocol, Player, Player][] = [];
    for (const proto of protocols) {
      const [e] = await startPlayers(targetFor(pair.edge, proto), 1, { window: win, keepDts: true });
      const [o] = await startPlayers(targetFor(pair.origin, proto), 1, { window: win, keepDts: true });
      players.push(e!, o!);
      pairs.push([proto, o!, e!]);
    }
    win.start = wallNow() + warmupS * 1000;
    win.end = win.start + windowS * 1000;
    await sleep(win.end - wallNow() + 300);
    return pairs.map(([protocol, o, e]) => {
      const ao = arrivals(o);
      const extra: number[] = [];
      for (const [dts, at] of arrivals(e)) {
        const t = ao.get(dts);
        if (t !== undefined) extra.push(at - t);
      }
      extra.sort((a, b) => a - b);
      const err = o.stats.error ?? e.stats.error;
      return {
        system,
        protocol,
        frames: extra.length,
        p50: percentile(extra, 0.5),
        p99: percentile(extra, 0.99),
        max: extra.length ? extra[extra.length - 1]! : NaN,
        note: err ? `player error: ${err}` : extra.length < windowS * FPS * 0.9 ? "fewer frames than expected" : "",
      };
    });
  } finally {
    for (const p of players) p.close();
    await pub?.stop(2000);
    await pair.stop();
  }
}

export interface ThroughputResult {
  system: RelaySystem;
  streams: number;
  players: number;
  lateShare: number;
  delivered: number;
  delayP99: number;
  edgeCores: number;
  originCores: number;
  edgeRssMiB: number;
  allOnTime: boolean;
  note: string;
}

/**
 * K streams on the origin, one RTMP player per stream on the edge. One origin/edge pair serves
 * all levels (ascending); the edge lets go of its relays between levels.
 */
export async function relayThroughput(
  system: RelaySystem,
  ks: number[],
  windowS: number,
  warmupS: number,
  lateMs: number,
): Promise<ThroughputResult[]> {
  const kmax = Math.max(...ks);
  const pair = await startRelayPair(system, 0.2);
  const pubs: Proc[] = [];
  const out: ThroughputResult[] = [];
  try {
    const paths = Array.from({ length: kmax }, (_, i) => `live/relay${i + 1}`);
    for (const p of paths) pubs.push(publishFfmpeg(pair.origin.rtmpUrl(p), `publisher-${system}-${p}`));
    for (const p of paths) await waitLive(targetFor(pair.origin, "rtmp", p));
    for (const p of paths) await waitEdgeKnows(pair, p);
    for (const k of ks) {
      const win: Window = { start: Infinity, end: -Infinity };
      const players: Player[] = [];
      try {
        for (const p of paths.slice(0, k)) {
          const t: PlayTarget = targetFor(pair.edge, "rtmp", p);
          players.push(...await startPlayers(t, 1, { window: win }));
        }
        win.start = wallNow() + warmupS * 1000;
        win.end = win.start + windowS * 1000;
        await sleep(win.start - wallNow());
        const e0 = usageOf(pair.edge.pids());
        const o0 = usageOf(pair.origin.pids());
        await sleep(win.end - wallNow());
        const e1 = usageOf(pair.edge.pids());
        const o1 = usageOf(pair.origin.pids());
        await sleep(300);
        const s = summarize(players.map((p) => p.stats), win, lateMs);
        const lateShare = s.frames > 0 ? s.late / s.frames : NaN;
        const delivered = s.frames / (k * FPS * windowS);
        out.push({
          system,
          streams: k,
          players: s.started,
          lateShare,
          delivered,
          delayP99: s.delayP99,
          edgeCores: (e1.cpu - e0.cpu) / windowS,
          originCores: (o1.cpu - o0.cpu) / windowS,
          edgeRssMiB: e1.rssKiB / 1024,
          allOnTime: s.late === 0 && delivered > 0.97 && s.started === k,
          note: s.errors.join("; "),
        });
      } finally {
        for (const p of players) p.close();
      }
      if (pair.oursEdge) {
        const api = pair.oursEdge.api;
        await until(async () => (await api.relayCount()) === 0, 5000, "edge relays released").catch(() => {});
      }
      await sleep(500);
    }
    return out;
  } finally {
    await Promise.all(pubs.map((p) => p.stop(2000)));
    await pair.stop();
  }
}

export { startOurs };
