import assert from "node:assert/strict";
import { formatValue, MetricsRegistry } from "./mod.ts";

Deno.test("stored families: HELP, TYPE, declared series at 0, inc and set", () => {
  const m = new MetricsRegistry();
  m.counter("app_events_total", "Events.");
  m.counter("app_plays_total", "Plays by protocol.", ["protocol"], [{ protocol: "rtmp" }, {
    protocol: "http-flv",
  }]);
  m.gauge("app_queue", "Queue depth.", ["node"]);
  assert.equal(
    m.render(),
    [
      "# HELP app_events_total Events.",
      "# TYPE app_events_total counter",
      "app_events_total 0",
      "# HELP app_plays_total Plays by protocol.",
      "# TYPE app_plays_total counter",
      'app_plays_total{protocol="rtmp"} 0',
      'app_plays_total{protocol="http-flv"} 0',
      "# HELP app_queue Queue depth.",
      "# TYPE app_queue gauge",
      "",
    ].join("\n"),
  );
  m.inc("app_events_total");
  m.inc("app_events_total", {}, 2);
  m.inc("app_plays_total", { protocol: "rtmp" });
  m.set("app_queue", { node: "a" }, 7);
  m.inc("app_queue", { node: "a" }, -2);
  assert.equal(m.value("app_events_total"), 3);
  assert.equal(m.value("app_plays_total", { protocol: "rtmp" }), 1);
  assert.equal(m.value("app_plays_total", { protocol: "ws-flv" }), 0);
  assert.equal(m.value("app_queue", { node: "a" }), 5);
  assert.match(m.render(), /^app_plays_total\{protocol="rtmp"\} 1$/m);
  assert.match(m.render(), /^app_queue\{node="a"\} 5$/m);
});

Deno.test("label values are escaped; collected families follow stored ones", () => {
  const m = new MetricsRegistry();
  m.collect(() => [{
    name: "app_peer_up",
    help: "Peer up.\nSecond line \\ done",
    type: "gauge",
    labelNames: ["server_id"],
    samples: [{ labels: { server_id: 'a"b\\c\nd' }, value: 1 }, { labels: { server_id: "x" }, value: NaN }],
  }]);
  assert.equal(
    m.render(),
    [
      "# HELP app_peer_up Peer up.\\nSecond line \\\\ done",
      "# TYPE app_peer_up gauge",
      'app_peer_up{server_id="a\\"b\\\\c\\nd"} 1',
      'app_peer_up{server_id="x"} NaN',
      "",
    ].join("\n"),
  );
});

Deno.test("misuse is a RangeError: bad names, wrong labels, counters going down, duplicates", () => {
  const m = new MetricsRegistry();
  assert.throws(() => m.counter("bad-name", "x"), RangeError);
  assert.throws(() => m.gauge("ok_name", "x", ["__reserved"]), RangeError);
  m.counter("c_total", "c", ["a"]);
  assert.throws(() => m.counter("c_total", "again"), RangeError);
  assert.throws(() => m.inc("c_total", { b: "1" }), RangeError);
  assert.throws(() => m.inc("c_total", {}), RangeError);
  assert.throws(() => m.inc("c_total", { a: "1" }, -1), RangeError);
  assert.throws(() => m.set("c_total", { a: "1" }, 1), RangeError);
  assert.throws(() => m.inc("nope_total"), RangeError);
  m.collect(() => [{ name: "c_total", help: "dup", type: "counter", samples: [] }]);
  assert.throws(() => m.render(), RangeError);
});

Deno.test("formatValue: Prometheus float spelling", () => {
  assert.equal(formatValue(0), "0");
  assert.equal(formatValue(1.5), "1.5");
  assert.equal(formatValue(Infinity), "+Inf");
  assert.equal(formatValue(-Infinity), "-Inf");
  assert.equal(formatValue(NaN), "NaN");
  assert.equal(formatValue(1e21), "1e+21");
});
