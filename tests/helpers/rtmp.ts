/**
 * A small RTMP client for tests: plain handshake, connect / createStream / publish / play with
 * AMF0 commands, and raw media messages. It publishes what ffmpeg cannot (Enhanced RTMP HEVC)
 * and lets tests send deliberately broken bytes. Chunking uses the project's `encodeChunks`
 * and `ChunkReader`; every wait is bounded.
 */

import { type Amf0Object, type Amf0Value, decodeAmf0, encodeAmf0 } from "../../src/amf/mod.ts";
import { ChunkReader, encodeChunks, HANDSHAKE_SIZE, MessageType } from "../../src/rtmp/mod.ts";
import { TimeoutError, withTimeout } from "./wait.ts";

export const Csid = { Control: 2, Command: 3, Audio: 4, Data: 5, Video: 6 } as const;

export interface ReceivedMedia {
  type: number;
  timestamp: number;
  payload: Uint8Array;
}

export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.byteLength) off += await conn.write(bytes.subarray(off));
}

/** Reads exactly `n` bytes; throws on EOF. */
export async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const got = await conn.read(out.subarray(off));
    if (got === null) throw new Error(`connection closed after ${off} of ${n} bytes`);
    off += got;
  }
  return out;
}

/** Client side of the plain handshake: C0+C1, read S0+S1+S2, send C2 (echo of S1). */
export async function clientHandshake(conn: Deno.Conn, version = 3): Promise<void> {
  const c0c1 = new Uint8Array(1 + HANDSHAKE_SIZE);
  c0c1[0] = version;
  crypto.getRandomValues(c0c1.subarray(9));
  await writeAll(conn, c0c1);
  const s = await readExactly(conn, 1 + 2 * HANDSHAKE_SIZE);
  if (s[0] !== 3) throw new Error(`server answered RTMP version ${s[0]}`);
  await writeAll(conn, s.subarray(1, 1 + HANDSHAKE_SIZE));
}

/**
 * Reads (and discards) until the peer closes the connection. Returns how long that took, or
 * null if it was still open after `timeoutMs` (the connection is closed either way).
 */
export async function waitForClose(conn: Deno.Conn, timeoutMs: number): Promise<number | null> {
  const started = performance.now();
  const buf = new Uint8Array(64 * 1024);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch {
      // closed already
    }
  }, timeoutMs);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
    }
  } catch {
    // reset by peer counts as closed (unless we closed it on timeout)
  } finally {
    clearTimeout(timer);
  }
  if (timedOut) return null;
  try {
    conn.close();
  } catch {
    // closed already
  }
  return performance.now() - started;
}

export function u32be(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0);
  return b;
}

interface Pending {
  resolve: (v: Amf0Value[]) => void;
  reject: (e: Error) => void;
}

export class RtmpTestClient implements AsyncDisposable {
  readonly #reader = new ChunkReader(64 * 1024 * 1024);
  readonly #pending = new Map<number, Pending>();
  readonly statuses: Amf0Object[] = [];
  readonly media: ReceivedMedia[] = [];
  #chunkSize = 128;
  #txn = 1;
  #writeChain: Promise<void> = Promise.resolve();
  #closed = false;
  #changed: (() => void)[] = [];
  readonly readLoop: Promise<void>;
  readError: Error | null = null;

  private constructor(readonly conn: Deno.TcpConn) {
    this.readLoop = this.#runReader();
  }

  /** TCP connect + handshake + SetChunkSize(`chunkSize`). */
  static async connect(
    host: string,
    port: number,
    opts: { chunkSize?: number; timeoutMs?: number } = {},
  ): Promise<RtmpTestClient> {
    const conn = await Deno.connect({ hostname: host, port });
    conn.setNoDelay(true);
    try {
      await withTimeout(clientHandshake(conn), opts.timeoutMs ?? 5000, "rtmp handshake");
    } catch (err) {
      conn.close();
      throw err;
    }
    const client = new RtmpTestClient(conn);
    const cs = opts.chunkSize ?? 4096;
    await client.send(Csid.Control, MessageType.SetChunkSize, 0, 0, u32be(cs));
    client.#chunkSize = cs;
    return client;
  }

  get closed(): boolean {
    return this.#closed;
  }

