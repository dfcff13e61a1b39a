import assert from "node:assert/strict";
import { configureLogging, Logger, redact, setLogWriter } from "./mod.ts";

/** Runs `fn` with logging captured at `level` in `format`, then restores stderr and defaults. */
function capture(format: "text" | "json", level: "debug" | "info" | "warn", fn: () => void): string[] {
  const lines: string[] = [];
  setLogWriter((line) => lines.push(line));
  configureLogging(level, format);
  try {
    fn();
  } finally {
    setLogWriter(null);
    configureLogging("info", "text");
  }
  return lines;
}

Deno.test("json format: one JSON object per line with ts, level, msg and every field", () => {
  const lines = capture("json", "debug", () => {
    const log = new Logger({ svc: "http" }).child({ conn: "h1" });
    log.info("play started", { stream: "live/cam", bytes: 12, ok: true, gone: undefined });
    log.debug("detail");
  });
  assert.equal(lines.length, 2);
  for (const line of lines) {
    assert.ok(line.endsWith("\n") && !line.slice(0, -1).includes("\n"), "exactly one line");
  }
  const first = JSON.parse(lines[0]!);
  assert.deepEqual(Object.keys(first).slice(0, 3), ["ts", "level", "msg"]);
  assert.ok(!Number.isNaN(Date.parse(first.ts)), `ts is a date: ${first.ts}`);
  assert.equal(new Date(first.ts).toISOString(), first.ts);
  assert.deepEqual({ ...first, ts: undefined }, {
    ts: undefined,
    level: "info",
    msg: "play started",
    svc: "http",
    conn: "h1",
    stream: "live/cam",
    bytes: 12,
    ok: true,
  });
  assert.equal(JSON.parse(lines[1]!).level, "debug");
});

Deno.test("levels: lines below the configured level are dropped", () => {
  const lines = capture("json", "warn", () => {
    const log = new Logger();
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
  });
  assert.deepEqual(lines.map((l) => JSON.parse(l).level), ["warn", "error"]);
});

Deno.test("text format: timestamp, padded level, message, key=value with quoting", () => {
  const [line] = capture(
    "text",
    "info",
    () => new Logger({ svc: "rtmp" }).warn("publish refused", { reason: "a b" }),
  );
  assert.match(
    line!,
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARN {2}publish refused svc=rtmp reason="a b"\n$/,
  );
});

Deno.test("secret-looking fields are never written", () => {
  const lines = capture("json", "info", () => {
    new Logger({ api_key: "k1" }).info("x", {
      token: "t1",
      internal_api_key: "k2",
      authorization: "Bearer z",
      keyframe: 1,
    });
  });
  const o = JSON.parse(lines[0]!);
  assert.equal(o.api_key, "<redacted>");
  assert.equal(o.token, "<redacted>");
  assert.equal(o.internal_api_key, "<redacted>");
  assert.equal(o.authorization, "<redacted>");
  assert.equal(o.keyframe, 1);
  for (const secret of ["k1", "t1", "k2", "Bearer z"]) assert.ok(!lines[0]!.includes(secret));
});

Deno.test("redact() strips query strings from URLs and paths", () => {
  const cases: [string, string][] = [
    ["live/cam?token=abc&x=1", "live/cam?<redacted>"],
    ["/live/cam.flv?sign=s3cr3t", "/live/cam.flv?<redacted>"],
    ["rtmp://127.0.0.1:1935/live/cam?key=k", "rtmp://127.0.0.1:1935/live/cam?<redacted>"],
    ["http://h/p?", "http://h/p?<redacted>"],
    ["live/cam", "live/cam"],
    ["", ""],
  ];
  for (const [input, want] of cases) {
    const got = redact(input);
    assert.equal(got, want, input);
    assert.ok(!/token|sign|key=|s3cr3t/.test(got), `nothing of the query survives: ${got}`);
  }
});
