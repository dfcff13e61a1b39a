/**
 * One RTMP connection: handshake, chunk stream, the AMF0 commands ffmpeg, OBS and players
 * send, and the publish or play that follows. Everything a client can get wrong ends in a
 * log line and a closed connection; nothing here can affect another connection.
 */

import { type Amf0Object, type Amf0Value, decodeAmf0, encodeAmf0 } from "../amf/mod.ts";
import { ByteQueue, writeAll } from "../bytes/mod.ts";
import { classifyTag } from "../flv/mod.ts";
import { errorMessage, type Logger } from "../log/mod.ts";
import {
  frameFromTagBuffer,
  InvalidStreamPathError,
  makeFrame,
  type MediaFrame,
  type PublishHandle,
  StreamBusyError,
  type StreamHub,
  type StreamPath,
  streamPathFromRtmp,
  type Subscriber,
  TagType,
} from "../media/mod.ts";
import { ChunkReader, encodeChunks, MessageType, type RtmpMessage, RtmpProtocolError } from "./_chunk.ts";
import { HANDSHAKE_SIZE, serverHandshake } from "./_handshake.ts";
import * as msg from "./_messages.ts";

export interface RtmpConn {
  readonly remoteAddr: string;
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

/** Cluster-level decisions the RTMP server defers to (edge-only nodes, overload redirects). */
export interface RtmpGate {
  /** A reason to refuse this publish, or null to accept it. */
  refusePublish?(path: StreamPath): string | null;
  /** Where to send this player instead (an rtmp:// URL), or null to serve it here. */
  redirectPlay?(path: StreamPath, params: URLSearchParams): string | null;
}

export interface RtmpSessionOptions {
  hub: StreamHub;
  chunkSize: number;
  maxMessageSize: number;
  handshakeTimeoutMs: number;
  waitTimeoutMs: number;
  publishIdleTimeoutMs: number;
  gate?: RtmpGate;
}

const WINDOW_ACK_SIZE = 2_500_000;
// Players send next to nothing and publishers' reads still batch several messages at 16 KiB.
const READ_BUFFER_SIZE = 16 * 1024;
const MESSAGE_STREAM_ID = 1;

/** RTMP chunks of a frame for players, encoded once per frame and shared by every player. */
const playChunkCache = new WeakMap<MediaFrame, Uint8Array>();

export class RtmpSession {
  readonly #reader: ChunkReader;
  readonly #opts: RtmpSessionOptions;
  #writeChain: Promise<void> = Promise.resolve();
  #closed = false;
  #app = "";
  #tcUrl = "";
  #publisher: PublishHandle | null = null;
  #subscriber: Subscriber | null = null;
  #peerAckWindow = 0;
  #lastAckAt = 0;
  #lastMediaAt = 0;
  #idleTimer: ReturnType<typeof setInterval> | undefined;
  #playAbort = new AbortController();

  constructor(readonly conn: RtmpConn, readonly id: string, opts: RtmpSessionOptions, readonly log: Logger) {
    this.#opts = opts;
    this.#reader = new ChunkReader(opts.maxMessageSize);
  }

  /** Runs the connection to its end; never throws. */
  async run(): Promise<void> {
    try {
      const buf = new Uint8Array(READ_BUFFER_SIZE);
      const rest = await this.#handshake(buf);
      if (rest) this.#reader.push(rest, (m) => this.#onMessage(m));
      while (!this.#closed) {
        const n = await this.conn.read(buf);
        if (n === null) break;
        this.#reader.push(buf.subarray(0, n), (m) => this.#onMessage(m));
        this.#maybeAcknowledge();
      }
    } catch (err) {
      if (!this.#closed) this.log.warn("rtmp connection error, closing", { error: errorMessage(err) });
    } finally {
      this.close();
    }
  }

  async #handshake(buf: Uint8Array): Promise<Uint8Array | null> {
    const timer = setTimeout(() => {
      this.log.warn("rtmp handshake timed out");
      this.close();
    }, this.#opts.handshakeTimeoutMs);
    try {
      const q = new ByteQueue(2 * HANDSHAKE_SIZE + READ_BUFFER_SIZE, 2 * HANDSHAKE_SIZE);
      const fill = async (n: number) => {
        while (q.length < n) {
          const got = await this.conn.read(buf);
          if (got === null) throw new RtmpProtocolError("connection closed during handshake");
          q.push(buf.subarray(0, got));
        }
      };
      await fill(1 + HANDSHAKE_SIZE);
      const reply = await serverHandshake(q.peek().slice(0, 1 + HANDSHAKE_SIZE)).catch((err) => {
        throw new RtmpProtocolError(`bad handshake: ${errorMessage(err)}`);
      });
      q.consume(1 + HANDSHAKE_SIZE);
      await this.#send(reply);
      await fill(HANDSHAKE_SIZE);
      q.consume(HANDSHAKE_SIZE);
      return q.length > 0 ? q.peek().slice() : null;
    } finally {
      clearTimeout(timer);
    }
  }

  #send(bytes: Uint8Array): Promise<void> {
    this.#writeChain = this.#writeChain.then(() => this.#closed ? undefined : writeAll(this.conn, bytes));
    return this.#writeChain;
  }

