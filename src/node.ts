/**
 * Explicit wiring of one node: config in, running services out. Nothing reads globals, so
 * tests can build a node in-process. The HTTP port is bound first (its real port is part of
 * the node's cluster identity when the config asks for port 0), then the cluster, the RTMP
 * listener and the HTTP routes are built. `Symbol.asyncDispose` stops it all in reverse.
 */

import { type Config, isWildcardHost, parseListenAddr, resolveIdentity } from "./config/mod.ts";
import { buildHttpApp, PlayerDroppedError } from "./http/mod.ts";
import { errorMessage, type Logger, rootLogger } from "./log/mod.ts";
import { StreamHub } from "./media/mod.ts";
import { RtmpServer } from "./rtmp/mod.ts";
import { Cluster, NodeState, VERSION } from "./cluster/mod.ts";
import { buildAdminApp } from "./admin/mod.ts";
import { buildMetricsApp, createNodeMetrics, type MetricsRegistry } from "./metrics/mod.ts";
import { generateSelfSigned, loadTls, QuicTransport } from "./cluster/transport/mod.ts";

export interface NodeHandle extends AsyncDisposable {
  readonly hub: StreamHub;
  readonly cluster: Cluster | null;
  /** The node's Prometheus registry (served at /metrics); `inc()` the counters it declares. */
  readonly metrics: MetricsRegistry;
  readonly httpPort: number;
  readonly rtmpPort: number;
}

export function createHub(config: Config): StreamHub {
  return new StreamHub({
    gopCache: config.flv.gop_cache,
    maxGopFrames: config.flv.max_gop_frames,
    playerQueueFrames: config.flv.player_queue_frames,
    playerStallTimeoutMs: config.flv.player_stall_timeout * 1000,
    republishGraceMs: config.cluster.relay.republish_grace * 1000,
  });
}

type FetchHandler = (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Response | Promise<Response>;

export async function startNode(config: Config, log: Logger = rootLogger): Promise<NodeHandle> {
  const hub = createHub(config);
  const httpAddr = parseListenAddr(config.global.http.listenaddr);
  const httpLog = log.child({ svc: "http" });
  let handler: FetchHandler = () => new Response("starting", { status: 503 });
  const server = listening("global.http.listenaddr", config.global.http.listenaddr, () =>
    Deno.serve({
      hostname: httpAddr.hostname,
      port: httpAddr.port,
      onListen: () => {},
      onError: (err) => {
        // A stalled or kicked player's response is ended with an error on purpose (already logged).
        if (err instanceof PlayerDroppedError) {
          httpLog.debug("player response aborted", { error: err.message });
        } else httpLog.warn("http request failed", { error: errorMessage(err) });
        return new Response("internal error", { status: 500 });
      },
    }, (req, info) => handler(req, info)));
  const httpPort = server.addr.port;

  let cluster: Cluster | null = null;
  let transport: QuicTransport | null = null;
  if (config.cluster.enable) {
    const identity = resolveIdentity(config, { hostname: Deno.hostname(), httpPort });
    cluster = new Cluster(config, identity, hub, log.child({ node: identity.serverId }));
    transport = await startRelayTransport(config, identity.address, log);
    cluster.attachRelay(transport);
  }

  const rtmpAddr = parseListenAddr(config.rtmp.tcp.listenaddr);
  const rtmp = listening(
    "rtmp.tcp.listenaddr",
    config.rtmp.tcp.listenaddr,
    () =>
      new RtmpServer(rtmpAddr.hostname, rtmpAddr.port, {
        hub,
        chunkSize: config.rtmp.chunk_size,
        maxMessageSize: config.rtmp.max_message_size,
        handshakeTimeoutMs: config.rtmp.handshake_timeout * 1000,
        waitTimeoutMs: config.flv.wait_timeout * 1000,
        publishIdleTimeoutMs: config.rtmp.publish_idle_timeout * 1000,
        ...(cluster ? { gate: cluster.rtmpGate() } : {}),
      }, log.child({ svc: "rtmp" })),
  );

  if (cluster) {
    const host = isWildcardHost(rtmpAddr.hostname)
      ? cluster.identity.address.slice(0, cluster.identity.address.lastIndexOf(":"))
      : rtmpAddr.hostname;
    cluster.rtmpAddress = `${host}:${rtmp.port}`;
  }

  const nodeMetrics = createNodeMetrics({ hub, cluster, version: VERSION });
  const admin = await buildAdminApp({
    apiKey: config.cluster.sync.internal_api_key,
    peerAddress: (id) => {
      const peer = cluster?.sync.membership.summary(id);
      return peer && peer.state !== NodeState.Offline ? peer.address : null;
    },
    log: httpLog,
  });
  const mounts = { "/admin": admin, "/metrics": buildMetricsApp(nodeMetrics.metrics) };
  const app = buildHttpApp({
    hub,
    waitTimeoutMs: config.flv.wait_timeout * 1000,
    log: httpLog,
    mounts: cluster ? { ...mounts, "/cluster/api": cluster.api() } : mounts,
    ...(cluster ? { gate: cluster.playGate() } : {}),
  });
  handler = (req, info) => app.fetch(req, info);
  cluster?.start();

  log.info("node listening", {
    http: `${httpAddr.hostname}:${httpPort}`,
    rtmp: `${rtmpAddr.hostname}:${rtmp.port}`,
    server_id: cluster?.identity.serverId,
  });

  return {
    hub,
    cluster,
    metrics: nodeMetrics.metrics,
    httpPort,
    rtmpPort: rtmp.port,
    async [Symbol.asyncDispose]() {
      nodeMetrics.dispose();
      await cluster?.[Symbol.asyncDispose]();
      await transport?.[Symbol.asyncDispose]();
      hub.closeAll();
      await rtmp[Symbol.asyncDispose]();
      await server.shutdown();
    },
  };
}

/** The QUIC endpoint of the relay, advertised at the HTTP address's host when bound to a wildcard. */
async function startRelayTransport(config: Config, httpAddress: string, log: Logger): Promise<QuicTransport> {
  const q = config.cluster.quic;
  const tls = q.cert_file
    ? await loadTls(q.cert_file, q.key_file, q.ca_file).catch((err) => {
      throw new ListenError(
        `config: cluster.quic.cert_file/key_file/ca_file: cannot read: ${errorMessage(err)}`,
      );
    })
    : await generateSelfSigned();
  const bind = parseListenAddr(q.listenaddr);
  const advertiseHost = isWildcardHost(bind.hostname)
    ? httpAddress.slice(0, httpAddress.lastIndexOf(":"))
    : bind.hostname;
  const healthMs = config.cluster.relay.health_check_interval * 1000;
  return listening("cluster.quic.listenaddr", q.listenaddr, () =>
    new QuicTransport({
      hostname: bind.hostname,
      port: bind.port,
      advertiseHost,
      tls,
      idleTimeoutMs: Math.min(30_000, Math.max(1000, 2 * healthMs)),
    }, log.child({ svc: "quic" })));
}

/** A start-up failure an operator fixes in the config; its message is one line naming the field. */
export class ListenError extends Error {
  override name = "ListenError";
}

/** Runs `bind`, turning a failure into a `ListenError` that names the config field and address. */
function listening<T>(field: string, addr: string, bind: () => T): T {
  try {
    return bind();
  } catch (err) {
    throw new ListenError(`config: ${field}: cannot listen on ${addr}: ${errorMessage(err)}`, { cause: err });
  }
}
