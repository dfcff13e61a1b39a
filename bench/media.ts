/**
 * The benchmark's media. One clip is encoded once (cached in .tools/bench/): ffmpeg testsrc
 * 1280x720 at 25 fps, libx264 CBR 2 Mbit/s (`-b:v 2M -maxrate 2M -bufsize 2M -g 50`, no
 * B-frames), AAC 128 kbit/s. Publishing it with `ffmpeg -re -stream_loop -1 -c copy` gives
 * every server the same real-time 2 Mbit/s stream while the publisher itself costs almost no
 * CPU (a live x264 encode would take most of one of the machine's two cores).
 *
 * `ClipPublisher` sends the same clip from this process over RTMP (tests/helpers/rtmp.ts
 * client), so the failover scenario knows exactly when a publisher reconnected.
 */

import { FlvDemuxer, type FlvTag } from "../src/flv/mod.ts";
import { RtmpTestClient } from "../tests/helpers/rtmp.ts";
import { type Proc, ROOT, sleep, spawn } from "./procs.ts";
import { wallNow } from "./players.ts";

const TOOLS_BIN = `${ROOT}/.tools/bin`;

export function tool(name: "ffmpeg" | "ffprobe"): string {
  try {
    Deno.statSync(`${TOOLS_BIN}/${name}`);
    return `${TOOLS_BIN}/${name}`;
  } catch {
    return name;
  }
}

export const CLIP_SECONDS = 60;
export const CLIP = `${ROOT}/.tools/bench/clip-720p25-2M-${CLIP_SECONDS}s.flv`;
export const ENCODE_ARGS = [
  "-f",
  "lavfi",
  "-i",
  "testsrc=size=1280x720:rate=25",
  "-f",
  "lavfi",
  "-i",
  "sine=frequency=440:sample_rate=44100",
  "-t",
  String(CLIP_SECONDS),
  "-c:v",
  "libx264",
  "-preset",
  "veryfast",
  "-b:v",
  "2M",
  "-minrate",
  "2M",
  "-maxrate",
  "2M",
  "-bufsize",
  "2M",
  "-x264-params",
  "nal-hrd=cbr",
  "-g",
  "50",
  "-keyint_min",
  "50",
  "-sc_threshold",
  "0",
  "-bf",
  "0",
  "-pix_fmt",
  "yuv420p",
  "-c:a",
  "aac",
  "-b:a",
  "128k",
  "-f",
  "flv",
];

/** Encodes the clip unless it is cached; returns its path. */
export async function ensureClip(): Promise<string> {
  try {
    if ((await Deno.stat(CLIP)).size > 1_000_000) return CLIP;
  } catch {
    // encode it
  }
  await Deno.mkdir(`${ROOT}/.tools/bench`, { recursive: true });
  const tmp = `${CLIP}.tmp`;
  const p = spawn("encode-clip", tool("ffmpeg"), [
    "-hide_banner",
    "-nostdin",
    "-loglevel",
    "error",
    "-y",
    ...ENCODE_ARGS,
    tmp,
  ]);
  const st = await p.exited;
  if (!st.success) throw new Error(`encoding the clip failed:\n${p.tail()}`);
  await Deno.rename(tmp, CLIP);
  return CLIP;
}

/** `ffmpeg -re -stream_loop -1 -i CLIP -c copy -f flv URL` */
export function publishFfmpeg(url: string, label = "publisher"): Proc {
  return spawn(label, tool("ffmpeg"), [
    "-hide_banner",
    "-nostdin",
    "-loglevel",
    "warning",
    "-re",
    "-stream_loop",
    "-1",
    "-i",
    CLIP,
    "-c",
    "copy",
    "-f",
    "flv",
    url,
  ]);
}

let clipTags: FlvTag[] | null = null;

async function loadClip(): Promise<FlvTag[]> {
  if (clipTags) return clipTags;
  const bytes = await Deno.readFile(CLIP);
  clipTags = new FlvDemuxer().push(bytes);
  return clipTags;
}

/** Publishes the clip in real time from this process; `drop()` cuts the TCP connection. */
export class ClipPublisher {
  #client: RtmpTestClient | null = null;
  #running = false;
  #loop: Promise<void> = Promise.resolve();
  /** Wall time the current connection attempt began. */
  connectAt = 0;
  /** Wall time NetStream.Publish.Start arrived. */
  publishedAt = 0;

  constructor(readonly host: string, readonly port: number, readonly path: string) {}

  async start(): Promise<void> {
    const tags = await loadClip();
    const [app, ...rest] = this.path.split("/");
    this.connectAt = wallNow();
    const c = await RtmpTestClient.connect(this.host, this.port);
    this.#client = c;
    await c.connectApp(app!, `rtmp://${this.host}:${this.port}/${app}`);
    const sid = await c.createStream();
    const st = await c.publish(sid, rest.join("/"));
    if (st["code"] !== "NetStream.Publish.Start") throw new Error(`publish refused: ${JSON.stringify(st)}`);
    this.publishedAt = wallNow();
    this.#running = true;
    this.#loop = this.#send(c, sid, tags).catch(() => {});
  }

  async #send(c: RtmpTestClient, sid: number, tags: FlvTag[]): Promise<void> {
    const t0 = performance.now();
    let base = 0;
    const span = tags[tags.length - 1]!.timestamp + 40;
    for (let loop = 0; this.#running; loop++) {
      for (const tag of tags) {
        if (!this.#running) return;
        if (loop > 0 && tag.type === 18) continue;
        const ts = base + tag.timestamp;
        const wait = t0 + ts - performance.now();
        if (wait > 1) await sleep(wait);
        if (tag.type === 9) await c.sendVideo(sid, ts, tag.data);
        else if (tag.type === 8) await c.sendAudio(sid, ts, tag.data);
        else await c.send(5, 18, sid, ts, concatSetDataFrame(tag.data));
      }
      base += span;
    }
  }

  /** Cuts the connection without unpublishing (as a crashed encoder or a network cut would). */
  async drop(): Promise<void> {
    this.#running = false;
    try {
      this.#client?.conn.close();
    } catch {
      // closed
    }
    await this.#loop;
    await this.#client?.readLoop.catch(() => {});
    this.#client = null;
  }
}

/** `@setDataFrame` + the clip's onMetaData body, as publishers send metadata. */
function concatSetDataFrame(body: Uint8Array): Uint8Array {
  const prefix = new Uint8Array([0x02, 0x00, 0x0d, ...new TextEncoder().encode("@setDataFrame")]);
  const out = new Uint8Array(prefix.byteLength + body.byteLength);
  out.set(prefix);
  out.set(body, prefix.byteLength);
  return out;
}
