/** Renders BENCHMARKS.md from the results of one run (bench/results/latest.json). */

import type { Results } from "./main.ts";
import type { FanoutResult } from "./fanout.ts";
import type { HopResult, ThroughputResult } from "./relay.ts";
import type { ColdResult } from "./coldstart.ts";
import type { OfflineResult, RepublishResult } from "./failover.ts";
import type { ProfileResult } from "./profile.ts";
import { ENCODE_ARGS } from "./media.ts";

interface LatencyStats {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

/** The JSON bench/relay_latency.ts writes (fields read defensively: that script has its own owner). */
interface RelayLatencyJson {
  ok?: boolean;
  error?: string;
  cold_start_first_video_ms?: { edge_relay?: LatencyStats; origin_local?: LatencyStats };
  relay_hop_extra_delay_ms?: { video_tags?: LatencyStats; all_tags?: LatencyStats };
}

const NAMES: Record<string, string> = { ours: "ours", nginx: "nginx-rtmp", nms: "Node-Media-Server" };

function f(v: number | undefined | null, d = 1): string {
  return v === undefined || v === null || !Number.isFinite(v) ? "–" : v.toFixed(d);
}

function pct(v: number | undefined, d = 1): string {
  return v === undefined || !Number.isFinite(v) ? "–" : `${(v * 100).toFixed(d)} %`;
}

function ratio(a: number | undefined, b: number | undefined, d = 2): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return "–";
  return `${(a / b).toFixed(d)}`;
}

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

function has<T>(v: unknown, k: string): v is T {
  return typeof v === "object" && v !== null && k in v;
}

type Get = (server: string, protocol: string, n: number) => FanoutResult | undefined;

/** Healthy: every player started and kept up (≤ 5 % late frames, ≥ 95 % delivered). */
export function healthy(r: FanoutResult | undefined): r is FanoutResult {
  return !!r && r.status === "ok" && r.started === r.n && r.dropped === 0 && r.delivered >= 0.95 &&
    r.lateShare <= 0.05;
}

/** The largest N at which both servers have usable numbers. */
function commonN(get: Get, levels: number[], protocol: string, a: string, b: string): number | null {
  let best: number | null = null;
  for (const n of levels) if (healthy(get(a, protocol, n)) && healthy(get(b, protocol, n))) best = n;
  return best;
}

function fanoutTable(res: Results, protocol: string, servers: string[], get: Get): string {
  const rows: string[][] = [];
  for (const n of res.params.levels) {
    for (const s of servers) {
      const r = get(s, protocol, n);
      const cap = res.capped.find((c) => c.server === s && c.protocol === protocol && c.skipped.includes(n));
      if (!r) {
        if (cap) {
          rows.push([
            String(n),
            NAMES[s]!,
            `not run: ${cap.reason} at N=${cap.at}`,
            "",
            "",
            "",
            "",
            "",
            "",
            "",
          ]);
        }
        continue;
      }
      if (r.status !== "ok") {
        rows.push([String(n), NAMES[s]!, `failed: ${r.note.slice(0, 120)}`, "", "", "", "", "", "", "", ""]);
        continue;
      }
      const notes = [
        r.started < n ? `${n - r.started} players failed to start` : "",
        r.dropped ? `${r.dropped} players dropped` : "",
        r.readerSaturated ? `reader saturated (${f(r.readerCores, 2)} cores)` : "",
        r.machineCores >= 0.95 * res.machine.nproc ? "machine saturated" : "",
        r.serverDropped > 0 ? `server skipped ${r.serverDropped} frames for slow players` : "",
        r.delivered > 1.03 ? "players still catching up on the start-up burst" : "",
        r.note,
      ].filter(Boolean).join("; ");
      rows.push([
        String(n),
        NAMES[s]!,
        f(r.cpuPerPlayerS * 1000, 3),
        f(r.serverCores, 2),
        f(r.machineCores, 2),
        f(r.egressMbps, 0),
        f(r.rssPerPlayerKiB, 0),
        pct(r.lateShare),
        pct(r.delivered),
        f(r.delayP99, 0),
        notes,
      ]);
    }
  }
  return table([
    "N",
    "server",
    "CPU ms / player-s",
    "server cores",
    "machine cores",
    "egress Mbit/s",
    "RSS KiB / player",
    "late frames",
    "frames delivered",
    "delay p99 ms",
    "notes",
  ], rows);
}

