import assert from "node:assert/strict";
import { BitReader, unescapeRbsp } from "./_bits.ts";
import { parseAvcDecoderConfig, parseAvcSps, parseHevcSps } from "./mod.ts";

class BitWriter {
  bits: number[] = [];
  u(n: number, v: number): this {
    for (let i = n - 1; i >= 0; i--) this.bits.push(Math.floor(v / 2 ** i) % 2);
    return this;
  }
  ue(v: number): this {
    const len = Math.floor(Math.log2(v + 1));
    return this.u(len, 0).u(len + 1, v + 1);
  }
  se(v: number): this {
    return this.ue(v > 0 ? 2 * v - 1 : -2 * v);
  }
  rbsp(): number[] {
    this.bits.push(1);
    while (this.bits.length % 8) this.bits.push(0);
    const out: number[] = [];
    for (let i = 0; i < this.bits.length; i += 8) out.push(parseInt(this.bits.slice(i, i + 8).join(""), 2));
    return out;
  }
}

function escape(rbsp: number[]): number[] {
  const out: number[] = [];
  let zeros = 0;
  for (const b of rbsp) {
    if (zeros >= 2 && b <= 3) {
      out.push(3);
      zeros = 0;
    }
    out.push(b);
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return out;
}

function hasEmulationPrevention(nal: number[]): boolean {
  return nal.some((b, i) => i >= 2 && b === 3 && nal[i - 1] === 0 && nal[i - 2] === 0);
}

function record(sps: number[]): number[] {
  return [
    1,
    sps[1]!,
    sps[2]!,
    sps[3]!,
    0xff,
    0xe1,
    sps.length >> 8,
    sps.length & 0xff,
    ...sps,
    1,
    0,
    1,
    0x68,
  ];
}

/** High 10, 4:2:0, SPS scaling lists, POC type 1, interlaced MBAFF, cropped to 1920x1080. */
function highSps(): number[] {
  const w = new BitWriter().u(8, 100).u(8, 0).u(8, 40).ue(0);
  w.ue(1).ue(2).ue(2).u(1, 0).u(1, 1);
  w.u(1, 1);
  for (let j = 0; j < 16; j++) w.se(1);
  w.u(1, 0).u(1, 1).se(-8).u(1, 0).u(1, 0).u(1, 0).u(1, 1);
  for (let j = 0; j < 64; j++) w.se(j === 10 ? -100 : 1);
  w.u(1, 0);
  w.ue(0).ue(1).u(1, 0).se(-2).se(1).ue(2).se(2 ** 24).se(-5);
  w.ue(4).u(1, 0).ue(119).ue(33).u(1, 0).u(1, 1).u(1, 1);
  w.u(1, 1).ue(0).ue(0).ue(0).ue(2);
  w.u(1, 0);
  return [0x67, ...escape(w.rbsp())];
}

/** High 4:4:4 with separate colour planes (ChromaArrayType 0), POC type 2, odd crop. */
function separatePlanesSps(): number[] {
  const w = new BitWriter().u(8, 244).u(8, 0).u(8, 30).ue(0);
  w.ue(3).u(1, 1).ue(0).ue(0).u(1, 0).u(1, 1);
  for (let i = 0; i < 12; i++) w.u(1, 0);
  w.ue(0).ue(2);
  w.ue(1).u(1, 0).ue(9).ue(8).u(1, 1).u(1, 1);
  w.u(1, 1).ue(0).ue(3).ue(0).ue(1);
  w.u(1, 0);
  return [0x67, ...escape(w.rbsp())];
}

Deno.test("unescapeRbsp drops emulation-prevention bytes", () => {
  assert.deepStrictEqual(Array.from(unescapeRbsp(new Uint8Array([0, 0, 3, 1]))), [0, 0, 1]);
  assert.deepStrictEqual(Array.from(unescapeRbsp(new Uint8Array([9, 0, 0, 3, 0, 0, 3, 0]))), [
    9,
    0,
    0,
    0,
    0,
    0,
  ]);
  assert.deepStrictEqual(Array.from(unescapeRbsp(new Uint8Array([0, 0, 3]))), [0, 0]);
  assert.deepStrictEqual(Array.from(unescapeRbsp(new Uint8Array([0, 3, 0, 3]))), [0, 3, 0, 3]);
  const plain = new Uint8Array([1, 2, 3]);
  assert.equal(unescapeRbsp(plain), plain);
});

Deno.test("BitReader reads fixed bits and Exp-Golomb codes", () => {
  const w = new BitWriter().u(3, 5).ue(0).ue(1).ue(2).ue(254).se(0).se(1).se(-1).se(-1000).u(32, 0xdeadbeef);
  const r = new BitReader(new Uint8Array(w.rbsp()));
  assert.deepStrictEqual(
    [r.bits(3), r.ue(), r.ue(), r.ue(), r.ue(), r.se(), r.se(), r.se(), r.se(), r.bits(32)],
    [5, 0, 1, 2, 254, 0, 1, -1, -1000, 0xdeadbeef],
  );
  assert.equal(r.bit(), 1);
  r.skip(r.bitsLeft);
  assert.throws(() => r.bit(), RangeError);
  assert.throws(() => new BitReader(new Uint8Array(5)).ue(), RangeError);
});

Deno.test("hand-built High 10 SPS: scaling lists, POC type 1, MBAFF cropping, emulation prevention", () => {
  const sps = highSps();
  assert.ok(hasEmulationPrevention(sps), "the fixture must exercise emulation prevention");
  assert.deepStrictEqual(parseAvcSps(new Uint8Array(sps)), {
    profile: 100,
    constraintFlags: 0,
    level: 40,
    width: 1920,
    height: 1080,
    chromaFormat: 1,
    bitDepth: 10,
    frameMbsOnly: false,
  });
  const expected = {
    width: 1920,
    height: 1080,
    profile: 100,
    level: 40,
    chromaFormat: 1,
    bitDepth: 10,
    codecString: "avc1.640028",
  };
  const rec = record(sps);
  assert.deepStrictEqual(parseAvcDecoderConfig(new Uint8Array([0x17, 0, 0, 0, 0, ...rec])), expected);
  assert.deepStrictEqual(
    parseAvcDecoderConfig(new Uint8Array([0x90, 0x61, 0x76, 0x63, 0x31, ...rec])),
    expected,
  );
});

Deno.test("hand-built SPS with separate colour planes crops in luma units", () => {
  const sps = parseAvcSps(new Uint8Array(separatePlanesSps()));
  assert.equal(sps?.width, 160 - 3);
  assert.equal(sps?.height, 144 - 1);
  assert.equal(sps?.chromaFormat, 3);
});

Deno.test("bad AVC records and SPS give null", () => {
  const sps = highSps();
  const legacy = (rec: number[]) => new Uint8Array([0x17, 0, 0, 0, 0, ...rec]);
  assert.equal(parseAvcDecoderConfig(legacy(record(sps)).subarray(0, 40)), null);
  const noSps = record(sps);
  noSps[5] = 0xe0;
  assert.equal(parseAvcDecoderConfig(legacy(noSps)), null);
  assert.equal(parseAvcDecoderConfig(legacy([1, 100, 0])), null);
  assert.equal(parseAvcDecoderConfig(new Uint8Array([0x17, 1, 0, 0, 0, ...record(sps)])), null);
  assert.equal(parseAvcSps(new Uint8Array([0x68, ...sps.slice(1)])), null);
  assert.equal(parseAvcSps(new Uint8Array(sps.slice(0, 12))), null);
  assert.equal(parseAvcSps(new Uint8Array([0x67, 100, 0, 40, 0x80, 0x80])), null);
  assert.equal(parseHevcSps(new Uint8Array(sps)), null);
});
