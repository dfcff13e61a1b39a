/**
 * Child processes of the benchmark and their resource use. Every process the harness starts
 * goes through `spawn`, which registers it (and records its pid in bench/results/.pids for
 * bench/run.sh's trap), pipes its output to a log file, and unregisters it once it exits;
 * `stopAll` ends whatever is left. CPU and memory come from /proc: utime+stime of
 * /proc/PID/stat (all threads) and VmRSS of /proc/PID/status.
 */

export const ROOT: string = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");
export const RESULTS_DIR = `${ROOT}/bench/results`;
/** Per-process logs of the current run (emptied when a run starts; quick runs keep their own). */
export const LOG_DIR = `${RESULTS_DIR}/${Deno.env.get("BENCH_QUICK") === "1" ? "logs-quick" : "logs"}`;

/** Empties LOG_DIR (called once at the start of a run). */
export function resetLogs(): void {
  try {
    Deno.removeSync(LOG_DIR, { recursive: true });
  } catch {
    // none yet
  }
  Deno.mkdirSync(LOG_DIR, { recursive: true });
}
const PID_FILE = `${RESULTS_DIR}/.pids`;

let clkTck = 100;
try {
  const out = new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped", stderr: "null" })
    .outputSync();
  const v = Number(new TextDecoder().decode(out.stdout).trim());
  if (v > 0) clkTck = v;
} catch {
  // keep 100
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** CPU seconds (user + system, all threads) used by `pid` so far; NaN if it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / clkTck;
  } catch {
    return NaN;
  }
}

