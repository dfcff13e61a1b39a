import assert from "node:assert/strict";
import {
  ConfigError,
  defaultConfig,
  effectiveRoles,
  parseConfig,
  parseConfigYaml,
  resolveIdentity,
} from "./mod.ts";

/** Asserts parseConfig(raw) throws a one-line ConfigError mentioning `field` (and `text` if given). */
function rejects(raw: unknown, field: string, text?: string | RegExp): ConfigError {
  let caught: unknown;
  try {
    parseConfig(raw);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError, `expected ConfigError, got ${String(caught)}`);
  const msg = caught.message;
  assert.ok(!msg.includes("\n"), `message must be one line: ${JSON.stringify(msg)}`);
  assert.ok(msg.startsWith("config: "), msg);
  assert.ok(msg.includes(`${field}: `), `message should name ${field}: ${msg}`);
  assert.equal(caught.field, field);
  if (typeof text === "string") {
    assert.ok(msg.includes(text), `message should contain ${JSON.stringify(text)}: ${msg}`);
  } else if (text) assert.match(msg, text);
  return caught;
}

Deno.test("empty input gives the full default configuration", () => {
  const expected = {
    global: { http: { listenaddr: ":8180" }, log: { level: "info", format: "text" } },
    rtmp: {
      tcp: { listenaddr: ":1935" },
      chunk_size: 4096,
      max_message_size: 8388608,
      handshake_timeout: 10,
      publish_idle_timeout: 15,
    },
    flv: {
      wait_timeout: 5,
      gop_cache: true,
      max_gop_frames: 1800,
      player_queue_frames: 600,
      player_stall_timeout: 10,
    },
    cluster: {
      enable: true,
      sync: {
        enabled: true,
        server_id: "",
        address: "",
        seed_servers: [],
        heartbeat_interval: 5,
        sync_interval: 30,
        heartbeat_ttl: 15,
        suspect_threshold: 2,
        offline_threshold: 3,
        internal_api_key: "",
      },
      routing: { cpu_threshold: 85, bandwidth_threshold: 8000, subscriber_threshold: 2000 },
      allocation: { ticket_ttl: 30, candidate_limit: 3 },
      relay: {
        establish_timeout: 10,
        release_delay: 10,
        max_retry_attempts: 3,
        retry_delay: 2,
        health_check_interval: 5,
        republish_grace: 10,
      },
      quic: { listenaddr: ":44944", cert_file: "", key_file: "", ca_file: "" },
      role: [],
      test_load: null,
    },
  };
  assert.deepEqual(parseConfig({}), expected);
  assert.deepEqual(parseConfig(undefined), expected);
  assert.deepEqual(parseConfig(null), expected);
  assert.deepEqual(defaultConfig(), expected);
  assert.deepEqual(parseConfigYaml(""), expected);
  assert.deepEqual(parseConfigYaml("# only a comment\n"), expected);
});

Deno.test("default lists are not shared between parses", () => {
  const a = parseConfig({});
  a.cluster.sync.seed_servers.push("x:1");
  a.cluster.role.push("edge");
  const b = parseConfig({});
  assert.deepEqual(b.cluster.sync.seed_servers, []);
  assert.deepEqual(b.cluster.role, []);
});

Deno.test("partial sections keep the other defaults; null sections and lists mean defaults", () => {
  const c = parseConfig({ cluster: { sync: { heartbeat_interval: 1 } }, rtmp: null });
  assert.equal(c.cluster.sync.heartbeat_interval, 1);
  assert.equal(c.cluster.sync.sync_interval, 30);
  assert.equal(c.rtmp.chunk_size, 4096);
  const y = parseConfigYaml("cluster:\n  sync:\n    seed_servers:\n    # - 10.0.0.1:8180\n  relay:\n");
  assert.deepEqual(y.cluster.sync.seed_servers, []);
  assert.equal(y.cluster.relay.retry_delay, 2);
});

