/**
 * The stream hub: every live stream on this node, keyed by canonical path.
 *
 * Invariants:
 * - at most one publisher per path; a second one is refused with `StreamBusyError` and
 *   changes nothing;
 * - a new player receives metadata, video and audio sequence headers, then the cached GOP
 *   (from the last keyframe), then live frames;
 * - timestamps reaching players are monotonic per track: when a publisher comes back within
 *   the republish grace window, the new session's timestamps are shifted to continue the old
 *   timeline, and players that stayed connected see new headers then frames moving forward.
 *
 * The hub knows nothing about sockets or the cluster; it reports publish / unpublish /
 * subscribe / unsubscribe on `events`, and asks `missingStreamHandler` (the cluster relay's
 * seam) when a player wants a stream that is not here.
 */

import { Emitter } from "./events.ts";
import { type MediaFrame, retimeFrame, TagType } from "./frame.ts";
import type { StreamPath } from "./path.ts";
import { type CloseReason, Subscriber, type SubscriberHost, type SubscriberInfo } from "./subscriber.ts";
import {
  inspectAudio,
  inspectVideo,
  parseAacConfig,
  parseAvcDecoderConfig,
  parseHevcDecoderConfig,
} from "../flv/mod.ts";

/** Byte bound of one stream's GOP cache (beside the `max_gop_frames` frame bound). */
export const MAX_GOP_BYTES = 64 * 1024 * 1024;

export type PublishProtocol = "rtmp" | "relay";

export interface PublisherInfo {
  readonly id: string;
  readonly protocol: PublishProtocol;
  readonly remoteAddr: string;
  /** For a relayed stream: the origin node it is pulled from. */
  readonly sourceNodeId?: string;
}

export class StreamBusyError extends Error {
  override name = "StreamBusyError";
}

export interface HubOptions {
  gopCache: boolean;
  maxGopFrames: number;
  playerQueueFrames: number;
  playerStallTimeoutMs: number;
  /** How long players stay attached after the publisher leaves, waiting for it to return. */
  republishGraceMs: number;
  now?: () => number;
}

export interface StreamCodecInfo {
  videoCodec: string | null;
  audioCodec: string | null;
  width: number | null;
  height: number | null;
  audioSampleRate: number | null;
  audioChannels: number | null;
}

export type HubEvents = {
  publish: (stream: LiveStream) => void;
  unpublish: (stream: LiveStream) => void;
  subscribe: (stream: LiveStream, sub: Subscriber) => void;
  unsubscribe: (stream: LiveStream, sub: Subscriber, reason: CloseReason) => void;
  /** A stream's last player left and no publisher will come back: the stream is gone. */
  closed: (stream: LiveStream) => void;
};

export class LiveStream {
  publisher: PublisherInfo | null = null;
  /** Publisher sessions seen on this path; grows on every (re)publish. */
  epoch = 0;
  publishedAt = 0;
  metadata: MediaFrame | null = null;
  videoHeader: MediaFrame | null = null;
  audioHeader: MediaFrame | null = null;
  readonly gop: MediaFrame[] = [];
  readonly subscribers = new Set<Subscriber>();
  codec: StreamCodecInfo = emptyCodecInfo();
  bytesIn = 0;
  framesIn = 0;
  lastFrameAt = 0;
  bitrateKbps = 0;
  #rateWindowStart = 0;
  #rateWindowBytes = 0;
  #gopBytes = 0;
  #tsOffset = 0;
  #rebase = false;
  #lastTs = { [TagType.Audio]: -1, [TagType.Video]: -1, [TagType.Script]: -1 } as Record<TagType, number>;
  #maxTs = -1;
  graceTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #host: SubscriberHost;

