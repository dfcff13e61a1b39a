/**
 * Real media in and out for integration tests:
 * - `publish` runs the static ffmpeg (testsrc + sine → H.264 + AAC → RTMP);
 * - `probePackets` runs ffprobe on an HTTP-FLV or RTMP URL and returns streams and packets;
 * - `readFlv` / `readWsFlv` read HTTP-FLV / WS-FLV in-process with the project's `FlvDemuxer`
 *   and annotate every tag with the codec inspection from src/flv.
 * Every child process and connection is bounded in time and always killed / closed.
 */

import {
  type AudioTagInfo,
  FlvDemuxer,
  type FlvFileHeader,
  inspectAudio,
  inspectVideo,
  type VideoTagInfo,
} from "../../src/flv/mod.ts";
import { REPO_ROOT } from "./node.ts";
import { TimeoutError, withTimeout } from "./wait.ts";

const TOOLS_BIN = `${REPO_ROOT}/.tools/bin`;

function tool(name: "ffmpeg" | "ffprobe"): string {
  try {
    Deno.statSync(`${TOOLS_BIN}/${name}`);
    return `${TOOLS_BIN}/${name}`;
  } catch {
    return name; // from PATH
  }
}

export const FFMPEG: string = tool("ffmpeg");
export const FFPROBE: string = tool("ffprobe");

export interface ProcessResult {
  code: number;
  success: boolean;
  signal: Deno.Signal | null;
  stderr: string;
}

/** A spawned tool: output collected, `done` resolving at exit, kill and dispose. */
export interface ToolProcess extends AsyncDisposable {
  readonly pid: number;
  readonly done: Promise<ProcessResult>;
  stdout(): string;
  stderr(): string;
  /** Signals the process (no-op once it exited). */
  kill(signal?: Deno.Signal): void;
  /** Signals, waits up to `graceMs`, then SIGKILLs; resolves with the result. */
  stop(signal?: Deno.Signal, graceMs?: number): Promise<ProcessResult>;
}

/** Spawns `cmd args` with stdout and stderr collected as text. */
export function spawnTool(cmd: string, args: string[]): ToolProcess {
  const child = new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
  let out = "";
  let err = "";
  let exited = false;
  const collect = async (s: ReadableStream<Uint8Array>, add: (t: string) => void) => {
    const d = new TextDecoder();
    for await (const c of s) add(d.decode(c, { stream: true }));
    add(d.decode());
  };
  const pumps = Promise.all([
    collect(child.stdout, (t) => out += t),
    collect(child.stderr, (t) => err += t),
  ]).catch(() => {});
  const done = (async (): Promise<ProcessResult> => {
    const status = await child.status;
    exited = true;
    await pumps;
    return { code: status.code, success: status.success, signal: status.signal, stderr: err };
  })();
  const kill = (signal: Deno.Signal = "SIGTERM") => {
    if (exited) return;
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  };
  const stop = async (signal: Deno.Signal = "SIGTERM", graceMs = 3000): Promise<ProcessResult> => {
    kill(signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const forced = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        kill("SIGKILL");
        resolve();
      }, graceMs);
    });
    await Promise.race([done, forced]);
    clearTimeout(timer);
    return await done;
  };
  return {
    pid: child.pid,
    done,
    stdout: () => out,
    stderr: () => err,
    kill,
    stop,
    [Symbol.asyncDispose]: async () => {
      await stop("SIGKILL");
    },
  };
}

export interface PublishOptions {
  /** Length of the stream in seconds (ffmpeg `-t`); default 60, a bound for "until killed". */
  seconds?: number;
  /** `WxH`, default 320x240. */
  size?: string;
  /** Frames per second, default 25. */
  fps?: number;
  /** Keyframe interval in frames, default `fps` (1 s). Scene-cut keyframes are disabled. */
  gop?: number;
  /** B-frames (`-bf`), default 0; with 0 the encoder also uses `-tune zerolatency`. */
  bframes?: number;
  /** Include the AAC track (default true). */
  audio?: boolean;
  /** Pace input in real time (`-re`, default true). */
  realtime?: boolean;
  /** Extra output options, placed before `-f flv URL`. */
  extraArgs?: string[];
  /** Runs ffmpeg under a wrapper command, e.g. `["ip", "netns", "exec", "ns1"]`. */
  wrap?: string[];
}

export interface Publisher extends ToolProcess {
  readonly args: readonly string[];
}

