import assert from "node:assert/strict";
import { encodeAmf0 } from "../amf/mod.ts";
import { classifyTag, FlvDemuxer } from "../flv/mod.ts";
import {
  type CloseReason,
  type HubOptions,
  makeFrame,
  type MediaFrame,
  parseStreamPath,
  type PublisherInfo,
  StreamBusyError,
  StreamHub,
  type StreamPath,
  type Subscriber,
  type SubscriberInfo,
  TagType,
} from "./mod.ts";

const P = (s: string): StreamPath => parseStreamPath(s).path;
const pub = (id: string): PublisherInfo => ({ id, protocol: "rtmp", remoteAddr: "127.0.0.1:1" });
let subIds = 0;
const player = (): SubscriberInfo => ({
  id: `s${++subIds}`,
  protocol: "http-flv",
  remoteAddr: "127.0.0.1:2",
});

function frame(type: TagType, ts: number, body: number[]): MediaFrame {
  const data = new Uint8Array(body);
  return makeFrame(type, ts, data, classifyTag(type, data));
}

const F = {
  meta: (ts = 0) => frame(TagType.Script, ts, [...encodeAmf0(["onMetaData", { width: 320 }])]),
  vsh: (ts = 0) => frame(TagType.Video, ts, [0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f]),
  key: (ts: number) => frame(TagType.Video, ts, [0x17, 1, 0, 0, 0, 0xaa]),
  p: (ts: number) => frame(TagType.Video, ts, [0x27, 1, 0, 0, 0, 0xbb]),
  ash: (ts = 0) => frame(TagType.Audio, ts, [0xaf, 0, 0x12, 0x10]),
  a: (ts: number) => frame(TagType.Audio, ts, [0xaf, 1, 0x21]),
};

/** A short label per frame, e.g. "key@80". */
function label(f: MediaFrame): string {
  if (f.type === TagType.Script) return "meta";
  if (f.type === TagType.Audio) return f.sequenceHeader ? "ash" : `a@${f.timestamp}`;
  if (f.sequenceHeader) return "vsh";
  return `${f.keyframe ? "key" : "p"}@${f.timestamp}`;
}

function drain(sub: Subscriber): MediaFrame[] {
  const out: MediaFrame[] = [];
  for (;;) {
    const f = sub.read();
    if (!f) return out;
    out.push(f);
  }
}

function makeHub(opts: Partial<HubOptions> = {}): { hub: StreamHub; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const hub = new StreamHub({
    gopCache: true,
    maxGopFrames: 100,
    playerQueueFrames: 100,
    playerStallTimeoutMs: 5000,
    republishGraceMs: 0,
    now: () => clock.now,
    ...opts,
  });
  return { hub, clock };
}

function writeAll(h: { write(f: MediaFrame): void }, frames: MediaFrame[]): MediaFrame[] {
  for (const f of frames) h.write(f);
  return frames;
}

Deno.test("hub: one publisher per path; the refused one changes nothing", () => {
  const { hub } = makeHub();
  const path = P("live/a");
  const first = hub.publish(path, pub("p1"));
  first.write(F.meta());
  assert.throws(() => hub.publish(path, pub("p2")), StreamBusyError);
  const s = hub.get(path)!;
  assert.equal(s.publisher?.id, "p1");
  assert.equal(s.epoch, 1);
  assert.equal(s.framesIn, 1);
  assert.ok(hub.publish(P("live/b"), pub("p3")), "another path is free");

  first.close();
  first.close(); // idempotent
  assert.equal(hub.get(path), undefined, "no players: the stream is gone at once");
  const again = hub.publish(path, pub("p4"));
  first.write(F.key(0)); // a closed handle writes nothing
  assert.equal(again.stream.framesIn, 0);
  assert.equal(hub.liveStreams().length, 2);
  hub.closeAll();
});

Deno.test("hub: a new player gets metadata, video and audio headers, the GOP from the last keyframe, then live", () => {
  const { hub } = makeHub();
  const h = hub.publish(P("live/gop"), pub("p"));
  const sent = writeAll(h, [F.meta(), F.vsh(), F.ash(), F.key(0), F.a(10), F.p(40), F.a(33), F.key(80)]);
  const tail = writeAll(h, [F.a(56), F.p(120), F.a(80)]);
  const sub = hub.subscribe(P("live/gop"), player())!;
  const got = drain(sub);
  assert.deepEqual(got.map(label), ["meta", "vsh", "ash", "key@80", "a@56", "p@120", "a@80"]);
  // Frames are shared, never copied.
  assert.equal(got[0], sent[0]);
  assert.equal(got[3], sent[7]);
  assert.equal(got[4], tail[0]);
  h.write(F.p(160));
  assert.deepEqual(drain(sub).map(label), ["p@160"]);
  hub.closeAll();
});

