/**
 * Light benchmark players over raw TCP (`Deno.connect`): an HTTP-FLV reader (GET, chunked or
 * raw body, FLV tags scanned by bench/wire.ts) and a minimal RTMP play client (plain
 * handshake, connect / createStream / play, acknowledgements and ping answers). Each player
 * keeps only counters and, for coded video frames inside the measurement window, the offset
 * `arrival - dts` (plus the dts when asked). Arrival times are wall-clock epoch milliseconds
 * (`performance.timeOrigin + performance.now()`), read once per socket read.
 */

import { decodeAmf0, encodeAmf0 } from "../src/amf/mod.ts";
import { encodeChunks } from "../src/rtmp/mod.ts";
import { clientHandshake } from "../tests/helpers/rtmp.ts";
import { FlvScanner, HttpResponseReader, isCodedVideo, isKeyframe, RtmpChunkScanner } from "./wire.ts";

export type Protocol = "http-flv" | "rtmp";

export interface PlayTarget {
  protocol: Protocol;
  host: string;
  port: number;
  /** Stream path "app/name", e.g. "live/bench". */
  path: string;
}

export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

export interface Window {
  start: number;
  end: number;
}

export class PlayerStats {
  connectAt = 0;
  readyAt = 0;
  firstVideoAt = 0;
  firstKeyAt = 0;
  lastVideoAt = 0;
  bytes = 0;
  winBytes = 0;
  videoFrames = 0;
  winFrames = 0;
  minOffset = Infinity;
  readonly winOffsets: number[] = [];
  readonly winDts: number[] | null;
  error: string | null = null;
  endedAt = 0;
  /** Called for every coded video frame (dts, arrival). */
  onVideo: ((dts: number, at: number) => void) | null = null;

  constructor(public window: Window | null = null, keepDts = false) {
    this.winDts = keepDts ? [] : null;
  }

  addBytes(n: number, at: number): void {
    this.bytes += n;
    const w = this.window;
    if (w && at >= w.start && at < w.end) this.winBytes += n;
  }

  addVideo(dts: number, at: number, key = false): void {
    this.videoFrames++;
    if (this.firstVideoAt === 0) this.firstVideoAt = at;
    if (key && this.firstKeyAt === 0) this.firstKeyAt = at;
    this.lastVideoAt = at;
    const off = at - dts;
    if (off < this.minOffset) this.minOffset = off;
    const w = this.window;
    if (w && at >= w.start && at < w.end) {
      this.winFrames++;
      this.winOffsets.push(off);
      this.winDts?.push(dts);
    }
    this.onVideo?.(dts, at);
  }
}

export interface Player {
  readonly stats: PlayerStats;
  /** Resolves once playback started (HTTP 200 head / NetStream.Play.Start). */
  readonly ready: Promise<void>;
  /** Resolves when the connection ends for any reason. */
  readonly done: Promise<void>;
  close(): void;
}

async function writeAll(conn: Deno.Conn, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.byteLength) off += await conn.write(b.subarray(off));
}

const READ_BUF = 64 * 1024;

abstract class BasePlayer implements Player {
  readonly stats: PlayerStats;
  readonly ready: Promise<void>;
  done: Promise<void> = Promise.resolve();
  protected conn: Deno.TcpConn | null = null;
  protected closed = false;
  protected at = 0;
  readonly #ready = Promise.withResolvers<void>();
  #writeChain: Promise<void> = Promise.resolve();

  constructor(readonly target: PlayTarget, stats: PlayerStats) {
    this.stats = stats;
    this.ready = this.#ready.promise;
    this.ready.catch(() => {});
  }

  protected markReady(): void {
    if (this.stats.readyAt === 0) this.stats.readyAt = wallNow();
    this.#ready.resolve();
  }

  protected fail(msg: string): void {
    if (!this.stats.error) this.stats.error = msg;
    this.#ready.reject(new Error(msg));
    this.close();
  }