/** Publishes testsrc + sine as H.264 + AAC over RTMP with the static ffmpeg. */
export function publish(rtmpUrl: string, opts: PublishOptions = {}): Publisher {
  assertLoopback(rtmpUrl);
  const fps = opts.fps ?? 25;
  const bframes = opts.bframes ?? 0;
  const gop = opts.gop ?? fps;
  const re = opts.realtime ?? true;
  const audio = opts.audio ?? true;
  const args = [
    "-hide_banner",
    "-nostdin",
    "-loglevel",
    "error",
    ...(re ? ["-re"] : []),
    "-f",
    "lavfi",
    "-i",
    `testsrc=size=${opts.size ?? "320x240"}:rate=${fps}`,
    ...(audio ? [...(re ? ["-re"] : []), "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"] : []),
    "-t",
    String(opts.seconds ?? 60),
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    ...(bframes === 0 ? ["-tune", "zerolatency"] : []),
    "-g",
    String(gop),
    "-keyint_min",
    String(gop),
    "-sc_threshold",
    "0",
    "-bf",
    String(bframes),
    "-pix_fmt",
    "yuv420p",
    ...(audio ? ["-c:a", "aac", "-b:a", "64k"] : ["-an"]),
    ...(opts.extraArgs ?? []),
    "-f",
    "flv",
    rtmpUrl,
  ];
  const [cmd, ...prefix] = [...(opts.wrap ?? []), FFMPEG];
  return { ...spawnTool(cmd!, [...prefix, ...args]), args };
}

/** Runs ffmpeg to completion (e.g. to make a test clip); throws with its stderr on failure. */
export async function runFfmpeg(args: string[], timeoutMs = 60_000): Promise<void> {
  const p = spawnTool(FFMPEG, ["-hide_banner", "-nostdin", "-loglevel", "error", "-y", ...args]);
  let r: ProcessResult;
  try {
    r = await withTimeout(p.done, timeoutMs, "ffmpeg");
  } catch (err) {
    await p.stop("SIGKILL");
    throw err;
  }
  if (!r.success) throw new Error(`ffmpeg ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
}

export interface ProbeStream {
  index: number;
  codec_type: string;
  codec_name: string;
  width?: number;
  height?: number;
  sample_rate?: string;
  channels?: number;
  [key: string]: unknown;
}

export interface ProbePacket {
  codec_type: "video" | "audio" | string;
  stream_index: number;
  /** Presentation / decode time in ms (from pts_time / dts_time); NaN if absent. */
  pts: number;
  dts: number;
  /** ffprobe's flags, e.g. "K__". */
  flags: string;
  keyframe: boolean;
  size: number;
}

export interface ProbeResult {
  code: number;
  stderr: string;
  streams: ProbeStream[];
  packets: ProbePacket[];
  elapsedMs: number;
}

export interface ProbeOptions {
  /** Read this many seconds of stream time (`-read_intervals %+N`); default: until EOF. */
  seconds?: number;
  /** Read this many packets (`-read_intervals %+#N`). */
  maxPackets?: number;
  /** Kill ffprobe and throw `TimeoutError` after this long (default 20 s). */
  timeoutMs?: number;
  extraArgs?: string[];
}

/**
 * `ffprobe -show_packets -show_streams -of json URL`. Returns the exit code and stderr instead
 * of throwing when ffprobe fails (a test may expect that); throws only on timeout.
 */
export async function probePackets(url: string, opts: ProbeOptions = {}): Promise<ProbeResult> {
  assertLoopback(url);
  const interval = opts.maxPackets !== undefined
    ? ["-read_intervals", `%+#${opts.maxPackets}`]
    : opts.seconds !== undefined
    ? ["-read_intervals", `%+${opts.seconds}`]
    : [];
  const args = [
    "-hide_banner",
    "-v",
    "error",
    "-show_packets",
    "-show_streams",
    "-of",
    "json",
    ...interval,
    ...(opts.extraArgs ?? []),
    url,
  ];
  const started = performance.now();
  const p = spawnTool(FFPROBE, args);
  const timeoutMs = opts.timeoutMs ?? 20_000;
  let r: ProcessResult;
  try {
    r = await withTimeout(p.done, timeoutMs, `ffprobe ${url}`);
  } catch (err) {
    const partial = await p.stop("SIGKILL");
    throw new TimeoutError(`${(err as Error).message}; stderr: ${partial.stderr.slice(-2000)}`);
  }
  const elapsedMs = performance.now() - started;
  let json: { streams?: ProbeStream[]; packets?: Record<string, unknown>[] } = {};
  const text = p.stdout().trim();
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      if (r.success) throw new Error(`ffprobe printed invalid JSON: ${text.slice(0, 500)}`);
    }
  }
  const ms = (v: unknown) => (v === undefined || v === "N/A" ? NaN : Math.round(Number(v) * 1000));
  const packets = (json.packets ?? []).map((p): ProbePacket => ({
    codec_type: String(p["codec_type"]),
    stream_index: Number(p["stream_index"]),
    pts: ms(p["pts_time"]),
    dts: ms(p["dts_time"]),
    flags: String(p["flags"] ?? ""),
    keyframe: String(p["flags"] ?? "").includes("K"),
    size: Number(p["size"]),
  }));
  return { code: r.code, stderr: r.stderr, streams: json.streams ?? [], packets, elapsedMs };
}

