/**
 * The benchmark run (`make bench` → bench/run.sh → here): fan-out against nginx-rtmp and
 * Node-Media-Server, relay hop and throughput, cold start, failover, and a profile of our node
 * under load. Everything runs on this machine in one run, so the report leads with ratios.
 * Writes bench/results/latest.json (after every section, so a failed run keeps what it had)
 * and BENCHMARKS.md; a BENCH_QUICK=1 run writes bench/results/quick.json and
 * bench/results/BENCHMARKS.quick.md instead, so a smoke run never replaces a real one.
 *
 * Environment: BENCH_QUICK=1 runs a tiny version (N=20, short windows) for smoke tests;
 * BENCH_ONLY=fanout,relay,cold,failover,profile picks sections; BENCH_LEVELS=100,500 and
 * BENCH_SERVERS=ours,nginx,nms narrow the fan-out; BENCH_BUDGET_S caps the run (default 1080).
 */

import { type FanoutOptions, type FanoutResult, runFanoutLevel } from "./fanout.ts";
import { ensureClip } from "./media.ts";
import { resetLogs, RESULTS_DIR, ROOT, spawn, stopAll } from "./procs.ts";
import { nginxHop, relayThroughput } from "./relay.ts";
import { coldStart } from "./coldstart.ts";
import { failover } from "./failover.ts";
import { profileOurs } from "./profile.ts";
import { removeTemp, type ServerKind } from "./servers.ts";
import { machineInfo } from "./machine.ts";
import { renderReport } from "./report.ts";
import type { Protocol } from "./players.ts";

const env = (k: string) => Deno.env.get(k) ?? "";

/** `deno fmt` the report with the repository's settings, so `make check` stays green. */
async function formatMarkdown(file: string): Promise<void> {
  await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "-q", file],
    cwd: ROOT,
    stdout: "null",
    stderr: "null",
  })
    .output().catch(() => {});
}

// `deno run -A bench/main.ts --render`: rewrite BENCHMARKS.md from bench/results/latest.json (no measuring).
if (Deno.args.includes("--render")) {
  const saved = JSON.parse(await Deno.readTextFile(`${RESULTS_DIR}/latest.json`));
  const target = saved.quick ? `${RESULTS_DIR}/BENCHMARKS.quick.md` : `${ROOT}/BENCHMARKS.md`;
  await Deno.writeTextFile(target, renderReport(saved));
  await formatMarkdown(target);
  console.log(`rendered ${target} from bench/results/latest.json`);
  Deno.exit(0);
}
const QUICK = env("BENCH_QUICK") === "1";
const ONLY = new Set(
  (env("BENCH_ONLY") || "fanout,relay,cold,failover,profile").split(",").map((s) => s.trim()),
);
const BUDGET_S = Number(env("BENCH_BUDGET_S") || 1080);
const t0 = performance.now();
const elapsedS = () => (performance.now() - t0) / 1000;
const leftS = () => BUDGET_S - elapsedS();

const P = QUICK
  ? {
    levels: [20],
    fanout: { windowS: 4, warmupS: 2, playersPerWorker: 500, lateMs: 500 } satisfies FanoutOptions,
    latencyTries: 5,
    latencySeconds: 4,
    coldTries: 5,
    throughputK: [1, 2],
    throughputWindowS: 4,
    failoverReps: 1,
    failoverPlayers: 3,
    offlineReps: 1,
    profileSeconds: 3,
    profilePlayers: 20,
  }
  : {
    levels: [100, 500, 1000, 2000],
    fanout: { windowS: 15, warmupS: 3, playersPerWorker: 500, lateMs: 500 } satisfies FanoutOptions,
    latencyTries: 50,
    latencySeconds: 20,
    coldTries: 50,
    throughputK: [1, 5, 10],
    throughputWindowS: 8,
    failoverReps: 3,
    failoverPlayers: 5,
    offlineReps: 3,
    profileSeconds: 6,
    profilePlayers: 1000,
  };
if (env("BENCH_LEVELS")) P.levels = env("BENCH_LEVELS").split(",").map(Number);
const SERVERS = (env("BENCH_SERVERS") || "ours,nginx,nms").split(",") as ServerKind[];

