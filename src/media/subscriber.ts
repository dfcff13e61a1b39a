/**
 * One player's view of a stream: a bounded ring of frames that the stream appends to and
 * the player drains at its own pace. The stream never waits for a player. A player that
 * falls `capacity` frames behind loses its queue and resumes at the next keyframe (with the
 * codec headers re-sent); one that reads nothing for `stallTimeoutMs` while frames wait is
 * closed as stalled. Reading is synchronous (`read()`) with `wait()` only when empty, so
 * the hot path allocates nothing per frame.
 */

import { concatBytes } from "../bytes/mod.ts";
import type { MediaFrame } from "./frame.ts";
import { TagType } from "./frame.ts";

/** Byte bound of one player's queue, whatever the frame count (huge frames from a hostile publisher). */
export const MAX_QUEUED_BYTES = 32 * 1024 * 1024;

export type PlayProtocol = "http-flv" | "ws-flv" | "rtmp" | "relay";

export interface SubscriberInfo {
  readonly id: string;
  readonly protocol: PlayProtocol;
  readonly remoteAddr: string;
  /** The node a relay subscriber serves (origin side of a relay), for loop prevention. */
  readonly peerNodeId?: string;
}

export type CloseReason = "ended" | "stalled" | "client" | "kicked";

export interface SubscriberHost {
  /** The codec headers a re-synchronising player needs again (metadata, video, audio). */
  headers(): MediaFrame[];
  hasVideo(): boolean;
  now(): number;
  detach(sub: Subscriber): void;
  countDropped(n: number): void;
}

/**
 * Smallest ring: a resync re-queues up to three codec headers and then needs room for the
 * keyframe. A smaller ring (player_queue_frames 1..3) would overflow and garble the queue.
 */
const MIN_CAPACITY = 4;

export class Subscriber {
  readonly #ring: (MediaFrame | undefined)[];
  /** Frames this player may queue (the configured size, at least `MIN_CAPACITY`). */
  readonly capacity: number;
  #head = 0;
  #count = 0;
  /** Bytes of the queued frames: the queue is full at `capacity` frames or MAX_QUEUED_BYTES. */
  #bytes = 0;
  #waitKeyframe: boolean;
  #wake: (() => void) | null = null;
  #lastReadAt: number;
  #closed: CloseReason | null = null;
  dropped = 0;
  bytesSent = 0;
  readonly startedAt: number;
  /** Told when the subscription closes, so a transport blocked in a write can be torn down. */
  onClose: ((reason: CloseReason) => void) | null = null;

  constructor(
    readonly info: SubscriberInfo,
    capacity: number,
    readonly stallTimeoutMs: number,
    readonly host: SubscriberHost,
  ) {
    this.capacity = Math.max(capacity, MIN_CAPACITY);
    this.#ring = new Array(this.capacity);
    this.#lastReadAt = host.now();
    this.startedAt = this.#lastReadAt;
    this.#waitKeyframe = host.hasVideo();
  }

  get closeReason(): CloseReason | null {
    return this.#closed;
  }

  get queued(): number {
    return this.#count;
  }

  /** Called by the stream for every frame, in order. Never blocks. */
  push(frame: MediaFrame): void {
    if (this.#closed) return;
    const isHeader = frame.sequenceHeader || frame.type === TagType.Script;
    if (!isHeader && this.#waitKeyframe) {
      if (frame.type === TagType.Video && frame.keyframe) {
        this.#waitKeyframe = false;
      } else {
        this.dropped++;
        this.host.countDropped(1);
        return;
      }
    }
    if (this.#count === this.capacity || this.#bytes + frame.tag.byteLength > MAX_QUEUED_BYTES) {
      if (this.host.now() - this.#lastReadAt > this.stallTimeoutMs) {
        this.close("stalled");
        return;
      }
      this.#resync();
      if (!isHeader && this.#waitKeyframe && !(frame.type === TagType.Video && frame.keyframe)) {
        this.dropped++;
        this.host.countDropped(1);
        return;
      }
      this.#waitKeyframe = false;
    }
    this.#enqueue(frame);
  }

  /** Drops everything queued, re-queues the codec headers and waits for the next keyframe. */
  #resync(): void {
    const n = this.#count;
    this.#ring.fill(undefined);
    this.#head = 0;
    this.#count = 0;
    this.#bytes = 0;
    this.dropped += n;
    this.host.countDropped(n);
    for (const h of this.host.headers()) this.#enqueue(h);
    this.#waitKeyframe = this.host.hasVideo();
  }

  #enqueue(frame: MediaFrame): void {
    this.#ring[(this.#head + this.#count) % this.capacity] = frame;
    this.#count++;
    this.#bytes += frame.tag.byteLength;
    const wake = this.#wake;
    if (wake) {
      this.#wake = null;
      wake();
    }
  }

  /** The next frame, `undefined` when none is queued yet, `null` once closed and drained. */
  read(): MediaFrame | null | undefined {
    this.#lastReadAt = this.host.now();
    if (this.#count === 0) return this.#closed ? null : undefined;
    const frame = this.#ring[this.#head];
    this.#ring[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.capacity;
    this.#count--;
    this.#bytes -= frame!.tag.byteLength;
    return frame;
  }

  /**
   * Takes every queued frame (up to about `maxBytes`) as one buffer: the frame's own bytes
   * when only one is queued (no copy), else their concatenation. A publisher's read often
   * carries audio and video together, so transports pay one write (one syscall, one promise)
   * for what arrived together instead of one per frame.
   */
  readBatch(encode: (f: MediaFrame) => Uint8Array, maxBytes = 256 * 1024): Uint8Array | null | undefined {
    const first = this.read();
    if (!first) return first;
    const firstBytes = encode(first);
    if (this.#count === 0) return firstBytes;
    const parts = [firstBytes];
    let total = firstBytes.byteLength;
    while (this.#count > 0 && total < maxBytes) {
      const bytes = encode(this.read()!);
      parts.push(bytes);
      total += bytes.byteLength;
    }
    return concatBytes(parts);
  }

  /** Resolves when a frame is queued or the subscriber closes. */
  wait(): Promise<void> {
    if (this.#count > 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  /** Ends the subscription; queued frames stay readable unless it was kicked or stalled. */
  close(reason: CloseReason): void {
    if (this.#closed) return;
    this.#closed = reason;
    if (reason !== "ended") {
      this.#ring.fill(undefined);
      this.#count = 0;
      this.#bytes = 0;
    }
    this.host.detach(this);
    this.onClose?.(reason);
    const wake = this.#wake;
    if (wake) {
      this.#wake = null;
      wake();
    }
  }
}