function ratioTable(res: Results, get: Get): string {
  const rows: string[][] = [];
  const pairs: [string, string][] = [["http-flv", "nms"], ["rtmp", "nginx"], ["rtmp", "nms"]];
  for (const [protocol, peer] of pairs) {
    for (const n of res.params.levels) {
      const o = get("ours", protocol, n);
      const t = get(peer, protocol, n);
      if (!o || !t || o.status !== "ok" || t.status !== "ok") continue;
      const flag = !healthy(o) || !healthy(t) ? " (one side not healthy)" : "";
      rows.push([
        protocol.toUpperCase(),
        NAMES[peer]! + flag,
        String(n),
        ratio(o.cpuPerPlayerS, t.cpuPerPlayerS),
        ratio(t.cpuPerPlayerS, o.cpuPerPlayerS),
        ratio(o.rssPerPlayerKiB, t.rssPerPlayerKiB),
        ratio(o.egressMbps, t.egressMbps),
        `${pct(o.lateShare)} vs ${pct(t.lateShare)}`,
      ]);
    }
  }
  return table([
    "protocol",
    "peer",
    "N",
    "CPU per player-s, ours/theirs",
    "players per CPU, ours/theirs",
    "RSS per player, ours/theirs",
    "egress, ours/theirs",
    "late frames, ours vs theirs",
  ], rows);
}

/** Node-Media-Server's bursty delivery, when the run shows it (its delay p99 at healthy levels). */
function nmsCaveat(res: Results): string {
  const nms = res.fanout.filter((r) => r.server === "nms" && healthy(r));
  const ours = res.fanout.filter((r) => r.server === "ours" && healthy(r));
  if (!nms.length) return "";
  const nmsMin = Math.min(...nms.map((r) => r.delayP99));
  if (!(nmsMin > 200)) return "";
  const oursMax = ours.length ? Math.max(...ours.filter((r) => r.n <= 1000).map((r) => r.delayP99)) : NaN;
  return `**Node-Media-Server delivers in bursts.** At every healthy level its players' delay p99 is ≥ ${
    f(nmsMin, 0)
  } ms (ours: ≤ ${f(oursMax, 0)} ms up to N=1000): it hands each player several frames at once every
~0.15–0.3 s (a one-off check with a TypeScript publisher instead of ffmpeg showed the same bursts, so it is not the
publisher), and it corks player sockets until the next tick, so it pays the per-write costs once per burst instead of once per
frame. Its CPU per player-second is therefore bought with ~0.3–0.4 s of extra, jittery latency; at equal latency
the comparison would look different. Lateness (> ${res.params.fanout.lateMs} ms) does not catch bursts this short.

`;
}

/** Where we use more CPU or memory per player than a peer, from the fan-out numbers. */
function lossNote(res: Results, get: Get): string {
  const lines: string[] = [];
  for (const [protocol, peer] of [["http-flv", "nms"], ["rtmp", "nginx"], ["rtmp", "nms"]] as const) {
    const n = commonN(get, res.params.levels, protocol, "ours", peer);
    if (n === null) continue;
    const o = get("ours", protocol, n)!;
    const t = get(peer, protocol, n)!;
    const cpu = o.cpuPerPlayerS / t.cpuPerPlayerS;
    const mem = o.rssPerPlayerKiB / t.rssPerPlayerKiB;
    const bits: string[] = [];
    if (cpu > 1.05) bits.push(`${cpu.toFixed(2)}× the CPU per player-second`);
    if (mem > 1.05) {
      bits.push(
        `${mem.toFixed(1)}× the memory per player (${f(o.rssPerPlayerKiB, 0)} vs ${
          f(t.rssPerPlayerKiB, 0)
        } KiB)`,
      );
    }
    if (bits.length) {
      lines.push(`- ${protocol.toUpperCase()}, N=${n}: ours uses ${bits.join(" and ")} of ${NAMES[peer]}.`);
    }
  }
  const hop = (res.relayLatency as RelayLatencyJson | null)?.relay_hop_extra_delay_ms?.video_tags;
  const nh = res.nginxHop;
  if (hop && has<HopResult>(nh, "p99") && hop.p99 > 1.5 * nh.p99) {
    lines.push(
      `- Relay hop: ours adds ${f(hop.p50, 2)} ms p50 / ${
        f(hop.p99, 2)
      } ms p99 (QUIC relay, HTTP-FLV out), nginx-rtmp's pull edge ${f(nh.p50, 2)} / ${
        f(nh.p99, 2)
      } ms (RTMP pull over TCP).`,
    );
  }
  const tp = ((res.throughput as ThroughputResult[] | null) ?? []).filter((t) =>
    has<ThroughputResult>(t, "streams")
  );
  const kmax = Math.max(0, ...tp.map((t) => t.streams));
  const to = tp.find((t) => t.system === "ours" && t.streams === kmax);
  const tn = tp.find((t) => t.system === "nginx" && t.streams === kmax);
  if (to && tn && to.edgeCores > 1.5 * tn.edgeCores) {
    lines.push(
      `- Relay edge CPU at ${kmax} streams: ours ${f(to.edgeCores, 2)} cores, nginx-rtmp ${
        f(tn.edgeCores, 2)
      } ` +
        `(${f(to.edgeCores / Math.max(tn.edgeCores, 1e-9), 1)}×).`,
    );
  }
  return lines.length
    ? `Where we lose (fan-out: largest level where both sides were healthy):\n\n${lines.join("\n")}`
    : "We did not use more CPU or memory per player than a peer at any level where both were healthy.";
}