  async #runReader(): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.conn.read(buf);
        if (n === null) break;
        this.#reader.push(buf.subarray(0, n), (m) => {
          if (m.type === MessageType.SetChunkSize) {
            this.#reader.setChunkSize(
              new DataView(m.payload.buffer, m.payload.byteOffset).getUint32(0) & 0x7fffffff,
            );
          } else if (m.type === MessageType.CommandAmf0) {
            this.#onCommand(decodeAmf0(m.payload));
          } else if (
            m.type === MessageType.Audio || m.type === MessageType.Video || m.type === MessageType.DataAmf0
          ) {
            this.media.push({ type: m.type, timestamp: m.timestamp, payload: m.payload.slice() });
          }
        });
        this.#notify();
      }
    } catch (err) {
      if (!this.#closed) this.readError = err as Error;
    } finally {
      this.#closed = true;
      for (const p of this.#pending.values()) p.reject(new Error("rtmp connection closed"));
      this.#pending.clear();
      this.#notify();
      try {
        this.conn.close();
      } catch {
        // closed already
      }
    }
  }

  #onCommand(values: Amf0Value[]): void {
    const [name, txn] = values;
    if ((name === "_result" || name === "_error") && typeof txn === "number") {
      const p = this.#pending.get(txn);
      if (p) {
        this.#pending.delete(txn);
        if (name === "_result") p.resolve(values);
        else p.reject(new Error(`rtmp _error: ${JSON.stringify(values[3] ?? null)}`));
      }
    } else if (name === "onStatus") {
      const info = values[3];
      if (info && typeof info === "object" && !Array.isArray(info) && !(info instanceof Date)) {
        this.statuses.push(info);
      }
    }
  }

  #notify(): void {
    const waiters = this.#changed;
    this.#changed = [];
    for (const w of waiters) w();
  }

  /** Resolves once `pred()` holds (re-checked whenever a message arrives or the connection closes). */
  async waitUntil<T>(pred: () => T | undefined | null | false, timeoutMs: number, what: string): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const v = pred();
      if (v) return v;
      if (this.#closed) throw new Error(`rtmp connection closed while waiting for ${what}`);
      const left = deadline - performance.now();
      if (left <= 0) throw new TimeoutError(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await withTimeout(new Promise<void>((r) => this.#changed.push(r)), left, what).catch(() => {});
    }
  }

  /** Sends one message as chunks with the current outgoing chunk size. */
  send(csid: number, type: number, streamId: number, timestamp: number, payload: Uint8Array): Promise<void> {
    return this.writeRaw(encodeChunks(csid, type, streamId, timestamp, payload, this.#chunkSize));
  }

  writeRaw(bytes: Uint8Array): Promise<void> {
    const next = this.#writeChain.then(() => writeAll(this.conn, bytes));
    this.#writeChain = next.catch(() => {});
    return next;
  }

  /** Sends a command with a fresh transaction id and waits for its `_result` (throws on `_error`). */
  async call(
    name: string,
    cmdObj: Amf0Value,
    args: Amf0Value[] = [],
    timeoutMs = 5000,
  ): Promise<Amf0Value[]> {
    const txn = this.#txn++;
    const reply = new Promise<Amf0Value[]>((resolve, reject) => this.#pending.set(txn, { resolve, reject }));
    await this.send(Csid.Command, MessageType.CommandAmf0, 0, 0, encodeAmf0([name, txn, cmdObj, ...args]));
    try {
      return await withTimeout(reply, timeoutMs, `rtmp ${name}`);
    } finally {
      this.#pending.delete(txn);
    }
  }

  /** `connect` to an application; `extra` is merged into the command object (e.g. fourCcList). */
  connectApp(app: string, tcUrl: string, extra: Amf0Object = {}): Promise<Amf0Value[]> {
    return this.call("connect", { app, type: "nonprivate", flashVer: "FMLE/3.0", tcUrl, ...extra });
  }

  async createStream(): Promise<number> {
    const r = await this.call("createStream", null);
    const id = r[3];
    if (typeof id !== "number") throw new Error(`createStream returned ${JSON.stringify(r)}`);
    return id;
  }

  async #streamCommand(
    streamId: number,
    values: Amf0Value[],
    done: (s: Amf0Object) => boolean,
    timeoutMs: number,
  ): Promise<Amf0Object> {
    const from = this.statuses.length;
    await this.send(Csid.Command, MessageType.CommandAmf0, streamId, 0, encodeAmf0(values));
    return await this.waitUntil(
      () => this.statuses.slice(from).find(done),
      timeoutMs,
      `onStatus after ${String(values[0])}`,
    );
  }

  /** Sends `publish` and waits for the onStatus that answers it (Publish.Start or an error). */
  publish(streamId: number, name: string, timeoutMs = 5000): Promise<Amf0Object> {
    return this.#streamCommand(
      streamId,
      ["publish", 0, null, name, "live"],
      (s) => s["level"] === "error" || s["code"] === "NetStream.Publish.Start",
      timeoutMs,
    );
  }

  /** Sends `play` and waits for Play.Start or an error status. */
  play(streamId: number, name: string, timeoutMs = 5000): Promise<Amf0Object> {
    return this.#streamCommand(
      streamId,
      ["play", 0, null, name, -2],
      (s) => s["level"] === "error" || s["code"] === "NetStream.Play.Start",
      timeoutMs,
    );
  }

  sendVideo(streamId: number, timestamp: number, body: Uint8Array): Promise<void> {
    return this.send(Csid.Video, MessageType.Video, streamId, timestamp, body);
  }

  sendAudio(streamId: number, timestamp: number, body: Uint8Array): Promise<void> {
    return this.send(Csid.Audio, MessageType.Audio, streamId, timestamp, body);
  }

  /** `@setDataFrame onMetaData {…}` as a publisher sends it. */
  sendMetadata(streamId: number, meta: Amf0Object): Promise<void> {
    return this.send(
      Csid.Data,
      MessageType.DataAmf0,
      streamId,
      0,
      encodeAmf0(["@setDataFrame", "onMetaData", meta]),
    );
  }

  /** deleteStream, then close the socket and wait for the read loop. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.conn.close();
      } catch {
        // closed already
      }
    }
    await this.readLoop;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
