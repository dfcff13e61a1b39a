/**
 * Relay: origin → edge, ours (two nodes clustered through a seed, QUIC relay) against nginx-rtmp
 * (an origin and a second nginx whose `live` application pulls from it).
 *
 * - Hop delay and cold start of ours come from bench/relay_latency.ts (run as is by main.ts);
 *   here is nginx-rtmp's counterpart with the same stream and rule: one player on the origin
 *   and one on the edge, in this process so both stamp arrivals on one clock; for every coded
 *   video frame both received (matched by dts), the extra delay is `arrival_edge - arrival_origin`.
 * - Throughput: K streams published to the origin, one player per stream on the edge; the
 *   share of late frames (as in fan-out) and of frames delivered, and the edge's CPU.
 */

import {
  type Player,
  type PlayTarget,
  type Protocol,
  startPlayers,
  summarize,
  wallNow,
  type Window,
} from "./players.ts";
import { adopt, type Proc, sleep, until, usageOf } from "./procs.ts";
import { publish } from "../tests/helpers/media.ts";
import { publishFfmpeg } from "./media.ts";
import { type OursNode, type Server, startClusterNode, startNginx, waitClusterFormed } from "./servers.ts";
import { FPS, targetFor, waitLive } from "./fanout.ts";
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
  return {
    origin,
    edge: e,
    oursEdge: e,
    stop: async () => void await Promise.all([e.stop(), origin.stop()]),
  };
}

/** Waits until the edge knows the stream exists (ours: through the session registry). */
export async function waitEdgeKnows(pair: RelayPair, path: string): Promise<void> {
  if (!pair.oursEdge) return;
  const api = pair.oursEdge.api;
  await until(
    async () => (await api.sessions()).some((s) => s.stream_path === path),
    15_000,
    `edge to know ${path}`,
  );
}

export interface HopResult {
  system: RelaySystem;
  protocol: Protocol;
  /** Video frames seen by both players. */
  frames: number;
  p50: number;
  p99: number;
  max: number;
  note: string;
}

function arrivals(p: Player): Map<number, number> {
  const m = new Map<number, number>();
  const s = p.stats;
  s.winOffsets.forEach((off, i) => m.set(s.winDts![i]!, s.winDts![i]! + off));
  return m;
}

/** The stream bench/relay_latency.ts publishes (tests' ffmpeg helper), so both sides match. */
export const LATENCY_STREAM = { path: "live/latency", fps: FPS, gop: FPS, size: "320x240" } as const;

/** Publishes the relay_latency.ts stream with the tests' helper and registers the process. */
export function publishLatencyStream(url: string): { stop(): Promise<unknown> } {
  const p = publish(url, { seconds: 3600, fps: LATENCY_STREAM.fps, gop: LATENCY_STREAM.gop });
  adopt("publisher-latency", p.pid, () => p.stop("SIGKILL"), p.done);
  return { stop: () => p.stop("SIGKILL") };
}

/**
 * nginx-rtmp's counterpart of bench/relay_latency.ts part (b), with the same stream and the same
 * rule (both players read at once in this process; the first 2 s, the GOP burst, left out;
 * video frames matched by timestamp), over RTMP since nginx-rtmp has no HTTP-FLV.
 */
export async function nginxHop(seconds: number): Promise<HopResult> {
  const pair = await startRelayPair("nginx");
  let pub: { stop(): Promise<unknown> } | null = null;
  const players: Player[] = [];
  try {
    pub = publishLatencyStream(pair.origin.rtmpUrl(LATENCY_STREAM.path));
    await waitLive(targetFor(pair.origin, "rtmp", LATENCY_STREAM.path));
    const win: Window = { start: Infinity, end: -Infinity };
    const [o] = await startPlayers(targetFor(pair.origin, "rtmp", LATENCY_STREAM.path), 1, {
      window: win,
      keepDts: true,
    });
    const [e] = await startPlayers(targetFor(pair.edge, "rtmp", LATENCY_STREAM.path), 1, {
      window: win,
      keepDts: true,
    });
    players.push(o!, e!);
    win.start = wallNow() + 2000;
    win.end = win.start + seconds * 1000;
    await sleep(win.end - wallNow() + 300);
    const ao = arrivals(o!);
    const extra: number[] = [];
    for (const [dts, at] of arrivals(e!)) {
      const t = ao.get(dts);
      if (t !== undefined) extra.push(at - t);
    }
    extra.sort((a, b) => a - b);
    const err = o!.stats.error ?? e!.stats.error;
    return {
      system: "nginx",
      protocol: "rtmp",
      frames: extra.length,
      p50: percentile(extra, 0.5),
      p99: percentile(extra, 0.99),
      max: extra.length ? extra[extra.length - 1]! : NaN,
      note: err ? `player error: ${err}` : "",
    };
  } finally {
    for (const p of players) p.close();
    await pub?.stop();
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
  /** Streams one edge core could carry at this level's CPU per stream (extrapolated). */
  streamsPerEdgeCore: number;
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
    await Promise.all(paths.map((p) => waitLive(targetFor(pair.origin, "rtmp", p))));
    await Promise.all(paths.map((p) => waitEdgeKnows(pair, p)));
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
          streamsPerEdgeCore: k / ((e1.cpu - e0.cpu) / windowS),
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