  constructor(readonly path: StreamPath, readonly hub: StreamHub) {
    this.#host = {
      headers: () => this.headers(),
      hasVideo: () => this.videoHeader !== null,
      now: hub.now,
      detach: (sub) => hub.detachSubscriber(this, sub),
      countDropped: (n) => {
        hub.stats.framesDropped += n;
      },
    };
  }

  get live(): boolean {
    return this.publisher !== null;
  }

  headers(): MediaFrame[] {
    const out: MediaFrame[] = [];
    if (this.metadata) out.push(this.metadata);
    if (this.videoHeader) out.push(this.videoHeader);
    if (this.audioHeader) out.push(this.audioHeader);
    return out;
  }

  /** Starts a publisher session: fresh headers and GOP; the timeline continues if players stayed. */
  beginSession(info: PublisherInfo): void {
    this.publisher = info;
    this.epoch++;
    this.publishedAt = this.hub.now();
    this.metadata = this.videoHeader = this.audioHeader = null;
    this.gop.length = 0;
    this.codec = emptyCodecInfo();
    this.#rebase = this.#maxTs >= 0;
    this.#lastTs[TagType.Audio] = this.#lastTs[TagType.Video] = this.#lastTs[TagType.Script] = -1;
  }

  /** Appends one frame from the publisher and fans it out. Never waits on a player. */
  write(input: MediaFrame): void {
    const frame = this.#normaliseTimestamp(input);
    const now = this.hub.now();
    this.bytesIn += frame.data.byteLength;
    this.hub.stats.bytesIn += frame.data.byteLength;
    this.framesIn++;
    this.lastFrameAt = now;
    this.#updateBitrate(now, frame.data.byteLength);

    if (frame.type === TagType.Script) {
      this.metadata = frame;
    } else if (frame.sequenceHeader) {
      if (frame.type === TagType.Video) {
        this.videoHeader = frame;
        this.gop.length = 0;
      } else this.audioHeader = frame;
      this.#updateCodecInfo(frame);
    } else if (this.hub.options.gopCache) {
      if (frame.type === TagType.Video && frame.keyframe) {
        this.gop.length = 0;
        this.gop.push(frame);
        this.#gopBytes = frame.tag.byteLength;
      } else if (this.gop.length > 0) {
        // Over either bound the cache is dropped until the next keyframe (new players then
        // wait for it) rather than grow: a hostile or broken publisher cannot pin unbounded memory.
        this.#gopBytes += frame.tag.byteLength;
        if (this.gop.length >= this.hub.options.maxGopFrames || this.#gopBytes > MAX_GOP_BYTES) {
          this.gop.length = 0;
        } else this.gop.push(frame);
      }
    }
    for (const sub of this.subscribers) sub.push(frame);
  }

  #normaliseTimestamp(frame: MediaFrame): MediaFrame {
    if (this.#rebase) {
      // Rebase on the new session's first coded frame, not on its headers: their timestamps
      // say nothing about where the media starts (a relay's headers carry 0 and its cached GOP
      // may start hours later, which would push the whole timeline that far ahead).
      if (frame.sequenceHeader || frame.type === TagType.Script) {
        this.#lastTs[frame.type] = this.#maxTs;
        return frame.timestamp === this.#maxTs ? frame : retimeFrame(frame, this.#maxTs);
      }
      this.#rebase = false;
      this.#tsOffset = this.#maxTs + 1 - frame.timestamp;
    }
    let ts = frame.timestamp + this.#tsOffset;
    const last = this.#lastTs[frame.type];
    if (ts < last) ts = last;
    this.#lastTs[frame.type] = ts;
    if (ts > this.#maxTs) this.#maxTs = ts;
    return ts === frame.timestamp ? frame : retimeFrame(frame, ts);
  }

  #updateBitrate(now: number, bytes: number): void {
    if (this.#rateWindowStart === 0) this.#rateWindowStart = now;
    this.#rateWindowBytes += bytes;
    const elapsed = now - this.#rateWindowStart;
    if (elapsed >= 1000) {
      this.bitrateKbps = Math.round((this.#rateWindowBytes * 8) / elapsed);
      this.#rateWindowStart = now;
      this.#rateWindowBytes = 0;
    }
  }

  #updateCodecInfo(frame: MediaFrame): void {
    if (frame.type === TagType.Video) {
      const v = inspectVideo(frame.data);
      this.codec.videoCodec = v.codec;
      const size = v.codec === "h264"
        ? parseAvcDecoderConfig(frame.data)
        : v.codec === "hevc"
        ? parseHevcDecoderConfig(frame.data)
        : null;
      this.codec.width = size?.width ?? null;
      this.codec.height = size?.height ?? null;
    } else {
      const a = inspectAudio(frame.data);
      this.codec.audioCodec = a.codec;
      const cfg = a.codec === "aac" ? parseAacConfig(frame.data) : null;
      this.codec.audioSampleRate = cfg?.sampleRate ?? null;
      this.codec.audioChannels = cfg?.channels ?? null;
    }
  }

  /** Adds a player: it gets headers, then the cached GOP, then live frames. */
  attach(info: SubscriberInfo): Subscriber {
    const opts = this.hub.options;
    const sub = new Subscriber(info, opts.playerQueueFrames, opts.playerStallTimeoutMs, this.#host);
    for (const h of this.headers()) sub.push(h);
    for (const f of this.gop) sub.push(f);
    this.subscribers.add(sub);
    return sub;
  }

  playerCounts(): Record<string, number> {
    const counts: Record<string, number> = { "http-flv": 0, "ws-flv": 0, rtmp: 0, relay: 0 };
    for (const s of this.subscribers) counts[s.info.protocol] = (counts[s.info.protocol] ?? 0) + 1;
    return counts;
  }
}

function emptyCodecInfo(): StreamCodecInfo {
  return {
    videoCodec: null,
    audioCodec: null,
    width: null,
    height: null,
    audioSampleRate: null,
    audioChannels: null,
  };
}

/** What a publisher holds: write frames, then close exactly once. */
export interface PublishHandle {
  readonly stream: LiveStream;
  write(frame: MediaFrame): void;
  close(): void;
}

export class StreamHub {
  readonly events = new Emitter<HubEvents>();
  readonly #streams = new Map<StreamPath, LiveStream>();
  readonly #waiters = new Map<StreamPath, Set<() => void>>();
  readonly now: () => number;
  readonly stats = { bytesIn: 0, bytesOut: 0, framesDropped: 0 };
  /** Called when a player asks for a stream that is not live here (the cluster relay hooks in). */
  missingStreamHandler: ((path: StreamPath) => void) | null = null;

  constructor(readonly options: HubOptions) {
    this.now = options.now ?? Date.now;
  }

  get(path: StreamPath): LiveStream | undefined {
    return this.#streams.get(path);
  }

  /** Streams that have a publisher now. */
  liveStreams(): LiveStream[] {
    return [...this.#streams.values()].filter((s) => s.live);
  }

  subscriberCount(): number {
    let n = 0;
    for (const s of this.#streams.values()) n += s.subscribers.size;
    return n;
  }

  /** Claims `path` for a publisher. Throws `StreamBusyError` if it already has one. */
  publish(path: StreamPath, info: PublisherInfo): PublishHandle {
    let stream = this.#streams.get(path);
    if (stream?.live) throw new StreamBusyError(`stream ${path} already has a publisher`);
    if (!stream) {
      stream = new LiveStream(path, this);
      this.#streams.set(path, stream);
    }
    clearTimeout(stream.graceTimer);
    stream.graceTimer = undefined;
    stream.beginSession(info);
    const s = stream;
    let open = true;
    this.events.emit("publish", s);
    const waiters = this.#waiters.get(path);
    if (waiters) { for (const w of [...waiters]) w(); }
    return {
      stream: s,
      write: (frame) => {
        if (open) s.write(frame);
      },
      close: () => {
        if (!open) return;
        open = false;
        this.#unpublish(s);
      },
    };
  }

  #unpublish(stream: LiveStream): void {
    stream.publisher = null;
    this.events.emit("unpublish", stream);
    if (stream.subscribers.size === 0 || this.options.republishGraceMs <= 0) {
      this.#endStream(stream);
      return;
    }
    stream.graceTimer = setTimeout(() => this.#endStream(stream), this.options.republishGraceMs);
  }

  /** Ends every player of a stream that has no publisher and forgets the stream. */
  #endStream(stream: LiveStream): void {
    clearTimeout(stream.graceTimer);
    stream.graceTimer = undefined;
    if (stream.live || this.#streams.get(stream.path) !== stream) return;
    this.#streams.delete(stream.path);
    for (const sub of [...stream.subscribers]) sub.close("ended");
    this.events.emit("closed", stream);
  }

  /** Adds a player if the stream is live; `null` if it is not (see `waitForStream`). */
  subscribe(path: StreamPath, info: SubscriberInfo): Subscriber | null {
    const stream = this.#streams.get(path);
    if (!stream?.live) return null;
    const sub = stream.attach(info);
    this.events.emit("subscribe", stream, sub);
    return sub;
  }

  /**
   * Waits up to `timeoutMs` for `path` to go live (asking the missing-stream handler once),
   * then subscribes. Resolves `null` on timeout or abort.
   */
  async subscribeWhenLive(
    path: StreamPath,
    info: SubscriberInfo,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<Subscriber | null> {
    const now = this.subscribe(path, info);
    if (now) return now;
    this.missingStreamHandler?.(path);
    const deadline = this.now() + timeoutMs;
    while (!signal?.aborted) {
      const left = deadline - this.now();
      if (left <= 0) return null;
      await this.#waitForPublish(path, left, signal);
      const sub = this.subscribe(path, info);
      if (sub) return sub;
    }
    return null;
  }

  #waitForPublish(path: StreamPath, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let set = this.#waiters.get(path);
      if (!set) this.#waiters.set(path, set = new Set());
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        set.delete(done);
        if (set.size === 0) this.#waiters.delete(path);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal?.addEventListener("abort", done);
      set.add(done);
    });
  }

  /** True while some player waits for `path` to go live. */
  hasWaiters(path: StreamPath): boolean {
    return (this.#waiters.get(path)?.size ?? 0) > 0;
  }

  /** Players (not relay subscribers) attached to `path`, live or in its grace window. */
  playerCount(path: StreamPath): number {
    let n = 0;
    for (const s of this.#streams.get(path)?.subscribers ?? []) if (s.info.protocol !== "relay") n++;
    return n;
  }

  /** Called by a subscriber when it closes. */
  detachSubscriber(stream: LiveStream, sub: Subscriber): void {
    if (!stream.subscribers.delete(sub)) return;
    this.events.emit("unsubscribe", stream, sub, sub.closeReason ?? "client");
    if (!stream.live && stream.subscribers.size === 0) this.#endStream(stream);
  }

  /** Ends every stream and player (shutdown). */
  closeAll(): void {
    for (const stream of [...this.#streams.values()]) {
      stream.publisher = null;
      this.#endStream(stream);
    }
  }
}
