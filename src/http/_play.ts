/**
 * FLV playback over HTTP (chunked response) and WebSocket. Both send the FLV header, then
 * each frame's pre-encoded tag (shared by every player: no per-player copy or encode).
 *
 * HTTP is pull-based: the response stream asks for the next frame only when the socket has
 * taken the previous ones, so a slow client's backlog stays in its bounded subscriber queue
 * (where the skip-to-keyframe policy applies), never in an unbounded buffer. WebSocket has no
 * pull, so the sender waits while `bufferedAmount` is above a bound.
 */

import { flvHeader } from "../flv/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { MediaFrame, StreamHub, Subscriber } from "../media/mod.ts";

/** The error a dropped player's HTTP response ends with. */
export class PlayerDroppedError extends Error {
  override name = "PlayerDroppedError";
}

const encodedTag = (f: MediaFrame) => f.tag;

const WS_MAX_BUFFERED = 2 * 1024 * 1024;
const WS_DRAIN_POLL_MS = 20;

export function flvResponseStream(sub: Subscriber, hub: StreamHub, log: Logger): ReadableStream<Uint8Array> {
  let headerSent = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      sub.onClose = (reason) => {
        if (reason === "stalled" || reason === "kicked") {
          log.info("player dropped", { reason });
          try {
            controller.error(new PlayerDroppedError(`player ${reason}`));
          } catch {
            // already closed
          }
        }
      };
    },
    async pull(controller) {
      if (!headerSent) {
        headerSent = true;
        controller.enqueue(flvHeader(true, true));
      }
      // Everything queued goes out in this pull, each frame's shared tag as is (no copy).
      let sent = false;
      for (;;) {
        const frame = sub.read();
        if (frame === undefined) {
          if (sent) return;
          await sub.wait();
          continue;
        }
        if (frame === null) {
          log.info("play ended", { reason: sub.closeReason ?? "ended" });
          controller.close();
          return;
        }
        controller.enqueue(frame.tag);
        sub.bytesSent += frame.tag.byteLength;
        hub.stats.bytesOut += frame.tag.byteLength;
        sent = true;
      }
    },
    cancel() {
      log.info("player disconnected");
      sub.close("client");
    },
  }, { highWaterMark: 1 });
}

/** Streams a subscription over an upgraded WebSocket until either side ends it. */
export function pumpWebSocket(socket: WebSocket, sub: Subscriber, hub: StreamHub, log: Logger): void {
  let open = true;
  const finish = (why: string) => {
    if (!open) return;
    open = false;
    log.info("ws player closed", { reason: why });
    sub.close("client");
    try {
      socket.close(1000, why.slice(0, 100));
    } catch {
      // already closed
    }
  };
  sub.onClose = (reason) => {
    if (reason !== "ended") finish(reason);
  };
  socket.onclose = () => finish("client");
  socket.onerror = () => finish("error");
  socket.onmessage = () => {}; // players have nothing to say; ignore rather than buffer
  const run = async () => {
    socket.send(flvHeader(true, true));
    while (open) {
      if (socket.bufferedAmount > WS_MAX_BUFFERED) {
        await new Promise((r) => setTimeout(r, WS_DRAIN_POLL_MS));
        continue;
      }
      const bytes = sub.readBatch(encodedTag);
      if (bytes === undefined) {
        await sub.wait();
        continue;
      }
      if (bytes === null) {
        finish("ended");
        return;
      }
      socket.send(bytes);
      sub.bytesSent += bytes.byteLength;
      hub.stats.bytesOut += bytes.byteLength;
    }
  };
  socket.onopen = () => {
    run().catch(() => finish("error"));
  };
}
