import { ByteWriter } from "../bytes/mod.ts";
import { AMF0_MAX_DEPTH, Amf0Marker, type Amf0Object, type Amf0Value } from "./_types.ts";

const utf8 = new TextEncoder();

export function encodeAmf0(values: readonly Amf0Value[]): Uint8Array {
  const w = new ByteWriter(256);
  for (const v of values) writeValue(w, v, 0);
  return w.toBytes();
}

/** One ECMA array value (marker 0x08), the shape players expect for `onMetaData`. */
export function encodeAmf0EcmaArray(obj: Amf0Object): Uint8Array {
  const w = new ByteWriter(256);
  const keys = Object.keys(obj);
  w.u8(Amf0Marker.EcmaArray).u32(keys.length);
  writeProperties(w, obj, keys, 1);
  return w.toBytes();
}

function writeValue(w: ByteWriter, v: Amf0Value, depth: number): void {
  if (v === undefined) {
    w.u8(Amf0Marker.Undefined);
  } else if (v === null) {
    w.u8(Amf0Marker.Null);
  } else if (typeof v === "number") {
    w.u8(Amf0Marker.Number).f64(v);
  } else if (typeof v === "boolean") {
    w.u8(Amf0Marker.Boolean).u8(v ? 1 : 0);
  } else if (typeof v === "string") {
    const b = utf8.encode(v);
    if (b.byteLength > 0xffff) w.u8(Amf0Marker.LongString).u32(b.byteLength).bytes(b);
    else w.u8(Amf0Marker.String).u16(b.byteLength).bytes(b);
  } else if (v instanceof Date) {
    w.u8(Amf0Marker.Date).f64(v.getTime()).u16(0);
  } else if (Array.isArray(v)) {
    enter(depth);
    w.u8(Amf0Marker.StrictArray).u32(v.length);
    for (const item of v) writeValue(w, item, depth + 1);
  } else {
    enter(depth);
    w.u8(Amf0Marker.Object);
    writeProperties(w, v, Object.keys(v), depth + 1);
  }
}

function enter(depth: number): void {
  if (depth >= AMF0_MAX_DEPTH) throw new RangeError(`AMF0 nesting deeper than ${AMF0_MAX_DEPTH}`);
}

function writeProperties(w: ByteWriter, obj: Amf0Object, keys: readonly string[], depth: number): void {
  for (const key of keys) {
    const k = utf8.encode(key);
    if (k.byteLength > 0xffff) throw new RangeError("AMF0 property name longer than 65535 bytes");
    w.u16(k.byteLength).bytes(k);
    writeValue(w, obj[key], depth);
  }
  w.u16(0).u8(Amf0Marker.ObjectEnd);
}
