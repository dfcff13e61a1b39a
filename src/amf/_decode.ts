import { ByteReader } from "../bytes/mod.ts";
import { AMF0_MAX_DEPTH, Amf0Marker, type Amf0Object, type Amf0Value } from "./_types.ts";

const utf8 = new TextDecoder();

/** Every value in `bytes`, which must hold whole values: truncation is a `SyntaxError`. */
export function decodeAmf0(bytes: Uint8Array): Amf0Value[] {
  const r = new ByteReader(bytes);
  const out: Amf0Value[] = [];
  try {
    while (r.remaining > 0) out.push(readValue(r, 0));
  } catch (e) {
    if (e instanceof RangeError) throw new SyntaxError(`AMF0 truncated: ${e.message}`);
    throw e;
  }
  return out;
}

function readValue(r: ByteReader, depth: number): Amf0Value {
  const at = r.pos;
  const marker = r.u8();
  switch (marker) {
    case Amf0Marker.Number:
      return r.f64();
    case Amf0Marker.Boolean:
      return r.u8() !== 0;
    case Amf0Marker.String:
      return utf8.decode(r.bytesView(r.u16()));
    case Amf0Marker.LongString:
    case Amf0Marker.XmlDocument:
      return utf8.decode(r.bytesView(r.u32()));
    case Amf0Marker.Null:
      return null;
    case Amf0Marker.Undefined:
    case Amf0Marker.Unsupported:
      return undefined;
    case Amf0Marker.Object:
      enter(depth, at);
      return readProperties(r, depth + 1);
    case Amf0Marker.TypedObject:
      enter(depth, at);
      r.skip(r.u16());
      return readProperties(r, depth + 1);
    case Amf0Marker.EcmaArray:
      enter(depth, at);
      r.skip(4);
      return readProperties(r, depth + 1);
    case Amf0Marker.StrictArray: {
      enter(depth, at);
      const n = r.u32();
      if (n > r.remaining) {
        throw new SyntaxError(
          `AMF0 truncated: strict array of ${n} elements at offset ${at} exceeds the input`,
        );
      }
      const arr: Amf0Value[] = [];
      for (let i = 0; i < n; i++) arr.push(readValue(r, depth + 1));
      return arr;
    }
    case Amf0Marker.Date: {
      const ms = r.f64();
      r.skip(2);
      return new Date(ms);
    }
    case Amf0Marker.ObjectEnd:
      throw new SyntaxError(`AMF0 object end marker outside an object at offset ${at}`);
    case Amf0Marker.Reference:
    case Amf0Marker.MovieClip:
    case Amf0Marker.RecordSet:
    case Amf0Marker.AvmPlus:
      throw new SyntaxError(`AMF0 marker 0x${hex(marker)} at offset ${at} is not supported`);
    default:
      throw new SyntaxError(`unknown AMF0 marker 0x${hex(marker)} at offset ${at}`);
  }
}

function readProperties(r: ByteReader, depth: number): Amf0Object {
  const obj: Amf0Object = {};
  for (;;) {
    const len = r.u16();
    if (len === 0 && r.bytes[r.pos] === Amf0Marker.ObjectEnd) {
      r.skip(1);
      return obj;
    }
    const key = utf8.decode(r.bytesView(len));
    const value = readValue(r, depth);
    if (key === "__proto__") {
      Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
    } else {
      obj[key] = value;
    }
  }
}

function enter(depth: number, at: number): void {
  if (depth >= AMF0_MAX_DEPTH) {
    throw new SyntaxError(`AMF0 nesting deeper than ${AMF0_MAX_DEPTH} at offset ${at}`);
  }
}

function hex(n: number): string {
  return n.toString(16).padStart(2, "0");
}
