/** Bounds-checked byte access for tag inspection; callers map the `RangeError` to "unknown". */
export function at(b: Uint8Array, i: number): number {
  const v = b[i];
  if (v === undefined) throw new RangeError("tag body too short");
  return v;
}

export function s24(b: Uint8Array, i: number): number {
  const v = (at(b, i) << 16) | (at(b, i + 1) << 8) | at(b, i + 2);
  return v & 0x800000 ? v - 0x1000000 : v;
}

export function fourCcAt(b: Uint8Array, i: number): string {
  return String.fromCharCode(at(b, i), at(b, i + 1), at(b, i + 2), at(b, i + 3));
}

/** Packet type ModEx (7) in both the enhanced audio and video headers. */
const PACKET_TYPE_MOD_EX = 7;

/**
 * Skips the ModEx extensions of an enhanced audio or video header (byte 0 = `b0`); returns the
 * real packet type and the offset of the byte after it.
 */
export function skipModEx(body: Uint8Array, b0: number): { packetType: number; pos: number } {
  let packetType = b0 & 0x0f;
  let pos = 1;
  while (packetType === PACKET_TYPE_MOD_EX) {
    let size = at(body, pos++) + 1;
    if (size === 256) {
      size = ((at(body, pos) << 8) | at(body, pos + 1)) + 1;
      pos += 2;
    }
    pos += size;
    packetType = at(body, pos++) & 0x0f;
  }
  return { packetType, pos };
}
