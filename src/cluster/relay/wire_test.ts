/**
 * The relay framing: round trips whatever way the stream chunks the bytes, "need more" vs
 * malformed input (unknown kind, oversize frames), control JSON errors, and HEADERS runs.
 */

import assert from "node:assert/strict";
import { concatBytes } from "../../bytes/mod.ts";
import { makeFrame, TagType } from "../../media/mod.ts";
import {
  decodeControl,
  encodeControl,
  FLAG_KEYFRAME,
  FLAG_SEQUENCE_HEADER,
  FRAME_HEADER_SIZE,
  FrameDecoder,
  frameHeader,
  FrameKind,
  MAX_FRAME_PAYLOAD,
  RelayWireError,
  splitTags,
  type WireFrame,
} from "./wire.ts";

/** A deterministic PRNG so a failing split is reproducible. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 0x1_0000_0000;
  };
}

function bytes(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

function mediaFrame(flags: number, payload: Uint8Array): Uint8Array {
  return concatBytes([frameHeader(FrameKind.Media, flags, payload.byteLength), payload]);
}

function decodeAll(chunks: Uint8Array[]): WireFrame[] {
  const d = new FrameDecoder();
  const out: WireFrame[] = [];
  for (const c of chunks) d.push(c, (f) => out.push(f));
  assert.equal(d.buffered, 0, "bytes left over after the last frame");
  return out;
}

/** Splits `all` at `cuts` random points (possibly inside a header, possibly empty pieces). */
function split(all: Uint8Array, r: () => number, cuts: number): Uint8Array[] {
  const points = Array.from({ length: cuts }, () => Math.floor(r() * (all.byteLength + 1))).sort((a, b) =>
    a - b
  );
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of [...points, all.byteLength]) {
    out.push(all.subarray(prev, p));
    prev = p;
  }
  return out;
}

const sampleStream = () => {
  const video = makeFrame(TagType.Video, 40, bytes(3000, 1), { keyframe: true, sequenceHeader: false });
  const sh = makeFrame(TagType.Video, 0, bytes(40, 2), { keyframe: false, sequenceHeader: true });
  const meta = makeFrame(TagType.Script, 0, bytes(100, 3), { keyframe: false, sequenceHeader: false });
  const headersBody = concatBytes([meta.tag, sh.tag]);
  const frames: Uint8Array[] = [
    encodeControl(FrameKind.Hello, { session_id: "s-1", stream_path: "live/a", requestor_id: "edge-1" }),
    concatBytes([frameHeader(FrameKind.Headers, 0, headersBody.byteLength), headersBody]),
    mediaFrame(FLAG_KEYFRAME, video.tag),
    mediaFrame(0, new Uint8Array(0)), // an empty payload is a legal frame
    mediaFrame(FLAG_SEQUENCE_HEADER, bytes(17, 4)),
    encodeControl(FrameKind.End, { reason: "unpublished" }),
    encodeControl(FrameKind.Error, { reason: "no" }),
  ];
  return { frames, all: concatBytes(frames), headersBody, video };
};

Deno.test("wire: every frame kind round-trips in one chunk", () => {
  const { all, headersBody, video } = sampleStream();
  const out = decodeAll([all]);
  assert.deepEqual(out.map((f) => f.kind), [
    FrameKind.Hello,
    FrameKind.Headers,
    FrameKind.Media,
    FrameKind.Media,
    FrameKind.Media,
    FrameKind.End,
    FrameKind.Error,
  ]);
  assert.deepEqual(decodeControl(out[0]!), {
    session_id: "s-1",
    stream_path: "live/a",
    requestor_id: "edge-1",
  });
  assert.deepEqual(out[1]!.payload, headersBody);
  assert.equal(out[2]!.flags, FLAG_KEYFRAME);
  assert.deepEqual(out[2]!.payload, video.tag);
  assert.equal(out[3]!.payload.byteLength, 0);
  assert.equal(out[4]!.flags, FLAG_SEQUENCE_HEADER);
  assert.deepEqual(decodeControl(out[5]!), { reason: "unpublished" });
  assert.deepEqual(decodeControl(out[6]!), { reason: "no" });
});

Deno.test("wire: the same frames come out whatever the chunking (byte by byte, random splits)", () => {
  const { all } = sampleStream();
  const expected = decodeAll([all]);
  const byByte = decodeAll(Array.from(all, (b) => Uint8Array.of(b)));
  assert.deepEqual(byByte, expected);
  const r = rng(42);
  for (let i = 0; i < 300; i++) {
    const got = decodeAll(split(all, r, 1 + Math.floor(r() * 20)));
    assert.deepEqual(got, expected, `split #${i}`);
  }
});

Deno.test("wire: a short read waits for more; payloads are owned copies", () => {
  const payload = bytes(500, 9);
  const frame = mediaFrame(FLAG_KEYFRAME, payload);
  const d = new FrameDecoder();
  const out: WireFrame[] = [];
  d.push(frame.subarray(0, 3), (f) => out.push(f)); // inside the header
  assert.equal(out.length, 0);
  d.push(frame.subarray(3, FRAME_HEADER_SIZE + 10), (f) => out.push(f)); // inside the payload
  assert.equal(out.length, 0);
  assert.equal(d.buffered, FRAME_HEADER_SIZE + 10);
  const rest = frame.slice(FRAME_HEADER_SIZE + 10);
  d.push(rest, (f) => out.push(f));
  assert.equal(out.length, 1);
  rest.fill(0); // mutating the input afterwards must not change the decoded frame
  d.push(mediaFrame(0, bytes(64 * 1024, 5)), () => {}); // nor reusing the decoder's buffer
  assert.deepEqual(out[0]!.payload, payload);
});