/** Resident set size of `pid` in KiB; NaN if it is gone. */
export function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Direct children of `pid` (from /proc/PID/task/{*}/children). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
      const txt = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/children`).trim();
      if (txt) out.push(...txt.split(/\s+/).map(Number));
    }
  } catch {
    // gone
  }
  return out;
}

/** Busy CPU seconds of the whole machine so far (all CPUs; /proc/stat minus idle and iowait). */
export function machineBusySeconds(): number {
  try {
    const line = Deno.readTextFileSync("/proc/stat").split("\n")[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const busy = v[0]! + v[1]! + v[2]! + v[5]! + v[6]! + v[7]!;
    return busy / clkTck;
  } catch {
    return NaN;
  }
}

export interface Usage {
  cpu: number;
  rssKiB: number;
  /** Busy seconds of the whole machine (see `machineBusySeconds`). */
  machine: number;
}

export function usageOf(pids: number[]): Usage {
  let cpu = 0, rss = 0;
  for (const p of pids) {
    const c = cpuSeconds(p);
    const r = rssKiB(p);
    if (Number.isFinite(c)) cpu += c;
    if (Number.isFinite(r)) rss += r;
  }
  return { cpu, rssKiB: rss, machine: machineBusySeconds() };
}

export interface Proc {
  readonly pid: number;
  readonly name: string;
  readonly logFile: string;
  readonly exited: Promise<Deno.CommandStatus>;
  readonly child: Deno.ChildProcess;
  /** Stdout lines, when spawned with `lines: true`. */
  readonly lines: AsyncIterableIterator<string> | null;
  isRunning(): boolean;
  kill(signal?: Deno.Signal): void;
  stop(graceMs?: number): Promise<void>;
  /** Last lines of the log, for error messages. */
  tail(): string;
}

const live = new Map<number, Proc>();

function writePidFile(): void {
  try {
    Deno.mkdirSync(RESULTS_DIR, { recursive: true });
    Deno.writeTextFileSync(PID_FILE, [...live.keys()].join("\n") + "\n");
  } catch {
    // best effort
  }
}

let seq = 0;

export interface SpawnOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Keep stdin piped (for control messages); default: null. */
  stdin?: boolean;
  /** Expose stdout as lines instead of logging it. */
  lines?: boolean;
}

/** Spawns a registered child; output goes to bench/results/logs/NAME-N.log. */
export function spawn(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): Proc {
  Deno.mkdirSync(LOG_DIR, { recursive: true });
  const logFile = `${LOG_DIR}/${name.replace(/[^A-Za-z0-9_.-]+/g, "_")}-${++seq}.log`;
  const child = new Deno.Command(cmd, {
    args,
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    env: { NO_COLOR: "1", ...opts.env },
    stdin: opts.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const log = Deno.openSync(logFile, { write: true, create: true, truncate: true });
  const enc = new TextEncoder();
  let tailText = "";
  const append = (t: string) => {
    tailText = (tailText + t).slice(-4000);
    try {
      const b = enc.encode(t);
      let off = 0;
      while (off < b.byteLength) off += log.writeSync(b.subarray(off));
    } catch {
      // best effort
    }
  };
  append(`$ ${cmd} ${args.join(" ")}\n`);
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const d = new TextDecoder();
    for await (const c of s) append(d.decode(c, { stream: true }));
  };
  let lines: AsyncIterableIterator<string> | null = null;
  const pumps: Promise<void>[] = [pump(child.stderr).catch(() => {})];
  if (opts.lines) {
    lines = readLines(child.stdout, append);
  } else {
    pumps.push(pump(child.stdout).catch(() => {}));
  }
  let running = true;
  const exited = child.status.then(async (s) => {
    running = false;
    live.delete(child.pid);
    writePidFile();
    await Promise.all(pumps);
    try {
      log.close();
    } catch {
      // closed
    }
    return s;
  });
  const kill = (signal: Deno.Signal = "SIGTERM") => {
    if (!running) return;
    try {
      child.kill(signal);
    } catch {
      // gone
    }
  };
  const proc: Proc = {
    pid: child.pid,
    name,
    logFile,
    exited,
    child,
    lines,
    isRunning: () => running,
    kill,
    stop: async (graceMs = 3000) => {
      kill("SIGTERM");
      const t = setTimeout(() => kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(t);
    },
    tail: () => tailText,
  };
  live.set(child.pid, proc);
  writePidFile();
  return proc;
}

async function* readLines(
  s: ReadableStream<Uint8Array>,
  log: (t: string) => void,
): AsyncIterableIterator<string> {
  const d = new TextDecoder();
  let buf = "";
  for await (const c of s) {
    const t = d.decode(c, { stream: true });
    log(t);
    buf += t;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, i);
      buf = buf.slice(i + 1);
    }
  }
  if (buf) yield buf;
}

/**
 * Registers a process started elsewhere (e.g. by a tests/helpers function) so that `stopAll`
 * and run.sh's trap end it too.
 */
export function adopt(
  name: string,
  pid: number,
  stop: () => Promise<unknown>,
  exited: Promise<unknown>,
): void {
  let running = true;
  const done = exited.then(() => {
    running = false;
    live.delete(pid);
    writePidFile();
  }) as Promise<unknown> as Promise<Deno.CommandStatus>;
  live.set(pid, {
    pid,
    name,
    logFile: "",
    exited: done,
    child: null as unknown as Deno.ChildProcess,
    lines: null,
    isRunning: () => running,
    kill: () => void stop(),
    stop: async () => {
      await stop();
      await done;
    },
    tail: () => "",
  });
  writePidFile();
}

/** Stops every registered process still running (SIGTERM, then SIGKILL). */
export async function stopAll(graceMs = 2000): Promise<void> {
  await Promise.all([...live.values()].map((p) => p.stop(graceMs)));
  writePidFile();
}

/** A free TCP port on `host` (bound then released). */
export function freePort(host = "127.0.0.1"): number {
  const l = Deno.listen({ hostname: host, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Polls `fn` until it returns a truthy value; throws after `timeoutMs`. */
export async function until<T>(
  fn: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  timeoutMs: number,
  what: string,
  intervalMs = 50,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ""}`);
    }
    await sleep(intervalMs);
  }
}
