/**
 * The origin side of the relay. `relay/pull` (authenticated by the control plane's API key)
 * issues a single-use session id for one stream and one requesting node; the edge must
 * present it as the first frame (HELLO) of its QUIC stream within `establishTimeoutMs`.
 * Then the origin sends HEADERS (metadata + sequence headers), the cached GOP and live
 * frames. The edge is an ordinary bounded subscriber here: a slow edge skips to the next
 * keyframe like a slow player, and never holds up the publisher or anyone else.
 */

import { errorMessage, type Logger } from "../../log/mod.ts";
import { concatBytes } from "../../bytes/mod.ts";
import {
  type MediaFrame,
  type StreamHub,
  type StreamPath,
  type Subscriber,
  TagType,
} from "../../media/mod.ts";
import type { RelayStream } from "../transport/mod.ts";
import {
  decodeControl,
  encodeControl,
  FLAG_KEYFRAME,
  FLAG_SEQUENCE_HEADER,
  FRAME_HEADER_SIZE,
  FrameDecoder,
  frameHeader,
  FrameKind,
  MAX_CONTROL_PAYLOAD,
  type WireFrame,
  writeFrameHeader,
} from "./wire.ts";

export interface PullGrant {
  path: StreamPath;
  requestorId: string;
  expiresAt: number;
}

export interface ServedRelay {
  sessionId: string;
  path: StreamPath;
  requestorId: string;
  remote: string;
  startedAt: number;
  frames: number;
  bytes: number;
  lastFrameAt: number;
  stream: RelayStream;
}

const MAX_PENDING_GRANTS = 4096;

export class RelayServer {
  readonly #grants = new Map<string, PullGrant>();
  readonly served = new Set<ServedRelay>();

  constructor(
    readonly hub: StreamHub,
    readonly establishTimeoutMs: number,
    readonly log: Logger,
    readonly now: () => number = Date.now,
  ) {}

