import assert from "node:assert/strict";
import {
  AMF0_MAX_DEPTH,
  type Amf0Object,
  type Amf0Value,
  decodeAmf0,
  encodeAmf0,
  encodeAmf0EcmaArray,
} from "./mod.ts";

function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

function roundTrip(values: Amf0Value[]): void {
  assert.deepStrictEqual(decodeAmf0(encodeAmf0(values)), values);
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CONNECT_VALUES: Amf0Value[] = [
  "connect",
  1,
  {
    app: "live",
    type: "nonprivate",
    flashVer: "FMLE/3.0 (compatible; Lavf58.29.100)",
    tcUrl: "rtmp://127.0.0.1:1935/live",
  },
];

const CONNECT_BYTES = hex(`
  02 0007 636f6e6e656374
  00 3ff0000000000000
  03
    0003 617070 02 0004 6c697665
    0004 74797065 02 000a 6e6f6e70726976617465
    0008 666c617368566572 02 0024 464d4c452f332e302028636f6d70617469626c653b204c61766635382e32392e31303029
    0005 746355726c 02 001a 72746d703a2f2f3132372e302e302e313a313933352f6c697665
  000009
`);

Deno.test("encodes ffmpeg's publish connect command byte for byte", () => {
  assert.deepStrictEqual(encodeAmf0(CONNECT_VALUES), CONNECT_BYTES);
  assert.deepStrictEqual(decodeAmf0(CONNECT_BYTES), CONNECT_VALUES);
});

Deno.test("round-trips every encodable type", () => {
  roundTrip([0, 1, -1.5, 2 ** 53, -0, NaN, Infinity, -Infinity]);
  roundTrip([true, false, null, undefined]);
  roundTrip(["", "a", "żółć ✓ 日本語 🎥", "x".repeat(65535)]);
  roundTrip([new Date(0), new Date(1_700_000_000_123), new Date(NaN)]);
  roundTrip([[], [1, "two", null, undefined, [3, [4]]], {}]);
  roundTrip([{ a: 1, b: { c: [true, { d: "e" }], f: null, g: undefined }, "": "empty key" }]);
});

Deno.test("long strings switch to marker 0x0C", () => {
  const s = "y".repeat(70000);
  const bytes = encodeAmf0([s]);
  assert.equal(bytes[0], 0x0c);
  assert.deepStrictEqual(Array.from(bytes.subarray(1, 5)), [0x00, 0x01, 0x11, 0x70]);
  assert.deepStrictEqual(decodeAmf0(bytes), [s]);
  const exact = encodeAmf0(["z".repeat(65535)]);
  assert.equal(exact[0], 0x02);
});

Deno.test("object keys keep insertion order", () => {
  const [obj] = decodeAmf0(encodeAmf0([{ z: 1, a: 2, m: 3 }]));
  assert.deepStrictEqual(Object.keys(obj as Amf0Object), ["z", "a", "m"]);
});

Deno.test("encodes an ECMA array for onMetaData", () => {
  const bytes = encodeAmf0EcmaArray({ width: 640, stereo: true });
  assert.deepStrictEqual(
    bytes,
    hex(`08 00000002
      0005 7769647468 00 4084000000000000
      0006 73746572656f 01 01
      000009`),
  );
  const script = new Uint8Array([...encodeAmf0(["onMetaData"]), ...bytes]);
  assert.deepStrictEqual(decodeAmf0(script), ["onMetaData", { width: 640, stereo: true }]);
});

Deno.test("ECMA array count is a hint; properties run to the end marker", () => {
  assert.deepStrictEqual(decodeAmf0(hex("08 00000000 0001 61 05 000009")), [{ a: null }]);
});

Deno.test("decodes typed objects, XML documents, unsupported and empty ECMA arrays", () => {
  const typed = hex("10 0003 466f6f 0001 78 00 4000000000000000 000009");
  assert.deepStrictEqual(decodeAmf0(typed), [{ x: 2 }]);
  assert.deepStrictEqual(decodeAmf0(hex("0f 00000003 3c612f")), ["<a/"]);
  assert.deepStrictEqual(decodeAmf0(hex("0d")), [undefined]);
  assert.deepStrictEqual(decodeAmf0(hex("08 00000000 000009")), [{}]);
  assert.deepStrictEqual(decodeAmf0(new Uint8Array(0)), []);
});

Deno.test("a property named __proto__ stays an own property", () => {
  const bytes = hex("03 0009 5f5f70726f746f5f5f 03 0001 78 01 01 000009 000009");
  const [obj] = decodeAmf0(bytes) as [Amf0Object];
  assert.equal(Object.getPrototypeOf(obj), Object.prototype);
  assert.deepStrictEqual(Object.keys(obj), ["__proto__"]);
  assert.deepStrictEqual(Object.getOwnPropertyDescriptor(obj, "__proto__")?.value, { x: true });
  assert.equal(({} as Record<string, unknown>)["x"], undefined);
});

Deno.test("rejects unsupported and unknown markers", () => {
  assert.throws(() => decodeAmf0(hex("07 0001")), SyntaxError);
  assert.throws(() => decodeAmf0(hex("04")), SyntaxError);
  assert.throws(() => decodeAmf0(hex("11 00")), SyntaxError);
  assert.throws(() => decodeAmf0(hex("12")), SyntaxError);
  assert.throws(() => decodeAmf0(hex("ff")), SyntaxError);
  assert.throws(() => decodeAmf0(hex("09")), /object end/);
  assert.throws(() => decodeAmf0(hex("000009")), SyntaxError);
});

Deno.test("every truncation of a command is a SyntaxError saying truncated", () => {
  const boundaries = new Set([0, 10, 19]);
  for (let n = 0; n < CONNECT_BYTES.length; n++) {
    const prefix = CONNECT_BYTES.subarray(0, n);
    if (boundaries.has(n)) {
      assert.equal(decodeAmf0(prefix).length, n === 0 ? 0 : n === 10 ? 1 : 2);
    } else {
      assert.throws(
        () => decodeAmf0(prefix),
        (e: unknown) => e instanceof SyntaxError && /truncated/.test(e.message),
      );
    }
  }
});

Deno.test("a strict array longer than the input is rejected before allocating", () => {
  assert.throws(() => decodeAmf0(hex("0a ffffffff 05")), /exceeds/);
  assert.throws(() => decodeAmf0(hex("0a 00000002 05")), /truncated/);
  assert.throws(() => decodeAmf0(hex("0c ffffffff 41")), /truncated/);
});

Deno.test("nesting depth is capped when decoding", () => {
  const nested = (depth: number): Uint8Array => {
    const head = new Array<number>(depth).fill(0x0a).flatMap((m) => [m, 0, 0, 0, 1]);
    return new Uint8Array([...head, 0x05]);
  };
  assert.equal(decodeAmf0(nested(AMF0_MAX_DEPTH)).length, 1);
  assert.throws(() => decodeAmf0(nested(AMF0_MAX_DEPTH + 1)), /nesting/);
  const hostile = new Uint8Array(400_000);
  for (let i = 0; i < hostile.length; i += 4) hostile.set([0x03, 0x00, 0x01, 0x61], i);
  assert.throws(() => decodeAmf0(hostile), SyntaxError);
});

Deno.test("nesting depth and cycles are capped when encoding", () => {
  let deep: Amf0Value = 1;
  for (let i = 0; i < AMF0_MAX_DEPTH; i++) deep = [deep];
  assert.deepStrictEqual(decodeAmf0(encodeAmf0([deep])), [deep]);
  assert.throws(() => encodeAmf0([[deep]]), RangeError);
  const cyclic: Amf0Object = {};
  cyclic["self"] = cyclic;
  assert.throws(() => encodeAmf0([cyclic]), RangeError);
});

Deno.test("random bytes only ever raise SyntaxError", () => {
  const rand = mulberry32(0xa3f);
  const markers = [0x00, 0x01, 0x02, 0x03, 0x05, 0x06, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0f, 0x10];
  for (let iter = 0; iter < 20_000; iter++) {
    const buf = new Uint8Array(1 + Math.floor(rand() * 64));
    for (let i = 0; i < buf.length; i++) {
      const r = rand();
      buf[i] = r < 0.3
        ? markers[Math.floor(rand() * markers.length)]!
        : r < 0.6
        ? 0
        : Math.floor(rand() * 256);
    }
    try {
      decodeAmf0(buf);
    } catch (e) {
      if (!(e instanceof SyntaxError)) throw e;
    }
  }
});

Deno.test("mutated commands only ever raise SyntaxError", () => {
  const rand = mulberry32(7);
  for (let iter = 0; iter < 20_000; iter++) {
    const buf = CONNECT_BYTES.slice();
    const flips = 1 + Math.floor(rand() * 4);
    for (let f = 0; f < flips; f++) buf[Math.floor(rand() * buf.length)] = Math.floor(rand() * 256);
    try {
      decodeAmf0(buf.subarray(0, Math.floor(rand() * (buf.length + 1))));
    } catch (e) {
      if (!(e instanceof SyntaxError)) throw e;
    }
  }
});
