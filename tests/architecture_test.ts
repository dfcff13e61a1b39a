/**
 * Dependency rules, checked on the source: modules (top-level folders of src/, and the
 * sub-folders of src/cluster/) form no cycles, and protocol/media code never imports the
 * cluster. Only static `import ... from "./relative"` specifiers are considered.
 */

import assert from "node:assert/strict";

const SRC = new URL("../src/", import.meta.url);

async function* walk(dir: URL): AsyncGenerator<URL> {
  for await (const e of Deno.readDir(dir)) {
    const u = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
    if (e.isDirectory) yield* walk(u);
    else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) yield u;
  }
}

/** "media", "rtmp", "cluster/relay", "cluster" (files directly in src/cluster), "node" ... */
function moduleOf(file: URL): string {
  const rel = file.pathname.slice(SRC.pathname.length);
  const parts = rel.split("/");
  if (parts.length === 1) return parts[0]!.replace(/\.ts$/, "");
  if (parts[0] === "cluster" && parts.length > 2) return `cluster/${parts[1]}`;
  return parts[0]!;
}

async function moduleGraph(): Promise<Map<string, Set<string>>> {
  const graph = new Map<string, Set<string>>();
  const importRe = /^\s*(?:import|export)\s[^;]*?from\s+"(\.{1,2}\/[^"]+)"/gms;
  for await (const file of walk(SRC)) {
    const from = moduleOf(file);
    const deps = graph.get(from) ?? new Set<string>();
    graph.set(from, deps);
    const text = await Deno.readTextFile(file);
    for (const m of text.matchAll(importRe)) {
      const target = new URL(m[1]!, file);
      if (!target.pathname.startsWith(SRC.pathname)) continue;
      const to = moduleOf(target);
      if (to !== from) deps.add(to);
    }
  }
  return graph;
}

Deno.test("src modules form no import cycles", async () => {
  const graph = await moduleGraph();
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (m: string) => {
    if (state.get(m) === "done") return;
    if (state.get(m) === "visiting") {
      assert.fail(`import cycle: ${[...stack.slice(stack.indexOf(m)), m].join(" → ")}`);
    }
    state.set(m, "visiting");
    stack.push(m);
    for (const d of graph.get(m) ?? []) visit(d);
    stack.pop();
    state.set(m, "done");
  };
  for (const m of graph.keys()) visit(m);
  assert.ok(graph.size > 5, "the walk found the modules");
});

Deno.test("protocol and media code never import the cluster", async () => {
  const graph = await moduleGraph();
  for (const m of ["bytes", "amf", "flv", "media", "rtmp", "http", "config", "log"]) {
    const bad = [...(graph.get(m) ?? [])].filter((d) => d === "cluster" || d.startsWith("cluster/"));
    assert.deepEqual(bad, [], `${m} imports ${bad.join(", ")}`);
  }
});
