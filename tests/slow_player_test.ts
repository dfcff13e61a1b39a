/**
 * Fan-out without head-of-line blocking: players that stop reading (one per protocol) must not
 * slow the others, and are disconnected once they have made no progress for
 * `player_stall_timeout`.
 */

import assert from "node:assert/strict";
import { encodeAmf0 } from "../src/amf/mod.ts";
import { encodeChunks, MessageType } from "../src/rtmp/mod.ts";
import { assertMonotonicTags } from "./helpers/checks.ts";
import { isCodedVideo, publish, readFlv } from "./helpers/media.ts";
import { type NodeProcess, startNode } from "./helpers/node.ts";
import { clientHandshake, waitForClose, writeAll } from "./helpers/rtmp.ts";
import { waitFor } from "./helpers/wait.ts";

const FPS = 25;

/** Reads for `ms` and returns video frames received per second of wall time. */
async function measureRate(url: string, ms: number): Promise<{ fps: number; frames: number }> {
  // Skip the GOP-cache burst at the start: count from the first frame that arrives live.
  let frames = 0;
  let firstLiveAt = -1;
  const read = await readFlv(url, {
    durationMs: ms,
    timeoutMs: ms + 10_000,
    onTag: (t) => {
      if (!isCodedVideo(t) || t.arrivalMs < 300) return;
      if (firstLiveAt < 0) firstLiveAt = t.arrivalMs;
      else frames++;
    },
  });
  assertMonotonicTags(read.tags);
  const seconds = (read.elapsedMs - firstLiveAt) / 1000;
  return { fps: frames / seconds, frames };
}

const text = new TextEncoder();

/** HTTP-FLV: sends the request, reads the response head once, then never reads again. */
async function stalledHttp(node: NodeProcess, path: string): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: node.host, port: node.httpPort });
  await writeAll(
    conn,
    text.encode(`GET /${path}.flv HTTP/1.1\r\nHost: ${node.host}:${node.httpPort}\r\n\r\n`),
  );
  const buf = new Uint8Array(1024);
  const n = await conn.read(buf);
  assert.ok(n, "stalled http player got no response");
  assert.match(new TextDecoder().decode(buf.subarray(0, n)), /^HTTP\/1\.1 200/);
  return conn;
}

