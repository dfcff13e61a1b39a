/**
 * The servers under test, each started fresh on 127.0.0.1 ports with its config in the run's
 * temp directory: our node (`deno run main.ts --config FILE`), nginx with the RTMP module
 * (`daemon off`, one worker; optionally an edge that pulls from an origin), and
 * Node-Media-Server 2.x (through a tiny launcher that pins every listener to 127.0.0.1).
 * `pids()` lists every process whose CPU and memory count as the server's (nginx: master and
 * workers).
 */

import { childPids, freePort, type Proc, ROOT, spawn, until } from "./procs.ts";
import type { Protocol } from "./players.ts";

export type ServerKind = "ours" | "nginx" | "nms";

export interface Server {
  readonly kind: ServerKind;
  readonly label: string;
  readonly host: string;
  readonly rtmpPort: number;
  /** HTTP-FLV port, null when the server has none (nginx-rtmp). */
  readonly httpPort: number | null;
  readonly proc: Proc;
  readonly protocols: readonly Protocol[];
  pids(): number[];
  stop(): Promise<void>;
  rtmpUrl(path: string): string;
}

export const NMS_VERSION = "2.7.4";
export const NMS_DIR = `${ROOT}/.tools/bench`;
const NGINX_MODULE_CANDIDATES = [
  "/usr/lib/nginx/modules/ngx_rtmp_module.so",
  "/usr/share/nginx/modules/ngx_rtmp_module.so",
];

let tmpRoot: string | null = null;

export async function tempDir(name: string): Promise<string> {
  tmpRoot ??= await Deno.makeTempDir({ prefix: "streambench-" });
  const d = `${tmpRoot}/${name}`;
  await Deno.mkdir(d, { recursive: true });
  return d;
}

export async function removeTemp(): Promise<void> {
  if (tmpRoot) await Deno.remove(tmpRoot, { recursive: true }).catch(() => {});
  tmpRoot = null;
}

async function tcpOpen(host: string, port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: host, port });
    c.close();
    return true;
  } catch {
    return false;
  }
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const cur = out[k];
    const isObj = (x: unknown): x is Record<string, unknown> =>
      typeof x === "object" && x !== null && !Array.isArray(x);
    out[k] = isObj(cur) && isObj(v) ? deepMerge(cur, v) : v;
  }
  return out;
}

let labelSeq = 0;

export interface OursOptions {
  label: string;
  host?: string;
  /** Merged onto the bench base config. */
  config?: Record<string, unknown>;
  /** Extra `deno run` flags (e.g. `--inspect=127.0.0.1:PORT`). */
  denoFlags?: string[];
  httpPort?: number;
  rtmpPort?: number;
}

/**
 * Our node. Base config: loopback ports, log level warn, and routing thresholds out of reach
 * so that a busy benchmark machine never makes the node redirect players elsewhere.
 */
export async function startOurs(o: OursOptions): Promise<Server & { httpUrl: string; address: string }> {
  const host = o.host ?? "127.0.0.1";
  const httpPort = o.httpPort ?? freePort(host);
  const rtmpPort = o.rtmpPort ?? freePort(host);
  const base = {
    global: { http: { listenaddr: `${host}:${httpPort}` }, log: { level: "warn" } },
    rtmp: { tcp: { listenaddr: `${host}:${rtmpPort}` } },
    cluster: {
      quic: { listenaddr: `${host}:0` },
      routing: { cpu_threshold: 100, bandwidth_threshold: 1_000_000, subscriber_threshold: 1_000_000 },
    },
  };
  const config = deepMerge(base, o.config ?? {});
  const dir = await tempDir(`ours-${o.label}-${++labelSeq}`);
  const file = `${dir}/config.yaml`;
  await Deno.writeTextFile(file, JSON.stringify(config, null, 2)); // JSON is YAML
  const proc = spawn(`ours-${o.label}`, Deno.execPath(), [
    "run",
    "-A",
    ...(o.denoFlags ?? []),
    `${ROOT}/main.ts`,
    "--config",
    file,
  ], { cwd: ROOT });
  const httpUrl = `http://${host}:${httpPort}`;
  try {
    await until(
      async () => {
        if (!proc.isRunning()) throw new Error("exited");
        const r = await fetch(`${httpUrl}/api/streams`);
        await r.body?.cancel();
        return r.ok;
      },
      30_000,
      `our node ${o.label} to answer /api/streams`,
      100,
    );
  } catch (e) {
    await proc.stop(500);
    throw new Error(`our node ${o.label} did not start: ${e}\n${proc.tail()}`);
  }
  return {
    kind: "ours",
    label: o.label,
    host,
    rtmpPort,
    httpPort,
    httpUrl,
    address: `${host}:${httpPort}`,
    proc,
    protocols: ["http-flv", "rtmp"],
    pids: () => [proc.pid],
    stop: () => proc.stop(5000),
    rtmpUrl: (p) => `rtmp://${host}:${rtmpPort}/${p}`,
  };
}

