export const TAG_HEADER_SIZE = 11;
export const FLV_HEADER_SIZE = 9;
export const DEFAULT_MAX_TAG_SIZE = 16 * 1024 * 1024;

const MAX_DATA_SIZE = 0xffffff;

export interface FlvTag {
  type: number;
  /** The full 32-bit FLV timestamp in ms (extended byte as the high 8 bits). */
  timestamp: number;
  /** An owned copy of the tag body. */
  data: Uint8Array;
}

export interface FlvFileHeader {
  version: number;
  hasAudio: boolean;
  hasVideo: boolean;
}

/** The 9-byte FLV header followed by PreviousTagSize0. */
export function flvHeader(hasAudio: boolean, hasVideo: boolean): Uint8Array {
  const flags = (hasAudio ? 0x04 : 0) | (hasVideo ? 0x01 : 0);
  return new Uint8Array([0x46, 0x4c, 0x56, 0x01, flags, 0, 0, 0, FLV_HEADER_SIZE, 0, 0, 0, 0]);
}

/** Shared by every writer: never mutate it. */
export const FLV_HEADER_AV: Uint8Array = flvHeader(true, true);

/** Timestamps wrap modulo 2^32 ms, as FLV carries only 32 bits. */
export function writeTagHeader(
  target: Uint8Array,
  offset: number,
  type: number,
  timestampMs: number,
  dataSize: number,
): void {
  if (dataSize < 0 || dataSize > MAX_DATA_SIZE) throw new RangeError(`FLV tag body of ${dataSize} bytes`);
  if (offset < 0 || offset + TAG_HEADER_SIZE > target.byteLength) {
    throw new RangeError(`no room for an FLV tag header at offset ${offset}`);
  }
  const ts = timestampMs >>> 0;
  target[offset] = type & 0x1f;
  target[offset + 1] = dataSize >>> 16;
  target[offset + 2] = (dataSize >>> 8) & 0xff;
  target[offset + 3] = dataSize & 0xff;
  target[offset + 4] = (ts >>> 16) & 0xff;
  target[offset + 5] = (ts >>> 8) & 0xff;
  target[offset + 6] = ts & 0xff;
  target[offset + 7] = ts >>> 24;
  target[offset + 8] = 0;
  target[offset + 9] = 0;
  target[offset + 10] = 0;
}

/** Bytes `encodeTagInto` writes for a body of `dataSize` bytes: header, body, PreviousTagSize. */
export function encodedTagSize(dataSize: number): number {
  return TAG_HEADER_SIZE + dataSize + 4;
}

/** Writes header + body + PreviousTagSize at `offset`; returns the offset after it. */
export function encodeTagInto(
  target: Uint8Array,
  offset: number,
  frame: { readonly type: number; readonly timestamp: number; readonly data: Uint8Array },
): number {
  const n = frame.data.byteLength;
  const end = offset + encodedTagSize(n);
  if (end > target.byteLength) {
    throw new RangeError(`no room for an FLV tag of ${n} bytes at offset ${offset}`);
  }
  writeTagHeader(target, offset, frame.type, frame.timestamp, n);
  target.set(frame.data, offset + TAG_HEADER_SIZE);
  const prev = TAG_HEADER_SIZE + n;
  const p = offset + TAG_HEADER_SIZE + n;
  target[p] = prev >>> 24;
  target[p + 1] = (prev >>> 16) & 0xff;
  target[p + 2] = (prev >>> 8) & 0xff;
  target[p + 3] = prev & 0xff;
  return end;
}

export function encodeTag(
  frame: { readonly type: number; readonly timestamp: number; readonly data: Uint8Array },
): Uint8Array {
  const out = new Uint8Array(encodedTagSize(frame.data.byteLength));
  encodeTagInto(out, 0, frame);
  return out;
}

const Step = { FileHeader: 0, HeaderPadding: 1, TagHeader: 2, TagBody: 3 } as const;
type Step = typeof Step[keyof typeof Step];

/**
 * Incremental FLV parser: feed any chunking of a file or HTTP-FLV stream, get whole tags.
 * PreviousTagSize fields are skipped, not verified. After a throw the demuxer is dead and
 * rethrows the same error.
 */