/** The highest healthy N per server/protocol. */
function capacityTable(res: Results, get: Get): string {
  const rows: string[][] = [];
  for (
    const [s, p] of [["ours", "http-flv"], ["nms", "http-flv"], ["ours", "rtmp"], ["nginx", "rtmp"], [
      "nms",
      "rtmp",
    ]]
  ) {
    if (!res.fanout.some((r) => r.server === s && r.protocol === p)) continue;
    let best: FanoutResult | undefined;
    let firstBad: FanoutResult | undefined;
    for (const n of res.params.levels) {
      const r = get(s!, p!, n);
      if (healthy(r)) best = r;
      else if (r && !firstBad) firstBad = r;
    }
    const why = firstBad
      ? firstBad.status !== "ok"
        ? `N=${firstBad.n}: failed`
        : `N=${firstBad.n}: ${pct(firstBad.lateShare)} late, ${pct(firstBad.delivered)} delivered, ${
          firstBad.n - firstBad.started
        } not started; server ${f(firstBad.serverCores, 2)} cores, machine ${f(firstBad.machineCores, 2)}`
      : "";
    rows.push([
      p!.toUpperCase(),
      NAMES[s!]!,
      best ? String(best.n) : "none",
      best ? f(best.serverCores, 2) : "–",
      why,
    ]);
  }
  return table(
    ["protocol", "server", "highest healthy N", "server cores there", "first level that was not"],
    rows,
  );
}

