import assert from "node:assert/strict";
import {
  ConfigError,
  deriveAddress,
  deriveServerId,
  formatHostPort,
  normalizePeerAddr,
  parseListenAddr,
} from "./mod.ts";

Deno.test("parseListenAddr accepts :PORT, HOST:PORT and [v6]:PORT", () => {
  assert.deepEqual(parseListenAddr(":8180"), { hostname: "0.0.0.0", port: 8180 });
  assert.deepEqual(parseListenAddr(":0"), { hostname: "0.0.0.0", port: 0 });
  assert.deepEqual(parseListenAddr("127.0.0.1:1935"), { hostname: "127.0.0.1", port: 1935 });
  assert.deepEqual(parseListenAddr("localhost:65535"), { hostname: "localhost", port: 65535 });
  assert.deepEqual(parseListenAddr("[::]:44944"), { hostname: "::", port: 44944 });
  assert.deepEqual(parseListenAddr("[::1]:1"), { hostname: "::1", port: 1 });
});

Deno.test("parseListenAddr rejects bad addresses with ConfigError", () => {
  for (
    const bad of [
      "",
      "8180",
      ":",
      ":99999",
      ":-1",
      "host:",
      "::1:80",
      "[::1]",
      "[::1]80",
      "[]:80",
      "a b:1",
      "h/x:1",
    ]
  ) {
    assert.throws(() => parseListenAddr(bad), ConfigError, bad);
  }
  assert.throws(() => parseListenAddr(":99999"), /port 99999 out of range 0\.\.65535/);
});

Deno.test("peer addresses, formatting and derivation", () => {
  assert.deepEqual(normalizePeerAddr("http://h:1/"), { ok: true, value: "h:1" });
  assert.deepEqual(normalizePeerAddr("h:1"), { ok: true, value: "h:1" });
  assert.equal(normalizePeerAddr("ftp://h:1").ok, false);
  assert.equal(normalizePeerAddr("http://user@h:1").ok, false);
  assert.equal(formatHostPort("::1", 5), "[::1]:5");
  assert.equal(formatHostPort("a", 5), "a:5");
  assert.equal(deriveAddress(":8180"), "127.0.0.1:8180");
  assert.equal(deriveAddress("0.0.0.0:0", 41000), "127.0.0.1:41000");
  assert.equal(deriveAddress("[::]:8180"), "127.0.0.1:8180");
  assert.equal(deriveAddress("[fd00::2]:8180"), "[fd00::2]:8180");
  assert.equal(deriveAddress("10.0.0.5:8180"), "10.0.0.5:8180");
  assert.equal(deriveServerId("my host", 8180), "my-host-8180");
  assert.equal(deriveServerId("", 1), "node-1");
});
