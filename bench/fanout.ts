/**
 * Fan-out: one publisher, N players on one server, a fixed measurement window.
 *
 * Per level the server starts fresh, ffmpeg publishes the clip, a probe player waits for the
 * first coded video frame, and the server's RSS is read (the "before players" baseline).
 * Then player worker processes connect the N players; once all are connected, a warm-up
 * passes and the window opens. Over the window the harness reads the server's CPU
 * (utime+stime of all its processes) and RSS from /proc, and the workers count bytes and
 * coded video frames and find late ones (see players.ts `summarize`).
 */

import {
  mergeSummaries,
  type PlayTarget,
  type Protocol,
  startPlayers,
  wallNow,
  type WindowSummary,
} from "./players.ts";
import { type Proc, ROOT, sleep, spawn, usageOf } from "./procs.ts";
import { type Server, type ServerKind, startServer } from "./servers.ts";
import { publishFfmpeg } from "./media.ts";

export const STREAM = "live/bench";
/** Nominal video frame rate of the clip. */
export const FPS = 25;

export interface FanoutOptions {
  windowS: number;
  warmupS: number;
  /** Players per worker process (more players → more workers). */
  playersPerWorker: number;
  lateMs: number;
}

export interface FanoutResult {
  server: ServerKind;
  protocol: Protocol;
  n: number;
  status: "ok" | "error";
  note: string;
  started: number;
  connectS: number;
  windowS: number;
  serverCpuS: number;
  /** Server CPU seconds per player-second. */
  cpuPerPlayerS: number;
  serverCores: number;
  egressMbps: number;
  rssBaseMiB: number;
  rssPerPlayerKiB: number;
  /** Late coded video frames / all coded video frames in the window. */
  lateShare: number;
  latePlayers: number;
  /** Coded video frames received / (N × fps × window). */
  delivered: number;
  delayP50: number;
  delayP99: number;
  dropped: number;
  starved: number;
  readerCores: number;
  readerSaturated: boolean;
  /** Busy cores of the whole machine over the window (server + players + kernel + anything else). */
  machineCores: number;
  /** Frames the server itself skipped for slow players (ours only: /metrics), NaN when unknown. */
  serverDropped: number;
  workers: number;
  errors: string[];
}

export function targetFor(server: Server, protocol: Protocol, path = STREAM): PlayTarget {
  const port = protocol === "rtmp" ? server.rtmpPort : server.httpPort;
  if (port === null) throw new Error(`${server.kind} has no ${protocol}`);
  return { protocol, host: server.host, port, path };
}

/** Resolves once a probe player receives a coded video frame (the stream is live end to end). */
export async function waitLive(target: PlayTarget, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = "";
  while (performance.now() < deadline) {
    const [p] = await startPlayers(target, 1, { timeoutMs: 5000 });
    const ok = await (async () => {
      const until = performance.now() + 3000;
      while (performance.now() < until && !p!.stats.error) {
        if (p!.stats.firstVideoAt > 0) return true;
        await sleep(20);
      }
      return false;
    })();
    last = p!.stats.error ?? "no video yet";
    p!.close();
    await p!.done;
    if (ok) return;
    await sleep(200);
  }
  throw new Error(
    `${target.protocol}://${target.host}:${target.port}/${target.path} never went live: ${last}`,
  );
}

export interface Worker {
  proc: Proc;
  ready: Promise<{ started: number; failed: number; connectMs: number; errors: string[] }>;
  result: Promise<{ summary: WindowSummary; cpu: number }>;
  window(start: number, end: number): Promise<void>;
}

export function spawnWorker(
  label: string,
  target: PlayTarget,
  count: number,
  lateMs: number,
  concurrency = 50,
): Worker {
  const proc = spawn(label, Deno.execPath(), [
    "run",
    "-A",
    `${ROOT}/bench/player_worker.ts`,
    JSON.stringify({ target, count, concurrency, lateMs }),
  ], { stdin: true, lines: true, cwd: ROOT });
  const ready = Promise.withResolvers<
    { started: number; failed: number; connectMs: number; errors: string[] }
  >();
  const result = Promise.withResolvers<{ summary: WindowSummary; cpu: number }>();
  ready.promise.catch(() => {});
  result.promise.catch(() => {});
  (async () => {
    for await (const line of proc.lines!) {
      if (!line.startsWith("{")) continue;
      const msg = JSON.parse(line);
      if (msg.event === "ready") ready.resolve(msg);
      if (msg.event === "result") result.resolve(msg);
    }
    const why = new Error(`player worker ${label} exited early:\n${proc.tail()}`);
    ready.reject(why);
    result.reject(why);
  })().catch((e) => {
    ready.reject(e);
    result.reject(e);
  });
  const writer = proc.child.stdin.getWriter();
  return {
    proc,
    ready: ready.promise,
    result: result.promise,
    window: async (start, end) => {
      await writer.write(new TextEncoder().encode(`window ${start} ${end}\n`));
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, rej) => t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms)),
  ]);
}