export function renderReport(res: Results): string {
  const get: Get = (s, p, n) => res.fanout.find((r) => r.server === s && r.protocol === p && r.n === n);
  const m = res.machine;
  const out: string[] = [];
  const w = res.params.fanout;
  out.push(`# Benchmarks

Measured by \`make bench\` (bench/run.sh → bench/main.ts) on ${
    res.startedAt.slice(0, 16).replace("T", " ")
  } UTC;
the whole run took ${f(res.wallS / 60, 1)} minutes${
    res.quick ? " (**BENCH_QUICK=1: a smoke run, not a benchmark**)" : ""
  }.
Our node and its peers (nginx with the RTMP module, Node-Media-Server) ran on the same ${m.nproc}-core machine in the
same run, one after the other, level by level; the machine is shared and noisy (load average ${m.loadavg} at the
start, ${m.loadavgEnd} at the end), so **compare the ratios, not the absolute numbers**. Every number below comes
from that run; bench/results/latest.json (git-ignored) has them all, with each player worker's error messages.`);

  // ---------------------------------------------------------------- summary
  const rows: string[][] = [];
  const fanoutTarget = (protocol: string, peer: string, factor: number) => {
    const n = commonN(get, res.params.levels, protocol, "ours", peer);
    if (n === null) return ["–", "no level where both ran unsaturated"];
    const o = get("ours", protocol, n)!;
    const t = get(peer, protocol, n)!;
    const r = t.cpuPerPlayerS / o.cpuPerPlayerS;
    return [`${r.toFixed(2)}× (N=${n}, ${protocol.toUpperCase()})`, r >= factor ? "met" : "not met"];
  };
  const [nx, nxv] = fanoutTarget("rtmp", "nginx", 1);
  rows.push(["fan-out: players per CPU ≥ nginx-rtmp's (RTMP)", nx!, nxv!]);
  const [nh, nhv] = fanoutTarget("http-flv", "nms", 2);
  rows.push(["fan-out: players per CPU ≥ 2× Node-Media-Server (HTTP-FLV)", nh!, nhv!]);
  const [nr, nrv] = fanoutTarget("rtmp", "nms", 2);
  rows.push(["fan-out: players per CPU ≥ 2× Node-Media-Server (RTMP)", nr!, nrv!]);
  const maxHealthy = (s: string, p: string) => {
    let best = 0;
    for (const n of res.params.levels) if (healthy(get(s, p, n))) best = n;
    return best;
  };
  for (
    const [p, peer, factor] of [["rtmp", "nginx", 1], ["http-flv", "nms", 2], ["rtmp", "nms", 2]] as const
  ) {
    if (!res.fanout.some((r) => r.server === peer && r.protocol === p)) continue;
    const o = maxHealthy("ours", p);
    const t = maxHealthy(peer, p);
    const top = Math.max(...res.params.levels);
    rows.push([
      `(capacity) highest healthy level ≥ ${factor === 1 ? "" : `${factor}× `}${
        NAMES[peer]
      }'s (${p.toUpperCase()})`,
      `${o || "none"} vs ${t || "none"} players (levels ${res.params.levels.join("/")})`,
      o === 0
        ? "not met"
        : o >= factor * t
        ? "met"
        : o === top && t >= top / factor
        ? "not measurable (top level reached)"
        : "not met",
    ]);
  }
  const rl = res.relayLatency as RelayLatencyJson | null;
  const hop = rl?.relay_hop_extra_delay_ms?.video_tags;
  if (hop) {
    rows.push([
      "relay hop: p99 extra delay < 5 ms (loopback)",
      `p99 ${f(hop.p99, 2)} ms (p50 ${f(hop.p50, 2)}); nginx-rtmp's hop: ${
        has<HopResult>(res.nginxHop, "p99")
          ? `p99 ${f((res.nginxHop as HopResult).p99, 2)} ms (p50 ${f((res.nginxHop as HopResult).p50, 2)})`
          : "–"
      }`,
      hop.p99 < 5 ? "met" : "not met",
    ]);
  } else rows.push(["relay hop: p99 extra delay < 5 ms (loopback)", "not measured", ""]);
  const ce = rl?.cold_start_first_video_ms?.edge_relay;
  if (ce) {
    rows.push([
      "cold start on an edge: p50 < 300 ms (HTTP-FLV)",
      `p50 ${f(ce.p50, 0)} ms (p99 ${f(ce.p99, 0)})`,
      ce.p50 < 300 ? "met" : "not met",
    ]);
  } else rows.push(["cold start on an edge: p50 < 300 ms", "not measured", ""]);
  const fo = res.failover as { republish?: RepublishResult[] } | null;
  for (const r of fo?.republish ?? []) {
    rows.push([
      `players resume ≤ 2 s after the publisher reconnects (${r.move})`,
      `max ${f(r.max / 1000, 2)} s, p50 ${f(r.p50 / 1000, 2)} s (${r.samples} samples)`,
      r.samples > 0 && r.max <= 2000 && r.samples === r.reps * r.players ? "met" : "not met",
    ]);
  }
  out.push(`## Summary against the targets\n\n${table(["target", "measured", ""], rows)}`);

  // ---------------------------------------------------------------- fan-out
  out.push(`## Fan-out: one publisher, N players on one server

${
    table(["protocol", "servers"], [["HTTP-FLV", "ours, Node-Media-Server"], [
      "RTMP",
      "ours, nginx-rtmp, Node-Media-Server",
    ]])
  }

**Method.** For every level N and every server/protocol, the server starts fresh; ffmpeg publishes one stream
(\`-re -stream_loop -1 -c copy\` of a clip encoded once with \`${ENCODE_ARGS.join(" ")}\`: testsrc 1280x720,
25 fps, H.264 CBR 2 Mbit/s with a 2 s GOP, AAC 128 kbit/s, ~2.2 Mbit/s in all). Copying a pre-encoded clip keeps
the publisher's CPU near zero; a live 720p x264 encode would take most of one of the ${m.nproc} cores from the servers.
A probe player waits for the first video frame, then the server's RSS is read. N players connect (TypeScript/Deno
processes of at most ${w.playersPerWorker} players each, raw TCP: HTTP-FLV = \`GET /live/bench.flv HTTP/1.1\` with a
chunked or raw FLV body scanned by a minimal tag parser; RTMP = plain handshake, connect, createStream, play,
acknowledgements and ping replies; no payload is copied). After all are connected, ${w.warmupS} s of warm-up,
then a ${w.windowS} s window:

- **CPU ms / player-s**: server CPU (utime+stime from /proc/PID/stat over the window; nginx: master + worker)
  divided by N × window. **server cores** = CPU seconds / window seconds. Fewer ms per player-second = more
  players per core; "players per CPU" in the ratio table is its inverse.
- **egress**: bytes the players received in the window × 8 / window.
- **RSS KiB / player**: (server VmRSS at the end of the window − VmRSS before the players) / N.
- **late frames**: a coded video frame is late when its \`arrival − dts\` exceeds that player's smallest
  \`arrival − dts\` by more than ${w.lateMs} ms (i.e. it is > ${w.lateMs} ms behind the best pace the player saw).
  The reference is the player's best frame rather than its first, because a server with a GOP cache hands a
  new player up to 2 s of old frames at once; measured from the first frame, everything after would look
  early and lateness up to 2 s would be invisible. **frames delivered** = video frames received in the window /
  (N × 25 × window): a server that skips frames to keep up shows it here, not as lateness. **delay p99**: of
  \`arrival − dts\` over each player's best, all window frames.
- **machine cores**: busy time of the whole machine over the window (/proc/stat), i.e. server + players +
  kernel + whatever else ran; at ${m.nproc} the level was limited by the machine.
- A server/protocol stops at the first level where it is saturated (fewer than half of the frames delivered,
  more than half late, or players that cannot connect); the higher levels are then marked "not run".
  "reader saturated" marks a level whose player process used ≥ 0.9 of a core: its lateness may be the reader's.
- Configs: ours = default config (cluster on, standalone), log level warn, routing thresholds out of reach so it
  never redirects players; nginx = \`worker_processes 1\` (one process serves, like our single process),
  \`application live { live on; }\`, chunk_size 4096; Node-Media-Server ${m.versions.nms} on Node ${m.versions.node},
  GOP cache on, chunk_size 4096, log errors only. All bind 127.0.0.1.

### HTTP-FLV

${fanoutTable(res, "http-flv", ["ours", "nms"], get)}

### RTMP

${fanoutTable(res, "rtmp", ["ours", "nginx", "nms"], get)}

${nmsCaveat(res)}### Highest level each server kept up with

"Healthy" = every player started and stayed, ≤ 5 % of video frames late, ≥ 95 % delivered. The levels are
${res.params.levels.join(", ")} players, so the true limit lies between the healthy level and the next one.
When the "machine" column of the failing level is near ${m.nproc}, the whole machine (server, player processes
and the kernel's loopback TCP) was saturated, not necessarily the server.

${capacityTable(res, get)}

### Ratios (ours / theirs, same N, same run)

${ratioTable(res, get)}`);
  if (res.capped.length) {
    out.push(
      `Capped levels:\n\n${
        res.capped.map((c) =>
          `- ${NAMES[c.server]} ${c.protocol.toUpperCase()}: ${c.reason} at N=${c.at}${
            c.skipped.length ? `; not run: N=${c.skipped.join(", ")}` : ""
          }`
        ).join("\n")
      }`,
    );
  }

  // ---------------------------------------------------------------- relay
  const nh2 = res.nginxHop as HopResult | { error: string } | null;
  const hopRows: string[][] = [];
  if (hop) {
    hopRows.push([
      "ours (QUIC relay, 2 nodes)",
      "HTTP-FLV",
      String(hop.n ?? "–"),
      f(hop.p50, 2),
      f(hop.p99, 2),
      f(hop.max, 2),
    ]);
  } else if (rl) {
    hopRows.push(["ours", "HTTP-FLV", "–", "–", "–", `failed: ${String(rl.error ?? "").slice(0, 200)}`]);
  }
  if (has<HopResult>(nh2, "p50")) {
    hopRows.push([
      "nginx-rtmp (origin + pull edge)",
      "RTMP",
      String(nh2.frames),
      f(nh2.p50, 2),
      f(nh2.p99, 2),
      f(nh2.max, 2),
    ]);
  } else if (has<{ error: string }>(nh2, "error")) {
    hopRows.push(["nginx-rtmp", "RTMP", "–", "–", "–", `failed: ${nh2.error.slice(0, 200)}`]);
  }
  const tp = (res.throughput as (ThroughputResult | { system: string; error: string })[] | null) ?? [];
  const tpRows = tp.map((t) =>
    has<ThroughputResult>(t, "streams")
      ? [
        NAMES[t.system]!,
        String(t.streams),
        `${t.players}/${t.streams}`,
        pct(t.lateShare),
        pct(t.delivered),
        f(t.delayP99, 0),
        f(t.edgeCores, 2),
        f(t.streamsPerEdgeCore, 0),
        f(t.originCores, 2),
        t.allOnTime ? "yes" : "no",
        t.note,
      ]
      : [
        NAMES[t.system] ?? t.system,
        "–",
        "–",
        "–",
        "–",
        "–",
        "–",
        "–",
        "–",
        `failed: ${t.error.slice(0, 200)}`,
      ]
  );
  out.push(`## Relay: origin → edge

**Hop delay.** Ours: \`bench/relay_latency.ts\` (written alongside this harness and run by it unchanged:
\`--tries ${res.params.latencyTries} --seconds ${res.params.latencySeconds}\`): an origin and an edge node (the edge
seeded with the origin, relay over QUIC), ffmpeg publishing testsrc 320x240 25 fps (1 s GOP) + AAC to the origin,
one HTTP-FLV reader on each node read at the same time in one process; tags are matched by (type, timestamp, size)
and the extra delay is edge arrival − origin arrival, leaving out the first 2 s (the GOP burst). nginx-rtmp: the
same stream, an origin nginx and an edge nginx whose \`live\` application has \`pull rtmp://127.0.0.1:ORIGIN/live\`
(each \`worker_processes 1\`), one RTMP player on each (nginx-rtmp has no HTTP-FLV), video frames matched by
timestamp, first 2 s left out.

${table(["system", "protocol", "video frames", "extra delay p50 ms", "p99 ms", "max ms"], hopRows)}

**Throughput.** K streams of the 2 Mbit/s clip published to the origin, one RTMP player per stream on the edge
(the edge pulls K relays), ${res.params.throughputWindowS} s window after 2 s of warm-up; late and delivered as in
fan-out. "all on time" = every player started, no late frame, > 97 % of frames delivered. "≈ streams per edge
core" = K / edge cores: an extrapolation of how many such streams one edge core could pull, not a measurement.

${
    table(
      [
        "system",
        "streams",
        "players",
        "late frames",
        "frames delivered",
        "delay p99 ms",
        "edge cores",
        "≈ streams per edge core",
        "origin cores",
        "all on time",
        "notes",
      ],
      tpRows,
    )
  }`);

  // ---------------------------------------------------------------- cold start
  const cold = (res.cold as (ColdResult | { system: string; error: string })[] | null) ?? [];
  const coldRows: string[][] = [];
  const co = rl?.cold_start_first_video_ms;
  if (co?.edge_relay) {
    coldRows.push([
      "ours",
      "edge",
      "HTTP-FLV",
      String(co.edge_relay.n),
      `${f(co.edge_relay.p50, 0)} / ${f(co.edge_relay.p99, 0)}`,
      "= first frame (starts on a key frame)",
      "relay_latency.ts",
    ]);
    coldRows.push([
      "ours",
      "origin",
      "HTTP-FLV",
      String(co.origin_local?.n),
      `${f(co.origin_local?.p50, 0)} / ${f(co.origin_local?.p99, 0)}`,
      "= first frame",
      "relay_latency.ts",
    ]);
  }
  for (const c of cold) {
    if (!has<ColdResult>(c, "edge")) {
      coldRows.push([
        NAMES[c.system] ?? c.system,
        "–",
        "RTMP",
        "–",
        "–",
        "–",
        `failed: ${c.error.slice(0, 200)}`,
      ]);
      continue;
    }
    for (const where of ["edge", "origin"] as const) {
      const s = c[where];
      coldRows.push([
        NAMES[c.system]!,
        where,
        "RTMP",
        `${s.ok}/${c.tries}`,
        `${f(s.anyP50, 0)} / ${f(s.anyP99, 0)}`,
        `${f(s.keyP50, 0)} / ${f(s.keyP99, 0)}`,
        c.note,
      ]);
    }
  }
  out.push(`## Cold start: play request → first video frame

On the edge the stream is not carried yet, so the time includes the relay set-up to the origin; on the origin the
stream is live locally. Ours over HTTP-FLV comes from \`bench/relay_latency.ts\` (edge with
\`release_delay: 0.1\`, relay released between tries, request → first coded video tag). Over RTMP both systems
are measured by this harness with the same stream and loop (\`bench/coldstart.ts\`: ours with
\`release_delay: 0.2\`, polled until the edge reports no relay; nginx-rtmp drops an on-demand pull when its last
player leaves, 0.5 s allowed), from before the TCP connect to the first coded video frame and to the first key
frame. nginx-rtmp has no GOP cache: a new player's video starts with the next key frame the publisher sends, up
to one GOP (1 s here) later; our node starts every player on the cached key frame at once.

${
    table([
      "system",
      "where",
      "protocol",
      "tries",
      "first frame p50 / p99 ms",
      "first key frame p50 / p99 ms",
      "notes",
    ], coldRows)
  }`);

  // ---------------------------------------------------------------- failover
  const fo2 = res.failover as
    | { republish: RepublishResult[]; offline: OfflineResult }
    | { error: string }
    | null;
  if (has<{ republish: RepublishResult[]; offline: OfflineResult }>(fo2, "republish")) {
    const off = fo2.offline;
    const hb = off.heartbeat;
    out.push(`## Failover (our cluster)

**Publisher reconnect.** Nodes A and C (origin and edge roles) and B (edge only) in one cluster; the clip is
published from the harness to A over RTMP, and ${
      fo2.republish[0]?.players ?? "–"
    } HTTP-FLV players play it on B
(B relays from A). The publisher's TCP connection is cut without an unpublish (a crashed encoder), and 300 ms
later it reconnects — to the same node, or to the other origin-capable node (A ↔ C), which makes B switch its
relay. Resume time = first video frame at each edge player after the reconnect began − the moment the new
publisher started its TCP connect (so it includes the RTMP handshake and publish).

${
      table(
        [
          "reconnect to",
          "reconnects",
          "samples (players × reconnects)",
          "resume p50 ms",
          "resume max ms",
          "players dropped",
          "notes",
        ],
        fo2.republish.map((r) => [
          r.move,
          String(r.reps),
          String(r.samples),
          f(r.p50, 0),
          f(r.max, 0),
          `${r.disconnected}/${r.players}`,
          r.note,
        ]),
      )
    }

**Offline detection.** A node D joins A's cluster and is killed with SIGKILL once A sees it Online; A's
\`GET /cluster/api/servers\` is polled every 25 ms. Heartbeat settings of every benchmark cluster:
\`heartbeat_interval: ${hb.heartbeat_interval}\`, \`heartbeat_ttl: ${hb.heartbeat_ttl}\`,
\`suspect_threshold: ${hb.suspect_threshold}\`, \`offline_threshold: ${hb.offline_threshold}\` (a peer is Offline after
${hb.offline_threshold} missed heartbeats, so expect ≈ ${hb.offline_threshold}–${hb.offline_threshold + 1} ×
${hb.heartbeat_interval} s; with the defaults, 5 s × 3, that is ≈ 15–20 s).

${
      table(["tries", "to Suspect ms", "to Offline ms"], [[
        String(off.reps),
        off.suspectMs.map((x) => f(x, 0)).join(", "),
        off.offlineMs.map((x) => f(x, 0)).join(", "),
      ]])
    }`);
  } else if (has<{ error: string }>(fo2, "error")) {
    out.push(`## Failover (our cluster)\n\nFailed: ${fo2.error}`);
  }

  // ---------------------------------------------------------------- profile
  const profiles = (Array.isArray(res.profile) ? res.profile : []) as (ProfileResult | {
    protocol: string;
    error: string;
  })[];
  if (profiles.length) {
    const parts: string[] = [];
    parts.push(`## Where the time goes

${lossNote(res, get)}

Our node was profiled under the fan-out load, one protocol at a time: V8's sampling profiler driven through the
inspector (\`deno run --inspect\`, Chrome DevTools Protocol \`Profiler.start\`/\`stop\`), after 2 s of warm-up.
The inspector adds some overhead, so these profiles are not part of the numbers above. Self time, as a share of
busy (non-idle) time.`);
    for (const pr of profiles) {
      if (!has<ProfileResult>(pr, "top")) {
        parts.push(`### ${pr.protocol.toUpperCase()}\n\nProfile failed: ${pr.error}`);
        continue;
      }
      const busy = Object.entries(pr.byArea).filter(([k]) => k !== "idle").reduce((a, [, v]) => a + v, 0);
      const areas = Object.entries(pr.byArea).filter(([k]) => k !== "idle").sort((a, b) => b[1] - a[1]);
      parts.push(`### ${pr.protocol.toUpperCase()}: ${pr.players} players, ${pr.seconds} s

${table(["area", "share of busy time"], areas.map(([k, v]) => [k, pct(v / busy)]))}

${
        table(
          ["function (self time)", "where", "self ms", "share"],
          pr.top.slice(0, 12).map((e) => [`\`${e.fn}\``, e.where, f(e.selfMs, 0), pct(e.share)]),
        )
      }`);
    }
    parts.push(
      `How the play paths are built (src/http/_play.ts, src/rtmp/_session.ts), which is what the profiles
