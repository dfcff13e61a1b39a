/** Builders for the RTMP control and command messages a server sends. */

import { type Amf0Value, encodeAmf0 } from "../amf/mod.ts";
import { encodeChunks, MessageType } from "./_chunk.ts";

export const Csid = { Control: 2, Command: 3, Audio: 4, Data: 5, Video: 6 } as const;
export const UserControlEvent = { StreamBegin: 0, StreamEOF: 1, PingRequest: 6, PingResponse: 7 } as const;

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0);
  return b;
}

export function setChunkSize(size: number): Uint8Array {
  return encodeChunks(Csid.Control, MessageType.SetChunkSize, 0, 0, u32(size & 0x7fffffff), 128);
}

export function windowAckSize(size: number): Uint8Array {
  return encodeChunks(Csid.Control, MessageType.WindowAckSize, 0, 0, u32(size), 128);
}

export function acknowledgement(sequence: number): Uint8Array {
  return encodeChunks(Csid.Control, MessageType.Acknowledgement, 0, 0, u32(sequence), 128);
}

export function setPeerBandwidth(size: number, limitType: number): Uint8Array {
  const b = new Uint8Array(5);
  new DataView(b.buffer).setUint32(0, size);
  b[4] = limitType;
  return encodeChunks(Csid.Control, MessageType.SetPeerBandwidth, 0, 0, b, 128);
}

export function userControl(event: number, value: number): Uint8Array {
  const b = new Uint8Array(6);
  const v = new DataView(b.buffer);
  v.setUint16(0, event);
  v.setUint32(2, value >>> 0);
  return encodeChunks(Csid.Control, MessageType.UserControl, 0, 0, b, 128);
}

export function command(streamId: number, values: Amf0Value[], chunkSize: number): Uint8Array {
  return encodeChunks(Csid.Command, MessageType.CommandAmf0, streamId, 0, encodeAmf0(values), chunkSize);
}

export function data(streamId: number, values: Amf0Value[], chunkSize: number): Uint8Array {
  return encodeChunks(Csid.Data, MessageType.DataAmf0, streamId, 0, encodeAmf0(values), chunkSize);
}

export function onStatus(
  streamId: number,
  level: "status" | "error" | "warning",
  code: string,
  description: string,
  chunkSize: number,
  extra: Record<string, Amf0Value> = {},
): Uint8Array {
  return command(streamId, ["onStatus", 0, null, { level, code, description, ...extra }], chunkSize);
}
