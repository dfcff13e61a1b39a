/**
 * What one relay hop costs, measured on this machine with public tools only (deno, ffmpeg):
 *
 *   deno run -A bench/relay_latency.ts [--tries 20] [--seconds 10]
 *
 * Starts an origin (127.0.0.1, the seed) and an edge (127.0.0.2) node process and publishes
 * testsrc + sine (H.264 + AAC, 25 fps, 1 s GOP) to the origin with ffmpeg. Then:
 *
 * (a) cold start: the time from an HTTP-FLV request to the first coded video tag, on the edge
 *     with no relay for the stream (the relay is released between tries: release_delay 0.1 s;
 *     the QUIC connection to the origin stays up, except for the very first try), and on the
 *     origin for comparison;
 * (b) hop delay: one reader on the origin and one on the edge, read at the same time in this
 *     process; tags are matched by (type, timestamp) and the edge's arrival time minus the
 *     origin's is the extra delay of the hop. Tags of the initial GOP burst are left out.
 *
 * Prints a JSON summary (ms) and writes it to bench/results/relay_latency.json. The node
 * processes are started with the integration tests' helpers (their logs go to test-artifacts/).
 */

import { clusterNodeConfig } from "../tests/helpers/cluster.ts";
import { isCodedVideo, publish, readFlv, type ReadTag } from "../tests/helpers/media.ts";
import { deepMerge, type NodeProcess, startNode } from "../tests/helpers/node.ts";
import { delay, waitFor } from "../tests/helpers/wait.ts";

function arg(name: string, def: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Number(Deno.args[i + 1]) : def;
}

const TRIES = arg("tries", 20);
const HOP_SECONDS = arg("seconds", 10);
const PATH = "live/latency";
const FPS = 25;

function stats(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  const rank = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
  const r = (v: number) => Math.round(v * 100) / 100;
  return {
    n: s.length,
    p50: r(rank(50)),
    p99: r(rank(99)),
    min: r(s[0]!),
    max: r(s.at(-1)!),
    mean: r(s.reduce((a, b) => a + b, 0) / s.length),
  };
}

async function node(ip: string, serverId: string, seeds: string[]): Promise<NodeProcess> {
  const config = deepMerge(
    clusterNodeConfig({ ip, serverId, seeds, heartbeatInterval: 0.25, offlineThreshold: 4 }),
    {
      flv: { wait_timeout: 10 },
      cluster: {
        relay: { release_delay: 0.1, health_check_interval: 2, retry_delay: 0.2 },
        routing: { cpu_threshold: 100, bandwidth_threshold: 1_000_000, subscriber_threshold: 100_000 },
      },
    },
  );
  return await startNode(config, { label: `bench-latency-${serverId}` });
}

async function relayRows(n: NodeProcess): Promise<{ direction: string; stream_path: string }[]> {
  const res = await fetch(`${n.httpUrl}/cluster/api/relay/sessions`);
  return (await res.json()).data.sessions;
}

/** ms from the request to the first coded video tag. */
async function firstVideo(url: string): Promise<number> {
  const r = await readFlv(url, { maxVideoFrames: 1, timeoutMs: 20_000 });
  if (r.status !== 200) throw new Error(`${url}: HTTP ${r.status} ${r.errorBody}`);
  const v = r.tags.find(isCodedVideo);
  if (!v) throw new Error(`${url}: no video`);
  return v.arrivalMs;
}

async function main(): Promise<void> {
  const origin = await node("127.0.0.1", "origin-1", []);
  const edge = await node("127.0.0.2", "edge-1", [`${origin.host}:${origin.httpPort}`]);
  const pub = publish(origin.rtmpUrl(PATH), { seconds: 3600, fps: FPS, gop: FPS });
  try {
    await waitFor(async () => ((await origin.stream(PATH))?.frames_in ?? 0) > 2 * FPS, 20_000, {
      message: "stream live on the origin",
    });
    await waitFor(
      async () => {
        const res = await fetch(`${edge.httpUrl}/cluster/api/sessions`);
        return (await res.json()).data.sessions.some((s: { stream_path: string }) => s.stream_path === PATH);
      },
      10_000,
      { message: "the edge knows the session" },
    );

    // (a) cold start
    const coldEdge: number[] = [];
    const coldOrigin: number[] = [];
    for (let i = 0; i < TRIES; i++) {
      await waitFor(async () => (await relayRows(edge)).length === 0, 10_000, {
        message: "edge relay released",
      });
      await waitFor(async () => (await relayRows(origin)).length === 0, 10_000, {
        message: "origin relay closed",
      });
      await waitFor(async () => (await edge.stream(PATH)) === undefined, 10_000, {
        message: "edge copy gone",
      });
      coldEdge.push(await firstVideo(edge.flvUrl(PATH)));
      coldOrigin.push(await firstVideo(origin.flvUrl(PATH)));
      // Spread the tries over the GOP so the keyframe's age varies.
      await delay(137);
    }

    // (b) hop delay
    const WARMUP_MS = 2000;
    const arrivals = { origin: new Map<string, number>(), edge: new Map<string, number>() };
    const key = (t: ReadTag) => `${t.type}:${t.timestamp}:${t.data.byteLength}`;
    const started = performance.now();
    const record = (m: Map<string, number>) => (t: ReadTag) => {
      const now = performance.now();
      if (now - started < WARMUP_MS) return; // the GOP burst and start-up
      if (t.type === 18 || t.video?.sequenceHeader || t.audio?.sequenceHeader) return;
      if (!m.has(key(t))) m.set(key(t), now);
    };
    const durationMs = WARMUP_MS + HOP_SECONDS * 1000;
    await Promise.all([
      readFlv(origin.flvUrl(PATH), {
        durationMs,
        timeoutMs: durationMs + 20_000,
        onTag: record(arrivals.origin),
      }),
      readFlv(edge.flvUrl(PATH), {
        durationMs,
        timeoutMs: durationMs + 20_000,
        onTag: record(arrivals.edge),
      }),
    ]);
    const deltas: number[] = [];
    const videoDeltas: number[] = [];
    for (const [k, at] of arrivals.edge) {
      const o = arrivals.origin.get(k);
      if (o === undefined) continue;
      deltas.push(at - o);
      if (k.startsWith("9:")) videoDeltas.push(at - o);
    }
    if (deltas.length === 0) throw new Error("no tag seen by both readers");

    const summary = {
      machine: { cpus: navigator.hardwareConcurrency, load: Deno.loadavg() },
      stream: { codec: "h264+aac", size: "320x240", fps: FPS, gop_frames: FPS },
      cold_start_first_video_ms: {
        edge_relay: stats(coldEdge),
        edge_first_try_cold_quic: Math.round(coldEdge[0]! * 100) / 100,
        origin_local: stats(coldOrigin),
      },
      relay_hop_extra_delay_ms: {
        all_tags: stats(deltas),
        video_tags: stats(videoDeltas),
        matched_tags: deltas.length,
        edge_only: arrivals.edge.size - deltas.length,
        origin_only: arrivals.origin.size - deltas.length,
      },
    };
    const text = JSON.stringify(summary, null, 2);
    console.log(text);
    const dir = decodeURIComponent(new URL("./results/", import.meta.url).pathname);
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(`${dir}relay_latency.json`, text + "\n");
  } finally {
    await pub.stop("SIGKILL");
    await edge.stop();
    await origin.stop();
  }
}

await main();
