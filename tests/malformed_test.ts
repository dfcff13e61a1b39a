/**
 * Hostile and broken input: every bad connection is closed promptly, and a stream that is
 * being played at the same time never notices.
 */

import assert from "node:assert/strict";
import { encodeAmf0 } from "../src/amf/mod.ts";
import { encodeChunks } from "../src/rtmp/mod.ts";
import { assertFlvStart, assertMonotonicTags, H264_AAC_320x240 } from "./helpers/checks.ts";
import { isCodedVideo, publish, readFlv } from "./helpers/media.ts";
import { type NodeProcess, startNode } from "./helpers/node.ts";
import { clientHandshake, waitForClose, writeAll } from "./helpers/rtmp.ts";
import { waitFor } from "./helpers/wait.ts";

function random(n: number, first?: number): Uint8Array {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  if (first !== undefined) b[0] = first;
  return b;
}

async function rtmpConn(node: NodeProcess): Promise<Deno.TcpConn> {
  return await Deno.connect({ hostname: node.host, port: node.rtmpPort });
}

/** Sends `bytes` (ignoring a reset while writing) and returns how long the server took to close. */
async function sendAndAwaitClose(conn: Deno.TcpConn, bytes: Uint8Array, timeoutMs = 3000): Promise<number> {
  try {
    await writeAll(conn, bytes);
  } catch {
    // the server may already have closed
  }
  const ms = await waitForClose(conn, timeoutMs);
  assert.notEqual(ms, null, `connection still open ${timeoutMs} ms after the bad input`);
  return ms!;
}

Deno.test("malformed input: bad connections are closed and a live stream keeps playing", async (t) => {
  await using node = await startNode(
    { rtmp: { handshake_timeout: 1.5, max_message_size: 1024 * 1024 } },
    { label: "malformed" },
  );
  const path = "live/steady";
  await using _pub = publish(node.rtmpUrl(path), { seconds: 60 });
  await waitFor(async () => (await node.stream(path))?.video.codec === "h264", 15_000, {
    message: "stream live",
  });
  const publisherBefore = (await node.stream(path))!.publisher;

  let video = 0;
  const stop = new AbortController();
  const playerP = readFlv(node.flvUrl(path), {
    timeoutMs: 60_000,
    signal: stop.signal,
    onTag: (tag) => {
      if (isCodedVideo(tag)) video++;
    },
  });
  /** The player that was already watching keeps receiving ~real-time frames. */
  const stillFlowing = async (what: string) => {
    const mark = video;
    await waitFor(() => video >= mark + 12, 2000, { message: `frames flowing after ${what}` });
  };

  try {
    await stillFlowing("start");

    await t.step("garbage on the RTMP port", async () => {
      const ms = await sendAndAwaitClose(await rtmpConn(node), random(4096, 0xfe));
      assert.ok(ms < 1400, `closed after ${Math.round(ms)} ms (handshake timeout, not the bad bytes)`);
      await stillFlowing("RTMP garbage");
    });

    await t.step("wrong RTMP version byte (RTMPE 6) gets no S0/S1", async () => {
      const conn = await rtmpConn(node);
      const c0c1 = random(1537, 6);
      await writeAll(conn, c0c1);
      const buf = new Uint8Array(4096);
      const n = await conn.read(buf).catch(() => null);
      assert.equal(n, null, "server answered a bad version");
      conn.close();
      await stillFlowing("bad version");
    });

    await t.step("a chunk announcing a 16 MiB message is refused at its header", async () => {
      const conn = await rtmpConn(node);
      await clientHandshake(conn);
      // fmt 0, csid 3, timestamp 0, length 0xFFFFFF, type 20 (AMF0 command), stream 0, then a few bytes.
      const header = new Uint8Array([0x03, 0, 0, 0, 0xff, 0xff, 0xff, 20, 0, 0, 0, 0]);
      const ms = await sendAndAwaitClose(conn, new Uint8Array([...header, ...random(100)]));
      assert.ok(ms < 1400, `closed after ${Math.round(ms)} ms`);
      await stillFlowing("huge message");
    });

    await t.step("a chunk stream that starts without a full header", async () => {
      const conn = await rtmpConn(node);
      await clientHandshake(conn);
      // fmt 1 on a chunk stream never seen before.
      await sendAndAwaitClose(conn, new Uint8Array([0x40 | 5, 0, 0, 0, 0, 0, 4, 20, 1, 2, 3, 4]));
      await stillFlowing("unknown first header");
    });

    await t.step("a command that is not AMF0", async () => {
      const conn = await rtmpConn(node);
      await clientHandshake(conn);
      await sendAndAwaitClose(conn, encodeChunks(3, 20, 0, 0, new Uint8Array([0x02, 0xff, 0xff, 0x41]), 128));
      await stillFlowing("bad AMF");
    });

    await t.step("publishing a path that is live, after a valid connect", async () => {
      const conn = await rtmpConn(node);
      await clientHandshake(conn);
      await writeAll(
        conn,
        encodeChunks(
          3,
          20,
          0,
          0,
          encodeAmf0(["connect", 1, { app: "live", tcUrl: node.rtmpUrl("live") }]),
          128,
        ),
      );
      await writeAll(conn, encodeChunks(3, 20, 0, 0, encodeAmf0(["createStream", 2, null]), 128));
      await writeAll(
        conn,
        encodeChunks(3, 20, 1, 0, encodeAmf0(["publish", 0, null, "steady", "live"]), 128),
      );
      await sendAndAwaitClose(conn, new Uint8Array(0));
      await stillFlowing("refused publisher");
    });

    await t.step("a client that stops mid-handshake is dropped after handshake_timeout", async () => {
      const conn = await rtmpConn(node);
      await writeAll(conn, new Uint8Array([3, 0, 0, 0]));
      const ms = await waitForClose(conn, 5000);
      assert.notEqual(ms, null, "half handshake never timed out");
      assert.ok(ms! >= 1200, `closed after ${Math.round(ms!)} ms, before handshake_timeout`);
      await stillFlowing("handshake timeout");
    });

    await t.step("garbage on the HTTP port", async () => {
      const conn = await Deno.connect({ hostname: node.host, port: node.httpPort });
      await sendAndAwaitClose(conn, new Uint8Array([0x16, 0x03, 0x01, 0x00, ...random(1024)]));
      await stillFlowing("HTTP garbage");
    });

    await t.step("a bogus HTTP request line and header block", async () => {
      const conn = await Deno.connect({ hostname: node.host, port: node.httpPort });
      const junk = new TextEncoder().encode(
        `GET /${path}.flv HTTP/1.1\r\nHost\x00: \x01\x02\r\n${"x".repeat(70_000)}\r\n\r\n`,
      );
      await sendAndAwaitClose(conn, junk);
      await stillFlowing("bad HTTP request");
    });
  } finally {
    stop.abort();
  }
  const player = await playerP;
  assertFlvStart(player, H264_AAC_320x240, "player during the attacks");
  assertMonotonicTags(player.tags, "player during the attacks");

  // The node is intact: same publisher, new players start normally on every path.
  assert.deepEqual((await node.stream(path))?.publisher, publisherBefore);
  const fresh = await readFlv(node.flvUrl(path), { maxVideoFrames: 5, timeoutMs: 5000 });
  assertFlvStart(fresh, H264_AAC_320x240, "new player after the attacks");
  // And a well-behaved RTMP client still completes a handshake.
  const conn = await rtmpConn(node);
  await clientHandshake(conn);
  conn.close();
});
