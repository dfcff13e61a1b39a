/**
 * The relay transport on Deno's native QUIC. Every call into that (unstable, still
 * changing) API lives in this file. One endpoint per node both listens and connects; one
 * connection per peer is opened on first use and shared by every relay to that peer (a
 * QUIC stream each); a connection that dies is dropped and reopened by the next relay.
 * Peers are verified against the certificate they advertised (or the configured CA):
 * verification is never turned off.
 */

import { errorMessage, type Logger } from "../../log/mod.ts";
import { RELAY_SERVER_NAME, type TlsMaterial } from "./certs.ts";
import type { PeerEndpoint, RelayStream, RelayTransport } from "./types.ts";

const ALPN = "streamcluster-relay/1";

export interface QuicOptions {
  hostname: string;
  port: number;
  /** host:port peers should dial (the bind host may be a wildcard). */
  advertiseHost: string;
  tls: TlsMaterial;
  /** A connection with no traffic (keep-alives included) for this long is dead. */
  idleTimeoutMs: number;
}

/**
 * Callers lock the streams they get (a reader, a writer), and a locked stream can be neither
 * cancelled nor aborted from outside: that call just rejects, and a pending read would wait
 * for the peer or the idle timeout. So the caller gets thin wrappers, and `abort` acts on the
 * QUIC stream's own reader and writer held here (STOP_SENDING / RESET_STREAM to the peer) and
 * errors the wrappers, so pending reads and writes fail at once.
 */
function wrap(bi: Deno.QuicBidirectionalStream): RelayStream {
  const source = bi.readable.getReader();
  const sink = bi.writable.getWriter();
  let readCtl: ReadableStreamDefaultController<Uint8Array> | undefined;
  let writeCtl: WritableStreamDefaultController | undefined;
  const readable = new ReadableStream<Uint8Array>({
    start: (c) => void (readCtl = c),
    async pull(c) {
      const r = await source.read();
      try {
        if (r.done) c.close();
        else c.enqueue(r.value);
      } catch {
        // aborted meanwhile
      }
    },
    cancel: (reason) => source.cancel(reason),
  }, { highWaterMark: 0 });
  const writable = new WritableStream<Uint8Array>({
    start: (c) => void (writeCtl = c),
    write: (chunk) => sink.write(chunk),
    close: () => sink.close(),
    abort: (reason) => sink.abort(reason),
  });
  return {
    readable,
    writable,
    abort(reason) {
      const err = new Error(`relay stream aborted: ${reason}`);
      try {
        readCtl?.error(err);
      } catch {
        // already closed
      }
      writeCtl?.error(err);
      sink.abort(reason).catch(() => {});
      source.cancel(reason).catch(() => {});
    },
  };
}

function splitAddr(address: string): { hostname: string; port: number } {
  const i = address.lastIndexOf(":");
  return { hostname: address.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(address.slice(i + 1)) };
}

export class QuicTransport implements RelayTransport {
  readonly address: string;
  readonly certPem: string;
  readonly #endpoint: Deno.QuicEndpoint;
  readonly #listener: Deno.QuicListener;
  readonly #conns = new Map<string, Promise<Deno.QuicConn>>();
  readonly #accepted = new Set<Deno.QuicConn>();
  #handler: ((stream: RelayStream, remote: string) => void) | null = null;
  #closed = false;

