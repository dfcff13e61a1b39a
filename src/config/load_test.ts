import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { ConfigError, defaultConfig, loadConfig, parseCliArgs, parseConfig } from "./mod.ts";

const repoConfig = new URL("../../config.yaml", import.meta.url);

async function rejectsWith(p: Promise<unknown>, ...parts: string[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.ok(!e.message.includes("\n"), JSON.stringify(e.message));
    for (const part of parts) {
      assert.ok(e.message.includes(part), `${JSON.stringify(part)} not in ${e.message}`);
    }
    return true;
  });
}

Deno.test("top-level config.yaml parses and equals the defaults", async () => {
  const text = await Deno.readTextFile(repoConfig);
  assert.deepEqual(parseConfig(parseYaml(text)), defaultConfig());
  assert.deepEqual(await loadConfig(repoConfig.pathname), defaultConfig());
});

Deno.test("loadConfig: empty file gives defaults; values are read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const empty = `${dir}/empty.yaml`;
    await Deno.writeTextFile(empty, "");
    assert.deepEqual(await loadConfig(empty), defaultConfig());

    const f = `${dir}/c.yaml`;
    await Deno.writeTextFile(
      f,
      "cluster:\n  sync:\n    heartbeat_interval: 0.2\n    seed_servers: [http://a:1]\n",
    );
    const c = await loadConfig(f);
    assert.equal(c.cluster.sync.heartbeat_interval, 0.2);
    assert.deepEqual(c.cluster.sync.seed_servers, ["a:1"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfig: missing file, YAML errors and schema errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await rejectsWith(loadConfig(`${dir}/nope.yaml`), `${dir}/nope.yaml`, "not found");
    await rejectsWith(loadConfig(dir), dir);

    const bad = `${dir}/bad.yaml`;
    await Deno.writeTextFile(bad, "global:\n  http:\n    listenaddr: [1\n  log: {}\n");
    await rejectsWith(loadConfig(bad), `${bad}:`, "invalid YAML");
    await Deno.writeTextFile(bad, "rtmp:\n  chunk_size: 1\n  chunk_size: 2\n");
    await rejectsWith(loadConfig(bad), `${bad}:3:`, "invalid YAML");

    const wrong = `${dir}/wrong.yaml`;
    await Deno.writeTextFile(wrong, "cluster:\n  sync:\n    heartbeat_interval: -1\n");
    await rejectsWith(
      loadConfig(wrong),
      "config: cluster.sync.heartbeat_interval: must be greater than 0",
      wrong,
    );
    await Deno.writeTextFile(wrong, "- a\n- b\n");
    await rejectsWith(loadConfig(wrong), "top level: expected a mapping");
    // YAML 1.2: "yes" is a string, not a boolean.
    await Deno.writeTextFile(wrong, "flv:\n  gop_cache: yes\n");
    await rejectsWith(loadConfig(wrong), "flv.gop_cache: expected a boolean");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseCliArgs", () => {
  assert.deepEqual(parseCliArgs([]), { configPath: "config.yaml" });
  assert.deepEqual(parseCliArgs(["--config", "a.yaml"]), { configPath: "a.yaml" });
  assert.deepEqual(parseCliArgs(["--config=b.yaml"]), { configPath: "b.yaml" });
  assert.deepEqual(parseCliArgs(["--config=x=y.yaml"]), { configPath: "x=y.yaml" });
  assert.throws(() => parseCliArgs(["--config"]), ConfigError);
  assert.throws(() => parseCliArgs(["--config="]), ConfigError);
  assert.throws(() => parseCliArgs(["--verbose"]), /unknown flag "--verbose"/);
  assert.throws(() => parseCliArgs(["stray"]), /unexpected argument "stray"/);
});
