/**
 * The edge side of one relay: pulls one stream from its origin and republishes it into the
 * local hub, where every local player (any protocol) shares it. One `PullRelay` per stream
 * (single flight), living through reconnects:
 *
 *   connecting → active → (stream breaks or goes silent) → retrying → connecting ...
 *        ↘ closed (origin ended the stream, no origin left, retries exhausted, released)
 *
 * Each attempt republishes as a new publisher session of the local stream, so players that
 * stay attached (republish grace) get fresh headers and a timeline that continues forward.
 */

import { errorMessage, type Logger } from "../../log/mod.ts";
import {
  frameFromEncodedTag,
  type PublishHandle,
  StreamBusyError,
  type StreamHub,
  type StreamPath,
  TagType,
} from "../../media/mod.ts";
import type { PeerClient } from "../protocol/peer_client.ts";
import { relayPullResponse } from "../protocol/schemas.ts";
import type { PeerEndpoint, RelayStream, RelayTransport } from "../transport/mod.ts";
import type { SessionRecord } from "../protocol/types.ts";
import {
  decodeControl,
  encodeControl,
  FLAG_KEYFRAME,
  FLAG_SEQUENCE_HEADER,
  FrameDecoder,
  FrameKind,
  splitTags,
  type WireFrame,
} from "./wire.ts";

export type RelayState = "connecting" | "active" | "retrying" | "closed";

export interface PullDeps {
  selfId: string;
  hub: StreamHub;
  client: PeerClient;
  transport: RelayTransport;
  /** The live session of a stream whose origin is another, reachable node. */
  origin(path: StreamPath): { record: SessionRecord; peerCert: string } | null;
  establishTimeoutMs: number;
  maxRetryAttempts: number;
  retryDelayMs: number;
  healthCheckIntervalMs: number;
  now: () => number;
}

type Outcome = "ended" | "superseded" | "stopped";

export class PullRelay {
  state: RelayState = "connecting";
  sourceNodeId = "";
  sourceQuicAddr = "";
  sessionId = "";
  frames = 0;
  bytes = 0;
  reconnects = 0;
  lastFrameAt = 0;
  readonly startedAt: number;
  closeReason = "";
  /** Closed because max_retry_attempts ran out against `sourceNodeId`. */
  gaveUp = false;
  #publish: PublishHandle | null = null;
  #stream: RelayStream | null = null;
  #stopped: string | null = null;
  /** `repoint` ended the current attempt: look the origin up again without waiting. */
  #repointed = false;
  #wake: (() => void) | null = null;
  readonly done: Promise<void>;

  constructor(readonly path: StreamPath, readonly deps: PullDeps, readonly log: Logger) {
    this.startedAt = deps.now();
    this.done = this.#run();
  }

  get stopped(): boolean {
    return this.#stopped !== null;
  }

  /** Ends the relay for good (released, origin offline, shutdown). */
  stop(reason: string): void {
    if (this.#stopped) return;
    this.#stopped = reason;
    this.#stream?.abort(reason);
    this.#wake?.();
  }

  /** Drops the current attempt and reconnects at once (e.g. the stream moved to another origin). */
  repoint(reason: string): void {
    this.log.info("relay re-pointing", { reason });
    this.#repointed = true;
    this.#stream?.abort(reason);
    this.#wake?.();
  }

  async #run(): Promise<void> {
    let failures = 0;
    try {
      while (!this.#stopped) {
        const origin = this.deps.origin(this.path);
        if (!origin) {
          this.closeReason = "no live origin for the stream";
          break;
        }
        let delivered = false;
        this.#repointed = false;
        try {
          const outcome = await this.#attempt(origin.record, origin.peerCert, () => delivered = true);
          if (outcome !== "stopped" || this.#stopped) {
            this.closeReason = this.#stopped ?? outcome;
            break;
          }
        } catch (err) {
          if (this.#stopped) break;
          this.log.warn("relay attempt failed", {
            error: errorMessage(err),
            origin: origin.record.origin_id,
          });
        } finally {
          this.#endAttempt();
        }
        if (this.#stopped) break;
        // The attempt failed but the registry names another origin now: go there at once.
        const now = this.deps.origin(this.path)?.record.origin_id;
        if (now && now !== origin.record.origin_id) this.#repointed = true;
        if (this.#repointed) {
          // The stream moved or its origin went Offline: not a failure of the new origin, and
          // no reason to wait retry_delay before asking the registry where the stream is now.
          failures = 0;
          this.reconnects++;
          continue;
        }
        failures = delivered ? 1 : failures + 1;
        if (failures > this.deps.maxRetryAttempts) {
          this.closeReason = `gave up after ${this.deps.maxRetryAttempts} retries`;
          this.gaveUp = true;
          this.log.error("relay giving up", { attempts: failures });
          break;
        }
        this.state = "retrying";
        this.reconnects++;
        await this.#sleep(this.deps.retryDelayMs);
      }
    } finally {
      this.closeReason ||= this.#stopped ?? "closed";
      this.state = "closed";
      this.#endAttempt();
      this.log.info("relay closed", { reason: this.closeReason });
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.#wake = () => {
        this.#wake = null;
        done();
      };
    });
  }