  constructor(readonly options: QuicOptions, readonly log: Logger) {
    this.#endpoint = new Deno.QuicEndpoint({ hostname: options.hostname, port: options.port });
    this.#listener = this.#endpoint.listen({
      alpnProtocols: [ALPN],
      cert: options.tls.certPem,
      key: options.tls.keyPem,
      maxIdleTimeout: options.idleTimeoutMs,
      keepAliveInterval: Math.max(250, Math.floor(options.idleTimeoutMs / 4)),
    });
    this.address = `${options.advertiseHost}:${this.#endpoint.addr.port}`;
    this.certPem = options.tls.certPem;
    void this.#acceptLoop();
  }

  onStream(handler: (stream: RelayStream, remote: string) => void): void {
    this.#handler = handler;
  }

  connectionCount(): number {
    return this.#conns.size + this.#accepted.size;
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#closed) {
      let conn: Deno.QuicConn;
      try {
        // accept() rather than iterating QuicIncoming: reading an Incoming's fields consumes it.
        conn = await this.#listener.accept();
      } catch (err) {
        if (!this.#closed) this.log.debug("quic accept failed", { error: errorMessage(err) });
        if (this.#closed) return;
        continue;
      }
      const remote = `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`;
      this.#accepted.add(conn);
      conn.closed.catch(() => {}).finally(() => this.#accepted.delete(conn));
      void this.#acceptStreams(conn, remote);
    }
  }

  async #acceptStreams(conn: Deno.QuicConn, remote: string): Promise<void> {
    const reader = conn.incomingBidirectionalStreams.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        if (this.#handler) this.#handler(wrap(value), remote);
        else wrap(value).abort("no handler");
      }
    } catch {
      // the connection closed; its streams are gone with it
    }
  }

  #connect(peer: PeerEndpoint, timeoutMs: number): Promise<Deno.QuicConn> {
    const existing = this.#conns.get(peer.address);
    if (existing) return existing;
    const { hostname, port } = splitAddr(peer.address);
    const trust = this.options.tls.caPem || peer.certPem;
    const connecting = Deno.connectQuic({
      hostname,
      port,
      serverName: RELAY_SERVER_NAME,
      alpnProtocols: [ALPN],
      caCerts: trust ? [trust] : [],
      endpoint: this.#endpoint,
      zeroRtt: false,
      maxIdleTimeout: this.options.idleTimeoutMs,
      keepAliveInterval: Math.max(250, Math.floor(this.options.idleTimeoutMs / 4)),
    });
    const pending = withTimeout(connecting, timeoutMs, `quic connect to ${peer.address}`);
    // A handshake that completes after the timeout would leave a connection nobody uses,
    // kept alive by keep-alives for ever: close it.
    pending.catch(() =>
      connecting.then((c) => c.close({ closeCode: 1, reason: "connect timed out" }), () => {})
    );
    this.#conns.set(peer.address, pending);
    pending.then((conn) => {
      conn.closed.catch(() => {}).finally(() => {
        if (this.#conns.get(peer.address) === pending) this.#conns.delete(peer.address);
        this.log.debug("quic connection closed", { peer: peer.address });
      });
    }, () => {
      if (this.#conns.get(peer.address) === pending) this.#conns.delete(peer.address);
    });
    return pending;
  }

  async openStream(peer: PeerEndpoint, timeoutMs: number): Promise<RelayStream> {
    if (this.#closed) throw new Error("transport closed");
    const conn = await this.#connect(peer, timeoutMs);
    try {
      const bi = await withTimeout(
        conn.createBidirectionalStream({ waitUntilAvailable: true }),
        timeoutMs,
        "open stream",
      );
      return wrap(bi);
    } catch (err) {
      // A dead connection: forget it so the next attempt dials again.
      if (this.#conns.get(peer.address)) this.#conns.delete(peer.address);
      try {
        conn.close({ closeCode: 1, reason: "stream open failed" });
      } catch {
        // already closed
      }
      throw err;
    }
  }

  resetPeer(address: string): void {
    const pending = this.#conns.get(address);
    if (!pending) return;
    this.#conns.delete(address);
    pending.then((c) => c.close({ closeCode: 2, reason: "unhealthy" })).catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#closed = true;
    for (const p of this.#conns.values()) {
      p.then((c) => c.close({ closeCode: 0, reason: "shutdown" })).catch(() => {});
    }
    for (const c of this.#accepted) {
      try {
        c.close({ closeCode: 0, reason: "shutdown" });
      } catch {
        // already closed
      }
    }
    this.#conns.clear();
    try {
      this.#listener.stop();
    } catch {
      // already stopped
    }
    this.#endpoint.close({ closeCode: 0, reason: "shutdown" });
    await Promise.resolve();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  p.catch(() => {});
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
