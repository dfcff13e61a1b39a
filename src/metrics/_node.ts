/**
 * The node's metrics: what `/metrics` shows. Most values are read at scrape time from state
 * the node keeps anyway (hub stats, membership, relay sessions, manager counters, process
 * figures); players and publishes are counted from hub events. The cluster is seen through
 * the structural `ClusterSource`, so this module imports nothing from the cluster.
 * Every family, its type and labels are listed in docs/metrics.md; keep the two in step.
 */

import process from "node:process";
import type { StreamHub } from "../media/mod.ts";
import type { CollectedFamily, Sample } from "./_registry.ts";
import { MetricsRegistry } from "./_registry.ts";

/** Names of the stored families that other modules may move with `inc()`. */
export const MetricNames = {
  relayReconnects: "streamcluster_relay_reconnects_total",
  playerConnects: "streamcluster_player_connects_total",
  publishes: "streamcluster_publishes_total",
  players: "streamcluster_players",
} as const;

const PLAYER_PROTOCOLS = ["http-flv", "ws-flv", "rtmp"] as const;
const PEER_STATES = ["Online", "Suspect", "Offline"] as const;
const RELAY_STATES = ["connecting", "active", "retrying", "closed"] as const;

/** What the metrics read of the cluster (the `Cluster` class fits it as is). */
export interface ClusterSource {
  readonly identity: { readonly serverId: string };
  readonly sync: {
    readonly membership: { list(): readonly { server_id: string; state: string; last_heartbeat: number }[] };
    /** Heartbeat round-trip times in ms by server_id. */
    readonly rtts: ReadonlyMap<string, number>;
  };
  readonly relay: {
    sessions(): readonly { direction: string; state: string }[];
    /** Reconnects of pull relays since start, ended relays included. */
    reconnectsTotal(): number;
  } | null;
  readonly allocation: { readonly counters: { readonly allocations: number } };
  readonly redirect: { readonly counters: { readonly redirects: number; readonly decisions: number } };
}

export interface NodeMetricsOptions {
  hub: StreamHub;
  cluster: ClusterSource | null;
  version: string;
  now?: () => number;
}

/**
 * Builds the registry of one node: declares the stored families, hooks the hub's events and
 * registers the scrape-time collector. Returns the registry and a function that unhooks.
 */
export function createNodeMetrics(
  opts: NodeMetricsOptions,
): { metrics: MetricsRegistry; dispose: () => void } {
  const { hub, cluster } = opts;
  const now = opts.now ?? Date.now;
  const startedAtSec = (Date.now() - performance.now()) / 1000;
  const m = new MetricsRegistry();
  const byProtocol = PLAYER_PROTOCOLS.map((protocol) => ({ protocol }));

  m.counter(
    MetricNames.playerConnects,
    "Players that started playing on this node, by protocol.",
    ["protocol"],
    byProtocol,
  );
  m.counter(
    MetricNames.publishes,
    "Publisher sessions started on this node (rtmp: a client; relay: a pull from the origin).",
    ["protocol"],
    [{ protocol: "rtmp" }, { protocol: "relay" }],
  );
  m.gauge(MetricNames.players, "Players connected to this node now, by protocol.", ["protocol"], byProtocol);

  const offs = [
    hub.events.on("subscribe", (_s, sub) => {
      if (sub.info.protocol === "relay") return;
      m.inc(MetricNames.playerConnects, { protocol: sub.info.protocol });
      m.inc(MetricNames.players, { protocol: sub.info.protocol });
    }),
    hub.events.on("unsubscribe", (_s, sub) => {
      if (sub.info.protocol !== "relay") m.inc(MetricNames.players, { protocol: sub.info.protocol }, -1);
    }),
    hub.events.on("publish", (s) => {
      if (s.publisher) m.inc(MetricNames.publishes, { protocol: s.publisher.protocol });
    }),
  ];

  m.collect(() => [
    ...mediaFamilies(hub, cluster, opts.version),
    ...clusterFamilies(cluster, now()),
    ...processFamilies(startedAtSec),
  ]);
  return { metrics: m, dispose: () => offs.forEach((off) => off()) };
}

function gauge(
  name: string,
  help: string,
  samples: Sample[],
  labelNames: readonly string[] = [],
): CollectedFamily {
  return { name, help, type: "gauge", labelNames, samples };
}

function counter(name: string, help: string, value: number): CollectedFamily {
  return { name, help, type: "counter", samples: [{ value }] };
}