Deno.test("the spec's example cluster block parses", () => {
  const c = parseConfigYaml(`
cluster:
  sync:
    enabled: true
    server_id: "node-1"
    address: "192.168.1.10:8180"
    seed_servers:
      - "192.168.1.10:8180"
      - "192.168.1.11:8180"
      - "192.168.1.12:8180"
    heartbeat_interval: 5
    sync_interval: 30
    heartbeat_ttl: 15
    suspect_threshold: 2
    offline_threshold: 3
    # internal_api_key: "..."
  routing:
    cpu_threshold: 85.0
    bandwidth_threshold: 8000.0
    subscriber_threshold: 2000
  allocation:
    ticket_ttl: 30
    candidate_limit: 3
  relay:
    establish_timeout: 10
    release_delay: 10
    max_retry_attempts: 3
    retry_delay: 2
    health_check_interval: 5
  role: []
`);
  assert.equal(c.cluster.sync.server_id, "node-1");
  assert.equal(c.cluster.sync.address, "192.168.1.10:8180");
  assert.deepEqual(c.cluster.sync.seed_servers, [
    "192.168.1.10:8180",
    "192.168.1.11:8180",
    "192.168.1.12:8180",
  ]);
  assert.equal(c.cluster.routing.cpu_threshold, 85);
  assert.equal(c.cluster.relay.republish_grace, 10);

  // Deployment example: flow-style sync block.
  const edge = parseConfigYaml(
    `cluster:\n  sync: { enabled: true, server_id: "edge-1", address: "10.0.0.2:8180", seed_servers: ["10.0.0.1:8180"] }\n`,
  );
  assert.equal(edge.cluster.sync.server_id, "edge-1");
  assert.deepEqual(edge.cluster.sync.seed_servers, ["10.0.0.1:8180"]);
});

Deno.test("unknown keys are rejected at every level", () => {
  rejects({ foo: 1 }, "foo", "config: foo: unknown key");
  rejects({ global: { foo: 1 } }, "global.foo", "config: global.foo: unknown key");
  rejects(
    { cluster: { sync: { heartbeat_intervall: 5 } } },
    "cluster.sync.heartbeat_intervall",
    "unknown key",
  );
  rejects({ cluster: { quic: { listen_addr: ":1" } } }, "cluster.quic.listen_addr", "unknown key");
  rejects({ cluster: { test_load: { cpu: 1, ram: 2 } } }, "cluster.test_load.ram", "unknown key");
});

Deno.test("wrong types are rejected with the field path", () => {
  rejects(
    { cluster: { sync: { heartbeat_interval: "5" } } },
    "cluster.sync.heartbeat_interval",
    "expected a number",
  );
  rejects({ cluster: { enable: "yes" } }, "cluster.enable", "expected a boolean");
  rejects({ cluster: { sync: { seed_servers: "a:1" } } }, "cluster.sync.seed_servers", "expected a list");
  rejects({ global: [] }, "global", "expected a mapping, got a list");
  rejects({ rtmp: { chunk_size: 4096.5 } }, "rtmp.chunk_size", "must be an integer");
  rejects({ cluster: { sync: { suspect_threshold: 1.5 } } }, "cluster.sync.suspect_threshold", "integer");
  rejects(
    { cluster: { sync: { server_id: 7 } } },
    "cluster.sync.server_id",
    "expected a string, got a number",
  );
  rejects({ global: { log: { level: "verbose" } } }, "global.log.level", 'must be one of "debug", "info"');
  rejects({ cluster: { test_load: "high" } }, "cluster.test_load", "expected a mapping");
  rejects({ flv: { wait_timeout: null } }, "flv.wait_timeout", "got an empty value");
  rejects([], "top level", "expected a mapping");
});

