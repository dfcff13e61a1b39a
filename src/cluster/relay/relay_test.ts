/**
 * The relay end to end in one process: two stream hubs, a RelayManager on each, joined by the
 * in-memory transport (or real QUIC on 127.0.0.1), with the edge's `relay/pull` HTTP call
 * replaced by a shim that calls the origin manager's `pull()` directly. Synthetic frames go
 * in on the origin hub; what a player on the edge hub receives is checked frame by frame.
 */

import assert from "node:assert/strict";
import { concatBytes } from "../../bytes/mod.ts";
import { classifyTag } from "../../flv/mod.ts";
import { configureLogging, Logger, type LogLevel } from "../../log/mod.ts";
import {
  makeFrame,
  type MediaFrame,
  type PublishHandle,
  StreamHub,
  type StreamPath,
  type Subscriber,
  TagType,
} from "../../media/mod.ts";
import type { PeerClient } from "../protocol/peer_client.ts";
import { relayPullRequest } from "../protocol/schemas.ts";
import type { SessionRecord } from "../protocol/types.ts";
import {
  generateSelfSigned,
  MemoryNetwork,
  type PeerEndpoint,
  QuicTransport,
  type RelayStream,
  type RelayTransport,
} from "../transport/mod.ts";
import {
  decodeControl,
  encodeControl,
  FLAG_KEYFRAME,
  FrameDecoder,
  frameHeader,
  FrameKind,
  RelayManager,
  type RelayManagerOptions,
  RelayServer,
  type WireFrame,
} from "./mod.ts";

configureLogging((Deno.env.get("RELAY_TEST_LOG") as LogLevel | undefined) ?? "silent", "text");
const log = new Logger({ test: "relay" });

const PATH = "live/cam" as StreamPath;
const ORIGIN_HTTP = "origin.test:8180";
const ORIGIN_QUIC = "origin.test:4433";
const EDGE_QUIC = "edge.test:4433";

const BASE: Omit<RelayManagerOptions, "selfId" | "canPull"> = {
  establishTimeoutMs: 2000,
  releaseDelayMs: 5000,
  maxRetryAttempts: 2,
  retryDelayMs: 50,
  healthCheckIntervalMs: 2000,
};