  protected send(b: Uint8Array): void {
    const conn = this.conn;
    if (!conn) return;
    this.#writeChain = this.#writeChain.then(() => this.closed ? undefined : writeAll(conn, b)).catch((e) =>
      this.fail(`write: ${e instanceof Error ? e.message : e}`)
    );
  }

  start(timeoutMs = 15_000): this {
    this.stats.connectAt = wallNow();
    const timer = setTimeout(() => this.fail(`not started within ${timeoutMs} ms`), timeoutMs);
    this.ready.then(() => clearTimeout(timer), () => clearTimeout(timer));
    this.done = this.#run();
    return this;
  }

  async #run(): Promise<void> {
    try {
      const conn = await Deno.connect({ hostname: this.target.host, port: this.target.port });
      this.conn = conn;
      if (this.closed) {
        conn.close();
        return;
      }
      conn.setNoDelay(true);
      await this.open(conn);
      const buf = new Uint8Array(READ_BUF);
      while (!this.closed) {
        const n = await conn.read(buf);
        if (n === null) break;
        const at = wallNow();
        this.at = at;
        this.stats.addBytes(n, at);
        this.onData(buf, n);
      }
      if (!this.closed) this.fail("connection closed by server");
    } catch (e) {
      if (!this.closed) this.fail(e instanceof Error ? e.message : String(e));
    } finally {
      this.stats.endedAt ||= wallNow();
      this.close();
    }
  }

  protected abstract open(conn: Deno.TcpConn): Promise<void>;
  protected abstract onData(buf: Uint8Array, n: number): void;

  protected onTag = (type: number, ts: number, b0: number, b1: number): void => {
    if (type === 9 && isCodedVideo(b0, b1)) this.stats.addVideo(ts, this.at, isKeyframe(b0));
  };

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#ready.reject(new Error("closed"));
    try {
      this.conn?.close();
    } catch {
      // closed already
    }
  }
}

/** HTTP-FLV: `GET /app/name.flv HTTP/1.1`, then FLV tags from a chunked or raw body. */
export class HttpFlvPlayer extends BasePlayer {
  readonly #flv = new FlvScanner(this.onTag);
  readonly #http = new HttpResponseReader((r) => {
    if (r.status !== 200) {
      this.fail(`HTTP ${r.status}${r.headers.get("location") ? ` -> ${r.headers.get("location")}` : ""}`);
      return () => {};
    }
    this.markReady();
    return (d, s, e) => this.#flv.push(d, s, e);
  });

  protected override async open(conn: Deno.TcpConn): Promise<void> {
    const { host, port, path } = this.target;
    const req = `GET /${path}.flv HTTP/1.1\r\nHost: ${host}:${port}\r\nUser-Agent: bench-player\r\n` +
      `Accept: */*\r\nConnection: keep-alive\r\n\r\n`;
    await writeAll(conn, new TextEncoder().encode(req));
  }

  protected override onData(buf: Uint8Array, n: number): void {
    this.#http.push(buf, n);
  }
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0);
  return b;
}

/** RTMP play: plain handshake, connect, createStream, play; answers pings, acknowledges. */
export class RtmpPlayer extends BasePlayer {
  #ackWindow = 0;
  #lastAck = 0;
  readonly #scanner = new RtmpChunkScanner(
    this.onTag,
    (type, _sid, _ts, payload) => this.#control(type, payload),
  );

  protected override async open(conn: Deno.TcpConn): Promise<void> {
    await clientHandshake(conn);
    const [app] = this.target.path.split("/");
    const tcUrl = `rtmp://${this.target.host}:${this.target.port}/${app}`;
    this.#command(0, ["connect", 1, {
      app: app!,
      flashVer: "LNX 9,0,124,2",
      tcUrl,
      fpad: false,
      capabilities: 15,
      audioCodecs: 4071,
      videoCodecs: 252,
      videoFunction: 1,
    }]);
  }

  #command(streamId: number, values: Parameters<typeof encodeAmf0>[0], csid = 3): void {
    this.send(encodeChunks(csid, 20, streamId, 0, encodeAmf0(values), 128));
  }

  protected override onData(buf: Uint8Array, n: number): void {
    this.#scanner.push(buf, n);
    if (this.#ackWindow > 0 && this.#scanner.bytes - this.#lastAck >= this.#ackWindow) {
      this.#lastAck = this.#scanner.bytes;
      this.send(encodeChunks(2, 3, 0, 0, u32(this.#scanner.bytes), 128));
    }
  }

  #control(type: number, p: Uint8Array): void {
    if (type === 5 && p.byteLength >= 4) {
      this.#ackWindow = new DataView(p.buffer, p.byteOffset).getUint32(0);
    } else if (type === 4 && p.byteLength >= 6 && p[0] === 0 && p[1] === 6) {
      const pong = new Uint8Array(6);
      pong[1] = 7;
      pong.set(p.subarray(2, 6), 2);
      this.send(encodeChunks(2, 4, 0, 0, pong, 128));
    } else if (type === 20) {
      let v;
      try {
        v = decodeAmf0(p);
      } catch {
        return;
      }
      const [name, txn] = v;
      if (name === "_result" && txn === 1) {
        this.#command(0, ["createStream", 2, null]);
      } else if (name === "_result" && txn === 2) {
        const sid = typeof v[3] === "number" ? v[3] : 1;
        const name = this.target.path.split("/").slice(1).join("/");
        this.#command(sid, ["play", 0, null, name, -2000], 8);
      } else if (name === "_error") {
        this.fail(`rtmp _error: ${JSON.stringify(v[3] ?? null)}`);
      } else if (name === "onStatus") {
        const info = v[3] as Record<string, unknown> | undefined;
        const code = String(info?.["code"] ?? "");
        if (code === "NetStream.Play.Start") this.markReady();
        else if (info?.["level"] === "error") this.fail(`rtmp ${code}`);
      }
    }
  }
}

export function makePlayer(target: PlayTarget, stats: PlayerStats): BasePlayer {
  return target.protocol === "rtmp" ? new RtmpPlayer(target, stats) : new HttpFlvPlayer(target, stats);
}

/** Starts `count` players with at most `concurrency` connection attempts in flight. */
export async function startPlayers(
  target: PlayTarget,
  count: number,
  opts: { concurrency?: number; window?: Window | null; keepDts?: boolean; timeoutMs?: number } = {},
): Promise<Player[]> {
  const players: Player[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const p = makePlayer(target, new PlayerStats(opts.window ?? null, opts.keepDts ?? false)).start(
        opts.timeoutMs ?? 20_000,
      );
      players.push(p);
      await p.ready.catch(() => {});
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 50, count) }, worker));
  return players;
}

