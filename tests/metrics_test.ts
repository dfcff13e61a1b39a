/**
 * `/metrics` on a real node: the body parses as the Prometheus text format (checked line by
 * line by a small strict parser below), every metric documented in docs/metrics.md is there,
 * the media counters move when ffmpeg publishes and an HTTP-FLV player connects, and on two
 * nodes the peer and relay metrics describe the cluster.
 */

import assert from "node:assert/strict";
import { startClusterNode } from "./helpers/cluster.ts";
import { publish, readFlv } from "./helpers/media.ts";
import { REPO_ROOT, startNode } from "./helpers/node.ts";
import { waitFor, withTimeout } from "./helpers/wait.ts";

interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface PromFamily {
  help: string | null;
  type: string | null;
  samples: PromSample[];
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const VALUE = "[-+]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][-+]?\\d+)?|NaN|[+-]Inf";
const SAMPLE_LINE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*)?\\})? (${VALUE})$`);
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/g;

/**
 * Parses the text exposition format strictly: every line is `# HELP`, `# TYPE` or
 * `name{labels} value`; each family has exactly one HELP and one TYPE, both before its
 * samples; no series appears twice. Throws an `Error` naming the offending line.
 */
function parseExposition(text: string): Map<string, PromFamily> {
  assert.ok(text.endsWith("\n"), "the body ends with a newline");
  const families = new Map<string, PromFamily>();
  const series = new Set<string>();
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, f = { help: null, type: null, samples: [] });
    return f;
  };
  text.slice(0, -1).split("\n").forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line))) {
      const f = family(m[1]!);
      if (f.help !== null || f.samples.length) throw new Error(`HELP repeated or after samples, ${where}`);
      f.help = m[2]!;
    } else if ((m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line))) {
      const f = family(m[1]!);
      if (f.type !== null || f.samples.length) throw new Error(`TYPE repeated or after samples, ${where}`);
      f.type = m[2]!;
    } else if ((m = SAMPLE_LINE.exec(line))) {
      const f = families.get(m[1]!);
      if (!f || f.help === null || f.type === null) throw new Error(`sample without HELP and TYPE, ${where}`);
      const labels: Record<string, string> = {};
      for (const [, k, v] of (m[2] ?? "").matchAll(LABEL_PAIR)) {
        if (k! in labels) throw new Error(`label ${k} repeated, ${where}`);
        labels[k!] = v!.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
      }
      const key = `${m[1]}${JSON.stringify(Object.entries(labels).sort())}`;
      if (series.has(key)) throw new Error(`series repeated, ${where}`);
      series.add(key);
      const raw = m[3]!;
      const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
      if (f.type === "counter" && !(value >= 0)) throw new Error(`negative counter, ${where}`);
      f.samples.push({ name: m[1]!, labels, value });
    } else {
      throw new Error(`not a Prometheus text line, ${where}`);
    }
  });
  for (const [name, f] of families) {
    if (f.help === null || f.type === null) throw new Error(`family ${name} lacks HELP or TYPE`);
  }
  return families;
}

async function scrape(url: string): Promise<Map<string, PromFamily>> {
  const res = await withTimeout(fetch(`${url}/metrics`), 5000, "GET /metrics");
  const body = await res.text();
  assert.equal(res.status, 200, body);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return parseExposition(body);
}

function value(fams: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}): number {
  const f = fams.get(name);
  assert.ok(f, `metric ${name} is exposed`);
  const s = f.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(s, `${name}${JSON.stringify(labels)} has a sample: ${JSON.stringify(f.samples)}`);
  return s.value;
}

Deno.test("parser: accepts valid exposition and rejects what Prometheus would", () => {
  const ok = parseExposition(
    '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1",y="q\\"\\\\\\n"} 3\n# HELP g G.\n# TYPE g gauge\ng -1.5e3\ng{k="v"} NaN\n',
  );
  assert.deepEqual(ok.get("a_total")!.samples[0]!.labels, { x: "1", y: 'q"\\\n' });
  assert.equal(ok.get("g")!.samples[0]!.value, -1500);
  for (
    const bad of [
      "a 1\n", // no HELP/TYPE
      "# HELP a A.\n# TYPE a gauge\na{x=1} 1\n", // unquoted label value
      "# HELP a A.\n# TYPE a gauge\na 1 2 3\n",
      "# HELP a A.\n# TYPE a gauge\na one\n",
      "# HELP a A.\n# TYPE a gauge\na 1\na 2\n", // repeated series
      "# HELP a A.\n# TYPE a counter\na -1\n",
      "# HELP a A.\n# TYPE a gauge\na 1", // no final newline
    ]
  ) {
    assert.throws(() => parseExposition(bad), Error, JSON.stringify(bad));
  }
});