Deno.test("listen addresses: port range and syntax", () => {
  rejects(
    { rtmp: { tcp: { listenaddr: ":99999" } } },
    "rtmp.tcp.listenaddr",
    "config: rtmp.tcp.listenaddr: port 99999 out of range 0..65535",
  );
  rejects({ global: { http: { listenaddr: "8180" } } }, "global.http.listenaddr", "HOST:PORT");
  rejects({ global: { http: { listenaddr: "::1:8180" } } }, "global.http.listenaddr", "brackets");
  rejects({ cluster: { quic: { listenaddr: "host:abc" } } }, "cluster.quic.listenaddr", 'invalid port "abc"');
  rejects({ global: { http: { listenaddr: 8180 } } }, "global.http.listenaddr", "expected a string");
  const c = parseConfig({
    global: { http: { listenaddr: ":0" } },
    rtmp: { tcp: { listenaddr: "127.0.0.1:19350" } },
    cluster: { quic: { listenaddr: "[::1]:44944" } },
  });
  assert.equal(c.global.http.listenaddr, ":0");
  assert.equal(c.cluster.quic.listenaddr, "[::1]:44944");
});

Deno.test("durations: fractional allowed, must be positive", () => {
  const c = parseConfig({
    cluster: {
      sync: { heartbeat_interval: 0.2, sync_interval: 0.5, heartbeat_ttl: 0.6 },
      relay: { health_check_interval: 0.2, retry_delay: 0.1, release_delay: 0 },
    },
    flv: { wait_timeout: 0 },
  });
  assert.equal(c.cluster.sync.heartbeat_interval, 0.2);
  assert.equal(c.cluster.relay.retry_delay, 0.1);
  assert.equal(c.cluster.relay.release_delay, 0);
  assert.equal(c.flv.wait_timeout, 0);
  rejects(
    { cluster: { sync: { heartbeat_interval: 0 } } },
    "cluster.sync.heartbeat_interval",
    "config: cluster.sync.heartbeat_interval: must be greater than 0",
  );
  rejects(
    { cluster: { sync: { heartbeat_interval: -1 } } },
    "cluster.sync.heartbeat_interval",
    "greater than 0",
  );
  rejects({ cluster: { relay: { retry_delay: -0.5 } } }, "cluster.relay.retry_delay", "must be at least 0");
  rejects({ rtmp: { handshake_timeout: 1e9 } }, "rtmp.handshake_timeout", "must be at most 86400");
});

Deno.test("offline_threshold must be >= suspect_threshold", () => {
  rejects(
    { cluster: { sync: { suspect_threshold: 4, offline_threshold: 3 } } },
    "cluster.sync.offline_threshold",
    "suspect_threshold",
  );
  rejects({ cluster: { sync: { suspect_threshold: 5 } } }, "cluster.sync.offline_threshold");
  const c = parseConfig({ cluster: { sync: { suspect_threshold: 3, offline_threshold: 3 } } });
  assert.equal(c.cluster.sync.offline_threshold, 3);
  rejects(
    { cluster: { sync: { offline_threshold: 0 } } },
    "cluster.sync.offline_threshold",
    "greater than 0",
  );
});

Deno.test("roles", () => {
  rejects({ cluster: { role: ["relay"] } }, "cluster.role[0]", 'must be one of "origin", "edge"');
  rejects({ cluster: { role: ["edge", "edge"] } }, "cluster.role[1]", 'duplicate role "edge"');
  rejects({ cluster: { role: "edge" } }, "cluster.role", "expected a list");
  assert.deepEqual(effectiveRoles(parseConfig({})), ["origin", "edge"]);
  assert.deepEqual(effectiveRoles(parseConfig({ cluster: { role: ["edge"] } })), ["edge"]);
});