/** One FLV tag as a player received it, with codec inspection. */
export interface ReadTag {
  type: number;
  timestamp: number;
  data: Uint8Array;
  /** ms since the read started when the bytes completing this tag arrived. */
  arrivalMs: number;
  video?: VideoTagInfo;
  audio?: AudioTagInfo;
}

export interface FlvReadOptions {
  /** Stop after this many tags. */
  maxTags?: number;
  /** Stop after this many coded video frames (sequence headers not counted). */
  maxVideoFrames?: number;
  /** Stop after reading for this long (a normal stop, not an error). */
  durationMs?: number;
  /** Stop when this returns true (checked after every tag). */
  until?: (tags: readonly ReadTag[]) => boolean;
  /** Hard bound: throw `TimeoutError` if no stop condition or EOF happened by then (default 20 s). */
  timeoutMs?: number;
  /** Stops the read (a normal stop). */
  signal?: AbortSignal;
  /** Called as each tag arrives. */
  onTag?: (tag: ReadTag) => void;
}

export interface FlvReadResult {
  /** HTTP status (101 for WebSocket). */
  status: number;
  /** Response body when status is not 200/101. */
  errorBody: string;
  header: FlvFileHeader | null;
  tags: ReadTag[];
  /** The server ended the stream (EOF / close) before any stop condition. */
  ended: boolean;
  /** ms from the start of the read to the response headers (HTTP) or open (WebSocket). */
  responseMs: number;
  elapsedMs: number;
}

export function isCodedVideo(t: ReadTag): boolean {
  return t.type === 9 && !!t.video && !t.video.sequenceHeader && !t.video.command && !t.video.endOfSequence;
}

export function isCodedAudio(t: ReadTag): boolean {
  return t.type === 8 && !!t.audio && !t.audio.sequenceHeader;
}

/** Turns bytes into annotated tags and evaluates the stop conditions. */
class TagCollector {
  readonly demuxer = new FlvDemuxer();
  readonly tags: ReadTag[] = [];
  videoFrames = 0;
  readonly started = performance.now();

  constructor(readonly opts: FlvReadOptions) {}

  /** Returns true when a stop condition is met. */
  push(chunk: Uint8Array): boolean {
    const arrivalMs = performance.now() - this.started;
    for (const t of this.demuxer.push(chunk)) {
      const tag: ReadTag = { type: t.type, timestamp: t.timestamp, data: t.data, arrivalMs };
      if (t.type === 9) tag.video = inspectVideo(t.data);
      if (t.type === 8) tag.audio = inspectAudio(t.data);
      this.tags.push(tag);
      if (isCodedVideo(tag)) this.videoFrames++;
      this.opts.onTag?.(tag);
      if (this.done()) return true;
    }
    return false;
  }

  done(): boolean {
    const o = this.opts;
    return (o.maxTags !== undefined && this.tags.length >= o.maxTags) ||
      (o.maxVideoFrames !== undefined && this.videoFrames >= o.maxVideoFrames) ||
      (o.until !== undefined && o.until(this.tags));
  }

  describe(): string {
    return `${this.tags.length} tags (${this.videoFrames} video frames) in ${
      Math.round(performance.now() - this.started)
    } ms`;
  }
}

/** Sets up the duration / timeout / signal stops; `cleanup` clears the timers. */
function stopControl(opts: FlvReadOptions, onStop: () => void) {
  let timedOut = false;
  let stoppedEarly = false;
  const timers: ReturnType<typeof setTimeout>[] = [];
  timers.push(setTimeout(() => {
    timedOut = true;
    onStop();
  }, opts.timeoutMs ?? 20_000));
  if (opts.durationMs !== undefined) {
    timers.push(setTimeout(() => {
      stoppedEarly = true;
      onStop();
    }, opts.durationMs));
  }
  const onAbort = () => {
    stoppedEarly = true;
    onStop();
  };
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();
  return {
    get timedOut() {
      return timedOut && !stoppedEarly;
    },
    get stopped() {
      return stoppedEarly;
    },
    cleanup() {
      for (const t of timers) clearTimeout(t);
      opts.signal?.removeEventListener("abort", onAbort);
    },
  };
}

