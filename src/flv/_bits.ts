/** Removes H.264/H.265 emulation-prevention bytes (00 00 03 → 00 00). */
export function unescapeRbsp(nal: Uint8Array): Uint8Array {
  let zeros = 0;
  let found = -1;
  for (let i = 0; i < nal.byteLength; i++) {
    const b = nal[i]!;
    if (zeros >= 2 && b === 3) {
      found = i;
      break;
    }
    zeros = b === 0 ? zeros + 1 : 0;
  }
  if (found < 0) return nal;
  const out = new Uint8Array(nal.byteLength);
  out.set(nal.subarray(0, found));
  let n = found;
  zeros = 0;
  for (let i = found + 1; i < nal.byteLength; i++) {
    const b = nal[i]!;
    if (zeros >= 2 && b === 3) {
      zeros = 0;
      continue;
    }
    out[n++] = b;
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return out.subarray(0, n);
}

/** MSB-first bit reader with Exp-Golomb codes; throws `RangeError` past the end. */
export class BitReader {
  #pos = 0;

  constructor(readonly bytes: Uint8Array) {}

  get bitsLeft(): number {
    return this.bytes.byteLength * 8 - this.#pos;
  }

  bit(): number {
    if (this.#pos >= this.bytes.byteLength * 8) throw new RangeError("bitstream exhausted");
    const b = (this.bytes[this.#pos >>> 3]! >>> (7 - (this.#pos & 7))) & 1;
    this.#pos++;
    return b;
  }

  bool(): boolean {
    return this.bit() === 1;
  }

  /** Up to 32 bits, unsigned. */
  bits(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 2 + this.bit();
    return v;
  }

  skip(n: number): void {
    if (n > this.bitsLeft) throw new RangeError("bitstream exhausted");
    this.#pos += n;
  }

  ue(): number {
    let zeros = 0;
    while (this.bit() === 0) {
      if (++zeros > 31) throw new RangeError("Exp-Golomb code longer than 32 bits");
    }
    return 2 ** zeros - 1 + this.bits(zeros);
  }

  se(): number {
    const k = this.ue();
    return k % 2 === 1 ? (k + 1) / 2 : k === 0 ? 0 : -k / 2;
  }
}