// ---------------------------------------------------------------------------------------------
// Time helpers: wait on conditions, with a bound; every timer is cleared.

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor<T>(
  fn: () => T | false | null | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== false && v !== null && v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Resolves with `p`, or with `undefined` after `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), ms))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Rejects with a timeout error if `p` has not settled within `ms`. */
async function withTimeoutMs<T>(p: Promise<T>, ms: number): Promise<T> {
  const r = await within(p.then((v) => ({ v })), ms);
  if (!r) throw new Error(`timed out after ${ms} ms`);
  return r.v;
}

// ---------------------------------------------------------------------------------------------
// Synthetic media: AVC/AAC-shaped tags whose bodies carry a sequence number.

const META = Uint8Array.of(2, 0, 10, ...new TextEncoder().encode("onMetaData"), 8, 0, 0, 0, 0, 0, 0, 9);
const AVC_SEQUENCE_HEADER = Uint8Array.of(0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1e, 0xff, 0xe0, 0, 0);
const AAC_SEQUENCE_HEADER = Uint8Array.of(0xaf, 0, 0x12, 0x10);

function frame(type: TagType, timestamp: number, body: Uint8Array): MediaFrame {
  return makeFrame(type, timestamp, body, classifyTag(type, body));
}

function u32(n: number): number[] {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
}

/** The sequence number in a synthetic coded frame, or -1 for headers. */
function seqOf(f: MediaFrame): number {
  if (f.sequenceHeader || f.type === TagType.Script) return -1;
  const off = f.type === TagType.Video ? 5 : 2;
  return new DataView(f.data.buffer, f.data.byteOffset + off, 4).getUint32(0);
}

function isCodedVideo(f: MediaFrame): boolean {
  return f.type === TagType.Video && !f.sequenceHeader;
}

/** A publisher on the origin hub: headers, then one video + one audio frame per step. */
class Source {
  readonly handle: PublishHandle;
  seq = 0;
  ts: number;
  readonly sent = new Map<number, MediaFrame>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(hub: StreamHub, path: StreamPath, readonly gop = 10, startTs = 0) {
    this.ts = startTs;
    this.handle = hub.publish(path, { id: "src", protocol: "rtmp", remoteAddr: "test" });
    // Like an RTMP publisher: headers at 0 whatever the media timeline.
    this.handle.write(frame(TagType.Script, 0, META));
    this.handle.write(frame(TagType.Video, 0, AVC_SEQUENCE_HEADER));
    this.handle.write(frame(TagType.Audio, 0, AAC_SEQUENCE_HEADER));
  }

  step(n = 1): void {
    for (let i = 0; i < n; i++) {
      const s = this.seq++;
      const key = s % this.gop === 0;
      const v = frame(TagType.Video, this.ts, Uint8Array.of(key ? 0x17 : 0x27, 1, 0, 0, 0, ...u32(s), 0xee));
      this.sent.set(s, v);
      this.handle.write(v);
      this.handle.write(frame(TagType.Audio, this.ts, Uint8Array.of(0xaf, 1, ...u32(s), 0xaa)));
      this.ts += 40;
    }
  }

  /** Steps every `ms` until stopped (like a live encoder). */
  start(ms = 20): this {
    this.#timer = setInterval(() => this.step(), ms);
    return this;
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  close(): void {
    this.stop();
    this.handle.close();
  }
}

function makeHub(republishGraceMs: number): StreamHub {
  return new StreamHub({
    gopCache: true,
    maxGopFrames: 1800,
    playerQueueFrames: 2000,
    playerStallTimeoutMs: 10_000,
    republishGraceMs,
  });
}

let playerIds = 0;

/** A local player on `hub` (as the HTTP-FLV handler makes one): waits up to `timeoutMs` for the stream. */
function play(
  hub: StreamHub,
  path: StreamPath,
  timeoutMs = 5000,
  signal?: AbortSignal,
): Promise<Subscriber | null> {
  const info = { id: `p${++playerIds}`, protocol: "http-flv", remoteAddr: "test" } as const;
  return hub.subscribeWhenLive(path, info, timeoutMs, signal);
}

interface Played {
  frames: MediaFrame[];
  /** The subscription ended (read() returned null). */
  ended: boolean;
}

/** Reads `sub` until `until(frames)` holds or the stream ends; throws after `timeoutMs`. */
async function readUntil(
  sub: Subscriber,
  until: (frames: MediaFrame[]) => boolean,
  timeoutMs = 5000,
  frames: MediaFrame[] = [],
): Promise<Played> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const f = sub.read();
    if (f === null) return { frames, ended: true };
    if (f === undefined) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`player read timed out with ${frames.length} frames`);
      await within(sub.wait(), left);
      continue;
    }
    frames.push(f);
    if (until(frames)) return { frames, ended: false };
  }
}

const videoCount = (n: number) => (fs: MediaFrame[]) => fs.filter(isCodedVideo).length >= n;

// ---------------------------------------------------------------------------------------------
// Two nodes in one process.

type PullAnswer = (req: ReturnType<typeof relayPullRequest.parse>) => unknown;

interface PairOptions {
  origin?: Partial<RelayManagerOptions>;
  edge?: Partial<RelayManagerOptions>;
  originGraceMs?: number;
  edgeGraceMs?: number;
  quic?: boolean;
}

function sessionRecord(path: StreamPath): SessionRecord {
  return {
    stream_path: path,
    origin_id: "origin",
    origin_address: ORIGIN_HTTP,
    origin_incarnation: 1,
    publisher_protocol: "rtmp",
    video_codec: "h264",
    audio_codec: "aac",
    width: null,
    height: null,
    started_at: 0,
    subscribe_nodes: [],
    version: 1,
    active: true,
  };
}

async function relayPair(o: PairOptions = {}) {
  const net = new MemoryNetwork();
  let originT: RelayTransport;
  let edgeT: RelayTransport;
  if (o.quic) {
    const [a, b] = await Promise.all([generateSelfSigned(), generateSelfSigned()]);
    const opts = { hostname: "127.0.0.1", port: 0, advertiseHost: "127.0.0.1", idleTimeoutMs: 5000 };
    originT = new QuicTransport({ ...opts, tls: a }, log);
    edgeT = new QuicTransport({ ...opts, tls: b }, log);
  } else {
    originT = net.endpoint(ORIGIN_QUIC);
    edgeT = net.endpoint(EDGE_QUIC);
  }
  const originHub = makeHub(o.originGraceMs ?? 0);
  const edgeHub = makeHub(o.edgeGraceMs ?? 0);
  const noPeers = { call: () => Promise.reject(new Error("origin makes no calls")) } as unknown as PeerClient;
  const origin = new RelayManager(
    { selfId: "origin", canPull: false, ...BASE, ...o.origin },
    originHub,
    noPeers,
    originT,
    { origin: () => null, isLive: () => false },
    log.child({ node: "origin" }),
  );
  const pullRequests: ReturnType<typeof relayPullRequest.parse>[] = [];
  const state = {
    /** Replaces the origin's answer to relay/pull (e.g. a forged grant). */
    answer: null as PullAnswer | null,
    /** What the registry says: the origin is up and has the stream. */
    originKnown: true,
    /** How long the origin takes to answer relay/pull. */
    pullDelayMs: 0,
  };
  // The one HTTP call pull.ts makes, routed straight into the origin manager.
  const client = {
    call(address: string, method: string, path: string, body: unknown, _timeoutMs: number, schema: {
      parse(v: unknown): unknown;
    }): Promise<unknown> {
      try {
        assert.equal(address, ORIGIN_HTTP);
        assert.equal(method, "POST");
        assert.equal(path, "relay/pull");
        const req = relayPullRequest.parse(body);
        pullRequests.push(req);
        const answer = () => schema.parse(state.answer ? state.answer(req) : origin.pull(req));
        if (state.pullDelayMs > 0) return sleep(state.pullDelayMs).then(answer);
        return Promise.resolve(answer());
      } catch (err) {
        return Promise.reject(err);
      }
    },
  } as unknown as PeerClient;
  const edge = new RelayManager(
    { selfId: "edge", canPull: true, ...BASE, ...o.edge },
    edgeHub,
    client,
    edgeT,
    {
      origin: (p) =>
        state.originKnown && originHub.get(p)?.live
          ? { record: sessionRecord(p), peerCert: originT.certPem }
          : null,
      isLive: (_id, p) => state.originKnown && originHub.get(p)?.live === true,
    },
    log.child({ node: "edge" }),
  );
  edgeHub.missingStreamHandler = (p) => edge.ensure(p);
  const sources: Source[] = [];
  return {
    net,
    originT,
    edgeT,
    originHub,
    edgeHub,
    origin,
    edge,
    state,
    pullRequests,
    source(path = PATH, gop = 10, startTs = 0): Source {
      const s = new Source(originHub, path, gop, startTs);
      sources.push(s);
      return s;
    },
    /** The origin's endpoint, as the edge dials it. */
    originPeer(): PeerEndpoint {
      return { address: originT.address, certPem: originT.certPem };
    },
    pulls() {
      return edge.sessions().filter((s) => s.direction === "pull");
    },
    served() {
      return origin.sessions().filter((s) => s.direction === "serve");
    },
    async [Symbol.asyncDispose]() {
      for (const s of sources) s.stop();
      await edge[Symbol.asyncDispose]();
      await origin[Symbol.asyncDispose]();
      edgeHub.closeAll();
      originHub.closeAll();
      await edgeT[Symbol.asyncDispose]();
      await originT[Symbol.asyncDispose]();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Raw relay streams, for talking to the origin without a PullRelay.

async function writeBytes(stream: RelayStream, ...chunks: Uint8Array[]): Promise<void> {
  const w = stream.writable.getWriter();
  for (const c of chunks) await w.write(c);
  w.releaseLock();
}

function hello(sessionId: string, path = PATH, requestorId = "edge"): Uint8Array {
  return encodeControl(FrameKind.Hello, {
    session_id: sessionId,
    stream_path: path,
    requestor_id: requestorId,
  });
}

interface RawRead {
  frames: WireFrame[];
  /** "done": the origin closed the stream cleanly; "error": it was reset; "open": stopped early. */
  end: "done" | "error" | "open";
}

/** Reads frames from a raw stream until it ends, `until` holds, or `timeoutMs` passes. */
async function readRaw(
  stream: RelayStream,
  timeoutMs = 3000,
  until?: (f: WireFrame[]) => boolean,
): Promise<RawRead> {
  const reader = stream.readable.getReader();
  const decoder = new FrameDecoder();
  const frames: WireFrame[] = [];
  const deadline = performance.now() + timeoutMs;
  try {
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`raw read timed out with ${frames.length} frames`);
      let r: ReadableStreamReadResult<Uint8Array> | undefined;
      try {
        r = await within(reader.read(), left);
      } catch {
        return { frames, end: "error" };
      }
      if (r === undefined) continue;
      if (r.done) return { frames, end: "done" };
      decoder.push(r.value, (f) => frames.push(f));
      if (until?.(frames)) return { frames, end: "open" };
    }
  } finally {
    reader.releaseLock();
  }
}

function grant(env: Awaited<ReturnType<typeof relayPair>>, sessionId: string, requestor = "edge") {
  return env.origin.pull({
    request_id: crypto.randomUUID(),
    stream_path: PATH,
    requestor_id: requestor,
    quic_addr: EDGE_QUIC,
    session_id: sessionId,
    timestamp: Date.now(),
  }) as { accepted: boolean; quic_addr: string; reason: string };
}

// ---------------------------------------------------------------------------------------------

Deno.test("relay: an edge player gets headers, then the cached GOP from its keyframe, then live frames", async () => {
  await using env = await relayPair();
  const src = env.source(PATH, 10);
  src.step(15); // GOP cache now starts at the keyframe of seq 10
  src.start(20);

  const sub = await play(env.edgeHub, PATH);
  assert.ok(sub, "the edge player got the stream");
  const { frames } = await readUntil(sub, videoCount(30));

  assert.deepEqual(frames.slice(0, 3).map((f) => [f.type, f.sequenceHeader]), [
    [TagType.Script, false],
    [TagType.Video, true],
    [TagType.Audio, true],
  ], "metadata and both sequence headers come first");
  assert.deepEqual(frames[0]!.data, META);
  assert.deepEqual(frames[1]!.data, AVC_SEQUENCE_HEADER);
  assert.deepEqual(frames[2]!.data, AAC_SEQUENCE_HEADER);
  const video = frames.filter(isCodedVideo);
  assert.equal(video[0]!.keyframe, true, "first coded video frame is a keyframe");
  assert.equal(seqOf(video[0]!), 10, "it is the keyframe the GOP cache starts at");
  // Every video frame from there on, in order, byte for byte, with its flags and timestamp.
  video.forEach((f, i) => {
    const sent = src.sent.get(10 + i)!;
    assert.equal(seqOf(f), 10 + i, `video frame ${i}`);
    assert.deepEqual(f.tag, sent.tag, `video frame ${i} bytes`);
    assert.equal(f.keyframe, sent.keyframe);
    assert.equal(f.timestamp, sent.timestamp);
  });
  assert.ok(
    frames.slice(3).every((f) => !f.sequenceHeader && f.type !== TagType.Script),
    "headers only once",
  );

  // The relay as the API shows it, on both sides.
  const [pull] = env.pulls();
  assert.equal(env.pulls().length, 1);
  assert.equal(pull!.state, "active");
  assert.equal(pull!.source_node_id, "origin");
  assert.equal(pull!.source_quic_addr, ORIGIN_QUIC);
  assert.equal(pull!.subscriber_count, 1);
  assert.ok(pull!.frame_count >= 3 + 2 * 30, `frame_count ${pull!.frame_count}`);
  assert.ok(pull!.bytes > 0);
  assert.deepEqual(env.edge.count(), { total: 1, active: 1 });
  const [served] = env.served();
  assert.equal(env.served().length, 1);
  assert.equal(served!.session_id, pull!.session_id);
  assert.equal((served as { target_node_id?: string }).target_node_id, "edge");
  const stream = env.edgeHub.get(PATH)!;
  assert.equal(stream.publisher?.protocol, "relay");
  assert.equal(stream.publisher?.sourceNodeId, "origin");

  // A second player shares the relay: no second pull, no second served stream.
  const sub2 = await play(env.edgeHub, PATH);
  assert.ok(sub2);
  const second = await readUntil(sub2, videoCount(5));
  assert.equal(second.frames.filter(isCodedVideo)[0]!.keyframe, true);
  assert.equal(env.pullRequests.length, 1);
  assert.equal(env.served().length, 1);
  assert.equal(env.pulls()[0]!.subscriber_count, 2);
  sub.close("client");
  sub2.close("client");
});

Deno.test("relay: a forged session id is refused with ERROR and nothing is served", async () => {
  await using env = await relayPair();
  const src = env.source();
  src.step(5);
  const stream = await env.edgeT.openStream(env.originPeer(), 2000);
  await writeBytes(stream, hello(crypto.randomUUID()));
  const r = await readRaw(stream);
  assert.equal(r.end, "done", "the origin closes the stream cleanly after ERROR");
  assert.deepEqual(r.frames.map((f) => f.kind), [FrameKind.Error]);
  assert.match(String(decodeControl(r.frames[0]!)["reason"]), /unknown relay session id/);
  assert.equal(env.served().length, 0);
  assert.equal(env.originHub.get(PATH)!.playerCounts()["relay"], 0, "no relay subscriber on the origin");
});

Deno.test("relay: an edge whose pull was 'accepted' without a grant gets ERROR, retries, gives up, publishes nothing", async () => {
  await using env = await relayPair({ edge: { maxRetryAttempts: 2, retryDelayMs: 30 } });
  env.source().step(5);
  // A forged answer: accepted, but the origin never issued the grant.
  env.state.answer = (req) => ({
    request_id: req.request_id,
    accepted: true,
    quic_addr: env.originT.address,
    session_id: req.session_id,
    reason: "",
    stream_path: req.stream_path,
  });
  const stopWaiting = new AbortController();
  const playing = play(env.edgeHub, PATH, 10_000, stopWaiting.signal);
  const relay = await waitFor(() => env.edge.pullFor(PATH), 2000, "relay started");
  await within(relay.done, 5000);
  assert.equal(relay.state, "closed");
  assert.match(relay.closeReason, /gave up after 2 retries/);
  assert.equal(env.pullRequests.length, 3, "one attempt plus two retries");
  assert.equal(relay.reconnects, 2);
  assert.equal(env.edge.pullFor(PATH), undefined, "no new relay while the player still waits");
  assert.ok(env.edgeHub.hasWaiters(PATH));
  stopWaiting.abort();
  assert.equal(await playing, null, "the player never got a stream");
  assert.equal(env.edgeHub.get(PATH), undefined, "nothing was published on the edge");
  assert.equal(env.served().length, 0);
  assert.deepEqual(env.pulls(), []);
});

Deno.test("relay: a session id is single-use and bound to its stream and edge", async () => {
  await using env = await relayPair();
  const src = env.source();
  src.step(5);
  src.start(20);

  assert.equal(grant(env, "sid-1").accepted, true);
  const first = await env.edgeT.openStream(env.originPeer(), 2000);
  await writeBytes(first, hello("sid-1"));
  const got = await readRaw(first, 3000, (fs) => fs.some((f) => f.kind === FrameKind.Media));
  assert.equal(got.frames[0]!.kind, FrameKind.Headers);
  await waitFor(() => env.served().length === 1, 2000, "first use served");

  // Replay of the same id on a new stream: refused, and the first stream is unaffected.
  const replay = await env.edgeT.openStream(env.originPeer(), 2000);
  await writeBytes(replay, hello("sid-1"));
  const refused = await readRaw(replay);
  assert.equal(refused.end, "done");
  assert.deepEqual(refused.frames.map((f) => f.kind), [FrameKind.Error]);
  assert.match(String(decodeControl(refused.frames[0]!)["reason"]), /unknown relay session id/);
  const more = await readRaw(first, 3000, (fs) => fs.filter((f) => f.kind === FrameKind.Media).length >= 10);
  assert.equal(more.end, "open", "the first relay keeps flowing");
  assert.equal(env.served().length, 1);

  // A grant presented for another stream or by another node is refused, and is then used up.
  for (const [sid, path, node] of [["sid-2", "live/other", "edge"], ["sid-3", PATH, "edge-2"]] as const) {
    assert.equal(grant(env, sid).accepted, true);
    const s = await env.edgeT.openStream(env.originPeer(), 2000);
    await writeBytes(s, hello(sid, path as StreamPath, node));
    const r = await readRaw(s);
    assert.match(String(decodeControl(r.frames[0]!)["reason"]), /does not match/, sid);
    const again = await env.edgeT.openStream(env.originPeer(), 2000);
    await writeBytes(again, hello(sid));
    assert.match(
      String(decodeControl((await readRaw(again)).frames[0]!)["reason"]),
      /unknown relay session id/,
    );
  }
  assert.equal(env.served().length, 1);

  // The origin refuses to grant what it cannot serve.
  assert.equal(grant(env, "sid-4", "origin").accepted, false, "a node cannot pull from itself");
  const unknown = env.origin.pull({
    request_id: "r",
    stream_path: "live/nothing",
    requestor_id: "edge",
    quic_addr: EDGE_QUIC,
    session_id: "sid-5",
    timestamp: 0,
  }) as { accepted: boolean; reason: string };
  assert.equal(unknown.accepted, false);
  assert.match(unknown.reason, /not live/);
  first.abort("test over");
});

Deno.test("relay: an expired grant is refused", async () => {
  const hub = makeHub(0);
  const handle = hub.publish(PATH, { id: "src", protocol: "rtmp", remoteAddr: "test" });
  let now = 1_000;
  const server = new RelayServer(hub, 2000, log, () => now);
  server.grant("sid", { path: PATH, requestorId: "edge", expiresAt: 1_500 });
  now = 1_501;
  const net = new MemoryNetwork();
  const a = net.endpoint("a");
  const b = net.endpoint("b");
  const serving: Promise<void>[] = [];
  b.onStream((s, remote) => serving.push(server.serve(s, remote)));
  const s = await a.openStream({ address: "b", certPem: b.certPem }, 1000);
  await writeBytes(s, hello("sid"));
  const r = await readRaw(s);
  assert.match(String(decodeControl(r.frames[0]!)["reason"]), /expired/);
  await Promise.all(serving);
  assert.equal(server.served.size, 0);
  handle.close();
  await a[Symbol.asyncDispose]();
  await b[Symbol.asyncDispose]();
});

Deno.test("relay: garbage or a wrong first frame is refused with a clean close; other relays keep flowing", async () => {
  await using env = await relayPair({ origin: { establishTimeoutMs: 500 } });
  const src = env.source();
  src.step(5);
  src.start(20);
  const sub = await play(env.edgeHub, PATH);
  assert.ok(sub);
  const played = await readUntil(sub, videoCount(5));

  const cases: [string, Uint8Array, RegExp][] = [
    [
      "http request",
      new TextEncoder().encode("GET /live/cam.flv HTTP/1.1\r\nHost: x\r\n\r\n"),
      /unknown frame kind/,
    ],
    [
      "media first",
      concatBytes([frameHeader(FrameKind.Media, FLAG_KEYFRAME, 3), Uint8Array.of(1, 2, 3)]),
      /expected HELLO/,
    ],
    [
      "hello not json",
      concatBytes([frameHeader(FrameKind.Hello, 0, 5), new TextEncoder().encode("hello")]),
      /JSON/,
    ],
    ["hello too big", frameHeader(FrameKind.Hello, 0, 1_000_000), /exceeds/],
    [
      "header only, then silence",
      Uint8Array.of(FrameKind.Hello, 0, 0),
      /no HELLO within the establish timeout/,
    ],
  ];
  for (const [name, bytes, reason] of cases) {
    const s = await env.edgeT.openStream(env.originPeer(), 2000);
    await writeBytes(s, bytes);
    const r = await readRaw(s, 3000);
    assert.equal(r.end, "done", `${name}: clean close`);
    assert.deepEqual(r.frames.map((f) => f.kind), [FrameKind.Error], name);
    assert.match(String(decodeControl(r.frames[0]!)["reason"]), reason, name);
  }
  // The real relay went on through all of that.
  const before = played.frames.filter(isCodedVideo).length;
  const after = await readUntil(sub, videoCount(before + 20), 5000, played.frames);
  assert.equal(after.ended, false);
  const seqs = after.frames.filter(isCodedVideo).map(seqOf);
  assert.deepEqual(seqs, seqs.map((_, i) => seqs[0]! + i), "no frame lost or reordered");
  assert.equal(env.served().length, 1);
  assert.equal(env.pullRequests.length, 1);
  sub.close("client");
});

Deno.test("relay: a truncated frame then close → the edge retries per config, then gives up", async () => {
  const retryDelayMs = 150;
  await using env = await relayPair({ edge: { maxRetryAttempts: 2, retryDelayMs } });
  env.source().step(5);
  // The origin's relay endpoint misbehaves: half a frame, then a clean close.
  const opened: number[] = [];
  env.originT.onStream((stream) => {
    opened.push(performance.now());
    void (async () => {
      const reader = stream.readable.getReader();
      await reader.read(); // HELLO
      const w = stream.writable.getWriter();
      await w.write(concatBytes([frameHeader(FrameKind.Media, FLAG_KEYFRAME, 100), new Uint8Array(50)]));
      await w.close();
    })().catch(() => {});
  });
  const stopWaiting = new AbortController();
  const playing = play(env.edgeHub, PATH, 10_000, stopWaiting.signal);
  const relay = await waitFor(() => env.edge.pullFor(PATH), 2000, "relay started");
  await within(relay.done, 8000);
  assert.equal(relay.state, "closed");
  assert.match(relay.closeReason, /gave up after 2 retries/);
  assert.equal(opened.length, 3, "one attempt and max_retry_attempts retries");
  assert.equal(env.pullRequests.length, 3);
  for (let i = 1; i < opened.length; i++) {
    assert.ok(
      opened[i]! - opened[i - 1]! >= retryDelayMs - 5,
      `retry ${i} after ${opened[i]! - opened[i - 1]!} ms`,
    );
  }
  assert.equal(env.edge.pullFor(PATH), undefined, "no new relay while the player still waits");
  assert.ok(env.edgeHub.hasWaiters(PATH));
  stopWaiting.abort();
  assert.equal(await playing, null);
  assert.equal(env.edgeHub.get(PATH), undefined, "nothing published");
  assert.deepEqual(env.pulls(), []);
  assert.deepEqual(env.edge.count(), { total: 0, active: 0 });
});

Deno.test("relay: the origin unpublishing sends END; the edge stream ends after the last frame", async () => {
  await using env = await relayPair();
  const src = env.source();
  src.step(3);
  src.start(10);
  const sub = await play(env.edgeHub, PATH);
  assert.ok(sub);
  const played = await readUntil(sub, videoCount(10));
  const relay = env.edge.pullFor(PATH)!;
  src.close();
  const lastSeq = src.seq - 1;
  const rest = await readUntil(sub, () => false, 5000, played.frames);
  assert.equal(rest.ended, true, "the edge player's stream ended");
  const video = rest.frames.filter(isCodedVideo);
  assert.equal(seqOf(video.at(-1)!), lastSeq, "every frame up to the last one arrived before the end");
  await within(relay.done, 3000);
  assert.equal(relay.state, "closed");
  assert.equal(relay.closeReason, "ended");
  assert.equal(env.edgeHub.get(PATH), undefined);
  await waitFor(() => env.served().length === 0, 2000, "origin side cleaned up");
  assert.deepEqual(env.pulls(), []);
  assert.equal(env.pullRequests.length, 1, "no reconnect after END");
});

Deno.test("relay: released release_delay after the last player leaves", async () => {
  const releaseDelayMs = 600;
  await using env = await relayPair({ edge: { releaseDelayMs } });
  env.source().start(20);
  const sub = await play(env.edgeHub, PATH);
  assert.ok(sub);
  await readUntil(sub, videoCount(3));
  const relay = env.edge.pullFor(PATH)!;
  const left = performance.now();
  sub.close("client");
  await sleep(100);
  assert.equal(env.edge.pullFor(PATH), relay, "still there inside the window");
  assert.equal(relay.state, "active");
  await within(relay.done, 5000);
  const after = performance.now() - left;
  assert.ok(after >= releaseDelayMs - 5, `released after ${Math.round(after)} ms`);
  assert.equal(relay.state, "closed");
  assert.match(relay.closeReason, /released/);
  assert.equal(env.edgeHub.get(PATH), undefined, "the relayed copy is gone");
  await waitFor(() => env.served().length === 0, 2000, "origin side closed");
});

Deno.test("relay: a player arriving inside the release window keeps the same relay", async () => {
  const releaseDelayMs = 800;
  await using env = await relayPair({ edge: { releaseDelayMs } });
  env.source().start(20);
  const first = await play(env.edgeHub, PATH);
  assert.ok(first);
  await readUntil(first, videoCount(3));
  const relay = env.edge.pullFor(PATH)!;
  const sessionId = relay.sessionId;
  first.close("client");
  await sleep(150);
  const second = await play(env.edgeHub, PATH);
  assert.ok(second);
  const got = await readUntil(second, videoCount(3));
  assert.equal(got.frames.filter(isCodedVideo)[0]!.keyframe, true);
  // Past the end of the first window: still the same relay and session.
  await sleep(releaseDelayMs + 200);
  assert.equal(env.edge.pullFor(PATH), relay);
  assert.equal(relay.sessionId, sessionId);
  assert.equal(relay.state, "active");
  assert.equal(env.pullRequests.length, 1);
  await readUntil(second, videoCount(got.frames.filter(isCodedVideo).length + 5), 5000, got.frames);
  second.close("client");
  await within(relay.done, 5000);
  assert.match(relay.closeReason, /released/);
});

Deno.test("relay: a relay whose only player gave up waiting before it went active is still released", async () => {
  const releaseDelayMs = 100;
  await using env = await relayPair({ edge: { releaseDelayMs } });
  env.source().start(20);
  env.state.pullDelayMs = 400; // a slow origin: the relay goes active after the player gave up
  const player = await play(env.edgeHub, PATH, 250);
  assert.equal(player, null, "the player gave up waiting");
  const relay = env.edge.pullFor(PATH)!;
  assert.ok(relay, "the relay it asked for is still starting");
  await within(relay.done, 5000);
  assert.equal(relay.state, "closed", `relay still ${relay.state} with no player`);
  assert.match(relay.closeReason, /released/);
  assert.equal(env.edgeHub.get(PATH), undefined);
  await waitFor(() => env.served().length === 0, 2000, "origin side closed");
});

Deno.test("relay: severed mid-stream → the edge reconnects and players continue on a forward timeline", async () => {
  await using env = await relayPair({ edgeGraceMs: 5000, edge: { retryDelayMs: 100 } });
  // A stream that has been running for a while: timestamps far from 0.
  const src = env.source(PATH, 10, 3_600_000);
  src.step(25);
  src.start(20);
  const sub = await play(env.edgeHub, PATH);
  assert.ok(sub);
  const before = await readUntil(sub, videoCount(20));
  const relay = env.edge.pullFor(PATH)!;
  const firstSession = relay.sessionId;
  const cut = before.frames.length;
  (env.edgeT as unknown as { sever(): void }).sever();

  const headerAgain = (fs: MediaFrame[]) =>
    fs.slice(cut).some((f) => f.type === TagType.Video && f.sequenceHeader);
  const after = await readUntil(
    sub,
    (fs) => headerAgain(fs) && fs.slice(cut).filter(isCodedVideo).length >= 20,
    8000,
    before.frames,
  );
  assert.equal(after.ended, false, "the player stayed attached through the reconnect");
  assert.equal(env.edge.pullFor(PATH), relay, "the same relay lives on");
  assert.equal(relay.reconnects, 1);
  assert.notEqual(relay.sessionId, firstSession, "a new session id for the new attempt");
  assert.equal(relay.state, "active");
  assert.equal(env.pullRequests.length, 2);
  await waitFor(() => env.served().length === 1, 2000, "the origin dropped the severed stream");

  const tail = after.frames.slice(cut);
  const newHeader = tail.findIndex((f) => f.type === TagType.Video && f.sequenceHeader);
  const resumed = tail.slice(newHeader).filter(isCodedVideo);
  assert.equal(resumed[0]!.keyframe, true, "resumes on a keyframe");
  // Video DTS strictly increase for the player across the reconnect, without a big jump.
  const video = after.frames.filter(isCodedVideo);
  for (let i = 1; i < video.length; i++) {
    assert.ok(
      video[i]!.timestamp > video[i - 1]!.timestamp,
      `video DTS ${video[i]!.timestamp} after ${video[i - 1]!.timestamp}`,
    );
  }
  const lastBefore = after.frames.slice(0, cut + newHeader).filter(isCodedVideo).at(-1)!;
  const jump = resumed[0]!.timestamp - lastBefore.timestamp;
  assert.ok(jump > 0 && jump <= 1000, `timeline jumped ${jump} ms across the reconnect`);
  sub.close("client");
});

Deno.test("relay: the origin going offline stops its relays; edge players end after the grace", async () => {
  await using env = await relayPair({ edgeGraceMs: 300 });
  env.source().start(20);
  const sub = await play(env.edgeHub, PATH);
  assert.ok(sub);
  const played = await readUntil(sub, videoCount(3));
  const relay = env.edge.pullFor(PATH)!;
  env.state.originKnown = false; // the registry dropped the origin's sessions
  const t0 = performance.now();
  env.edge.onNodeOffline("origin");
  await within(relay.done, 3000);
  assert.equal(relay.state, "closed");
  assert.match(relay.closeReason, /no live origin/);
  const rest = await readUntil(sub, () => false, 3000, played.frames);
  assert.equal(rest.ended, true);
  assert.ok(performance.now() - t0 >= 250, "players stayed for the republish grace");
  assert.deepEqual(env.pulls(), []);
  await waitFor(() => env.served().length === 0, 2000, "origin side closed");
});

// ---------------------------------------------------------------------------------------------
// The QUIC adapter on 127.0.0.1.

async function quicEndpoints() {
  const [ta, tb, other] = await Promise.all([
    generateSelfSigned(),
    generateSelfSigned(),
    generateSelfSigned(),
  ]);
  const opts = { hostname: "127.0.0.1", port: 0, advertiseHost: "127.0.0.1", idleTimeoutMs: 5000 };
  const a = new QuicTransport({ ...opts, tls: ta }, log);
  const b = new QuicTransport({ ...opts, tls: tb }, log);
  const remotes: string[] = [];
  // b echoes every stream.
  b.onStream((s, remote) => {
    remotes.push(remote);
    s.readable.pipeTo(s.writable).catch(() => {});
  });
  return {
    a,
    b,
    remotes,
    otherCert: other.certPem,
    async [Symbol.asyncDispose]() {
      await a[Symbol.asyncDispose]();
      await b[Symbol.asyncDispose]();
    },
  };
}

async function echo(stream: RelayStream, data: Uint8Array, chunk = 16 * 1024): Promise<Uint8Array> {
  const reading = (async () => {
    const parts: Uint8Array[] = [];
    for await (const c of stream.readable) parts.push(c);
    return concatBytes(parts);
  })();
  const w = stream.writable.getWriter();
  for (let off = 0; off < data.byteLength; off += chunk) await w.write(data.slice(off, off + chunk));
  await w.close();
  return await reading;
}

Deno.test("quic: a stream opens and moves bytes both ways", async () => {
  await using q = await quicEndpoints();
  assert.match(q.a.address, /^127\.0\.0\.1:\d+$/);
  const data = crypto.getRandomValues(new Uint8Array(65536));
  const big = concatBytes(Array.from({ length: 32 }, () => data)); // 2 MiB
  const s = await q.a.openStream({ address: q.b.address, certPem: q.b.certPem }, 5000);
  const back = await echo(s, big);
  assert.equal(back.byteLength, big.byteLength);
  assert.deepEqual(back, big);
  assert.equal(q.remotes.length, 1);
  assert.equal(q.remotes[0], q.a.address, "the acceptor sees the dialer's endpoint address");
});

Deno.test("quic: one connection per peer, shared by streams", async () => {
  await using q = await quicEndpoints();
  const peer = { address: q.b.address, certPem: q.b.certPem };
  const [s1, s2] = await Promise.all([q.a.openStream(peer, 5000), q.a.openStream(peer, 5000)]);
  const s3 = await q.a.openStream(peer, 5000);
  const msg = (n: number) => new TextEncoder().encode(`stream ${n} `.repeat(1000));
  const backs = await Promise.all([echo(s1, msg(1)), echo(s2, msg(2)), echo(s3, msg(3))]);
  backs.forEach((b, i) => assert.deepEqual(b, msg(i + 1)));
  assert.equal(q.a.connectionCount(), 1, "the dialer opened one connection");
  await waitFor(() => q.b.connectionCount() === 1, 2000, "the acceptor sees one connection");
  assert.equal(q.remotes.length, 3);
});

Deno.test("quic: a wrong pinned certificate fails within the timeout, and the next good dial works", async () => {
  await using q = await quicEndpoints();
  const t0 = performance.now();
  await assert.rejects(q.a.openStream({ address: q.b.address, certPem: q.otherCert }, 3000));
  const took = performance.now() - t0;
  assert.ok(took < 4000, `failed after ${Math.round(took)} ms`);
  assert.equal(q.a.connectionCount(), 0, "the failed connection is forgotten");
  assert.equal(q.remotes.length, 0, "no stream reached the peer");
  const s = await q.a.openStream({ address: q.b.address, certPem: q.b.certPem }, 5000);
  assert.deepEqual(await echo(s, Uint8Array.of(1, 2, 3)), Uint8Array.of(1, 2, 3));
});

Deno.test("quic: abort() fails the holder's pending read at once and ends the stream at the peer", async () => {
  await using q = await quicEndpoints();
  const peerEnded = Promise.withResolvers<string>();
  const peerWrites: Promise<unknown>[] = [];
  q.b.onStream((s) => {
    const w = s.writable.getWriter(); // held, like the origin's pump holds it
    peerWrites.push(w.write(Uint8Array.of(1)));
    const r = s.readable.getReader();
    void (async () => {
      try {
        for (;;) if ((await r.read()).done) return peerEnded.resolve("done");
      } catch {
        peerEnded.resolve("error");
      }
    })();
  });
  const s = await q.a.openStream({ address: q.b.address, certPem: q.b.certPem }, 5000);
  const w = s.writable.getWriter();
  await w.write(Uint8Array.of(1, 2, 3));
  const r = s.readable.getReader();
  assert.deepEqual((await r.read()).value, Uint8Array.of(1));
  const pending = r.read(); // nothing more will come from the peer
  const t0 = performance.now();
  s.abort("test");
  await assert.rejects(withTimeoutMs(pending, 2000), /aborted/);
  assert.ok(performance.now() - t0 < 1000, "the pending read failed at once");
  await assert.rejects(w.write(Uint8Array.of(4)), "writes fail after abort");
  assert.ok(await withTimeoutMs(peerEnded.promise, 3000), "the peer's read ended");
});

Deno.test("relay over QUIC in-process: headers, keyframe first, live frames, then END", async () => {
  await using env = await relayPair({ quic: true });
  const src = env.source();
  src.step(12);
  src.start(20);
  const sub = await play(env.edgeHub, PATH, 8000);
  assert.ok(sub);
  const played = await readUntil(sub, videoCount(20), 8000);
  assert.deepEqual(played.frames.slice(0, 3).map((f) => f.type), [
    TagType.Script,
    TagType.Video,
    TagType.Audio,
  ]);
  const video = played.frames.filter(isCodedVideo);
  assert.equal(video[0]!.keyframe, true);
  assert.equal(seqOf(video[0]!), 10);
  assert.equal(env.pulls()[0]!.source_quic_addr, env.originT.address);
  assert.equal(env.edgeT.connectionCount(), 1);
  src.close();
  const rest = await readUntil(sub, () => false, 5000, played.frames);
  assert.equal(rest.ended, true);
  assert.equal(seqOf(rest.frames.filter(isCodedVideo).at(-1)!), src.seq - 1);
});
