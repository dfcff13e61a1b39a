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
