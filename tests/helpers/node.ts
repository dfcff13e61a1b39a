/**
 * Starts a real media node process for integration tests: `deno run -A main.ts --config FILE`
 * with a generated config (overrides merged onto a base that binds 127.0.0.1 with free ports),
 * output captured in memory and in `test-artifacts/<label>-*.log`. The handle kills the process
 * and awaits its exit on dispose, so `await using node = await startNode(...)` leaks nothing.
 */

import { delay, TimeoutError } from "./wait.ts";

const ROOT_URL = new URL("../../", import.meta.url);
/** Repository root (absolute). */
export const REPO_ROOT: string = decodeURIComponent(ROOT_URL.pathname).replace(/\/$/, "");
const MAIN_TS = decodeURIComponent(new URL("main.ts", ROOT_URL).pathname);
/** Where node logs and configs of test runs go (git-ignored). */
export const ARTIFACTS_DIR: string = `${REPO_ROOT}/test-artifacts`;

/** The base every test node starts from: loopback only, free ports, quiet cluster. */
const BASE_CONFIG = {
  global: { http: { listenaddr: "127.0.0.1:0" }, log: { level: "info" } },
  rtmp: { tcp: { listenaddr: "127.0.0.1:0" } },
  // Any QUIC listener binds loopback with a free port, so parallel nodes never collide.
  cluster: { quic: { listenaddr: "127.0.0.1:0" } },
};

export interface StartNodeOptions {
  /** Used in the artifact file names. */
  label?: string;
  /** How long to wait for the listening line and a working `/api/streams` (ms, default 30 s). */
  startTimeoutMs?: number;
  /** Extra environment variables for the node process. */
  env?: Record<string, string>;
  /**
   * Runs the node under a wrapper command that execs it, e.g. `["ip", "netns", "exec", "ns1"]`
   * (the wrapper's pid becomes the node's, so signals reach the node).
   */
  wrap?: string[];
  /**
   * The host the harness uses to reach the node (e.g. a network namespace's address). Default:
   * the listening host, or 127.0.0.1 for a wildcard.
   */
  host?: string;
}

/** One entry of `GET /api/streams` (see src/http/_app.ts `describeStream`). */
export interface StreamInfo {
  stream_path: string;
  publisher: { id: string; protocol: string; remote_addr: string } | null;
  video: { codec: string | null; width: number | null; height: number | null };
  audio: { codec: string | null; sample_rate: number | null; channels: number | null };
  bitrate_kbps: number;
  frames_in: number;
  bytes_in: number;
  started_at: string;
  players: Record<string, number> & { total: number };
}

export interface NodeProcess extends AsyncDisposable {
  readonly host: string;
  readonly httpPort: number;
  readonly rtmpPort: number;
  /** `http://127.0.0.1:PORT` */
  readonly httpUrl: string;
  readonly logFile: string;
  readonly configFile: string;
  readonly pid: number;
  /** Resolves when the process exits. */
  readonly exited: Promise<Deno.CommandStatus>;
  /** `rtmp://127.0.0.1:PORT/{path}` */
  rtmpUrl(path: string): string;
  /** `http://127.0.0.1:PORT/{path}.flv` (a query string in `path` stays after `.flv`). */
  flvUrl(path: string): string;
  /** `ws://127.0.0.1:PORT/{path}.flv` */
  wsUrl(path: string): string;
  /** Everything the process wrote to stdout and stderr so far. */
  logs(): string;
  /** Sends a signal; ignores a process that is already gone. */
  kill(signal?: Deno.Signal): void;
  /** SIGTERM, then SIGKILL after `graceMs`; waits for the exit and the output pumps. */
  stop(graceMs?: number): Promise<Deno.CommandStatus>;
  /** `GET /api/streams` → the stream list. */
  streams(): Promise<StreamInfo[]>;
  /** The `/api/streams` entry for `path`, if it is live. */
  stream(path: string): Promise<StreamInfo | undefined>;
}

type Json = Record<string, unknown>;

function isPlainObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Deep-merges plain objects; anything else in `over` replaces what is in `base`. */
export function deepMerge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const cur = out[k];
    out[k] = isPlainObject(cur) && isPlainObject(v) ? deepMerge(cur, v) : v;
  }
  return out;
}

let counter = 0;

function uniqueName(label: string): string {
  const safe = label.replace(/[^A-Za-z0-9_.-]+/g, "_").slice(0, 60) || "node";
  return `${safe}-${Date.now()}-${Deno.pid}-${++counter}`;
}

const LISTEN_TEXT = /node listening http=(\S+):(\d+) rtmp=(\S+):(\d+)/;

function parseListening(text: string): { host: string; httpPort: number; rtmpPort: number } | null {
  const m = LISTEN_TEXT.exec(text);
  if (m) return { host: m[1]!, httpPort: Number(m[2]), rtmpPort: Number(m[4]) };
  // JSON log format: {"msg":"node listening","http":"127.0.0.1:1","rtmp":"127.0.0.1:2",...}
  for (const line of text.split("\n")) {
    if (!line.includes("node listening") || !line.startsWith("{")) continue;
    try {
      const o = JSON.parse(line) as Json;
      const h = /^(.*):(\d+)$/.exec(String(o["http"]));
      const r = /^(.*):(\d+)$/.exec(String(o["rtmp"]));
      if (h && r) return { host: h[1]!, httpPort: Number(h[2]), rtmpPort: Number(r[2]) };
    } catch {
      // not JSON after all
    }
  }
  return null;
}