Deno.test("metrics: valid exposition, documented families, counters move with a publisher and a player", async () => {
  await using node = await startNode({}, { label: "metrics" });
  const before = await scrape(node.httpUrl);

  // Every family the docs list is exposed, with the documented type.
  const doc = await Deno.readTextFile(`${REPO_ROOT}/docs/metrics.md`);
  const documented = [...doc.matchAll(/^\| `([a-z_:]+)` +\| (counter|gauge) /gm)].map((m) =>
    [m[1]!, m[2]!] as const
  );
  assert.ok(documented.length >= 20, `docs/metrics.md lists the metrics (found ${documented.length})`);
  for (const [name, type] of documented) {
    assert.equal(before.get(name)?.type, type, `${name} is exposed as a ${type}`);
  }
  for (const name of before.keys()) {
    assert.ok(documented.some(([n]) => n === name), `${name} is documented in docs/metrics.md`);
  }
  assert.equal(value(before, "streamcluster_players", { protocol: "http-flv" }), 0);
  assert.equal(value(before, "streamcluster_bytes_out_total"), 0);
  assert.ok(value(before, "process_resident_memory_bytes") > 1e6);

  const path = "live/metrics";
  await using pub = publish(node.rtmpUrl(path), { seconds: 60 });
  await waitFor(async () => (await node.stream(path))?.video.codec === "h264", 20_000, {
    message: "stream live",
  });
  const live = await scrape(node.httpUrl);
  assert.equal(value(live, "streamcluster_streams_live", { source: "publisher" }), 1);
  assert.equal(value(live, "streamcluster_publishes_total", { protocol: "rtmp" }), 1);
  assert.ok(value(live, "streamcluster_bytes_in_total") > 0, "bytes_in grows while publishing");

  const stop = new AbortController();
  const playing = readFlv(node.flvUrl(path), { signal: stop.signal, timeoutMs: 60_000 });
  try {
    const during = await waitFor(
      async () => {
        const m = await scrape(node.httpUrl);
        return value(m, "streamcluster_players", { protocol: "http-flv" }) === 1 &&
            value(m, "streamcluster_bytes_out_total") > 0
          ? m
          : null;
      },
      20_000,
      { message: "players=1 and bytes_out > 0", intervalMs: 200 },
    );
    assert.equal(value(during, "streamcluster_player_connects_total", { protocol: "http-flv" }), 1);
    const out1 = value(during, "streamcluster_bytes_out_total");
    await waitFor(
      async () => value(await scrape(node.httpUrl), "streamcluster_bytes_out_total") > out1,
      10_000,
      {
        message: "bytes_out keeps growing while the player plays",
        intervalMs: 200,
      },
    );
  } finally {
    stop.abort();
    await playing.catch(() => {});
  }
  const result = await playing;
  assert.ok(result.tags.length > 0, "the player received FLV tags");

  const after = await waitFor(
    async () => {
      const m = await scrape(node.httpUrl);
      return value(m, "streamcluster_players", { protocol: "http-flv" }) === 0 ? m : null;
    },
    15_000,
    { message: "players back to 0 after the player left", intervalMs: 200 },
  );
  assert.equal(value(after, "streamcluster_player_connects_total", { protocol: "http-flv" }), 1);
  assert.ok(value(after, "process_cpu_seconds_total") >= value(before, "process_cpu_seconds_total"));
  await pub.stop("SIGKILL");
});

Deno.test("metrics: peers, heartbeat RTT and relays on a two-node cluster", async () => {
  await using origin = await startClusterNode({ ip: "127.0.0.5", serverId: "metrics-a" });
  await using edge = await startClusterNode({
    ip: "127.0.0.6",
    serverId: "metrics-b",
    seeds: [origin.address],
  });
  const online = (m: Map<string, PromFamily>, peer: string) =>
    value(m, "streamcluster_peer_state", { server_id: peer, state: "Online" }) === 1;
  await waitFor(
    async () =>
      online(await scrape(origin.httpUrl), "metrics-b") && online(await scrape(edge.httpUrl), "metrics-a"),
    20_000,
    {
      message: "each node reports the other Online",
      intervalMs: 200,
    },
  );

  const path = "live/metrics-relay";
  await using _pub = publish(origin.rtmpUrl(path), { seconds: 60 });
  await waitFor(async () => (await edge.api.sessions()).some((s) => s.stream_path === path), 20_000, {
    message: "the edge knows the session",
  });
  const stop = new AbortController();
  const playing = readFlv(edge.flvUrl(path), { signal: stop.signal, timeoutMs: 60_000 });
  try {
    const e = await waitFor(
      async () => {
        const m = await scrape(edge.httpUrl);
        return value(m, "streamcluster_relays", { state: "active" }) === 1 ? m : null;
      },
      20_000,
      { message: "an active pull relay on the edge", intervalMs: 200 },
    );
    assert.equal(value(e, "streamcluster_streams_live", { source: "relay" }), 1);
    assert.equal(value(e, "streamcluster_publishes_total", { protocol: "relay" }), 1);
    assert.equal(value(e, "streamcluster_peers", { state: "Online" }), 1);
    assert.equal(value(e, "streamcluster_peer_state", { server_id: "metrics-a", state: "Offline" }), 0);
    const rtt = value(e, "streamcluster_peer_heartbeat_rtt_seconds", { server_id: "metrics-a" });
    assert.ok(rtt > 0 && rtt < 5, `heartbeat RTT in seconds: ${rtt}`);
    assert.ok(value(e, "streamcluster_peer_heartbeat_age_seconds", { server_id: "metrics-a" }) < 5);
    assert.equal(value(e, "streamcluster_node_info", { server_id: "metrics-b" }), 1);

    const o = await scrape(origin.httpUrl);
    assert.equal(value(o, "streamcluster_relays_served"), 1);
    assert.equal(value(o, "streamcluster_streams_live", { source: "publisher" }), 1);
    assert.equal(
      value(o, "streamcluster_players", { protocol: "http-flv" }),
      0,
      "a served relay is not a player",
    );
  } finally {
    stop.abort();
    await playing.catch(() => {});
  }
});