export function nginxModulePath(): string | null {
  for (const p of NGINX_MODULE_CANDIDATES) {
    try {
      Deno.statSync(p);
      return p;
    } catch {
      // next
    }
  }
  return null;
}

export interface NginxOptions {
  label: string;
  workers?: number;
  /** Origin RTMP port to pull from (edge mode). */
  pullFrom?: number;
}

/** nginx + RTMP module, `daemon off`, `worker_processes 1` unless told otherwise. */
export async function startNginx(o: NginxOptions): Promise<Server> {
  const host = "127.0.0.1";
  const rtmpPort = freePort(host);
  const dir = await tempDir(`nginx-${o.label}-${++labelSeq}`);
  const mod = nginxModulePath();
  if (!mod) throw new Error("ngx_rtmp_module.so not found (apt-get install libnginx-mod-rtmp)");
  const conf = `# generated by bench/servers.ts
daemon off;
master_process on;
worker_processes ${o.workers ?? 1};
worker_rlimit_nofile 20000;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
load_module ${mod};
events { worker_connections 10000; }
rtmp {
  server {
    listen ${host}:${rtmpPort};
    chunk_size 4096;
    application live {
      live on;
${o.pullFrom ? `      pull rtmp://${host}:${o.pullFrom}/live;\n` : ""}    }
  }
}
`;
  await Deno.writeTextFile(`${dir}/nginx.conf`, conf);
  const proc = spawn(`nginx-${o.label}`, "nginx", [
    "-p",
    dir,
    "-e",
    `${dir}/error.log`,
    "-c",
    `${dir}/nginx.conf`,
  ]);
  try {
    await until(
      async () => {
        if (!proc.isRunning()) throw new Error("exited");
        return await tcpOpen(host, rtmpPort) && childPids(proc.pid).length > 0;
      },
      15_000,
      `nginx ${o.label} to listen`,
      50,
    );
  } catch (e) {
    await proc.stop(500);
    let err = "";
    try {
      err = await Deno.readTextFile(`${dir}/error.log`);
    } catch {
      // none
    }
    throw new Error(`nginx ${o.label} did not start: ${e}\n${proc.tail()}\n${err}`);
  }
  return {
    kind: "nginx",
    label: o.label,
    host,
    rtmpPort,
    httpPort: null,
    proc,
    protocols: ["rtmp"],
    pids: () => [proc.pid, ...childPids(proc.pid)],
    stop: () => proc.stop(3000),
    rtmpUrl: (p) => `rtmp://${host}:${rtmpPort}/${p}`,
  };
}

const NMS_LAUNCHER = `// generated by bench/servers.ts: Node-Media-Server on 127.0.0.1 only
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" && (args.length === 1 || typeof args[1] === "function")) {
    args.splice(1, 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
const NodeMediaServer = require(process.env.NMS_MODULE);
new NodeMediaServer(JSON.parse(process.argv[2])).run();
`;

