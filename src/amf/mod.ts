/**
 * AMF0, the value encoding of RTMP commands and FLV script tags.
 *
 * A message is a flat sequence of values; `decodeAmf0` returns all of them. Objects, ECMA
 * arrays and typed objects all decode to plain objects (key order kept), strict arrays to
 * arrays, dates to `Date`, XML documents to strings. Input is whole messages, so truncation
 * and malformed structure are both a `SyntaxError`; nesting depth is capped and counts are
 * checked against the bytes left, so hostile input costs at most linear time and memory.
 */

export { AMF0_MAX_DEPTH, Amf0Marker, type Amf0Object, type Amf0Value } from "./_types.ts";
export { encodeAmf0, encodeAmf0EcmaArray } from "./_encode.ts";
export { decodeAmf0 } from "./_decode.ts";