/**
 * Reads HTTP-FLV from a URL (or FLV bytes from a stream) until a stop condition, EOF or
 * the timeout. A non-200 response is returned (status, errorBody) rather than thrown.
 */
export async function readFlv(
  source: string | ReadableStream<Uint8Array>,
  opts: FlvReadOptions = {},
): Promise<FlvReadResult> {
  const col = new TagCollector(opts);
  const abort = new AbortController();
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  const ctl = stopControl(opts, () => {
    abort.abort();
    reader?.cancel().catch(() => {});
  });
  let status = 200;
  let errorBody = "";
  let responseMs = 0;
  let ended = false;
  try {
    let body: ReadableStream<Uint8Array>;
    if (typeof source === "string") {
      assertLoopback(source);
      let res: Response;
      try {
        res = await fetch(source, { signal: abort.signal });
      } catch (err) {
        if (ctl.timedOut) {
          throw new TimeoutError(`readFlv ${source}: no response in ${opts.timeoutMs ?? 20_000} ms`);
        }
        if (ctl.stopped) return result();
        throw err;
      }
      responseMs = performance.now() - col.started;
      status = res.status;
      if (status !== 200 || !res.body) {
        errorBody = await res.text().catch(() => "");
        return result();
      }
      body = res.body;
    } else {
      body = source;
    }
    reader = body.getReader();
    if (ctl.timedOut || ctl.stopped) await reader.cancel().catch(() => {});
    for (;;) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (err) {
        if (ctl.timedOut || ctl.stopped) break;
        throw err;
      }
      if (r.done) {
        ended = !ctl.timedOut && !ctl.stopped;
        break;
      }
      if (col.push(r.value)) {
        await reader.cancel().catch(() => {});
        break;
      }
    }
    if (ctl.timedOut && !col.done()) {
      throw new TimeoutError(`readFlv timed out after ${opts.timeoutMs ?? 20_000} ms with ${col.describe()}`);
    }
    return result();
  } finally {
    ctl.cleanup();
    try {
      reader?.releaseLock();
    } catch {
      // still reading; cancel above ends it
    }
  }

  function result(): FlvReadResult {
    return {
      status,
      errorBody,
      header: col.demuxer.header,
      tags: col.tags,
      ended,
      responseMs,
      elapsedMs: performance.now() - col.started,
    };
  }
}

/** Like `readFlv`, over a WebSocket (each binary message is a piece of the FLV stream). */
export function readWsFlv(url: string, opts: FlvReadOptions = {}): Promise<FlvReadResult> {
  assertLoopback(url);
  const col = new TagCollector(opts);
  return new Promise<FlvReadResult>((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    let opened = false;
    let responseMs = 0;
    let ended = false;
    let error: Error | null = null;
    let closing = false;
    const close = () => {
      if (closing) return;
      closing = true;
      try {
        ws.close(1000);
      } catch {
        // not open yet or already closed
      }
    };
    const ctl = stopControl(opts, close);
    ws.onopen = () => {
      opened = true;
      responseMs = performance.now() - col.started;
    };
    ws.onmessage = (e) => {
      if (closing) return;
      try {
        const data = e.data instanceof ArrayBuffer
          ? new Uint8Array(e.data)
          : new TextEncoder().encode(String(e.data));
        if (col.push(data)) close();
      } catch (err) {
        error = err as Error;
        close();
      }
    };
    ws.onerror = (e) => {
      if (!closing && !error) error = new Error(`websocket error: ${(e as ErrorEvent).message ?? "unknown"}`);
    };
    ws.onclose = () => {
      ctl.cleanup();
      if (!closing) ended = opened;
      const res: FlvReadResult = {
        status: opened ? 101 : 0,
        errorBody: "",
        header: col.demuxer.header,
        tags: col.tags,
        ended,
        responseMs,
        elapsedMs: performance.now() - col.started,
      };
      if (ctl.timedOut && !col.done()) {
        reject(
          new TimeoutError(`readWsFlv timed out after ${opts.timeoutMs ?? 20_000} ms with ${col.describe()}`),
        );
      } else if (error && opened && !ended && !ctl.stopped && !col.done()) {
        reject(error);
      } else {
        resolve(res);
      }
    };
  });
}

/** Test traffic only ever goes to this machine. */
export function assertLoopback(url: string): void {
  const host = new URL(url).hostname;
  if (!/^127\.\d+\.\d+\.\d+$/.test(host) && host !== "localhost" && host !== "[::1]") {
    throw new Error(`test traffic must stay on loopback, got ${url}`);
  }
}