/** Starts `n` players in worker processes, opens the window after warm-up, returns the merged numbers. */
export async function measureWindow(
  label: string,
  target: PlayTarget,
  n: number,
  o: FanoutOptions,
  pids: () => number[],
): Promise<{
  summary: WindowSummary;
  readerCpu: number;
  workers: number;
  connectS: number;
  u0: ReturnType<typeof usageOf>;
  u1: ReturnType<typeof usageOf>;
  start: number;
  end: number;
}> {
  const workers = Math.max(1, Math.ceil(n / o.playersPerWorker));
  const ws: Worker[] = [];
  const t0 = performance.now();
  try {
    for (let i = 0; i < workers; i++) {
      const count = Math.floor(n / workers) + (i < n % workers ? 1 : 0);
      ws.push(spawnWorker(`players-${label}-${i}`, target, count, o.lateMs));
    }
    await withTimeout(Promise.all(ws.map((w) => w.ready)), 60_000 + n * 60, `${n} players to connect`);
    const connectS = (performance.now() - t0) / 1000;
    const start = wallNow() + o.warmupS * 1000;
    const end = start + o.windowS * 1000;
    await Promise.all(ws.map((w) => w.window(start, end)));
    await sleep(start - wallNow());
    const u0 = usageOf(pids());
    await sleep(end - wallNow());
    const u1 = usageOf(pids());
    const results = await withTimeout(Promise.all(ws.map((w) => w.result)), 60_000, "player results");
    return {
      summary: mergeSummaries(results.map((r) => r.summary)),
      readerCpu: Math.max(...results.map((r) => r.cpu)),
      workers,
      connectS,
      u0,
      u1,
      start,
      end,
    };
  } finally {
    await Promise.all(ws.map((w) => w.proc.stop(2000)));
  }
}

/** Our node's count of frames skipped for slow players (Prometheus text at /metrics). */
async function droppedFrames(server: Server): Promise<number> {
  if (server.kind !== "ours" || server.httpPort === null) return NaN;
  try {
    const r = await fetch(`http://${server.host}:${server.httpPort}/metrics`, {
      signal: AbortSignal.timeout(5000),
    });
    const m = /^streamcluster_frames_dropped_total(?:\{[^}]*\})? (\d+)/m.exec(await r.text());
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

export async function runFanoutLevel(
  kind: ServerKind,
  protocol: Protocol,
  n: number,
  o: FanoutOptions,
): Promise<FanoutResult> {
  const label = `${kind}-${protocol}-${n}`;
  const base: FanoutResult = {
    server: kind,
    protocol,
    n,
    status: "error",
    note: "",
    started: 0,
    connectS: NaN,
    windowS: o.windowS,
    serverCpuS: NaN,
    cpuPerPlayerS: NaN,
    serverCores: NaN,
    egressMbps: NaN,
    rssBaseMiB: NaN,
    rssPerPlayerKiB: NaN,
    lateShare: NaN,
    latePlayers: NaN,
    delivered: NaN,
    delayP50: NaN,
    delayP99: NaN,
    dropped: NaN,
    starved: NaN,
    readerCores: NaN,
    readerSaturated: false,
    machineCores: NaN,
    serverDropped: NaN,
    workers: 0,
    errors: [],
  };
  let server: Server | null = null;
  let pub: Proc | null = null;
  try {
    server = await startServer(kind, label);
    pub = publishFfmpeg(server.rtmpUrl(STREAM), `publisher-${label}`);
    const target = targetFor(server, protocol);
    await waitLive(target);
    await sleep(500);
    const before = usageOf(server.pids());
    const d0 = await droppedFrames(server);
    const m = await measureWindow(label, target, n, o, server.pids);
    const d1 = await droppedFrames(server);
    const s = m.summary;
    const win = (m.end - m.start) / 1000;
    const cpu = m.u1.cpu - m.u0.cpu;
    const readerCores = m.readerCpu / win;
    return {
      ...base,
      status: "ok",
      note: pub.isRunning() ? "" : "publisher exited during the run",
      started: s.started,
      connectS: m.connectS,
      windowS: win,
      serverCpuS: cpu,
      cpuPerPlayerS: cpu / (n * win),
      serverCores: cpu / win,
      egressMbps: s.bytes * 8 / win / 1e6,
      rssBaseMiB: before.rssKiB / 1024,
      rssPerPlayerKiB: (m.u1.rssKiB - before.rssKiB) / n,
      lateShare: s.frames > 0 ? s.late / s.frames : NaN,
      latePlayers: s.latePlayers,
      delivered: s.frames / (n * FPS * win),
      delayP50: s.delayP50,
      delayP99: s.delayP99,
      dropped: s.droppedInWindow,
      starved: s.starved,
      readerCores,
      readerSaturated: readerCores >= 0.9,
      machineCores: (m.u1.machine - m.u0.machine) / win,
      serverDropped: d1 - d0,
      workers: m.workers,
      errors: s.errors,
    };
  } catch (e) {
    return { ...base, note: String(e instanceof Error ? e.message : e).slice(0, 500) };
  } finally {
    await pub?.stop(2000);
    await server?.stop();
  }
}