function mediaFamilies(hub: StreamHub, cluster: ClusterSource | null, version: string): CollectedFamily[] {
  let relayed = 0;
  let published = 0;
  for (const s of hub.liveStreams()) {
    if (s.publisher?.protocol === "relay") relayed++;
    else published++;
  }
  const pulls = new Map<string, number>(RELAY_STATES.map((s) => [s, 0]));
  let served = 0;
  for (const r of cluster?.relay?.sessions() ?? []) {
    if (r.direction === "pull") pulls.set(r.state, (pulls.get(r.state) ?? 0) + 1);
    else served++;
  }
  return [
    gauge(
      "streamcluster_node_info",
      "Always 1; labels carry this node's server_id (empty without cluster) and version.",
      [{ labels: { server_id: cluster?.identity.serverId ?? "", version }, value: 1 }],
      ["server_id", "version"],
    ),
    gauge(
      "streamcluster_streams_live",
      "Live streams on this node, by where their media comes from (publisher here, or relay from an origin).",
      [{ labels: { source: "publisher" }, value: published }, {
        labels: { source: "relay" },
        value: relayed,
      }],
      ["source"],
    ),
    counter(
      MetricNames.relayReconnects,
      "Reconnect attempts of pull relays after the relay broke.",
      cluster?.relay?.reconnectsTotal() ?? 0,
    ),
    counter(
      "streamcluster_bytes_in_total",
      "Media bytes received from publishers and pull relays.",
      hub.stats.bytesIn,
    ),
    counter(
      "streamcluster_bytes_out_total",
      "Media bytes written to players and to relays served to other nodes.",
      hub.stats.bytesOut,
    ),
    counter(
      "streamcluster_frames_dropped_total",
      "Frames skipped for slow players (a player that falls behind jumps to the next keyframe).",
      hub.stats.framesDropped,
    ),
    gauge(
      "streamcluster_relays",
      "Pull relays on this node (this node as edge), by state.",
      [...pulls].map(([state, value]) => ({ labels: { state }, value })),
      ["state"],
    ),
    gauge("streamcluster_relays_served", "Relays this node serves to other nodes (this node as origin).", [{
      value: served,
    }]),
  ];
}

function clusterFamilies(cluster: ClusterSource | null, nowMs: number): CollectedFamily[] {
  const peers = cluster?.sync.membership.list() ?? [];
  const byState = new Map<string, number>(PEER_STATES.map((s) => [s, 0]));
  for (const p of peers) byState.set(p.state, (byState.get(p.state) ?? 0) + 1);
  const rtts = cluster ? [...cluster.sync.rtts] : [];
  return [
    gauge(
      "streamcluster_peers",
      "Peers this node knows, by state as this node sees it.",
      [...byState].map(([state, value]) => ({ labels: { state }, value })),
      ["state"],
    ),
    gauge(
      "streamcluster_peer_state",
      "1 for the state each peer is in, 0 for the other states.",
      peers.flatMap((p) =>
        PEER_STATES.map((state) => ({
          labels: { server_id: p.server_id, state },
          value: p.state === state ? 1 : 0,
        }))
      ),
      ["server_id", "state"],
    ),
    gauge(
      "streamcluster_peer_heartbeat_age_seconds",
      "Seconds since the peer's last heartbeat (as last reported, directly or by gossip).",
      peers.filter((p) => p.last_heartbeat > 0).map((p) => ({
        labels: { server_id: p.server_id },
        value: Math.max(0, (nowMs - p.last_heartbeat) / 1000),
      })),
      ["server_id"],
    ),
    gauge(
      "streamcluster_peer_heartbeat_rtt_seconds",
      "Round-trip time of the last successful heartbeat this node sent to the peer.",
      rtts.map(([server_id, ms]) => ({ labels: { server_id }, value: ms / 1000 })),
      ["server_id"],
    ),
    counter(
      "streamcluster_allocations_total",
      "Allocation requests (publish and play) this node answered.",
      cluster?.allocation.counters.allocations ?? 0,
    ),
    counter(
      "streamcluster_redirect_decisions_total",
      "Redirect decisions this node made (API calls and overloaded play requests).",
      cluster?.redirect.counters.decisions ?? 0,
    ),
    counter(
      "streamcluster_redirects_total",
      "Players this node redirected to another node because it was over a threshold.",
      cluster?.redirect.counters.redirects ?? 0,
    ),
  ];
}

function processFamilies(startedAtSec: number): CollectedFamily[] {
  const mem = Deno.memoryUsage();
  const cpu = process.cpuUsage();
  const fams: CollectedFamily[] = [
    gauge("process_resident_memory_bytes", "Resident set size of the node process.", [{ value: mem.rss }]),
    gauge("deno_heap_used_bytes", "V8 heap in use.", [{ value: mem.heapUsed }]),
    gauge("deno_heap_total_bytes", "V8 heap reserved.", [{ value: mem.heapTotal }]),
    gauge("deno_external_memory_bytes", "Memory held outside the V8 heap (buffers).", [{
      value: mem.external,
    }]),
    counter("process_cpu_user_seconds_total", "User CPU time of the node process.", cpu.user / 1e6),
    counter("process_cpu_system_seconds_total", "System CPU time of the node process.", cpu.system / 1e6),
    counter(
      "process_cpu_seconds_total",
      "User and system CPU time of the node process.",
      (cpu.user + cpu.system) / 1e6,
    ),
    gauge("process_start_time_seconds", "Start of the node process, Unix seconds.", [{
      value: Math.round(startedAtSec * 1000) / 1000,
    }]),
    gauge("streamcluster_uptime_seconds", "Seconds since the node process started.", [{
      value: Math.round(performance.now()) / 1000,
    }]),
  ];
  const fds = openFds();
  if (fds !== null) {
    fams.push(
      gauge("process_open_fds", "Open file descriptors (sockets included) of the node process.", [{
        value: fds,
      }]),
    );
  }
  return fams;
}

/** Entries of /proc/self/fd, or null where that is not readable (not Linux, no read permission). */
function openFds(): number | null {
  try {
    let n = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
    return n - 1; // the directory handle used to list it
  } catch {
    return null;
  }
}