Deno.test("seed servers and address are normalised to host:port", () => {
  const c = parseConfig({
    cluster: {
      sync: {
        address: "http://10.0.0.2:8180/",
        seed_servers: ["10.0.0.1:8180", "http://origin.example:8180", "HTTP://[fd00::1]:8180", "[::1]:1"],
      },
    },
  });
  assert.equal(c.cluster.sync.address, "10.0.0.2:8180");
  assert.deepEqual(c.cluster.sync.seed_servers, [
    "10.0.0.1:8180",
    "origin.example:8180",
    "[fd00::1]:8180",
    "[::1]:1",
  ]);
  rejects(
    { cluster: { sync: { seed_servers: ["a:1", "nohost"] } } },
    "cluster.sync.seed_servers[1]",
    "HOST:PORT",
  );
  rejects(
    { cluster: { sync: { seed_servers: [":8180"] } } },
    "cluster.sync.seed_servers[0]",
    "host is missing",
  );
  rejects(
    { cluster: { sync: { seed_servers: ["a:0"] } } },
    "cluster.sync.seed_servers[0]",
    "out of range 1..65535",
  );
  rejects({ cluster: { sync: { seed_servers: ["https://a:1"] } } }, "cluster.sync.seed_servers[0]", "https");
  rejects(
    { cluster: { sync: { seed_servers: ["http://a:1/x"] } } },
    "cluster.sync.seed_servers[0]",
    "no path",
  );
  rejects({ cluster: { sync: { address: "http://a" } } }, "cluster.sync.address", "HOST:PORT");
});

Deno.test("other range checks", () => {
  rejects({ rtmp: { chunk_size: 127 } }, "rtmp.chunk_size", "must be at least 128");
  rejects({ rtmp: { chunk_size: 65537 } }, "rtmp.chunk_size", "must be at most 65536");
  rejects({ rtmp: { max_message_size: 100 } }, "rtmp.max_message_size", "at least 1024");
  rejects({ cluster: { routing: { cpu_threshold: 0 } } }, "cluster.routing.cpu_threshold", "greater than 0");
  rejects({ cluster: { routing: { cpu_threshold: 101 } } }, "cluster.routing.cpu_threshold", "at most 100");
  rejects({ cluster: { routing: { subscriber_threshold: 0 } } }, "cluster.routing.subscriber_threshold");
  rejects({ cluster: { sync: { server_id: "bad id" } } }, "cluster.sync.server_id", "letters, digits");
  rejects({ cluster: { quic: { cert_file: "c.pem" } } }, "cluster.quic.key_file", "set together");
  rejects({ cluster: { test_load: { cpu: 150 } } }, "cluster.test_load.cpu", "at most 100");
  const e = rejects({ cluster: { sync: { internal_api_key: "sec ret" } } }, "cluster.sync.internal_api_key");
  assert.ok(!e.message.includes("sec ret"), "the key must not be echoed");
  const c = parseConfig({ cluster: { test_load: { cpu: 95 }, sync: { internal_api_key: "s3cr3t" } } });
  assert.deepEqual(c.cluster.test_load, { cpu: 95, egress_mbps: 0, subscribers: 0 });
});

Deno.test("several problems are reported on one line", () => {
  const e = rejects({ global: { foo: 1 }, rtmp: { chunk_size: 1 } }, "global.foo");
  assert.ok(e.message.includes("rtmp.chunk_size: must be at least 128"), e.message);
  assert.ok(!e.message.includes("\n"));
});

Deno.test("resolveIdentity derives server id and address when empty", () => {
  const c = parseConfig({ global: { http: { listenaddr: ":0" } } });
  assert.deepEqual(resolveIdentity(c, { hostname: "box.local", httpPort: 40123 }), {
    serverId: "box.local-40123",
    address: "127.0.0.1:40123",
  });
  const d = parseConfig({
    global: { http: { listenaddr: "10.1.1.1:8180" } },
    cluster: { sync: { server_id: "origin-1" } },
  });
  assert.deepEqual(resolveIdentity(d, { hostname: "box", httpPort: 8180 }), {
    serverId: "origin-1",
    address: "10.1.1.1:8180",
  });
  const e = parseConfig({ cluster: { sync: { address: "edge.example:80" } } });
  assert.equal(resolveIdentity(e, { hostname: "h", httpPort: 8180 }).address, "edge.example:80");
});
