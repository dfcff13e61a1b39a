import assert from "node:assert/strict";
import {
  DEFAULT_MAX_TAG_SIZE,
  encodedTagSize,
  encodeTag,
  encodeTagInto,
  FLV_HEADER_AV,
  FlvDemuxer,
  flvHeader,
  type FlvTag,
  TAG_HEADER_SIZE,
  writeTagHeader,
} from "./mod.ts";

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

function chunked(bytes: Uint8Array, sizes: () => number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let pos = 0; pos < bytes.byteLength;) {
    const n = Math.max(1, sizes());
    out.push(bytes.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

function demuxAll(chunks: Uint8Array[], demuxer = new FlvDemuxer()): FlvTag[] {
  return chunks.flatMap((c) => demuxer.push(c));
}

const SAMPLE_TAGS: FlvTag[] = [
  { type: 18, timestamp: 0, data: new Uint8Array([2, 0, 1, 0x61]) },
  { type: 9, timestamp: 0, data: new Uint8Array([0x17, 0, 0, 0, 0, 1, 2, 3]) },
  { type: 8, timestamp: 23, data: new Uint8Array([0xaf, 1, 9, 9]) },
  { type: 9, timestamp: 0x00ffffff, data: new Uint8Array([0x27, 1]) },
  { type: 9, timestamp: 0x01000005, data: new Uint8Array(0) },
  { type: 8, timestamp: 0x80000001, data: new Uint8Array(70000).fill(7) },
  { type: 9, timestamp: 0xffffffff, data: new Uint8Array([0x27]) },
];

const SAMPLE_STREAM = concat([FLV_HEADER_AV, ...SAMPLE_TAGS.map(encodeTag)]);

Deno.test("FLV header bytes", () => {
  assert.deepStrictEqual(Array.from(FLV_HEADER_AV), [0x46, 0x4c, 0x56, 1, 5, 0, 0, 0, 9, 0, 0, 0, 0]);
  assert.equal(flvHeader(true, false)[4], 4);
  assert.equal(flvHeader(false, true)[4], 1);
  assert.equal(flvHeader(false, false).byteLength, 13);
});

Deno.test("tag header layout, with the extended timestamp byte", () => {
  const buf = new Uint8Array(TAG_HEADER_SIZE + 2).fill(0xee);
  writeTagHeader(buf, 1, 9, 0x12345678, 0xabcdef);
  assert.deepStrictEqual(
    Array.from(buf),
    [0xee, 9, 0xab, 0xcd, 0xef, 0x34, 0x56, 0x78, 0x12, 0, 0, 0, 0xee],
  );
  assert.throws(() => writeTagHeader(buf, 0, 9, 0, 0x1000000), RangeError);
  assert.throws(() => writeTagHeader(buf, 3, 9, 0, 1), RangeError);
});

Deno.test("timestamps past 2^32 wrap like FLV", () => {
  const t = encodeTag({ type: 8, timestamp: 2 ** 32 + 10, data: new Uint8Array(1) });
  assert.deepStrictEqual(Array.from(t.subarray(4, 8)), [0, 0, 10, 0]);
});

Deno.test("encodeTag writes header, body and PreviousTagSize", () => {
  const t = encodeTag({ type: 8, timestamp: 1000, data: new Uint8Array([0xaf, 0x01, 0x21]) });
  assert.deepStrictEqual(
    Array.from(t),
    [8, 0, 0, 3, 0, 0x03, 0xe8, 0, 0, 0, 0, 0xaf, 0x01, 0x21, 0, 0, 0, 14],
  );
  assert.equal(encodedTagSize(3), t.byteLength);
});

Deno.test("encodeTagInto packs tags back to back", () => {
  const buf = new Uint8Array(encodedTagSize(2) + encodedTagSize(0));
  let off = encodeTagInto(buf, 0, { type: 9, timestamp: 1, data: new Uint8Array([1, 2]) });
  off = encodeTagInto(buf, off, { type: 8, timestamp: 2, data: new Uint8Array(0) });
  assert.equal(off, buf.byteLength);
  assert.throws(
    () => encodeTagInto(buf, buf.byteLength - 14, { type: 8, timestamp: 0, data: new Uint8Array(0) }),
    RangeError,
  );
  const tags = new FlvDemuxer().push(concat([FLV_HEADER_AV, buf]));
  assert.deepStrictEqual(tags.map((t) => [t.type, t.timestamp, t.data.byteLength]), [[9, 1, 2], [8, 2, 0]]);
});

Deno.test("demuxer round-trips tags in one chunk", () => {
  const d = new FlvDemuxer();
  assert.deepStrictEqual(d.push(SAMPLE_STREAM), SAMPLE_TAGS);
  assert.deepStrictEqual(d.header, { version: 1, hasAudio: true, hasVideo: true });
  assert.equal(d.buffered, 0);
});

Deno.test("demuxer reassembles tags split into 1-byte chunks", () => {
  const d = new FlvDemuxer();
  const tags = demuxAll(chunked(SAMPLE_STREAM, () => 1), d);
  assert.deepStrictEqual(tags, SAMPLE_TAGS);
  assert.equal(d.buffered, 0);
});

Deno.test("demuxer reassembles tags across random chunkings", () => {
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (let i = 0; i < 50; i++) {
    const max = [3, 17, 300, 5000, 100000][i % 5]!;
    assert.deepStrictEqual(demuxAll(chunked(SAMPLE_STREAM, () => Math.floor(rand() * max))), SAMPLE_TAGS);
  }
});

Deno.test("demuxer reads full 32-bit timestamps", () => {
  const tags = new FlvDemuxer().push(SAMPLE_STREAM);
  assert.deepStrictEqual(
    tags.map((t) => t.timestamp),
    [0, 0, 23, 0x00ffffff, 0x01000005, 0x80000001, 0xffffffff],
  );
});

Deno.test("demuxed tag data is an owned copy", () => {
  const input = SAMPLE_STREAM.slice();
  const whole = new FlvDemuxer().push(input);
  const split = demuxAll(chunked(input, () => 5));
  input.fill(0);
  assert.deepStrictEqual(whole, SAMPLE_TAGS);
  assert.deepStrictEqual(split, SAMPLE_TAGS);
  for (const t of whole) assert.equal(t.data.byteOffset, 0);
});

Deno.test("partial tags stay buffered", () => {
  const d = new FlvDemuxer();
  assert.deepStrictEqual(d.push(SAMPLE_STREAM.subarray(0, 20)), []);
  assert.equal(d.buffered, 7);
  assert.equal(d.push(SAMPLE_STREAM.subarray(20)).length, SAMPLE_TAGS.length);
});

Deno.test("header data offset beyond 9 bytes is skipped", () => {
  const header = new Uint8Array([0x46, 0x4c, 0x56, 1, 1, 0, 0, 0, 12, 0xaa, 0xbb, 0xcc, 0, 0, 0, 0]);
  const tag = encodeTag({ type: 9, timestamp: 5, data: new Uint8Array([0x17, 1, 0, 0, 0]) });
  for (const chunks of [[concat([header, tag])], chunked(concat([header, tag]), () => 1)]) {
    const d = new FlvDemuxer();
    const tags = demuxAll(chunks, d);
    assert.equal(tags.length, 1);
    assert.equal(tags[0]!.timestamp, 5);
    assert.deepStrictEqual(d.header, { version: 1, hasAudio: false, hasVideo: true });
  }
});

Deno.test("garbage header is a SyntaxError", () => {
  assert.throws(() => new FlvDemuxer().push(new TextEncoder().encode("GET / HTTP/1.1\r\n")), SyntaxError);
  const d = new FlvDemuxer();
  d.push(new Uint8Array([0x46, 0x4c]));
  assert.throws(() => d.push(new Uint8Array([0x58, 1, 5, 0, 0, 0, 9])), /signature/);
  const short = new Uint8Array([0x46, 0x4c, 0x56, 1, 5, 0, 0, 0, 8]);
  assert.throws(() => new FlvDemuxer().push(short), SyntaxError);
});

Deno.test("bad tag type is a SyntaxError and the demuxer stays failed", () => {
  const bad = encodeTag({ type: 7, timestamp: 0, data: new Uint8Array(3) });
  const d = new FlvDemuxer();
  assert.throws(() => d.push(concat([FLV_HEADER_AV, bad])), /tag type 7/);
  assert.throws(() => d.push(encodeTag(SAMPLE_TAGS[1]!)), /tag type 7/);
});

Deno.test("encrypted (filter bit) tags are a SyntaxError", () => {
  const tag = encodeTag({ type: 8, timestamp: 0, data: new Uint8Array(1) });
  tag[0] = 0x28;
  assert.throws(() => new FlvDemuxer().push(concat([FLV_HEADER_AV, tag])), /encrypted/);
});

Deno.test("oversize tag is a RangeError before its body arrives", () => {
  const d = new FlvDemuxer({ maxTagSize: 1000 });
  assert.equal(d.maxTagSize, 1000);
  assert.equal(new FlvDemuxer().maxTagSize, DEFAULT_MAX_TAG_SIZE);
  const header = new Uint8Array(TAG_HEADER_SIZE);
  writeTagHeader(header, 0, 9, 0, 1001);
  assert.throws(() => d.push(concat([FLV_HEADER_AV, header])), RangeError);
  const ok = new FlvDemuxer({ maxTagSize: 1000 });
  assert.equal(
    ok.push(concat([FLV_HEADER_AV, encodeTag({ type: 9, timestamp: 0, data: new Uint8Array(1000) })])).length,
    1,
  );
});

Deno.test("random bytes after a valid header raise only SyntaxError or RangeError", () => {
  let seed = 99;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (let i = 0; i < 2000; i++) {
    const d = new FlvDemuxer({ maxTagSize: 4096 });
    const junk = new Uint8Array(Math.floor(rand() * 200));
    for (let j = 0; j < junk.length; j++) {
      junk[j] = rand() < 0.5 ? [8, 9, 18, 0][j % 4]! : Math.floor(rand() * 256);
    }
    try {
      demuxAll(chunked(concat([FLV_HEADER_AV, junk]), () => Math.floor(rand() * 40)), d);
    } catch (e) {
      if (!(e instanceof SyntaxError) && !(e instanceof RangeError)) throw e;
    }
  }
});