Deno.test("hub: without the GOP cache a new player waits for the next keyframe", () => {
  const { hub } = makeHub({ gopCache: false });
  const h = hub.publish(P("live/nogop"), pub("p"));
  writeAll(h, [F.meta(), F.vsh(), F.ash(), F.key(0), F.p(40)]);
  const sub = hub.subscribe(P("live/nogop"), player())!;
  writeAll(h, [F.p(80), F.a(90), F.key(120), F.a(130)]);
  assert.deepEqual(drain(sub).map(label), ["meta", "vsh", "ash", "key@120", "a@130"]);
  assert.equal(sub.dropped, 2);
  hub.closeAll();
});

Deno.test("hub: the GOP cache is bounded and restarts at a new video sequence header", () => {
  const { hub } = makeHub({ maxGopFrames: 3 });
  const h = hub.publish(P("live/big"), pub("p"));
  writeAll(h, [F.vsh(), F.key(0), F.p(40), F.p(80), F.p(120)]);
  assert.equal(h.stream.gop.length, 0, "an over-long GOP is dropped, not kept growing");
  writeAll(h, [F.key(160), F.p(200)]);
  assert.deepEqual(h.stream.gop.map(label), ["key@160", "p@200"]);
  h.write(F.vsh(240));
  assert.equal(h.stream.gop.length, 0);
  hub.closeAll();
});

Deno.test("hub: a slow player skips ahead to the next keyframe without affecting the others", () => {
  const { hub } = makeHub({ playerQueueFrames: 8 });
  const h = hub.publish(P("live/slow"), pub("p"));
  writeAll(h, [F.meta(), F.vsh(), F.ash(), F.key(0)]);
  const fast = hub.subscribe(P("live/slow"), player())!;
  const slow = hub.subscribe(P("live/slow"), player())!;
  const fastGot = drain(fast);
  const live: MediaFrame[] = [];
  for (let i = 1; i <= 20; i++) live.push(F.p(i * 40));
  live.push(F.key(21 * 40), F.p(22 * 40));
  for (const f of live) {
    h.write(f);
    fastGot.push(...drain(fast)); // the fast player keeps up
  }
  assert.deepEqual(fastGot.map(label), ["meta", "vsh", "ash", "key@0", ...live.map(label)]);
  assert.equal(fast.dropped, 0);

  // The slow one never read: it lost its backlog and resumes at the next keyframe with headers.
  assert.equal(slow.closeReason, null, "not stalled: the clock did not move");
  assert.deepEqual(drain(slow).map(label), ["meta", "vsh", "ash", "key@840", "p@880"]);
  assert.ok(slow.dropped > 0);
  assert.equal(hub.stats.framesDropped, slow.dropped);
  assert.equal(h.stream.subscribers.size, 2);
  hub.closeAll();
});

Deno.test("hub: a player that makes no progress for the stall timeout is closed as stalled", () => {
  const { hub, clock } = makeHub({ playerQueueFrames: 6, playerStallTimeoutMs: 1000 });
  const path = P("live/stall");
  const events: [string, CloseReason][] = [];
  hub.events.on("unsubscribe", (_s, sub, reason) => events.push([sub.info.id, reason]));
  const h = hub.publish(path, pub("p"));
  writeAll(h, [F.meta(), F.vsh(), F.ash(), F.key(0)]);
  const reader = hub.subscribe(path, player())!;
  const stalled = hub.subscribe(path, player())!;
  let closedWith: CloseReason | null = null;
  stalled.onClose = (r) => closedWith = r;

  // Within the timeout a full queue only resyncs.
  for (let i = 1; i <= 10; i++) {
    clock.now += 40;
    h.write(F.p(i * 40));
    drain(reader);
  }
  assert.equal(stalled.closeReason, null);
  clock.now += 1000;
  for (let i = 11; i <= 20; i++) {
    clock.now += 40;
    h.write(i === 11 ? F.key(i * 40) : F.p(i * 40));
    drain(reader);
  }
  assert.equal(stalled.closeReason, "stalled");
  assert.equal(closedWith, "stalled");
  assert.equal(stalled.read(), null, "a stalled player's queue is dropped");
  assert.equal(reader.closeReason, null, "the reading player is unaffected");
  assert.deepEqual([...h.stream.subscribers], [reader]);
  assert.deepEqual(events, [[stalled.info.id, "stalled"]]);
  hub.closeAll();
});