/** Paths may carry a query string: `live/cam?token=x` → `/live/cam.flv?token=x`. */
function withSuffix(path: string, suffix: string): string {
  const p = path.replace(/^\/+/, "");
  const q = p.indexOf("?");
  return q < 0 ? `/${p}${suffix}` : `/${p.slice(0, q)}${suffix}${p.slice(q)}`;
}

/**
 * Starts a node with `overrides` merged onto the base config. Throws (with the node's output)
 * if it exits or does not answer `/api/streams` within `startTimeoutMs`.
 */
export async function startNode(overrides: object = {}, opts: StartNodeOptions = {}): Promise<NodeProcess> {
  await Deno.mkdir(ARTIFACTS_DIR, { recursive: true });
  const name = uniqueName(opts.label ?? "node");
  const configFile = `${ARTIFACTS_DIR}/${name}.yaml`;
  const logFile = `${ARTIFACTS_DIR}/${name}.log`;
  const config = deepMerge(BASE_CONFIG, overrides as Json);
  // JSON is valid YAML, so no YAML library is needed here.
  await Deno.writeTextFile(configFile, JSON.stringify(config, null, 2) + "\n");

  const [cmd, ...prefix] = [...(opts.wrap ?? []), Deno.execPath()];
  const child = new Deno.Command(cmd!, {
    args: [...prefix, "run", "-A", MAIN_TS, "--config", configFile],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...opts.env },
  }).spawn();

  const log = await Deno.open(logFile, { write: true, create: true, truncate: true });
  let output = "";
  const encoder = new TextEncoder();
  const append = (text: string) => {
    output += text;
    try {
      const bytes = encoder.encode(text);
      let off = 0;
      while (off < bytes.byteLength) off += log.writeSync(bytes.subarray(off));
    } catch {
      // the log file is best effort
    }
  };
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) append(decoder.decode(chunk, { stream: true }));
    append(decoder.decode());
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]).catch(() => {});
  let exitStatus: Deno.CommandStatus | null = null;
  const exited = child.status.then((s) => {
    exitStatus = s;
    return s;
  });

  let stopped: Promise<Deno.CommandStatus> | null = null;
  const kill = (signal: Deno.Signal = "SIGTERM") => {
    if (exitStatus) return;
    try {
      child.kill(signal);
    } catch {
      // already exited
    }
  };
  const stop = (graceMs = 5000): Promise<Deno.CommandStatus> => {
    stopped ??= (async () => {
      kill("SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const forced = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          append(`\n[test harness] node did not stop within ${graceMs} ms; SIGKILL\n`);
          kill("SIGKILL");
          resolve();
        }, graceMs);
      });
      await Promise.race([exited, forced]);
      clearTimeout(timer);
      const status = await exited;
      await pumps;
      log.close();
      return status;
    })();
    return stopped;
  };

  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  const deadline = performance.now() + startTimeoutMs;
  const fail = async (why: string): Promise<never> => {
    await stop(1000);
    throw new Error(`node ${name} failed to start: ${why}\n--- node output ---\n${output}`);
  };

  let listening: ReturnType<typeof parseListening> = null;
  while (!(listening = parseListening(output))) {
    if (exitStatus) return await fail(`exited with code ${(exitStatus as Deno.CommandStatus).code}`);
    if (performance.now() > deadline) return await fail("no listening line");
    await delay(25);
  }
  const { httpPort, rtmpPort } = listening;
  const host = opts.host ??
    (listening.host === "0.0.0.0" || listening.host === "" ? "127.0.0.1" : listening.host);
  const httpUrl = `http://${host}:${httpPort}`;
  const wsBase = `ws://${host}:${httpPort}`;

  const streams = async (): Promise<StreamInfo[]> => {
    // Abort (rather than abandon) a request that hangs, so no fetch outlives the test.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 5000);
    try {
      const res = await fetch(`${httpUrl}/api/streams`, { signal: abort.signal });
      const body = await res.text();
      if (!res.ok) throw new Error(`GET /api/streams: ${res.status} ${body}`);
      const json = JSON.parse(body) as { code: number; data: { streams: StreamInfo[] } };
      return json.data.streams;
    } catch (err) {
      if (abort.signal.aborted) throw new TimeoutError("GET /api/streams timed out after 5000 ms");
      throw err;
    } finally {
      clearTimeout(timer);
    }
  };

  for (;;) {
    if (exitStatus) return await fail(`exited with code ${(exitStatus as Deno.CommandStatus).code}`);
    try {
      await streams();
      break;
    } catch (err) {
      if (performance.now() > deadline) {
        return await fail(`/api/streams does not answer: ${err instanceof Error ? err.message : err}`);
      }
      await delay(50);
    }
  }

  return {
    host,
    httpPort,
    rtmpPort,
    httpUrl,
    logFile,
    configFile,
    pid: child.pid,
    exited,
    rtmpUrl: (path) => `rtmp://${host}:${rtmpPort}/${path.replace(/^\/+/, "")}`,
    flvUrl: (path) => httpUrl + withSuffix(path, ".flv"),
    wsUrl: (path) => wsBase + withSuffix(path, ".flv"),
    logs: () => output,
    kill,
    stop,
    streams,
    stream: async (path) => (await streams()).find((s) => s.stream_path === path),
    [Symbol.asyncDispose]: async () => {
      await stop();
    },
  };
}

export { TimeoutError };
