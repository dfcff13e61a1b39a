import assert from "node:assert/strict";
import { TAG_HEADER_SIZE } from "../flv/mod.ts";
import { ChunkReader, encodeChunks, MessageType, type RtmpMessage, RtmpProtocolError } from "./mod.ts";

function payload(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/** Feeds `bytes` in pieces of `step` bytes (Infinity = all at once) and returns the messages. */
function feed(reader: ChunkReader, bytes: Uint8Array, step = Infinity): RtmpMessage[] {
  const out: RtmpMessage[] = [];
  const n = Number.isFinite(step) ? step : Math.max(1, bytes.byteLength);
  for (let i = 0; i < bytes.byteLength; i += n) {
    reader.push(bytes.subarray(i, i + n), (m) => out.push({ ...m, payload: m.payload.slice() }));
  }
  return out;
}

function readerWithChunkSize(size: number, max = 16 * 1024 * 1024): ChunkReader {
  const r = new ChunkReader(max);
  r.setChunkSize(size);
  return r;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** Splits encodeChunks output into its chunks (header + body each). */
function splitChunks(bytes: Uint8Array, len: number, chunkSize: number, extended: boolean): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let p = 0;
  let left = len;
  let first = true;
  do {
    const header = first ? 12 + (extended ? 4 : 0) : 1 + (extended ? 4 : 0);
    const body = Math.min(chunkSize, left);
    chunks.push(bytes.subarray(p, p + header + body));
    p += header + body;
    left -= body;
    first = false;
  } while (left > 0);
  assert.equal(p, bytes.byteLength);
  return chunks;
}

Deno.test("chunks: encode → read round trips across chunk sizes, payload sizes and 1-byte splits", () => {
  for (const chunkSize of [128, 129, 4096, 65536]) {
    for (const len of [0, 1, 127, 128, 129, 4095, 4097, 70_000]) {
      const body = payload(len, len);
      const bytes = encodeChunks(3, MessageType.CommandAmf0, 1, 1234, body, chunkSize);
      for (const step of [Infinity, 1, 7, 4096]) {
        if (step === 1 && len > 5000 && chunkSize !== 128) continue; // keep the slow path bounded
        const msgs = feed(readerWithChunkSize(chunkSize), bytes, step);
        assert.equal(msgs.length, 1, `chunkSize ${chunkSize} len ${len} step ${step}`);
        const m = msgs[0]!;
        assert.equal(m.csid, 3);
        assert.equal(m.type, MessageType.CommandAmf0);
        assert.equal(m.streamId, 1);
        assert.equal(m.timestamp, 1234);
        assert.deepEqual(m.payload, body);
        assert.equal(m.tagBuffer, null);
      }
    }
  }
});

Deno.test("chunks: audio/video payloads land inside an FLV tag buffer", () => {
  const body = payload(300);
  const msgs = feed(readerWithChunkSize(128), encodeChunks(6, MessageType.Video, 1, 40, body, 128), 1);
  const m = msgs[0]!;
  assert.ok(m.tagBuffer);
  assert.equal(m.tagBuffer.byteLength, TAG_HEADER_SIZE + 300 + 4);
  assert.deepEqual(m.tagBuffer.subarray(TAG_HEADER_SIZE, TAG_HEADER_SIZE + 300), body);
});

Deno.test("chunks: the reader follows SetChunkSize between messages", () => {
  const r = new ChunkReader(1 << 20);
  const a = encodeChunks(3, MessageType.CommandAmf0, 0, 0, payload(500), 128);
  const b = encodeChunks(3, MessageType.CommandAmf0, 0, 0, payload(500, 9), 300);
  assert.equal(feed(r, a).length, 1);
  r.setChunkSize(300);
  const got = feed(r, b, 3);
  assert.deepEqual(got[0]!.payload, payload(500, 9));
});

Deno.test("chunks: interleaved chunk streams reassemble independently", () => {
  const cs = 128;
  const video = payload(1000, 3);
  const audio = payload(300, 5);
  const v = splitChunks(encodeChunks(6, MessageType.Video, 1, 80, video, cs), 1000, cs, false);
  const a = splitChunks(encodeChunks(4, MessageType.Audio, 1, 70, audio, cs), 300, cs, false);
  const mixed: Uint8Array[] = [];
  for (let i = 0; i < Math.max(v.length, a.length); i++) {
    if (v[i]) mixed.push(v[i]!);
    if (a[i]) mixed.push(a[i]!);
  }
  for (const step of [Infinity, 1]) {
    const msgs = feed(readerWithChunkSize(cs), concat(...mixed), step);
    assert.deepEqual(msgs.map((m) => [m.csid, m.timestamp]), [[4, 70], [6, 80]]);
    assert.deepEqual(msgs[0]!.payload, audio);
    assert.deepEqual(msgs[1]!.payload, video);
  }
});

Deno.test("chunks: extended timestamps (> 0xFFFFFF) ride on every type-3 continuation chunk", () => {
  const ts = 0x1000000 + 12345;
  const body = payload(400);
  const bytes = encodeChunks(6, MessageType.Video, 1, ts, body, 128);
  const chunks = splitChunks(bytes, 400, 128, true);
  assert.equal(chunks.length, 4);
  assert.deepEqual([...chunks[0]!.subarray(1, 4)], [0xff, 0xff, 0xff]);
  for (const c of chunks.slice(1)) {
    assert.equal(c[0], 0xc0 | 6);
    assert.equal(new DataView(c.buffer, c.byteOffset + 1).getUint32(0), ts);
  }
  for (const step of [Infinity, 1, 5]) {
    const m = feed(readerWithChunkSize(128), bytes, step)[0]!;
    assert.equal(m.timestamp, ts);
    assert.deepEqual(m.payload, body);
  }
  // The largest 32-bit timestamp, and exactly 0xFFFFFF (which must use the extended form).
  for (const t of [0xffffffff, 0xffffff]) {
    const m = feed(readerWithChunkSize(128), encodeChunks(6, MessageType.Video, 1, t, body, 128), 1)[0]!;
    assert.equal(m.timestamp, t);
  }
});

/** A chunk with an explicit basic header format; only for single-chunk messages. */
function rawChunk(
  fmt: 0 | 1 | 2 | 3,
  csid: number,
  fields: { ts?: number; len?: number; type?: number; streamId?: number; ext?: number },
  body: Uint8Array,
): Uint8Array {
  const out: number[] = [];
  if (csid < 64) out.push((fmt << 6) | csid);
  else if (csid < 320) out.push(fmt << 6, csid - 64);
  else out.push((fmt << 6) | 1, (csid - 64) & 0xff, (csid - 64) >> 8);
  const ts = fields.ts ?? 0;
  if (fmt <= 2) out.push((ts >> 16) & 0xff, (ts >> 8) & 0xff, ts & 0xff);
  if (fmt <= 1) {
    const len = fields.len ?? body.byteLength;
    out.push((len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff, fields.type ?? MessageType.Audio);
  }
  if (fmt === 0) {
    const sid = fields.streamId ?? 1;
    out.push(sid & 0xff, (sid >> 8) & 0xff, (sid >> 16) & 0xff, (sid >>> 24) & 0xff);
  }
  if (fields.ext !== undefined) {
    out.push(
      (fields.ext >>> 24) & 0xff,
      (fields.ext >> 16) & 0xff,
      (fields.ext >> 8) & 0xff,
      fields.ext & 0xff,
    );
  }
  return concat(new Uint8Array(out), body);
}

Deno.test("chunks: fmt 1/2/3 headers reuse the previous header and accumulate deltas", () => {
  const b = payload(10);
  const bytes = concat(
    rawChunk(0, 4, { ts: 1000, type: MessageType.Audio, streamId: 1 }, b),
    rawChunk(1, 4, { ts: 23, len: 10, type: MessageType.Audio }, b), // delta 23 → 1023
    rawChunk(2, 4, { ts: 24 }, b), // same length/type, delta 24 → 1047
    rawChunk(3, 4, {}, b), // repeats delta 24 → 1071
    rawChunk(3, 4, {}, b), // → 1095
    rawChunk(1, 4, { ts: 0xffffff, len: 10, type: MessageType.Audio, ext: 0x1000000 }, b), // extended delta
    rawChunk(3, 4, { ext: 0x1000000 }, b), // extended delta repeated (the 4 bytes are present)
  );
  for (const step of [Infinity, 1]) {
    const msgs = feed(new ChunkReader(1 << 20), bytes, step);
    assert.deepEqual(
      msgs.map((m) => m.timestamp),
      [1000, 1023, 1047, 1071, 1095, 1095 + 0x1000000, 1095 + 2 * 0x1000000],
    );
    assert.ok(
      msgs.every((m) => m.streamId === 1 && m.type === MessageType.Audio && m.payload.byteLength === 10),
    );
  }
});

Deno.test("chunks: 2- and 3-byte basic headers address chunk streams 64..65599", () => {
  const b = payload(20);
  const bytes = concat(
    rawChunk(0, 100, { ts: 5, type: MessageType.Video }, b),
    rawChunk(0, 1000, { ts: 6, type: MessageType.Audio }, b),
  );
  for (const step of [Infinity, 1]) {
    const msgs = feed(new ChunkReader(1 << 20), bytes, step);
    assert.deepEqual(msgs.map((m) => [m.csid, m.type, m.timestamp]), [[100, 9, 5], [1000, 8, 6]]);
  }
});

Deno.test("chunks: a short read is 'need more', never an error", () => {
  const bytes = encodeChunks(3, MessageType.CommandAmf0, 0, 7, payload(300), 128);
  const r = readerWithChunkSize(128);
  for (const cut of [1, 5, 12, 100, 140, 141, 200]) {
    const got: RtmpMessage[] = [];
    const reader = readerWithChunkSize(128);
    reader.push(bytes.subarray(0, cut), (m) => got.push(m));
    assert.equal(got.length, 0, `message emitted after ${cut} bytes`);
    reader.push(bytes.subarray(cut), (m) => got.push(m));
    assert.equal(got.length, 1);
  }
  assert.equal(feed(r, bytes).length, 1);
  assert.equal(r.bytesReceived, bytes.byteLength);
});

Deno.test("chunks: a message longer than the maximum is refused at its header", () => {
  const r = new ChunkReader(1024);
  const header = rawChunk(0, 3, { len: 0xffffff, type: MessageType.CommandAmf0 }, new Uint8Array(0));
  assert.throws(() => feed(r, header), RtmpProtocolError);
  const r2 = new ChunkReader(1024);
  assert.throws(
    () => feed(r2, encodeChunks(3, MessageType.CommandAmf0, 0, 0, payload(1025), 128), 1),
    RtmpProtocolError,
  );
  // Exactly the maximum is fine.
  const ok = feed(
    new ChunkReader(1024),
    encodeChunks(3, MessageType.CommandAmf0, 0, 0, payload(1024), 128),
    1,
  );
  assert.equal(ok.length, 1);
});

Deno.test("chunks: a chunk stream must start with a full (fmt 0) header", () => {
  for (const fmt of [1, 2, 3] as const) {
    const r = new ChunkReader(1 << 20);
    assert.throws(
      () => feed(r, rawChunk(fmt, 5, { ts: 1, len: 4, type: MessageType.Audio }, payload(4))),
      RtmpProtocolError,
      `fmt ${fmt} accepted on a new chunk stream`,
    );
  }
});

Deno.test("chunks: a new header inside an unfinished message is refused", () => {
  const r = readerWithChunkSize(128);
  const first = splitChunks(encodeChunks(6, MessageType.Video, 1, 0, payload(300), 128), 300, 128, false)[0]!;
  feed(r, first);
  assert.throws(
    () => feed(r, rawChunk(0, 6, { ts: 40, type: MessageType.Video }, payload(10))),
    RtmpProtocolError,
  );
});

Deno.test("chunks: Abort drops a partial message; the chunk stream then starts over", () => {
  const r = readerWithChunkSize(128);
  const chunks = splitChunks(encodeChunks(6, MessageType.Video, 1, 0, payload(300), 128), 300, 128, false);
  assert.equal(feed(r, chunks[0]!).length, 0);
  r.abort(6);
  const msgs = feed(r, encodeChunks(6, MessageType.Video, 1, 80, payload(50, 2), 128));
  assert.equal(msgs.length, 1);
  assert.deepEqual(msgs[0]!.payload, payload(50, 2));
});

Deno.test("chunks: chunk size and chunk stream count are bounded", () => {
  const r = new ChunkReader(4096);
  assert.throws(() => r.setChunkSize(0), RtmpProtocolError);
  r.setChunkSize(0x7fffffff);
  assert.equal(r.chunkSize, 4096, "chunk size is capped at the largest message");
  const many = new ChunkReader(1 << 20);
  assert.throws(() => {
    for (let csid = 2; csid < 2 + 200; csid++) {
      feed(many, rawChunk(0, csid, { ts: 0, type: MessageType.Audio }, payload(1)));
    }
  }, RtmpProtocolError);
});

Deno.test("chunks: the writer only addresses single-byte chunk stream ids", () => {
  assert.throws(() => encodeChunks(1, MessageType.Audio, 1, 0, payload(1), 128), RangeError);
  assert.throws(() => encodeChunks(64, MessageType.Audio, 1, 0, payload(1), 128), RangeError);
});

Deno.test("chunks: a small message limit still accepts full socket reads of many messages", () => {
  // max_message_size may be as low as 1 KiB while the session reads 64 KiB at a time: a read
  // that completes a pending chunk and carries many more must not overflow the input buffer.
  const r = new ChunkReader(1024);
  r.setChunkSize(1024);
  const one = (i: number) => encodeChunks(6, MessageType.Video, 1, i * 40, payload(1000, i), 1024);
  const stream = concat(...Array.from({ length: 300 }, (_, i) => one(i)));
  const got: RtmpMessage[] = [];
  const cut = 500; // leave half a chunk pending before each 64 KiB read
  r.push(stream.subarray(0, cut), (m) => got.push(m));
  for (let off = cut; off < stream.byteLength; off += 65536) {
    r.push(stream.subarray(off, off + 65536), (m) => got.push(m));
  }
  assert.equal(got.length, 300);
  assert.deepEqual(got.map((m) => m.timestamp), Array.from({ length: 300 }, (_, i) => i * 40));
});

Deno.test("chunks: at most 8 messages in progress; a large declared length is not allocated up front", () => {
  const reader = new ChunkReader(8 * 1024 * 1024);
  const big = new Uint8Array(4 * 1024 * 1024);
  const firstChunkOf = (csid: number) =>
    encodeChunks(csid, MessageType.CommandAmf0, 0, 0, big, 128).subarray(0, 12 + 128);
  for (let csid = 3; csid < 3 + 8; csid++) {
    reader.push(firstChunkOf(csid), () => assert.fail("no message yet"));
  }
  assert.throws(() => reader.push(firstChunkOf(20), () => {}), RtmpProtocolError);
});

Deno.test("chunks: a message larger than the initial buffer grows and arrives intact", () => {
  const reader = new ChunkReader(8 * 1024 * 1024);
  reader.setChunkSize(4096);
  const body = new Uint8Array(300_000).map((_, i) => i * 7);
  const got: RtmpMessage[] = [];
  const bytes = encodeChunks(6, MessageType.Video, 1, 40, body, 4096);
  for (let off = 0; off < bytes.byteLength; off += 1000) {
    reader.push(bytes.subarray(off, off + 1000), (m) => got.push(m));
  }
  assert.equal(got.length, 1);
  assert.deepEqual(got[0]!.payload, body);
  assert.equal(
    got[0]!.tagBuffer!.byteLength,
    body.byteLength + 15,
    "tag buffer is exactly header + body + trailer",
  );
});
