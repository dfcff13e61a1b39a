/** The RTMP TCP listener: accepts connections and runs one `RtmpSession` each. */

import { errorMessage, type Logger } from "../log/mod.ts";
import { RtmpSession, type RtmpSessionOptions } from "./_session.ts";

export class RtmpServer implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #sessions = new Set<RtmpSession>();
  readonly #done: Promise<void>;
  #nextId = 1;

  constructor(hostname: string, port: number, readonly options: RtmpSessionOptions, readonly log: Logger) {
    this.#listener = Deno.listen({ hostname, port, transport: "tcp" });
    this.#done = this.#acceptLoop();
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  get connectionCount(): number {
    return this.#sessions.size;
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (err) {
        if (err instanceof Deno.errors.BadResource) return;
        this.log.warn("rtmp accept failed", { error: errorMessage(err) });
        continue;
      }
      try {
        conn.setNoDelay(true);
      } catch {
        // the peer may already be gone
      }
      const remoteAddr = `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`;
      const id = `r${this.#nextId++}`;
      const session = new RtmpSession(
        { remoteAddr, read: (p) => conn.read(p), write: (p) => conn.write(p), close: () => conn.close() },
        id,
        this.options,
        this.log.child({ conn: id }),
      );
      this.#sessions.add(session);
      session.log.debug("rtmp connection accepted", { remote: remoteAddr });
      session.run().finally(() => this.#sessions.delete(session));
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    for (const s of this.#sessions) s.close();
    await this.#done;
  }
}
