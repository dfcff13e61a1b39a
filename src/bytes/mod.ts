/**
 * Zero-copy byte reading and writing.
 *
 * `ByteReader` walks a complete buffer through a DataView and throws `RangeError` past the
 * end, so a parser can tell "truncated" from "malformed" by catching `RangeError` only
 * where it feeds incrementally. `ByteWriter` grows one backing buffer. `ByteQueue`
 * accumulates network reads up to a hard limit, so no peer can make us buffer without bound.
 */

export class ByteReader {
  readonly view: DataView;
  pos = 0;

  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.bytes.byteLength - this.pos;
  }

  #need(n: number): void {
    if (this.pos + n > this.bytes.byteLength) {
      throw new RangeError(`need ${n} bytes at offset ${this.pos}, have ${this.remaining}`);
    }
  }

  u8(): number {
    this.#need(1);
    return this.view.getUint8(this.pos++);
  }
  u16(): number {
    this.#need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }
  u24(): number {
    this.#need(3);
    const v = (this.view.getUint8(this.pos) << 16) | this.view.getUint16(this.pos + 1);
    this.pos += 3;
    return v;
  }
  u32(): number {
    this.#need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  u32le(): number {
    this.#need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f64(): number {
    this.#need(8);
    const v = this.view.getFloat64(this.pos);
    this.pos += 8;
    return v;
  }
  /** A view (not a copy) of the next `n` bytes. */
  bytesView(n: number): Uint8Array {
    this.#need(n);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  skip(n: number): void {
    this.#need(n);
    this.pos += n;
  }
}

export class ByteWriter {
  #buf: Uint8Array;
  #view: DataView;
  length = 0;

  constructor(initialCapacity = 256) {
    this.#buf = new Uint8Array(initialCapacity);
    this.#view = new DataView(this.#buf.buffer);
  }

  #ensure(n: number): void {
    if (this.length + n <= this.#buf.byteLength) return;
    let cap = this.#buf.byteLength * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.#buf.subarray(0, this.length));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.#ensure(1);
    this.#view.setUint8(this.length++, v);
    return this;
  }
  u16(v: number): this {
    this.#ensure(2);
    this.#view.setUint16(this.length, v);
    this.length += 2;
    return this;
  }
  u24(v: number): this {
    this.#ensure(3);
    this.#view.setUint8(this.length, (v >>> 16) & 0xff);
    this.#view.setUint16(this.length + 1, v & 0xffff);
    this.length += 3;
    return this;
  }
  u32(v: number): this {
    this.#ensure(4);
    this.#view.setUint32(this.length, v >>> 0);
    this.length += 4;
    return this;
  }
  u32le(v: number): this {
    this.#ensure(4);
    this.#view.setUint32(this.length, v >>> 0, true);
    this.length += 4;
    return this;
  }
  f64(v: number): this {
    this.#ensure(8);
    this.#view.setFloat64(this.length, v);
    this.length += 8;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.#ensure(b.byteLength);
    this.#buf.set(b, this.length);
    this.length += b.byteLength;
    return this;
  }
  /** A view of what was written; valid until the next write. */
  view(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }
  /** An independent copy of what was written. */
  toBytes(): Uint8Array {
    return this.#buf.slice(0, this.length);
  }
}

/**
 * A FIFO of received bytes with a hard capacity. Network readers `push()` what arrives,
 * parsers `peek()`/`consume()`; pushing past `maxBytes` throws `RangeError`.
 */
export class ByteQueue {
  #buf: Uint8Array;
  #start = 0;
  #end = 0;

  constructor(readonly maxBytes: number, initialCapacity = 64 * 1024) {
    this.#buf = new Uint8Array(Math.min(initialCapacity, maxBytes));
  }

  get length(): number {
    return this.#end - this.#start;
  }

  push(chunk: Uint8Array): void {
    const n = chunk.byteLength;
    if (this.length + n > this.maxBytes) {
      throw new RangeError(`input buffer limit of ${this.maxBytes} bytes exceeded`);
    }
    if (this.#end + n > this.#buf.byteLength) {
      const live = this.length;
      if (live + n <= this.#buf.byteLength) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        let cap = this.#buf.byteLength * 2;
        while (cap < live + n) cap *= 2;
        const next = new Uint8Array(Math.min(cap, this.maxBytes));
        next.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = next;
      }
      this.#start = 0;
      this.#end = live;
    }
    this.#buf.set(chunk, this.#end);
    this.#end += n;
  }

  /** A view of the buffered bytes; invalidated by the next push. */
  peek(): Uint8Array {
    return this.#buf.subarray(this.#start, this.#end);
  }

  consume(n: number): void {
    if (n > this.length) throw new RangeError(`consume ${n} > ${this.length}`);
    this.#start += n;
    if (this.#start === this.#end) this.#start = this.#end = 0;
  }
}

/** Writes all of `data` to a connection; `write()` may accept only part of it. */
export async function writeAll(
  w: { write(p: Uint8Array): Promise<number> },
  data: Uint8Array,
): Promise<void> {
  let off = 0;
  while (off < data.byteLength) off += await w.write(data.subarray(off));
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}