export class FlvDemuxer {
  readonly maxTagSize: number;
  #header: FlvFileHeader | null = null;
  #step: Step = Step.FileHeader;
  #need = FLV_HEADER_SIZE;
  #pending = new Uint8Array(64);
  #pendingLen = 0;
  #tagType = 0;
  #tagTimestamp = 0;
  #error: Error | null = null;

  constructor(options: { maxTagSize?: number } = {}) {
    this.maxTagSize = options.maxTagSize ?? DEFAULT_MAX_TAG_SIZE;
  }

  /** The parsed file header, once its 9 bytes have arrived. */
  get header(): FlvFileHeader | null {
    return this.#header;
  }

  /** Bytes held back waiting for the rest of a header or tag. */
  get buffered(): number {
    return this.#pendingLen;
  }

  push(chunk: Uint8Array): FlvTag[] {
    if (this.#error) throw this.#error;
    try {
      return this.#push(chunk);
    } catch (e) {
      this.#error = e instanceof Error ? e : new Error(String(e));
      throw e;
    }
  }

  #push(chunk: Uint8Array): FlvTag[] {
    const out: FlvTag[] = [];
    let pos = 0;
    while (pos < chunk.byteLength) {
      const need = this.#need;
      if (this.#pendingLen === 0 && chunk.byteLength - pos >= need) {
        this.#consume(chunk.subarray(pos, pos + need), out);
        pos += need;
        continue;
      }
      if (this.#pending.byteLength < need) {
        const next = new Uint8Array(Math.max(need, this.#pending.byteLength * 2));
        next.set(this.#pending.subarray(0, this.#pendingLen));
        this.#pending = next;
      }
      const take = Math.min(need - this.#pendingLen, chunk.byteLength - pos);
      this.#pending.set(chunk.subarray(pos, pos + take), this.#pendingLen);
      this.#pendingLen += take;
      pos += take;
      if (this.#pendingLen === need) {
        this.#pendingLen = 0;
        this.#consume(this.#pending.subarray(0, need), out);
      }
    }
    return out;
  }

  #consume(b: Uint8Array, out: FlvTag[]): void {
    switch (this.#step) {
      case Step.FileHeader: {
        if (b[0] !== 0x46 || b[1] !== 0x4c || b[2] !== 0x56) {
          throw new SyntaxError("not an FLV stream: bad signature");
        }
        const flags = b[4]!;
        this.#header = { version: b[3]!, hasAudio: (flags & 0x04) !== 0, hasVideo: (flags & 0x01) !== 0 };
        const dataOffset = ((b[5]! << 24) | (b[6]! << 16) | (b[7]! << 8) | b[8]!) >>> 0;
        if (dataOffset < FLV_HEADER_SIZE || dataOffset - FLV_HEADER_SIZE > this.maxTagSize) {
          throw new SyntaxError(`bad FLV header size ${dataOffset}`);
        }
        this.#step = Step.HeaderPadding;
        this.#need = dataOffset - FLV_HEADER_SIZE + 4;
        return;
      }
      case Step.HeaderPadding:
        this.#step = Step.TagHeader;
        this.#need = TAG_HEADER_SIZE;
        return;
      case Step.TagHeader: {
        const flags = b[0]!;
        if (flags & 0x20) throw new SyntaxError("encrypted FLV tags are not supported");
        const type = flags & 0x1f;
        if (type !== 8 && type !== 9 && type !== 18) throw new SyntaxError(`bad FLV tag type ${type}`);
        const size = (b[1]! << 16) | (b[2]! << 8) | b[3]!;
        if (size > this.maxTagSize) {
          throw new RangeError(`FLV tag of ${size} bytes exceeds the ${this.maxTagSize}-byte limit`);
        }
        this.#tagType = type;
        this.#tagTimestamp = b[7]! * 0x1000000 + ((b[4]! << 16) | (b[5]! << 8) | b[6]!);
        this.#step = Step.TagBody;
        this.#need = size + 4;
        return;
      }
      case Step.TagBody:
        out.push({ type: this.#tagType, timestamp: this.#tagTimestamp, data: b.slice(0, b.byteLength - 4) });
        this.#step = Step.TagHeader;
        this.#need = TAG_HEADER_SIZE;
        return;
    }
  }
}