  #sendLogged(bytes: Uint8Array): void {
    this.#send(bytes).catch((err) => {
      if (!this.#closed) this.log.debug("rtmp write failed", { error: errorMessage(err) });
      this.close();
    });
  }

  #maybeAcknowledge(): void {
    if (this.#peerAckWindow <= 0) return;
    const received = this.#reader.bytesReceived;
    if (received - this.#lastAckAt >= this.#peerAckWindow) {
      this.#lastAckAt = received;
      this.#sendLogged(msg.acknowledgement(received));
    }
  }

  #onMessage(m: RtmpMessage): void {
    switch (m.type) {
      case MessageType.SetChunkSize: {
        const size = controlValue(m) & 0x7fffffff;
        this.#reader.setChunkSize(size);
        return;
      }
      case MessageType.Abort:
        this.#reader.abort(controlValue(m));
        return;
      case MessageType.WindowAckSize:
        this.#peerAckWindow = controlValue(m);
        return;
      case MessageType.UserControl:
        this.#onUserControl(m.payload);
        return;
      case MessageType.Acknowledgement:
      case MessageType.SetPeerBandwidth:
        return;
      case MessageType.Audio:
      case MessageType.Video:
        this.#onMedia(m);
        return;
      case MessageType.DataAmf0:
      case MessageType.DataAmf3:
        this.#onData(m);
        return;
      case MessageType.CommandAmf0:
      case MessageType.CommandAmf3:
        this.#onCommand(m);
        return;
      case MessageType.Aggregate:
        this.#onAggregate(m);
        return;
      default:
        this.log.debug("ignoring rtmp message", { type: m.type });
    }
  }

  #onUserControl(payload: Uint8Array): void {
    if (payload.byteLength < 6) return;
    const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    if (v.getUint16(0) === msg.UserControlEvent.PingRequest) {
      this.#sendLogged(msg.userControl(msg.UserControlEvent.PingResponse, v.getUint32(2)));
    }
  }

  #amfValues(m: RtmpMessage): Amf0Value[] {
    const amf3 = m.type === MessageType.CommandAmf3 || m.type === MessageType.DataAmf3;
    return decodeAmf0(amf3 && m.payload[0] === 0 ? m.payload.subarray(1) : m.payload);
  }

  #onCommand(m: RtmpMessage): void {
    const values = this.#amfValues(m);
    const [name, txn, cmdObj] = values;
    if (typeof name !== "string") throw new RtmpProtocolError("command without a name");
    const txnId = typeof txn === "number" ? txn : 0;
    const args = values.slice(3);
    const cs = this.#opts.chunkSize;
    switch (name) {
      case "connect":
        this.#onConnect(txnId, isObject(cmdObj) ? cmdObj : {});
        return;
      case "createStream":
        this.#sendLogged(msg.command(0, ["_result", txnId, null, MESSAGE_STREAM_ID], cs));
        return;
      case "releaseStream":
      case "FCPublish":
      case "FCUnpublish":
      case "getStreamLength":
        if (txnId > 0) this.#sendLogged(msg.command(0, ["_result", txnId, null, undefined], cs));
        return;
      case "publish":
        this.#onPublish(m.streamId, args);
        return;
      case "play":
        this.#onPlay(m.streamId, args).catch((err) => {
          // A write cut short by close() (player dropped, client gone) is not a failure.
          if (!this.#closed) this.log.warn("rtmp play failed", { error: errorMessage(err) });
          this.close();
        });
        return;
      case "deleteStream":
      case "closeStream":
        this.#endPublish();
        this.#subscriber?.close("client");
        return;
      default:
        this.log.debug("ignoring rtmp command", { command: name.slice(0, 32) });
    }
  }

  #onConnect(txnId: number, cmd: Amf0Object): void {
    this.#app = typeof cmd["app"] === "string" ? cmd["app"] : "";
    this.#tcUrl = typeof cmd["tcUrl"] === "string" ? cmd["tcUrl"] : "";
    const cs = this.#opts.chunkSize;
    this.#sendLogged(msg.windowAckSize(WINDOW_ACK_SIZE));
    this.#sendLogged(msg.setPeerBandwidth(WINDOW_ACK_SIZE, 2));
    this.#sendLogged(msg.setChunkSize(cs));
    const props: Amf0Object = { fmsVer: "FMS/3,5,7,7009", capabilities: 31, mode: 1 };
    const info: Amf0Object = {
      level: "status",
      code: "NetConnection.Connect.Success",
      description: "Connection succeeded.",
      objectEncoding: typeof cmd["objectEncoding"] === "number" ? cmd["objectEncoding"] : 0,
    };
    // Enhanced RTMP: echo the codecs the client offered, so it knows we pass them through.
    if (Array.isArray(cmd["fourCcList"])) info["fourCcList"] = cmd["fourCcList"];
    this.#sendLogged(msg.command(0, ["_result", txnId, props, info], cs));
  }

  #resolvePath(name: Amf0Value): { path: StreamPath; params: URLSearchParams } | null {
    if (typeof name !== "string") return null;
    try {
      return streamPathFromRtmp(this.#app, name);
    } catch (err) {
      if (err instanceof InvalidStreamPathError) return null;
      throw err;
    }
  }

  #onPublish(streamId: number, args: Amf0Value[]): void {
    const cs = this.#opts.chunkSize;
    if (this.#publisher || this.#subscriber) throw new RtmpProtocolError("publish on a busy connection");
    const resolved = this.#resolvePath(args[0]);
    if (!resolved) {
      this.log.warn("rtmp publish refused: invalid stream name");
      this.#refuse(streamId, "NetStream.Publish.BadName", "Invalid stream name.");
      return;
    }
    const { path } = resolved;
    const refusal = this.#opts.gate?.refusePublish?.(path) ?? null;
    if (refusal) {
      this.log.warn("rtmp publish refused", { stream: path, reason: refusal });
      this.#refuse(streamId, "NetStream.Publish.Denied", refusal);
      return;
    }
    try {
      this.#publisher = this.#opts.hub.publish(path, {
        id: this.id,
        protocol: "rtmp",
        remoteAddr: this.conn.remoteAddr,
      });
    } catch (err) {
      if (!(err instanceof StreamBusyError)) throw err;
      this.log.warn("rtmp publish refused: stream already has a publisher", { stream: path });
      this.#refuse(streamId, "NetStream.Publish.BadName", "Stream already publishing.");
      return;
    }
    this.log.info("publish started", { stream: path });
    this.#sendLogged(msg.userControl(msg.UserControlEvent.StreamBegin, streamId));
    this.#sendLogged(
      msg.onStatus(streamId, "status", "NetStream.Publish.Start", `${path} is now published.`, cs),
    );
    this.#lastMediaAt = Date.now();
    const idle = this.#opts.publishIdleTimeoutMs;
    this.#idleTimer = setInterval(() => {
      if (Date.now() - this.#lastMediaAt > idle) {
        this.log.warn("publisher sent no media, dropping it", { stream: path, idle_ms: idle });
        this.close();
      }
    }, Math.min(1000, idle));
  }

  #refuse(streamId: number, code: string, description: string): void {
    this.#send(msg.onStatus(streamId, "error", code, description, this.#opts.chunkSize))
      .finally(() => this.close())
      .catch(() => {});
  }

  async #onPlay(streamId: number, args: Amf0Value[]): Promise<void> {
    const cs = this.#opts.chunkSize;
    if (this.#publisher || this.#subscriber) throw new RtmpProtocolError("play on a busy connection");
    const resolved = this.#resolvePath(args[0]);
    if (!resolved) {
      this.log.warn("rtmp play refused: invalid stream name");
      this.#refuse(streamId, "NetStream.Play.StreamNotFound", "Invalid stream name.");
      return;
    }
    const { path, params } = resolved;
    const redirect = this.#opts.gate?.redirectPlay?.(path, params) ?? null;
    if (redirect) {
      this.log.info("rtmp play redirected", { stream: path });
      this.#send(msg.onStatus(streamId, "error", "NetConnection.Connect.Rejected", "Redirect", cs, {
        ex: { code: 302, redirect },
      })).finally(() => this.close()).catch(() => {});
      return;
    }
    const sub = await this.#opts.hub.subscribeWhenLive(
      path,
      { id: this.id, protocol: "rtmp", remoteAddr: this.conn.remoteAddr },
      this.#opts.waitTimeoutMs,
      this.#playAbort.signal,
    );
    if (this.#closed) {
      sub?.close("client");
      return;
    }
    if (!sub) {
      this.log.info("rtmp play: stream not found", { stream: path });
      this.#refuse(streamId, "NetStream.Play.StreamNotFound", `${path} is not live.`);
      return;
    }
    this.#subscriber = sub;
    // A stalled or kicked player may be stuck in a socket write: close the socket to free it.
    sub.onClose = (reason) => {
      if (reason === "stalled" || reason === "kicked") this.log.info("player dropped", { reason });
      if (reason !== "ended") this.close();
    };
    this.log.info("play started", { stream: path, protocol: "rtmp" });
    await this.#send(msg.userControl(msg.UserControlEvent.StreamBegin, streamId));
    await this.#send(
      msg.onStatus(streamId, "status", "NetStream.Play.Reset", `Playing and resetting ${path}.`, cs),
    );
    await this.#send(
      msg.onStatus(streamId, "status", "NetStream.Play.Start", `Started playing ${path}.`, cs),
    );
    await this.#send(msg.data(streamId, ["|RtmpSampleAccess", false, false], cs));
    await this.#playLoop(sub, streamId);
  }

  async #playLoop(sub: Subscriber, streamId: number): Promise<void> {
    const hubStats = this.#opts.hub.stats;
    while (!this.#closed) {
      const bytes = sub.readBatch((f) => this.#encodeForPlay(f, streamId));
      if (bytes === undefined) {
        await sub.wait();
        continue;
      }
      if (bytes === null) break;
      await this.#send(bytes);
      sub.bytesSent += bytes.byteLength;
      hubStats.bytesOut += bytes.byteLength;
    }
    if (this.#closed) return;
    const cs = this.#opts.chunkSize;
    this.log.info("play ended", { reason: sub.closeReason ?? "ended" });
    await this.#send(msg.userControl(msg.UserControlEvent.StreamEOF, streamId));
    await this.#send(msg.onStatus(streamId, "status", "NetStream.Play.UnpublishNotify", "Stream ended.", cs));
    this.close();
  }

  #encodeForPlay(frame: MediaFrame, streamId: number): Uint8Array {
    const shared = streamId === MESSAGE_STREAM_ID;
    if (shared) {
      const cached = playChunkCache.get(frame);
      if (cached) return cached;
    }
    const csid = frame.type === TagType.Video
      ? msg.Csid.Video
      : frame.type === TagType.Audio
      ? msg.Csid.Audio
      : msg.Csid.Data;
    const bytes = encodeChunks(csid, frame.type, streamId, frame.timestamp, frame.data, this.#opts.chunkSize);
    if (shared) playChunkCache.set(frame, bytes);
    return bytes;
  }

  #onMedia(m: RtmpMessage): void {
    if (!this.#publisher) return;
    if (m.payload.byteLength === 0 || !m.tagBuffer) return;
    this.#lastMediaAt = Date.now();
    const type = m.type === MessageType.Audio ? TagType.Audio : TagType.Video;
    this.#publisher.write(frameFromTagBuffer(type, m.timestamp, m.tagBuffer, classifyTag(type, m.payload)));
  }

  #onData(m: RtmpMessage): void {
    if (!this.#publisher) return;
    const values = this.#amfValues(m);
    const body = values[0] === "@setDataFrame" ? values.slice(1) : values;
    if (body[0] !== "onMetaData") return;
    this.#publisher.write(
      makeFrame(TagType.Script, m.timestamp, encodeAmf0(body), { keyframe: false, sequenceHeader: false }),
    );
  }

  /** Aggregate messages hold FLV tags back to back; timestamps are relative to the first. */
  #onAggregate(m: RtmpMessage): void {
    if (!this.#publisher) return;
    const p = m.payload;
    let off = 0;
    let base: number | null = null;
    while (off + 11 <= p.byteLength) {
      const type = p[off]!;
      const size = (p[off + 1]! << 16) | (p[off + 2]! << 8) | p[off + 3]!;
      const ts = ((p[off + 7]! << 24) | (p[off + 4]! << 16) | (p[off + 5]! << 8) | p[off + 6]!) >>> 0;
      if (off + 11 + size > p.byteLength) throw new RtmpProtocolError("truncated aggregate message");
      base ??= ts;
      const body = p.subarray(off + 11, off + 11 + size);
      const when = (m.timestamp + ts - base) >>> 0;
      if ((type === TagType.Audio || type === TagType.Video) && size > 0) {
        this.#lastMediaAt = Date.now();
        this.#publisher.write(makeFrame(type, when, body, classifyTag(type, body)));
      }
      off += 11 + size + 4;
    }
  }

  #endPublish(): void {
    if (!this.#publisher) return;
    clearInterval(this.#idleTimer);
    this.log.info("publish ended", { stream: this.#publisher.stream.path });
    this.#publisher.close();
    this.#publisher = null;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#playAbort.abort();
    this.#endPublish();
    this.#subscriber?.close("client");
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}

/** The 32-bit value every protocol control message (chunk size, abort, ack window) carries. */
function controlValue(m: RtmpMessage): number {
  if (m.payload.byteLength < 4) {
    throw new RtmpProtocolError(
      `protocol control message ${m.type} has ${m.payload.byteLength} bytes, needs 4`,
    );
  }
  return new DataView(m.payload.buffer, m.payload.byteOffset, 4).getUint32(0);
}

function isObject(v: Amf0Value): v is Amf0Object {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}
