/**
 * Minimal, allocation-free readers for what the benchmark players receive: an HTTP/1.1
 * response head, a chunked body, FLV tags and RTMP chunks. They never copy media payloads:
 * they only report, per completed audio/video message, its type, timestamp and first two
 * body bytes (enough to tell a key frame and an AVC sequence header from a coded frame).
 * Small control and command messages are collected whole (RTMP), because the client must
 * answer them. These are deliberately separate from src/ so a server bug cannot hide behind
 * a shared parser, and so the readers stay light enough to drive thousands of connections.
 */

/** Called for every complete audio (8), video (9) or script (18) message. */
export type TagHandler = (type: number, timestamp: number, b0: number, b1: number) => void;

/** FLV tag scanner: skips the 9+4 byte file header, then reports tags without copying bodies. */
export class FlvScanner {
  #skip = 13; // FLV file header (9) + PreviousTagSize0 (4)
  readonly #hdr = new Uint8Array(11);
  #hfill = 0;
  #bodyLeft = -1; // -1: reading a tag header
  #bodyPos = 0;
  #type = 0;
  #ts = 0;
  #b0 = 0;
  #b1 = 0;
  tags = 0;

  constructor(readonly onTag: TagHandler) {}

  push(d: Uint8Array, start = 0, end = d.byteLength): void {
    let p = start;
    while (p < end) {
      if (this.#skip > 0) {
        const k = Math.min(this.#skip, end - p);
        this.#skip -= k;
        p += k;
        continue;
      }
      if (this.#bodyLeft < 0) {
        const k = Math.min(11 - this.#hfill, end - p);
        this.#hdr.set(d.subarray(p, p + k), this.#hfill);
        this.#hfill += k;
        p += k;
        if (this.#hfill < 11) return;
        this.#hfill = 0;
        const h = this.#hdr;
        this.#type = h[0]! & 0x1f;
        this.#bodyLeft = (h[1]! << 16) | (h[2]! << 8) | h[3]!;
        this.#ts = h[7]! * 0x1000000 + ((h[4]! << 16) | (h[5]! << 8) | h[6]!);
        this.#bodyPos = 0;
        this.#b0 = this.#b1 = -1;
        if (this.#type !== 8 && this.#type !== 9 && this.#type !== 18) {
          throw new SyntaxError(`FLV: bad tag type ${this.#type}`);
        }
        if (this.#bodyLeft === 0) this.#finishTag();
        continue;
      }
      // Capture the first two body bytes, skip the rest.
      while (this.#bodyPos < 2 && this.#bodyLeft > 0 && p < end) {
        if (this.#bodyPos === 0) this.#b0 = d[p]!;
        else this.#b1 = d[p]!;
        this.#bodyPos++;
        this.#bodyLeft--;
        p++;
      }
      const k = Math.min(this.#bodyLeft, end - p);
      this.#bodyLeft -= k;
      p += k;
      if (this.#bodyLeft === 0) this.#finishTag();
    }
  }

  #finishTag(): void {
    this.#bodyLeft = -1;
    this.#skip = 4; // PreviousTagSize
    this.tags++;
    this.onTag(this.#type, this.#ts, this.#b0, this.#b1);
  }
}

/** Decodes `Transfer-Encoding: chunked`, handing each data run to `sink` without copying. */
export class Dechunker {
  #state: 0 | 1 | 2 = 0; // 0 size line, 1 data, 2 CRLF after data
  #size = 0;
  #sawDigit = false;
  #inExt = false;
  #left = 0;
  ended = false;

  constructor(readonly sink: (d: Uint8Array, start: number, end: number) => void) {}

  push(d: Uint8Array, start = 0, end = d.byteLength): void {
    let p = start;
    while (p < end && !this.ended) {
      if (this.#state === 0) {
        const c = d[p++]!;
        if (c === 0x0a) {
          if (!this.#sawDigit) continue; // the CRLF that ends the previous chunk's data
          if (this.#size === 0) {
            this.ended = true;
            return;
          }
          this.#left = this.#size;
          this.#size = 0;
          this.#sawDigit = false;
          this.#inExt = false;
          this.#state = 1;
        } else if (c === 0x3b) {
          this.#inExt = true;
        } else if (!this.#inExt && c !== 0x0d && c !== 0x20) {
          const v = c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57;
          if (v < 0 || v > 15) throw new SyntaxError(`chunked: bad size byte 0x${c.toString(16)}`);
          this.#size = this.#size * 16 + v;
          this.#sawDigit = true;
        }
      } else if (this.#state === 1) {
        const k = Math.min(this.#left, end - p);
        this.sink(d, p, p + k);
        p += k;
        this.#left -= k;
        if (this.#left === 0) this.#state = 0; // the trailing CRLF is skipped by state 0
      }
    }
  }
}

/** Parses the response head; afterwards hands body bytes to `body` (dechunked if needed). */
export class HttpResponseReader {
  #head = new Uint8Array(0);
  status = 0;
  headers = new Map<string, string>();
  #body: ((d: Uint8Array, s: number, e: number) => void) | null = null;
  #dechunk: Dechunker | null = null;

  constructor(readonly onHead: (r: HttpResponseReader) => (d: Uint8Array, s: number, e: number) => void) {}

  get headDone(): boolean {
    return this.#body !== null;
  }

  push(d: Uint8Array, n: number): void {
    if (this.#body) {
      if (this.#dechunk) this.#dechunk.push(d, 0, n);
      else this.#body(d, 0, n);
      return;
    }
    const merged = new Uint8Array(this.#head.byteLength + n);
    merged.set(this.#head);
    merged.set(d.subarray(0, n), this.#head.byteLength);
    let end = -1;
    for (let i = 3; i < merged.byteLength; i++) {
      if (merged[i] === 0x0a && merged[i - 1] === 0x0d && merged[i - 2] === 0x0a && merged[i - 3] === 0x0d) {
        end = i + 1;
        break;
      }
    }
    if (end < 0) {
      if (merged.byteLength > 16384) throw new SyntaxError("HTTP response head too large");
      this.#head = merged;
      return;
    }
    const lines = new TextDecoder().decode(merged.subarray(0, end)).split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
    if (!m) throw new SyntaxError(`bad HTTP status line: ${JSON.stringify(lines[0])}`);
    this.status = Number(m[1]);
    for (const line of lines.slice(1)) {
      const i = line.indexOf(":");
      if (i > 0) this.headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
    }
    this.#head = new Uint8Array(0);
    this.#body = this.onHead(this);
    if ((this.headers.get("transfer-encoding") ?? "").toLowerCase().includes("chunked")) {
      this.#dechunk = new Dechunker(this.#body);
      this.#dechunk.push(merged, end, merged.byteLength);
    } else {
      this.#body(merged, end, merged.byteLength);
    }
  }
}

interface ChunkStream {
  ts: number;
  delta: number;
  len: number;
  type: number;
  sid: number;
  ext: boolean;
  received: number;
  collect: Uint8Array | null;
  b0: number;
  b1: number;
}

/** Message types whose payload the client needs (control and commands). */
function collected(type: number): boolean {
  return type === 1 || type === 2 || type === 3 || type === 4 || type === 5 || type === 6 || type === 20 ||
    type === 17 || type === 15;
}

const MSG_HEADER_SIZE = [11, 7, 3, 0] as const;

/**
 * RTMP chunk-stream scanner (client side, after the handshake). Media payloads are skipped;
 * control and command messages are collected and passed to `onControl`.
 */
export class RtmpChunkScanner {
  chunkSize = 128;
  bytes = 0;
  readonly #streams = new Map<number, ChunkStream>();
  readonly #hdr = new Uint8Array(18);
  #hfill = 0;
  #need = 1;
  #stage = 0; // 0: first byte, 1: basic + message header, 2: + extended timestamp
  #payloadLeft = 0;
  #cur: ChunkStream | null = null;

  constructor(
    readonly onMedia: TagHandler,
    readonly onControl: (type: number, streamId: number, timestamp: number, payload: Uint8Array) => void,
  ) {}

  #stream(csid: number): ChunkStream {
    let s = this.#streams.get(csid);
    if (!s) {
      if (this.#streams.size > 64) throw new SyntaxError("RTMP: too many chunk streams");
      s = {
        ts: 0,
        delta: 0,
        len: 0,
        type: 0,
        sid: 0,
        ext: false,
        received: 0,
        collect: null,
        b0: -1,
        b1: -1,
      };
      this.#streams.set(csid, s);
    }
    return s;
  }

  push(d: Uint8Array, n: number): void {
    this.bytes += n;
    let p = 0;
    while (p < n) {
      if (this.#payloadLeft > 0) {
        const cs = this.#cur!;
        const k = Math.min(this.#payloadLeft, n - p);
        if (cs.collect) {
          cs.collect.set(d.subarray(p, p + k), cs.received);
        } else {
          if (cs.received === 0 && k > 0) cs.b0 = d[p]!;
          if (cs.received <= 1 && cs.received + k > 1) cs.b1 = d[p + 1 - cs.received]!;
        }
        cs.received += k;
        this.#payloadLeft -= k;
        p += k;
        if (this.#payloadLeft === 0 && cs.received === cs.len) this.#complete(cs);
        continue;
      }
      const k = Math.min(this.#need - this.#hfill, n - p);
      this.#hdr.set(d.subarray(p, p + k), this.#hfill);
      this.#hfill += k;
      p += k;
      if (this.#hfill === this.#need) this.#headerStep();
    }
  }

  #headerStep(): void {
    const h = this.#hdr;
    const fmt = h[0]! >> 6;
    const low = h[0]! & 0x3f;
    const bh = low === 0 ? 2 : low === 1 ? 3 : 1;
    if (this.#stage === 0) {
      this.#stage = 1;
      this.#need = bh + MSG_HEADER_SIZE[fmt as 0 | 1 | 2 | 3];
      if (this.#need > 1) return;
    }
    const csid = low === 0 ? 64 + h[1]! : low === 1 ? 64 + h[1]! + h[2]! * 256 : low;
    const cs = this.#stream(csid);
    const tsField = fmt < 3 ? (h[bh]! << 16) | (h[bh + 1]! << 8) | h[bh + 2]! : 0;
    if (this.#stage === 1) {
      const ext = fmt < 3 ? tsField === 0xffffff : cs.ext;
      if (ext) {
        this.#stage = 2;
        this.#need += 4;
        return;
      }
    }
    let field = tsField;
    if (this.#stage === 2) {
      const o = this.#need - 4;
      field = ((h[o]! << 24) | (h[o + 1]! << 16) | (h[o + 2]! << 8) | h[o + 3]!) >>> 0;
    }
    const newMessage = cs.received === 0 || fmt < 3;
    if (fmt === 0) {
      cs.ts = field;
      cs.delta = field;
      cs.len = (h[bh + 3]! << 16) | (h[bh + 4]! << 8) | h[bh + 5]!;
      cs.type = h[bh + 6]!;
      cs.sid = h[bh + 7]! | (h[bh + 8]! << 8) | (h[bh + 9]! << 16) | (h[bh + 10]! << 24);
      cs.ext = tsField === 0xffffff;
    } else if (fmt === 1 || fmt === 2) {
      cs.delta = field;
      cs.ts = (cs.ts + field) >>> 0;
      if (fmt === 1) {
        cs.len = (h[bh + 3]! << 16) | (h[bh + 4]! << 8) | h[bh + 5]!;
        cs.type = h[bh + 6]!;
      }
      cs.ext = tsField === 0xffffff;
    } else if (cs.received === 0) {
      cs.ts = (cs.ts + cs.delta) >>> 0;
    }
    if (newMessage) {
      cs.received = 0;
      cs.b0 = cs.b1 = -1;
      cs.collect = collected(cs.type) && cs.len <= 1 << 20 ? new Uint8Array(cs.len) : null;
    }
    this.#hfill = 0;
    this.#need = 1;
    this.#stage = 0;
    this.#cur = cs;
    this.#payloadLeft = Math.min(this.chunkSize, cs.len - cs.received);
    if (this.#payloadLeft === 0) this.#complete(cs);
  }

  #complete(cs: ChunkStream): void {
    const { type } = cs;
    const payload = cs.collect;
    cs.received = 0;
    cs.collect = null;
    if (type === 8 || type === 9 || type === 18) {
      this.onMedia(type, cs.ts, cs.b0, cs.b1);
    } else if (payload) {
      if (type === 1 && payload.byteLength >= 4) {
        this.chunkSize =
          (((payload[0]! << 24) | (payload[1]! << 16) | (payload[2]! << 8) | payload[3]!) >>> 0) &
          0x7fffffff;
      }
      this.onControl(type, cs.sid, cs.ts, payload);
    }
  }
}

/** True for a video tag carrying a coded picture (not a sequence header / end of sequence). */
export function isCodedVideo(b0: number, b1: number): boolean {
  if (b0 < 0) return false;
  if (b0 & 0x80) {
    // Enhanced RTMP: packet type in the low nibble; 1 = CodedFrames, 3 = CodedFramesX.
    const pt = b0 & 0x0f;
    return pt === 1 || pt === 3;
  }
  const codec = b0 & 0x0f;
  if (codec === 7 || codec === 12) return b1 === 1;
  return true;
}

export function isKeyframe(b0: number): boolean {
  return ((b0 >> 4) & 0x07) === 1;
}