Deno.test("hub: a republish within the grace period keeps players and continues their timeline", () => {
  const { hub } = makeHub({ republishGraceMs: 60_000 });
  const path = P("live/re");
  const seen: string[] = [];
  hub.events.on("publish", (s) => seen.push(`publish#${s.epoch}`));
  hub.events.on("unpublish", (s) => seen.push(`unpublish#${s.epoch}`));
  hub.events.on("closed", () => seen.push("closed"));

  const first = hub.publish(path, pub("p1"));
  writeAll(first, [F.meta(), F.vsh(), F.ash(), F.key(0), F.a(10), F.p(40), F.a(1010), F.p(1000)]);
  const sub = hub.subscribe(path, player())!;
  const got = drain(sub);
  first.close();
  assert.equal(sub.closeReason, null, "player stays during the grace period");
  assert.deepEqual(hub.liveStreams(), []);
  assert.ok(hub.get(path), "stream kept for the grace period");

  const second = hub.publish(path, pub("p2"));
  assert.equal(second.stream.epoch, 2);
  // The new session starts its own clock at 0.
  writeAll(second, [F.meta(0), F.vsh(0), F.ash(0), F.key(0), F.a(5), F.p(40), F.a(28), F.p(80)]);
  got.push(...drain(sub));
  assert.deepEqual(
    got.map(label).filter((l) => !l.includes("@")),
    ["meta", "vsh", "ash", "meta", "vsh", "ash"],
    "the player sees the new headers",
  );
  const lastOld = { video: 1000, audio: 1010 };
  const newVideo = got.slice(8).filter((f) => f.type === TagType.Video && !f.sequenceHeader);
  const newAudio = got.slice(8).filter((f) => f.type === TagType.Audio && !f.sequenceHeader);
  assert.ok(newVideo.every((f) => f.timestamp > lastOld.video), newVideo.map(label).join());
  assert.ok(newAudio.every((f) => f.timestamp >= lastOld.audio), newAudio.map(label).join());
  for (const track of [TagType.Video, TagType.Audio]) {
    const ts = got.filter((f) => f.type === track && !f.sequenceHeader).map((f) => f.timestamp);
    assert.deepEqual(ts, [...ts].sort((a, b) => a - b), `track ${track} timestamps`);
  }
  // The new session's spacing is preserved.
  assert.deepEqual(newVideo.map((f) => f.timestamp - newVideo[0]!.timestamp), [0, 40, 80]);
  // The tag header carries the rewritten timestamp too (players send `tag` as is).
  const t = newVideo[0]!.tag;
  assert.equal(((t[7]! << 24) | (t[4]! << 16) | (t[5]! << 8) | t[6]!) >>> 0, newVideo[0]!.timestamp);

  // A player joining now gets only the new session's headers.
  const late = hub.subscribe(path, player())!;
  assert.deepEqual(drain(late).map(label).slice(0, 4), [
    "meta",
    "vsh",
    "ash",
    `key@${newVideo[0]!.timestamp}`,
  ]);
  assert.deepEqual(seen, ["publish#1", "unpublish#1", "publish#2"]);
  hub.closeAll();
  assert.equal(sub.closeReason, "ended");
});

Deno.test("hub: players end when the grace period passes without a publisher", async () => {
  const { hub } = makeHub({ republishGraceMs: 30 });
  const path = P("live/gone");
  const closed: string[] = [];
  hub.events.on("closed", (s) => closed.push(s.path));
  const h = hub.publish(path, pub("p"));
  writeAll(h, [F.vsh(), F.key(0)]);
  const sub = hub.subscribe(path, player())!;
  h.write(F.p(40));
  h.close();
  assert.equal(sub.closeReason, null);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(sub.closeReason, "ended");
  assert.deepEqual(drain(sub).map(label), ["vsh", "key@0", "p@40"], "queued frames stay readable");
  assert.equal(sub.read(), null);
  assert.equal(hub.get(path), undefined);
  assert.deepEqual(closed, [path]);
});

Deno.test("hub: with no grace period players end at unpublish", () => {
  const { hub } = makeHub({ republishGraceMs: 0 });
  const h = hub.publish(P("live/now"), pub("p"));
  writeAll(h, [F.vsh(), F.key(0)]);
  const sub = hub.subscribe(P("live/now"), player())!;
  h.close();
  assert.equal(sub.closeReason, "ended");
  assert.equal(hub.get(P("live/now")), undefined);
});