export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export interface WindowSummary {
  players: number;
  started: number;
  failed: number;
  /** Players whose connection ended before the window closed. */
  droppedInWindow: number;
  /** Players that received no coded video frame inside the window. */
  starved: number;
  bytes: number;
  frames: number;
  late: number;
  /** Players with at least one late frame. */
  latePlayers: number;
  /** Delay of window frames over each player's best (minimum) arrival-dts offset, ms. */
  delayP50: number;
  delayP99: number;
  delayMax: number;
  errors: string[];
}

/**
 * Late = a coded video frame inside the window whose `arrival - dts` exceeds the player's
 * smallest `arrival - dts` (its best-case pipeline delay) by more than `lateMs`.
 */
export function summarize(stats: PlayerStats[], w: Window, lateMs = 500): WindowSummary {
  const delays: number[] = [];
  let late = 0, latePlayers = 0, frames = 0, bytes = 0, started = 0, failed = 0, dropped = 0, starved = 0;
  const errors = new Map<string, number>();
  for (const s of stats) {
    if (s.readyAt > 0) started++;
    else failed++;
    if (s.error) errors.set(s.error, (errors.get(s.error) ?? 0) + 1);
    if (s.endedAt > 0 && s.endedAt < w.end) dropped++;
    if (s.winFrames === 0) starved++;
    bytes += s.winBytes;
    frames += s.winFrames;
    let pl = 0;
    for (const off of s.winOffsets) {
      const d = off - s.minOffset;
      delays.push(d);
      if (d > lateMs) pl++;
    }
    late += pl;
    if (pl > 0) latePlayers++;
  }
  delays.sort((a, b) => a - b);
  return {
    players: stats.length,
    started,
    failed,
    droppedInWindow: dropped,
    starved,
    bytes,
    frames,
    late,
    latePlayers,
    delayP50: percentile(delays, 0.5),
    delayP99: percentile(delays, 0.99),
    delayMax: delays.length ? delays[delays.length - 1]! : NaN,
    errors: [...errors].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([e, n]) => `${n}x ${e}`),
  };
}

export function mergeSummaries(parts: WindowSummary[]): WindowSummary {
  const sum = (f: (s: WindowSummary) => number) => parts.reduce((a, s) => a + f(s), 0);
  const frames = sum((s) => s.frames);
  // Percentiles across workers: frame-weighted average of p50, max of p99/max (conservative).
  const wavg = (f: (s: WindowSummary) => number) =>
    frames > 0 ? parts.reduce((a, s) => a + (Number.isFinite(f(s)) ? f(s) * s.frames : 0), 0) / frames : NaN;
  return {
    players: sum((s) => s.players),
    started: sum((s) => s.started),
    failed: sum((s) => s.failed),
    droppedInWindow: sum((s) => s.droppedInWindow),
    starved: sum((s) => s.starved),
    bytes: sum((s) => s.bytes),
    frames,
    late: sum((s) => s.late),
    latePlayers: sum((s) => s.latePlayers),
    delayP50: wavg((s) => s.delayP50),
    delayP99: maxOf(parts.map((s) => s.delayP99)),
    delayMax: maxOf(parts.map((s) => s.delayMax)),
    errors: parts.flatMap((s) => s.errors).slice(0, 8),
  };
}

/** The largest finite value, NaN if there is none. */
export function maxOf(xs: number[]): number {
  const f = xs.filter(Number.isFinite);
  return f.length ? Math.max(...f) : NaN;
}