export interface Results {
  quick: boolean;
  startedAt: string;
  finishedAt: string;
  wallS: number;
  params: typeof P;
  machine: Awaited<ReturnType<typeof machineInfo>>;
  fanout: FanoutResult[];
  capped: { server: ServerKind; protocol: Protocol; at: number; reason: string; skipped: number[] }[];
  relayLatency: unknown;
  nginxHop: unknown;
  throughput: unknown;
  cold: unknown;
  failover: unknown;
  profile: unknown;
  log: string[];
}

resetLogs();

const results: Results = {
  quick: QUICK,
  startedAt: new Date().toISOString(),
  finishedAt: "",
  wallS: 0,
  params: P,
  machine: await machineInfo(),
  fanout: [],
  capped: [],
  relayLatency: null,
  nginxHop: null,
  throughput: null,
  cold: null,
  failover: null,
  profile: null,
  log: [],
};

function log(msg: string): void {
  const line = `[bench ${elapsedS().toFixed(0).padStart(4)}s] ${msg}`;
  results.log.push(line);
  console.log(line);
}

async function save(): Promise<void> {
  results.wallS = elapsedS();
  results.finishedAt = new Date().toISOString();
  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  const file = QUICK ? "quick.json" : "latest.json";
  await Deno.writeTextFile(`${RESULTS_DIR}/${file}`, JSON.stringify(results, null, 2) + "\n");
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Runs a section unless it was not asked for or the time budget is too short for it. */
async function section(name: string, needS: number, fn: () => Promise<void>): Promise<void> {
  if (!ONLY.has(name)) return;
  if (leftS() < needS) {
    log(`${name}: skipped, ${leftS().toFixed(0)} s left of the budget and it needs ~${needS} s`);
    return;
  }
  const s = elapsedS();
  log(`${name}: start`);
  try {
    await fn();
  } catch (e) {
    log(`${name}: FAILED: ${errText(e)}`);
  }
  log(`${name}: done in ${(elapsedS() - s).toFixed(0)} s`);
  await save();
}

let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    await stopAll(1500);
    await removeTemp();
  }
  Deno.exit(code);
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(sig, () => {
    console.error(`bench: ${sig}, cleaning up`);
    void shutdown(130);
  });
}

