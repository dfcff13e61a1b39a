/**
 * "Where the time goes": our node runs with `--inspect` on a loopback port under the fan-out
 * load (HTTP-FLV or RTMP players), and the V8 sampling profiler is driven over the Chrome
 * DevTools Protocol (Profiler.start / Profiler.stop). The profile's samples are summed by
 * function (self time) and the top entries reported. Not part of the measured numbers: the
 * inspector adds its own overhead.
 */

import { type Protocol } from "./players.ts";
import { freePort, type Proc, sleep, until } from "./procs.ts";
import { publishFfmpeg } from "./media.ts";
import { startOurs } from "./servers.ts";
import { spawnWorker, STREAM, targetFor, waitLive, type Worker } from "./fanout.ts";

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileEntry {
  fn: string;
  where: string;
  selfMs: number;
  share: number;
}

export interface ProfileResult {
  protocol: Protocol;
  players: number;
  seconds: number;
  top: ProfileEntry[];
  /** Self time by area: our src/, npm deps, Deno runtime / ext, V8 specials. */
  byArea: Record<string, number>;
}

class Cdp {
  #id = 0;
  readonly #pending = new Map<number, (v: unknown) => void>();
  private constructor(readonly ws: WebSocket) {
    ws.onmessage = (ev) => {
      const m = JSON.parse(String(ev.data));
      if (m.id !== undefined) this.#pending.get(m.id)?.(m.result ?? m.error);
    };
  }
  static async open(url: string): Promise<Cdp> {
    const ws = new WebSocket(url);
    await new Promise((res, rej) => {
      ws.onopen = res;
      ws.onerror = rej;
    });
    return new Cdp(ws);
  }
  call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.#id;
    const p = new Promise<T>((res) => this.#pending.set(id, res as (v: unknown) => void));
    this.ws.send(JSON.stringify({ id, method, params }));
    return p;
  }
}

function shortUrl(url: string): string {
  const i = url.indexOf("/work/");
  if (url.includes("/main/src/")) return url.slice(url.indexOf("/src/") + 1);
  if (url.includes("/main/main.ts")) return "main.ts";
  if (url.includes("npm")) {
    const m = /node_modules\/(\.deno\/)?([^/]+(\/[^/]+)?)/.exec(url) ??
      /npm\/registry[^/]*\/([^/]+)/.exec(url);
    return m ? `npm:${m[2] ?? m[1]}` : url;
  }
  if (url.startsWith("ext:") || url.startsWith("node:")) return url;
  return i >= 0 ? url.slice(i) : url || "(native)";
}

export const Area = {
  ours: "our code (src/)",
  streams: "web streams (ReadableStream machinery, ext:deno_web)",
  http: "Deno.serve HTTP (ext:deno_http)",
  core: "event loop, promises, resources (ext:core)",
  runtime: "other Deno runtime JS (ext:)",
  ops: "Deno ops (native calls from JS: socket reads/writes, ...)",
  deps: "npm dependencies",
  gc: "garbage collector",
  program: "V8/native (program)",
  native: "native (other)",
  idle: "idle",
} as const;

function area(fn: string, url: string): string {
  if (!url) {
    if (fn === "(garbage collector)") return Area.gc;
    if (fn === "(idle)") return Area.idle;
    if (fn === "(program)") return Area.program;
    if (fn.startsWith("op_")) return Area.ops;
    return Area.native;
  }
  if (url.includes("/main/src/") || url.endsWith("/main/main.ts")) return Area.ours;
  if (url.includes("node_modules") || url.includes("npm")) return Area.deps;
  if (url.includes("06_streams")) return Area.streams;
  if (url.includes("deno_http") || url.includes("ext:http")) return Area.http;
  if (url.startsWith("ext:core")) return Area.core;
  return Area.runtime;
}

export function summarizeProfile(
  p: CpuProfile,
  top = 15,
): { top: ProfileEntry[]; byArea: Record<string, number> } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0) / 1000;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
  }
  const agg = new Map<string, ProfileEntry>();
  const areas: Record<string, number> = {};
  let total = 0;
  for (const [id, ms] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const fn = n.callFrame.functionName || "(anonymous)";
    const where = n.callFrame.url ? `${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}` : "";
    const key = `${fn}@${where}`;
    const e = agg.get(key) ?? { fn, where, selfMs: 0, share: 0 };
    e.selfMs += ms;
    agg.set(key, e);
    const a = area(fn, n.callFrame.url);
    areas[a] = (areas[a] ?? 0) + ms;
    total += ms;
  }
  const busy = total - (areas["idle"] ?? 0);
  const list = [...agg.values()].filter((e) => e.fn !== "(idle)").sort((x, y) => y.selfMs - x.selfMs);
  for (const e of list) e.share = busy > 0 ? e.selfMs / busy : 0;
  return { top: list.slice(0, top), byArea: areas };
}

/** Profiles our node with `players` players of `protocol` for `seconds` (after 2 s of warm-up). */
export async function profileOurs(
  protocol: Protocol,
  players: number,
  seconds: number,
): Promise<ProfileResult> {
  const port = freePort();
  const server = await startOurs({
    label: `profile-${protocol}`,
    denoFlags: [`--inspect=127.0.0.1:${port}`],
  });
  let pub: Proc | null = null;
  try {
    pub = publishFfmpeg(server.rtmpUrl(STREAM), "publisher-profile");
    const target = targetFor(server, protocol);
    await waitLive(target);
    const list = await until(
      async () => {
        const r = await fetch(`http://127.0.0.1:${port}/json/list`);
        return (await r.json()) as { webSocketDebuggerUrl: string }[];
      },
      10_000,
      "the inspector",
    );
    const cdp = await Cdp.open(list[0]!.webSocketDebuggerUrl);
    const workers: Worker[] = [];
    let profile: CpuProfile;
    try {
      const per = Math.ceil(players / 2);
      for (let i = 0; i < 2 && i * per < players; i++) {
        workers.push(spawnWorker(`players-profile-${i}`, target, Math.min(per, players - i * per), 500));
      }
      await Promise.all(workers.map((w) => w.ready));
      await sleep(2000);
      await cdp.call("Profiler.enable");
      await cdp.call("Profiler.setSamplingInterval", { interval: 500 });
      await cdp.call("Profiler.start");
      await sleep(seconds * 1000);
      profile = (await cdp.call<{ profile: CpuProfile }>("Profiler.stop")).profile;
    } finally {
      cdp.ws.close();
      await Promise.all(workers.map((w) => w.proc.stop(2000)));
    }
    return { protocol, players, seconds, ...summarizeProfile(profile) };
  } finally {
    await pub?.stop(2000);
    await server.stop();
  }
}