Deno.test("wire: unknown frame kinds are malformed, not 'need more'", () => {
  for (const kind of [0, 6, 7, 0x47, 255]) {
    const d = new FrameDecoder();
    const h = frameHeader(FrameKind.Media, 0, 1);
    h[0] = kind;
    assert.throws(() => d.push(h, () => {}), RelayWireError, `kind ${kind}`);
  }
  // Garbage after a good frame: the good frame is delivered, then the decoder throws.
  const d = new FrameDecoder();
  const out: WireFrame[] = [];
  const good = mediaFrame(0, bytes(10, 1));
  assert.throws(
    () => d.push(concatBytes([good, new TextEncoder().encode("GET / HTTP/1.1\r\n")]), (f) => out.push(f)),
    {
      name: "RelayWireError",
      message: /unknown frame kind 71/,
    },
  );
  assert.equal(out.length, 1);
});

Deno.test("wire: oversize frames are refused from the header alone", () => {
  const big = new FrameDecoder();
  // Only the header is pushed: the decoder must not wait for 16 MiB to decide.
  assert.throws(() => big.push(frameHeader(FrameKind.Media, 0, MAX_FRAME_PAYLOAD + 1), () => {}), {
    name: "RelayWireError",
    message: /exceeds/,
  });
  assert.throws(
    () => new FrameDecoder().push(frameHeader(FrameKind.Headers, 0, 0xffff_ffff), () => {}),
    RelayWireError,
  );
  // Control frames have a much smaller limit.
  for (const kind of [FrameKind.Hello, FrameKind.End, FrameKind.Error]) {
    assert.throws(
      () => new FrameDecoder().push(frameHeader(kind, 0, 4097), () => {}),
      RelayWireError,
      `kind ${kind}`,
    );
    const out: WireFrame[] = [];
    new FrameDecoder().push(encodeControl(kind, { pad: "x".repeat(4096 - 10) }), (f) => out.push(f));
    assert.equal(out.length, 1, `a 4096-byte control frame of kind ${kind} is fine`);
  }
  // The largest media frame is accepted (header says exactly the limit; payload not yet here).
  const edge = new FrameDecoder();
  edge.push(frameHeader(FrameKind.Media, 0, MAX_FRAME_PAYLOAD), () => assert.fail("no frame yet"));
  assert.equal(edge.buffered, FRAME_HEADER_SIZE);
});

Deno.test("wire: control frames must carry a JSON object", () => {
  const control = (text: string): WireFrame => ({
    kind: FrameKind.End,
    flags: 0,
    payload: new TextEncoder().encode(text),
  });
  for (const bad of ["", "{", "not json", "[]", "[1,2]", "null", "42", '"str"', "true", "\xff\xfe"]) {
    assert.throws(() => decodeControl(control(bad)), (err: unknown) => {
      assert.ok(err instanceof RelayWireError, `${JSON.stringify(bad)}: ${err}`);
      assert.ok(err.cause !== undefined, "the parse error is kept as the cause");
      return true;
    });
  }
  assert.deepEqual(decodeControl(control('{"reason":"x","n":1}')), { reason: "x", n: 1 });
  // Non-ASCII and control characters survive the round trip.
  const f = encodeControl(FrameKind.Error, { reason: "é \u0000 ✓" });
  const out: WireFrame[] = [];
  new FrameDecoder().push(f, (x) => out.push(x));
  assert.deepEqual(decodeControl(out[0]!), { reason: "é \u0000 ✓" });
});

Deno.test("wire: splitTags splits a HEADERS run and refuses truncated runs", () => {
  const meta = makeFrame(TagType.Script, 0, bytes(33, 1), { keyframe: false, sequenceHeader: false });
  const vsh = makeFrame(TagType.Video, 0, bytes(45, 2), { keyframe: false, sequenceHeader: true });
  const ash = makeFrame(TagType.Audio, 0, bytes(4, 3), { keyframe: false, sequenceHeader: true });
  const run = concatBytes([meta.tag, vsh.tag, ash.tag]);
  const tags = splitTags(run);
  assert.deepEqual(tags, [meta.tag, vsh.tag, ash.tag]);
  assert.equal(tags[1]!.buffer, run.buffer, "views into the run, no copies");
  assert.deepEqual(splitTags(new Uint8Array(0)), []);
  // Empty-bodied tag: 11-byte header + 4-byte trailer.
  const empty = makeFrame(TagType.Audio, 0, new Uint8Array(0), { keyframe: false, sequenceHeader: true });
  assert.deepEqual(splitTags(empty.tag), [empty.tag]);
  for (const cut of [1, 4, 10, 11, 14, 40]) {
    assert.throws(() => splitTags(run.subarray(0, cut)), RelayWireError, `cut at ${cut}`);
    assert.throws(
      () => splitTags(run.subarray(0, meta.tag.byteLength + cut)),
      RelayWireError,
      `cut at +${cut}`,
    );
  }
  assert.throws(() => splitTags(run.subarray(0, run.byteLength - 1)), RelayWireError, "last byte missing");
  // A tag whose declared size runs past the end.
  const lying = vsh.tag.slice();
  lying[3] = lying[3]! + 1;
  assert.throws(() => splitTags(lying), RelayWireError);
});