/** Node-Media-Server 2.x: RTMP and HTTP-FLV (`/live/name.flv`), GOP cache on, errors-only log. */
export async function startNms(o: { label: string }): Promise<Server> {
  const host = "127.0.0.1";
  const rtmpPort = freePort(host);
  const httpPort = freePort(host);
  const dir = await tempDir(`nms-${o.label}-${++labelSeq}`);
  await Deno.writeTextFile(`${dir}/launch.cjs`, NMS_LAUNCHER);
  const config = {
    logType: 1,
    rtmp: { port: rtmpPort, chunk_size: 4096, gop_cache: true, ping: 30, ping_timeout: 60 },
    http: { port: httpPort, allow_origin: "*", mediaroot: `${dir}/media` },
  };
  const proc = spawn(`nms-${o.label}`, "node", [`${dir}/launch.cjs`, JSON.stringify(config)], {
    cwd: dir,
    env: { NMS_MODULE: `${NMS_DIR}/node_modules/node-media-server` },
  });
  try {
    await until(
      async () => {
        if (!proc.isRunning()) throw new Error("exited");
        return await tcpOpen(host, rtmpPort) && await tcpOpen(host, httpPort);
      },
      15_000,
      `NMS ${o.label} to listen`,
      50,
    );
  } catch (e) {
    await proc.stop(500);
    throw new Error(`NMS ${o.label} did not start: ${e}\n${proc.tail()}`);
  }
  return {
    kind: "nms",
    label: o.label,
    host,
    rtmpPort,
    httpPort,
    proc,
    protocols: ["http-flv", "rtmp"],
    pids: () => [proc.pid],
    stop: () => proc.stop(3000),
    rtmpUrl: (p) => `rtmp://${host}:${rtmpPort}/${p}`,
  };
}

export async function startServer(kind: ServerKind, label: string): Promise<Server> {
  switch (kind) {
    case "ours":
      // The default deployment: cluster on (standalone, no seeds), thresholds out of reach.
      return await startOurs({ label });
    case "nginx":
      return await startNginx({ label });
    case "nms":
      return await startNms({ label });
  }
}

/** Heartbeat settings of every benchmark cluster (seconds / counts). */
export const HEARTBEAT = {
  heartbeat_interval: 0.5,
  heartbeat_ttl: 2,
  sync_interval: 2,
  suspect_threshold: 2,
  offline_threshold: 3,
} as const;

export type OursNode = Awaited<ReturnType<typeof startOurs>> & { serverId: string; api: ClusterApi };

/** GET/POST on a node's /cluster/api (no API key in the bench clusters); returns `data`. */
export class ClusterApi {
  constructor(readonly baseUrl: string) {}
  async get<T>(path: string): Promise<T> {
    const ctl = AbortSignal.timeout(3000);
    const r = await fetch(`${this.baseUrl}/cluster/api/${path}`, { signal: ctl });
    const body = await r.json();
    if (!r.ok || body.code !== 0) throw new Error(`GET ${path}: ${r.status} ${JSON.stringify(body)}`);
    return body.data as T;
  }
  async servers(): Promise<{ server_id: string; state: string }[]> {
    return (await this.get<{ summaries: { server_id: string; state: string }[] }>("servers")).summaries;
  }
  async sessions(): Promise<{ stream_path: string; origin_id: string }[]> {
    return (await this.get<{ sessions: { stream_path: string; origin_id: string }[] }>("sessions")).sessions;
  }
  async relaySessions(): Promise<{ stream_path: string; direction?: string }[]> {
    return (await this.get<{ sessions: { stream_path: string; direction?: string }[] }>("relay/sessions"))
      .sessions;
  }
  async relayCount(): Promise<number> {
    return (await this.get<{ relay_session_count: number }>("status/local")).relay_session_count;
  }
}

/** One node of a benchmark cluster: `seeds` are HTTP addresses, roles [] = origin and edge. */
export async function startClusterNode(o: {
  id: string;
  seeds: string[];
  role?: ("origin" | "edge")[];
  relay?: Record<string, number>;
  httpPort?: number;
}): Promise<OursNode> {
  const node = await startOurs({
    label: o.id,
    ...(o.httpPort ? { httpPort: o.httpPort } : {}),
    config: {
      cluster: {
        sync: { server_id: o.id, seed_servers: o.seeds, ...HEARTBEAT },
        role: o.role ?? [],
        ...(o.relay ? { relay: o.relay } : {}),
      },
    },
  });
  return Object.assign(node, { serverId: o.id, api: new ClusterApi(node.httpUrl) });
}

/** Waits until every node sees every other node Online. */
export async function waitClusterFormed(nodes: OursNode[], timeoutMs = 20_000): Promise<void> {
  await until(
    async () => {
      for (const n of nodes) {
        const seen = await n.api.servers();
        for (const m of nodes) {
          if (m === n) continue;
          if (seen.find((s) => s.server_id === m.serverId)?.state !== "Online") return false;
        }
      }
      return true;
    },
    timeoutMs,
    "the cluster to form",
    100,
  );
}