/** WS-FLV: completes the upgrade by hand, then never reads a frame. */
async function stalledWs(node: NodeProcess, path: string): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: node.host, port: node.httpPort });
  await writeAll(
    conn,
    text.encode(
      `GET /${path}.flv HTTP/1.1\r\nHost: ${node.host}:${node.httpPort}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ),
  );
  const buf = new Uint8Array(1024);
  const n = await conn.read(buf);
  assert.ok(n, "stalled ws player got no response");
  assert.match(new TextDecoder().decode(buf.subarray(0, n)), /^HTTP\/1\.1 101/);
  return conn;
}

/** RTMP: handshake, connect, createStream, play, then never reads again. */
async function stalledRtmp(node: NodeProcess, path: string): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: node.host, port: node.rtmpPort });
  await clientHandshake(conn);
  const [app, name] = path.split("/");
  const cmd = (sid: number, values: Parameters<typeof encodeAmf0>[0]) =>
    encodeChunks(3, MessageType.CommandAmf0, sid, 0, encodeAmf0(values), 128);
  await writeAll(conn, cmd(0, ["connect", 1, { app: app!, tcUrl: node.rtmpUrl(app!) }]));
  await writeAll(conn, cmd(0, ["createStream", 2, null]));
  await writeAll(conn, cmd(1, ["play", 0, null, name!, -2]));
  return conn;
}

/** Reads server WebSocket frames (unmasked) until a Close frame; returns its code and reason. */
async function drainWsUntilClose(
  conn: Deno.Conn,
  timeoutMs: number,
): Promise<{ code: number; reason: string }> {
  const deadline = performance.now() + timeoutMs;
  let buf = new Uint8Array(0);
  const chunk = new Uint8Array(256 * 1024);
  for (;;) {
    // Parse whole frames from the front of `buf`.
    for (;;) {
      if (buf.byteLength < 2) break;
      const opcode = buf[0]! & 0x0f;
      let len = buf[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.byteLength < 4) break;
        len = (buf[2]! << 8) | buf[3]!;
        off = 4;
      } else if (len === 127) {
        if (buf.byteLength < 10) break;
        len = Number(new DataView(buf.buffer, buf.byteOffset + 2, 8).getBigUint64(0));
        off = 10;
      }
      if (buf.byteLength < off + len) break;
      const body = buf.subarray(off, off + len);
      if (opcode === 0x8) {
        const code = len >= 2 ? (body[0]! << 8) | body[1]! : 1005;
        return { code, reason: new TextDecoder().decode(body.subarray(2)) };
      }
      buf = buf.subarray(off + len);
    }
    if (performance.now() > deadline) throw new Error("no WebSocket Close frame from the server");
    const n = await conn.read(chunk);
    if (n === null) throw new Error("connection closed without a WebSocket Close frame");
    const next = new Uint8Array(buf.byteLength + n);
    next.set(buf);
    next.set(chunk.subarray(0, n), buf.byteLength);
    buf = next;
  }
}

Deno.test("slow player: stalled HTTP-FLV, WS-FLV and RTMP players do not slow others and are disconnected", async () => {
  await using node = await startNode(
    { flv: { player_queue_frames: 40, player_stall_timeout: 1.5 } },
    { label: "stalled-reader" },
  );
  const path = "live/stall";
  // ~8 Mbit/s constant bitrate (x264 filler): the stalled sockets' kernel buffers fill in
  // seconds, so the server-side queues back up soon after.
  const cbr = [
    "-b:v",
    "8M",
    "-minrate",
    "8M",
    "-maxrate",
    "8M",
    "-bufsize",
    "1M",
    "-x264-params",
    "nal-hrd=cbr",
  ];
  await using _pub = publish(node.rtmpUrl(path), { seconds: 60, fps: FPS, gop: FPS, extraArgs: cbr });
  await waitFor(async () => ((await node.stream(path))?.frames_in ?? 0) > 30, 15_000, {
    message: "stream live",
  });

  const baseline = await measureRate(node.flvUrl(path), 2500);
  assert.ok(baseline.fps > FPS * 0.8, `baseline player got ${baseline.fps.toFixed(1)} fps`);

  const stalled: Deno.TcpConn[] = [];
  try {
    stalled.push(await stalledHttp(node, path), await stalledWs(node, path), await stalledRtmp(node, path));
    await waitFor(
      async () => {
        const p = (await node.stream(path))?.players;
        return p?.["http-flv"] === 1 && p["ws-flv"] === 1 && p.rtmp === 1;
      },
      5000,
      { message: "one stalled player per protocol" },
    );

    const t0 = performance.now();
    const withStalled = await measureRate(node.flvUrl(path), 3000);
    assert.ok(
      withStalled.fps > FPS * 0.8,
      `player next to stalled ones got ${withStalled.fps.toFixed(1)} fps`,
    );
    assert.ok(
      withStalled.fps > baseline.fps * 0.85,
      `rate dropped from ${baseline.fps.toFixed(1)} to ${withStalled.fps.toFixed(1)} fps`,
    );

    // The stalled players are dropped: the player count falls back to zero.
    await waitFor(async () => (await node.stream(path))?.players.total === 0, 30_000, {
      message: "stalled players disconnected",
    });
    console.log(`stalled players dropped within ${Math.round(performance.now() - t0)} ms`);
    const stallLines = node.logs().split("\n").filter((l) => l.includes("reason=stalled"));
    for (const who of ["protocol=http-flv", "protocol=ws-flv", "svc=rtmp"]) {
      assert.ok(
        stallLines.some((l) => l.includes(who)),
        `no stall drop logged for ${who}:\n${stallLines.join("\n")}`,
      );
    }
    assert.doesNotMatch(node.logs(), /rtmp play failed/);
    // Their connections are closed by the server: draining what the kernel buffered ends in
    // EOF for HTTP and RTMP; the WebSocket gets a Close frame and ends once we answer it
    // (Deno cannot drop a server WebSocket's TCP connection without the close handshake).
    const [http, ws, rtmp] = stalled.splice(0);
    assert.notEqual(await waitForClose(http!, 10_000), null, "stalled http connection still open");
    assert.notEqual(await waitForClose(rtmp!, 10_000), null, "stalled rtmp connection still open");
    const close = await drainWsUntilClose(ws!, 10_000);
    assert.equal(close.code, 1000);
    assert.match(close.reason, /stalled/);
    await writeAll(ws!, new Uint8Array([0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2])); // masked Close 1000
    assert.notEqual(await waitForClose(ws!, 5000), null, "ws connection open after the close handshake");
  } finally {
    for (const conn of stalled) {
      try {
        conn.close();
      } catch {
        // closed already
      }
    }
  }
  // The node still serves new players normally.
  const after = await measureRate(node.flvUrl(path), 1500);
  assert.ok(after.fps > FPS * 0.7, `player after the drop got ${after.fps.toFixed(1)} fps`);
});