  #endAttempt(): void {
    this.#stream?.abort("attempt over");
    this.#stream = null;
    this.#publish?.close();
    this.#publish = null;
  }

  async #attempt(record: SessionRecord, peerCert: string, onDelivered: () => void): Promise<Outcome> {
    const d = this.deps;
    this.state = "connecting";
    this.sourceNodeId = record.origin_id;
    this.sessionId = crypto.randomUUID();
    const answer = await d.client.call(
      record.origin_address,
      "POST",
      "relay/pull",
      {
        request_id: crypto.randomUUID(),
        stream_path: this.path,
        requestor_id: d.selfId,
        quic_addr: d.transport.address,
        session_id: this.sessionId,
        timestamp: d.now(),
      },
      d.establishTimeoutMs,
      relayPullResponse,
    );
    if (!answer.accepted) throw new Error(`origin refused the pull: ${answer.reason || "no reason"}`);
    if (answer.session_id !== this.sessionId) throw new Error("origin answered for another session");
    if (this.#stopped) return "stopped";
    this.sourceQuicAddr = answer.quic_addr;
    const peer: PeerEndpoint = { address: answer.quic_addr, certPem: peerCert };
    const stream = await d.transport.openStream(peer, d.establishTimeoutMs);
    this.#stream = stream;
    if (this.#stopped) return "stopped";
    if (this.#repointed) throw new Error("re-pointed while connecting");

    const writer = stream.writable.getWriter();
    await writer.write(encodeControl(FrameKind.Hello, {
      session_id: this.sessionId,
      stream_path: this.path,
      requestor_id: d.selfId,
    }));
    writer.releaseLock();

    const reader = stream.readable.getReader();
    const decoder = new FrameDecoder();
    let lastActivity = d.now();
    let firstFrame = false;
    // Silence detection: nothing for a health-check interval (or establish timeout at start) → abort.
    const health = setInterval(() => {
      const limit = firstFrame ? d.healthCheckIntervalMs : d.establishTimeoutMs;
      if (d.now() - lastActivity > limit) {
        this.log.warn("relay silent, dropping the attempt", { silent_ms: d.now() - lastActivity });
        stream.abort("no frames");
      }
    }, Math.max(50, Math.min(d.healthCheckIntervalMs, d.establishTimeoutMs) / 2));
    let outcome: Outcome | null = null;
    try {
      while (outcome === null) {
        const { done, value } = await reader.read();
        if (done) throw new Error("origin closed the relay stream");
        lastActivity = d.now();
        decoder.push(value, (f) => {
          if (outcome !== null) return;
          outcome = this.#onFrame(f, record);
          if (!firstFrame && (f.kind === FrameKind.Media || f.kind === FrameKind.Headers)) {
            firstFrame = true;
            onDelivered();
          }
        });
      }
      return outcome;
    } finally {
      clearInterval(health);
    }
  }

  /** Handles one frame; returns an outcome when the attempt is over. */
  #onFrame(f: WireFrame, record: SessionRecord): Outcome | null {
    switch (f.kind) {
      case FrameKind.Headers:
      case FrameKind.Media: {
        if (!this.#publish) {
          try {
            this.#publish = this.deps.hub.publish(this.path, {
              id: `relay:${this.sessionId.slice(0, 8)}`,
              protocol: "relay",
              remoteAddr: this.sourceQuicAddr,
              sourceNodeId: record.origin_id,
            });
          } catch (err) {
            if (err instanceof StreamBusyError) return "superseded"; // a local publisher took the path
            throw err;
          }
          this.state = "active";
          this.log.info("relay active", { origin: record.origin_id });
        }
        const tags = f.kind === FrameKind.Headers ? splitTags(f.payload) : [f.payload];
        for (const tag of tags) {
          const isHeaderTag = f.kind === FrameKind.Headers;
          const frame = frameFromEncodedTag(tag, {
            keyframe: !isHeaderTag && (f.flags & FLAG_KEYFRAME) !== 0,
            sequenceHeader: isHeaderTag ? tag[0] !== TagType.Script : (f.flags & FLAG_SEQUENCE_HEADER) !== 0,
          });
          this.#publish.write(frame);
          this.frames++;
          this.bytes += tag.byteLength;
        }
        this.lastFrameAt = this.deps.now();
        return null;
      }
      case FrameKind.End:
        this.log.info("origin ended the stream", { reason: String(decodeControl(f)["reason"] ?? "") });
        return "ended";
      case FrameKind.Error:
        throw new Error(`origin refused the relay stream: ${String(decodeControl(f)["reason"] ?? "")}`);
      case FrameKind.Hello:
        throw new Error("unexpected HELLO from origin");
    }
  }
}