show: every frame goes to every player on its own — HTTP-FLV through one \`ReadableStream\` \`pull()\` that
enqueues one pre-encoded FLV tag (\`highWaterMark: 1\`) and one write of Deno.serve's response body; RTMP through
one awaited \`conn.write()\` of the frame's pre-encoded chunks. The bytes are shared, nothing is copied or re-encoded
per player, but the fixed cost per write (promise resolution, op call into Rust, a syscall) is paid
players × ~68 times a second (25 video + ~43 AAC frames). Writing whatever is queued for a player in one go (the
subscriber queue already holds it) would divide that cost by the number of frames per write. On memory, each
RTMP connection keeps a 64 KiB read buffer (\`READ_BUFFER_SIZE\` in src/rtmp/_session.ts) and a chunk reader whose
queue starts at 64 KiB (src/rtmp/_chunk.ts → \`ByteQueue\`), although a player sends almost nothing after
\`play\`; nginx-rtmp's per-connection buffers are a few KiB.`,
    );
    out.push(parts.join("\n\n"));
  }

  // ---------------------------------------------------------------- machine
  const v = m.versions;
  out.push(`## Machine and versions

${
    table(["", ""], [
      ["CPU", `${m.cpuModel}, ${m.nproc} cores (nproc)`],
      ["memory", `${m.memGiB} GiB`],
      ["OS / kernel", `${m.os} / Linux ${m.kernel}`],
      ["load average", `${m.loadavg} (start), ${m.loadavgEnd} (end): other work was running`],
      ["Deno", `${v.deno} (V8 ${v.v8})`],
      ["nginx", `${v.nginx}, libnginx-mod-rtmp ${v.nginxRtmp} (Debian)`],
      ["Node.js / Node-Media-Server", `${v.node} / ${v.nms} (npm)`],
      ["ffmpeg", v.ffmpeg],
    ])
  }

Reproduce: \`make bench\` (installs nginx + libnginx-mod-rtmp with apt-get and node-media-server@${v.nms} into
.tools/bench/ when missing). \`BENCH_QUICK=1 make bench\` is a two-minute smoke run (it writes
bench/results/quick.json and BENCHMARKS.quick.md, never BENCHMARKS.md); \`BENCH_ONLY=fanout\`,
\`BENCH_LEVELS=100,500\` and \`BENCH_SERVERS=ours,nginx\` narrow it. Logs of every process of the last run are in
bench/results/logs/.`);
  return out.join("\n\n") + "\n";
}