try {
  log(`machine: ${results.machine.cpuModel}, ${results.machine.nproc} cpus, load ${results.machine.loadavg}`);
  await ensureClip();
  log("clip ready");

  await section("fanout", 120, async () => {
    const combos: [ServerKind, Protocol][] = [];
    for (const s of SERVERS) {
      for (const p of (s === "nginx" ? ["rtmp"] : ["http-flv", "rtmp"]) as Protocol[]) combos.push([s, p]);
    }
    const capped = new Set<string>();
    // Level by level across servers, so that every server sees the machine in the same state.
    for (const n of P.levels) {
      for (const [server, protocol] of combos) {
        const key = `${server}/${protocol}`;
        if (capped.has(key)) {
          results.capped.find((c) => c.server === server && c.protocol === protocol)?.skipped.push(n);
          continue;
        }
        // Keep ~6 minutes for the other sections.
        const need = P.fanout.windowS + P.fanout.warmupS + 10 + n / 100;
        if (leftS() - (ONLY.size > 1 ? 360 : 0) < need) {
          log(`fanout ${key} N=${n}: skipped (time budget)`);
          results.capped.push({ server, protocol, at: n, reason: "time budget", skipped: [n] });
          capped.add(key);
          continue;
        }
        const r = await runFanoutLevel(server, protocol, n, P.fanout);
        results.fanout.push(r);
        log(
          `fanout ${key} N=${n}: ${r.status} cpu/player-s=${(r.cpuPerPlayerS * 1000).toFixed(3)}ms ` +
            `cores=${r.serverCores.toFixed(2)} egress=${r.egressMbps.toFixed(0)}Mbit/s late=${
              (r.lateShare * 100).toFixed(1)
            }% delivered=${(r.delivered * 100).toFixed(1)}% rss/player=${r.rssPerPlayerKiB.toFixed(0)}KiB ` +
            `reader=${r.readerCores.toFixed(2)} machine=${
              r.machineCores.toFixed(2)
            } dropped=${r.serverDropped} ` +
            `${r.note} ${r.errors.join("; ")}`,
        );
        const reason = r.status !== "ok"
          ? `failed: ${r.note}`
          : r.started < 0.95 * n
          ? `only ${r.started} of ${n} players started`
          : r.delivered < 0.5
          ? `saturated: ${(r.delivered * 100).toFixed(0)}% of frames delivered`
          : r.lateShare > 0.5
          ? `saturated: ${(r.lateShare * 100).toFixed(0)}% of frames late`
          : null;
        if (reason) {
          capped.add(key);
          results.capped.push({ server, protocol, at: n, reason, skipped: [] });
        }
        await save();
      }
    }
  });

  await section("relay", 150, async () => {
    // Ours: bench/relay_latency.ts as its author wrote it (hop delay and HTTP-FLV cold start).
    const file = `${RESULTS_DIR}/relay_latency.json`;
    await Deno.remove(file).catch(() => {});
    const p = spawn("relay-latency", Deno.execPath(), [
      "run",
      "-A",
      `${ROOT}/bench/relay_latency.ts`,
      "--tries",
      String(P.latencyTries),
      "--seconds",
      String(P.latencySeconds),
    ], { cwd: ROOT });
    const st = await p.exited;
    try {
      results.relayLatency = { ok: st.success, ...JSON.parse(await Deno.readTextFile(file)) };
    } catch {
      results.relayLatency = {
        ok: false,
        error: `bench/relay_latency.ts exited ${st.code}: ${p.tail().slice(-800)}`,
      };
    }
    log(`relay_latency.ts: exit ${st.code}`);
    try {
      results.nginxHop = await nginxHop(P.latencySeconds);
    } catch (e) {
      results.nginxHop = { error: errText(e) };
    }
    log(`nginx hop: ${JSON.stringify(results.nginxHop)}`);
    const tp: unknown[] = [];
    for (const sys of ["ours", "nginx"] as const) {
      try {
        tp.push(...await relayThroughput(sys, P.throughputK, P.throughputWindowS, 2, P.fanout.lateMs));
      } catch (e) {
        tp.push({ system: sys, error: errText(e) });
      }
    }
    results.throughput = tp;
    log(`relay throughput: ${JSON.stringify(tp)}`);
  });

  await section("cold", 90, async () => {
    const out: unknown[] = [];
    for (const sys of ["ours", "nginx"] as const) {
      try {
        out.push(await coldStart(sys, "rtmp", P.coldTries));
      } catch (e) {
        out.push({ system: sys, error: errText(e) });
      }
    }
    results.cold = out;
    log(`cold start (rtmp): ${JSON.stringify(out)}`);
  });

  await section("failover", 60, async () => {
    results.failover = await failover({
      reps: P.failoverReps,
      players: P.failoverPlayers,
      offlineReps: P.offlineReps,
    }).catch((e) => ({ error: errText(e) }));
    log(`failover: ${JSON.stringify(results.failover)}`);
  });

  await section("profile", 50, async () => {
    const out: unknown[] = [];
    for (const protocol of ["http-flv", "rtmp"] as const) {
      // The largest healthy fan-out level of ours (at most profilePlayers), so the profile shows load.
      const ok = results.fanout.filter((r) =>
        r.server === "ours" && r.protocol === protocol && r.status === "ok" && r.lateShare <= 0.05
      );
      const n = Math.min(P.profilePlayers, Math.max(20, ...ok.map((r) => r.n)));
      out.push(
        await profileOurs(protocol, n, P.profileSeconds).catch((e) => ({ protocol, error: errText(e) })),
      );
      log(`profile ${protocol}: ${n} players`);
    }
    results.profile = out;
  });
} finally {
  await stopAll(1500);
  await removeTemp();
  results.machine.loadavgEnd = Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
  await save();
  const md = renderReport(results);
  if (QUICK) {
    await Deno.writeTextFile(`${RESULTS_DIR}/BENCHMARKS.quick.md`, md);
    await formatMarkdown(`${RESULTS_DIR}/BENCHMARKS.quick.md`);
    log(`quick run: bench/results/quick.json and BENCHMARKS.quick.md (BENCHMARKS.md untouched)`);
  } else {
    await Deno.writeTextFile(`${ROOT}/BENCHMARKS.md`, md);
    await formatMarkdown(`${ROOT}/BENCHMARKS.md`);
    log(`wrote BENCHMARKS.md and bench/results/latest.json in ${elapsedS().toFixed(0)} s`);
  }
}