  /** Records a grant issued through `relay/pull`. */
  grant(sessionId: string, grant: PullGrant): void {
    const now = this.now();
    for (const [id, g] of this.#grants) if (g.expiresAt < now) this.#grants.delete(id);
    if (this.#grants.size >= MAX_PENDING_GRANTS) throw new RangeError("too many pending relay grants");
    this.#grants.set(sessionId, grant);
  }

  /** Serves one incoming relay stream to its end; never throws. */
  async serve(stream: RelayStream, remote: string): Promise<void> {
    const log = this.log.child({ relay: "serve", remote });
    const reader = stream.readable.getReader();
    let hello: { sessionId: string; path: StreamPath; requestorId: string };
    try {
      hello = await this.#readHello(reader);
    } catch (err) {
      log.warn("relay stream refused", { error: errorMessage(err) });
      await this.#refuse(stream, errorMessage(err));
      return;
    }
    const sub = this.hub.subscribe(hello.path, {
      id: `relay:${hello.sessionId}`,
      protocol: "relay",
      remoteAddr: remote,
      peerNodeId: hello.requestorId,
    });
    if (!sub) {
      log.warn("relay stream refused: stream no longer live", { stream: hello.path });
      await this.#refuse(stream, "stream is not live");
      return;
    }
    const served: ServedRelay = {
      sessionId: hello.sessionId,
      path: hello.path,
      requestorId: hello.requestorId,
      remote,
      startedAt: this.now(),
      frames: 0,
      bytes: 0,
      lastFrameAt: 0,
      stream,
    };
    this.served.add(served);
    const slog = log.child({
      relay: hello.sessionId.slice(0, 8),
      stream: hello.path,
      edge: hello.requestorId,
    });
    slog.info("relay serving");
    // The edge sends nothing after HELLO; its side ending means it went away.
    void reader.read().then(() => {}, () => {}).finally(() => sub.close("client"));
    sub.onClose = (reason) => {
      if (reason !== "ended") stream.abort(reason);
    };
    try {
      await this.#pump(sub, stream, served);
      slog.info("relay served to the end");
    } catch (err) {
      slog.info("relay stream closed", { reason: errorMessage(err) });
      stream.abort("error");
    } finally {
      sub.close("client");
      this.served.delete(served);
    }
  }

  async #readHello(
    reader: ReadableStreamDefaultReader<Uint8Array>,
  ): Promise<{ sessionId: string; path: StreamPath; requestorId: string }> {
    // Before HELLO is checked the peer is unauthenticated: accept control-sized frames only.
    const decoder = new FrameDecoder(MAX_CONTROL_PAYLOAD);
    const frames: WireFrame[] = [];
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      reader.cancel("hello timeout").catch(() => {});
    }, this.establishTimeoutMs);
    try {
      while (frames.length === 0) {
        const { done, value } = await reader.read();
        if (done) {
          throw new Error(timedOut ? "no HELLO within the establish timeout" : "stream ended before HELLO");
        }
        decoder.push(value, (f) => frames.push(f));
      }
    } finally {
      clearTimeout(deadline);
    }
    const first = frames[0]!;
    if (first.kind !== FrameKind.Hello) throw new Error(`expected HELLO, got frame kind ${first.kind}`);
    const hello = decodeControl(first);
    const sessionId = String(hello["session_id"] ?? "");
    const grant = this.#grants.get(sessionId);
    if (!grant) throw new Error("unknown relay session id");
    this.#grants.delete(sessionId);
    if (grant.expiresAt < this.now()) throw new Error("relay session id expired");
    if (hello["stream_path"] !== grant.path || hello["requestor_id"] !== grant.requestorId) {
      throw new Error("relay session id does not match the stream or node it was issued for");
    }
    return { sessionId, path: grant.path, requestorId: grant.requestorId };
  }

  async #refuse(stream: RelayStream, reason: string): Promise<void> {
    try {
      const w = stream.writable.getWriter();
      await w.write(encodeControl(FrameKind.Error, { reason: reason.slice(0, 200) }));
      await w.close();
    } catch {
      stream.abort("refused");
    }
  }

  async #pump(sub: Subscriber, stream: RelayStream, served: ServedRelay): Promise<void> {
    const writer = stream.writable.getWriter();
    let writeError: unknown = null;
    const onError = (err: unknown) => {
      writeError ??= err;
    };
    const hubStats = this.hub.stats;
    // The first frames a subscriber gets are the codec headers: send them as one HEADERS frame.
    const headers: Uint8Array[] = [];
    let frame = sub.read();
    while (frame !== null) {
      if (frame === undefined) {
        if (headers.length > 0) break;
        await sub.wait();
      } else if (isHeader(frame)) {
        headers.push(frame.tag);
      } else {
        break;
      }
      frame = sub.read();
    }
    if (headers.length > 0) writer.write(this.#headersFrame(headers)).catch(onError);
    // Then media: everything queued goes out as one write (frames that arrived together).
    const encode = (f: MediaFrame) => {
      served.frames++;
      served.bytes += f.tag.byteLength;
      return encodeMediaFrame(f);
    };
    let bytes: Uint8Array | null | undefined = frame ? encode(frame) : frame;
    for (;;) {
      if (writeError) throw writeError;
      if (bytes === null) break;
      if (bytes === undefined) {
        await sub.wait();
      } else {
        if (writer.desiredSize !== null && writer.desiredSize <= 0) await writer.ready;
        writer.write(bytes).catch(onError);
        served.lastFrameAt = this.now();
        hubStats.bytesOut += bytes.byteLength;
      }
      bytes = sub.readBatch(encode);
    }
    await writer.write(encodeControl(FrameKind.End, { reason: "unpublished" }));
    await writer.close();
  }

  #headersFrame(tags: Uint8Array[]): Uint8Array {
    const body = concatBytes(tags);
    return concatBytes([frameHeader(FrameKind.Headers, 0, body.byteLength), body]);
  }

  /** Closes every relay served to `nodeId` (it went Offline). */
  dropRequestor(nodeId: string): void {
    for (const s of this.served) if (s.requestorId === nodeId) s.stream.abort("requestor offline");
  }
}

function isHeader(f: MediaFrame): boolean {
  return f.sequenceHeader || f.type === TagType.Script;
}

/** A MEDIA frame: the relay header and the tag in one buffer, so the pair is one write. */
function encodeMediaFrame(f: MediaFrame): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_SIZE + f.tag.byteLength);
  writeFrameHeader(out, FrameKind.Media, flagsOf(f), f.tag.byteLength);
  out.set(f.tag, FRAME_HEADER_SIZE);
  return out;
}

function flagsOf(f: MediaFrame): number {
  return (f.keyframe ? FLAG_KEYFRAME : 0) | (f.sequenceHeader ? FLAG_SEQUENCE_HEADER : 0);
}