Deno.test("hub: events report publish, subscribe, unsubscribe, unpublish and closed in order", () => {
  const { hub } = makeHub();
  const log: string[] = [];
  hub.events.on("publish", (s) => log.push(`publish ${s.path}`));
  hub.events.on("subscribe", (s, sub) => log.push(`subscribe ${s.path} ${sub.info.protocol}`));
  hub.events.on("unsubscribe", (s, _sub, reason) => log.push(`unsubscribe ${s.path} ${reason}`));
  hub.events.on("unpublish", (s) => log.push(`unpublish ${s.path}`));
  const off = hub.events.on("closed", (s) => log.push(`closed ${s.path}`));
  // A throwing handler does not break the hub or the other handlers.
  const offBug = hub.events.on("publish", () => {
    throw new Error("handler bug");
  });
  const origError = console.error;
  console.error = () => {};
  try {
    const h = hub.publish(P("live/ev"), pub("p"));
    const sub = hub.subscribe(P("live/ev"), player())!;
    sub.close("client");
    h.close();
  } finally {
    console.error = origError;
  }
  off();
  offBug();
  hub.publish(P("live/ev2"), pub("p")).close();
  assert.deepEqual(log, [
    "publish live/ev",
    "subscribe live/ev http-flv",
    "unsubscribe live/ev client",
    "unpublish live/ev",
    "closed live/ev",
    "publish live/ev2",
    "unpublish live/ev2",
  ]);
});

Deno.test("hub: subscribeWhenLive waits for the publisher, asks the missing-stream handler, times out", async () => {
  const hub = new StreamHub({
    gopCache: true,
    maxGopFrames: 100,
    playerQueueFrames: 100,
    playerStallTimeoutMs: 5000,
    republishGraceMs: 0,
  });
  const asked: string[] = [];
  hub.missingStreamHandler = (p) => asked.push(p);
  const path = P("live/soon");
  const waiting = hub.subscribeWhenLive(path, player(), 5000);
  assert.deepEqual(asked, [path]);
  const h = hub.publish(path, pub("p"));
  const sub = await waiting;
  assert.ok(sub, "subscribed once the stream went live");
  assert.equal(h.stream.subscribers.size, 1);

  const t0 = performance.now();
  assert.equal(await hub.subscribeWhenLive(P("live/never"), player(), 50), null);
  assert.ok(performance.now() - t0 >= 45);

  const abort = new AbortController();
  const aborted = hub.subscribeWhenLive(P("live/never"), player(), 5000, abort.signal);
  abort.abort();
  assert.equal(await aborted, null);
  assert.equal(await hub.subscribeWhenLive(P("live/never"), player(), 0), null, "0 = answer at once");
  hub.closeAll();
  assert.equal(sub.closeReason, "ended");
});

Deno.test("hub: timestamps that go backwards within a track are held at the last value", () => {
  const { hub } = makeHub();
  const h = hub.publish(P("live/back"), pub("p"));
  writeAll(h, [F.vsh(), F.key(100)]);
  const sub = hub.subscribe(P("live/back"), player())!;
  writeAll(h, [F.p(90), F.a(50), F.a(40), F.p(140)]);
  assert.deepEqual(drain(sub).map(label), ["vsh", "key@100", "p@100", "a@50", "a@50", "p@140"]);
  hub.closeAll();
});

Deno.test("hub: codec info comes from the real sequence headers of an ffmpeg FLV", async () => {
  const bytes = await Deno.readFile(new URL("../flv/testdata/h264_aac_320x180.flv", import.meta.url));
  const { hub } = makeHub();
  const h = hub.publish(P("live/real"), pub("p"));
  const tags = new FlvDemuxer().push(bytes);
  for (const t of tags) {
    h.write(makeFrame(t.type as TagType, t.timestamp, t.data, classifyTag(t.type, t.data)));
  }
  assert.deepEqual(h.stream.codec, {
    videoCodec: "h264",
    audioCodec: "aac",
    width: 320,
    height: 180,
    audioSampleRate: 44100,
    audioChannels: 2,
  });
  const sub = hub.subscribe(P("live/real"), player())!;
  const got = drain(sub);
  assert.deepEqual(got.slice(0, 3).map(label), ["meta", "vsh", "ash"]);
  assert.equal(got[3]!.keyframe, true);
  hub.closeAll();
});

Deno.test("hub: a tiny player queue (player_queue_frames 1..3) still yields headers, then a keyframe", () => {
  for (const playerQueueFrames of [1, 2, 3]) {
    const { hub } = makeHub({ playerQueueFrames });
    const h = hub.publish(P("live/tiny"), pub("p"));
    writeAll(h, [F.meta(), F.vsh(), F.ash(), F.key(0)]);
    const sub = hub.subscribe(P("live/tiny"), player())!;
    const got: MediaFrame[] = [];
    for (const f of [F.p(40), F.p(80), F.key(120), F.p(160)]) {
      h.write(f);
      if (f.timestamp === 120) got.push(...drain(sub));
    }
    got.push(...drain(sub));
    assert.equal(sub.queued, 0, `queue ${playerQueueFrames}: frames left after draining`);
    assert.ok(got.every((f) => f !== undefined), `queue ${playerQueueFrames}: holes in the queue`);
    assert.deepEqual(
      got.map(label).slice(0, 4),
      ["meta", "vsh", "ash", "key@120"],
      `queue ${playerQueueFrames}`,
    );
    hub.closeAll();
  }
});
