/**
 * A real three-node cluster on 127.0.0.1 / .2 / .3 (free ports, node 1 the only seed, a
 * shared API key, heartbeats every 0.3 s): discovery through the seed, session propagation of
 * real ffmpeg publishes, participation fan-out of a real player, failure detection of a frozen process (SIGSTOP) at the configured
 * miss counts, recovery (SIGCONT), a crash and restart with a higher incarnation, a node with
 * the wrong API key kept out, a second process with a taken server_id refused, and an edge-only
 * node refusing publishers.
 *
 * Timing bounds come from the configuration: a heartbeat round every `INTERVAL`, a peer
 * answer due within 0.9 × `INTERVAL`, so Offline comes after `OFFLINE` failed rounds, i.e.
 * at most about (OFFLINE + 1) × INTERVAL after the freeze; the test allows one more interval.
 */

import assert from "node:assert/strict";
import { type ClusterNode, type ClusterNodeOptions, startClusterNode } from "./helpers/cluster.ts";
import { publish, readFlv } from "./helpers/media.ts";
import { delay, TimeoutError, waitFor, withTimeout } from "./helpers/wait.ts";

const INTERVAL_S = 0.3;
const INTERVAL = INTERVAL_S * 1000;
const SUSPECT = 2;
const OFFLINE = 4;
const KEY = "cluster-test-shared-key";
/** Sessions must reach the other nodes within this long (they are pushed, not gossiped). */
const PROPAGATION_BOUND_MS = 2000;

function nodeOptions(ip: string, serverId: string, seeds: string[], over: Partial<ClusterNodeOptions> = {}) {
  return {
    ip,
    serverId,
    seeds,
    apiKey: KEY,
    heartbeatInterval: INTERVAL_S,
    heartbeatTtl: 1,
    syncInterval: 2,
    suspectThreshold: SUSPECT,
    offlineThreshold: OFFLINE,
    // CPU can never be above 100 %: a busy test machine must not make nodes redirect players
    // (the participation step expects its player to stay on the node it asked).
    extra: { cluster: { routing: { cpu_threshold: 100 } } },
    ...over,
  } satisfies ClusterNodeOptions;
}

/** Polls `pred` every 20 ms; resolves with the ms elapsed since `since` when it holds. */
async function elapsedUntil(
  pred: () => Promise<boolean>,
  since: number,
  timeoutMs: number,
  what: string,
): Promise<number> {
  await waitFor(async () => (await pred()) || null, timeoutMs, { intervalMs: 20, message: what });
  return performance.now() - since;
}

async function hasSession(node: ClusterNode, path: string): Promise<boolean> {
  return (await node.api.sessions()).some((s) => s.stream_path === path);
}

/** Waits until every node in `nodes` sees every other one Online. */
async function waitFormed(nodes: ClusterNode[], timeoutMs: number): Promise<void> {
  await waitFor(
    async () => {
      for (const n of nodes) {
        const list = await n.api.servers();
        for (const other of nodes) {
          if (other === n) continue;
          if (list.find((s) => s.server_id === other.serverId)?.state !== "Online") return false;
        }
      }
      return true;
    },
    timeoutMs,
    { message: `cluster of ${nodes.map((n) => n.serverId).join(", ")} to form` },
  );
}

/**
 * Watches `observer`'s view of `serverId` from `t0` until it is Offline; returns when it was
 * first seen Suspect and Offline (ms after `t0`).
 */
async function watchFailure(
  observer: ClusterNode,
  serverId: string,
  t0: number,
  timeoutMs: number,
): Promise<{ suspectAt: number | null; offlineAt: number }> {
  let suspectAt: number | null = null;
  const deadline = t0 + timeoutMs;
  while (performance.now() < deadline) {
    const state = await observer.api.stateOf(serverId);
    const at = performance.now() - t0;
    if (state === "Suspect") suspectAt ??= at;
    if (state === "Offline") return { suspectAt, offlineAt: at };
    await delay(15);
  }
  throw new TimeoutError(`${observer.serverId} never saw ${serverId} Offline within ${timeoutMs} ms`);
}

function resume(node: ClusterNode | undefined): void {
  if (!node) return;
  try {
    Deno.kill(node.pid, "SIGCONT");
  } catch {
    // already gone
  }
}

Deno.test("cluster: three real nodes form, share sessions, detect failure, recover and restart", async (t) => {
  const started: ClusterNode[] = [];
  try {
    // Node 1: the seed, edge-only. Nodes 2 and 3: role [] (both), seeded with node 1 only.
    const n1 = await startClusterNode(nodeOptions("127.0.0.1", "node-1", [], { role: ["edge"] }));
    started.push(n1);
    const [n2, n3a] = await Promise.all([
      startClusterNode(nodeOptions("127.0.0.2", "node-2", [n1.address])),
      startClusterNode(nodeOptions("127.0.0.3", "node-3", [n1.address])),
    ]);
    started.push(n2, n3a);
    let n3 = n3a;

    await t.step(
      "discovery: every node sees the others Online (node 3 learns node 2 via node 1)",
      async () => {
        assert.deepEqual(n3.options.seeds, [n1.address]);
        assert.deepEqual(n2.options.seeds, [n1.address]);
        await waitFormed([n1, n2, n3], 10_000);
        for (const n of [n1, n2, n3]) {
          const status = await n.api.status();
          assert.equal(status.node_count, 3, `${n.serverId}: ${JSON.stringify(status)}`);
          const list = await n.api.servers();
          assert.equal(list[0]?.server_id, n.serverId);
          const addr = (id: string) => list.find((s) => s.server_id === id)?.address;
          assert.equal(addr(n1.serverId), n1.address);
          assert.equal(addr(n2.serverId), n2.address);
          assert.equal(addr(n3.serverId), n3.address);
        }
        const fromN3 = await n3.api.servers();
        assert.deepEqual(fromN3.find((s) => s.server_id === "node-1")?.role, ["edge"]);
        assert.deepEqual(fromN3.find((s) => s.server_id === "node-2")?.role, ["origin", "edge"]);
      },
    );

    await t.step(
      "publish on node 2: the session, then participation, reach nodes 1 and 3 at once; unpublish removes it",
      async () => {
        const path = "live/from-node-2";
        await using pub = publish(n2.rtmpUrl(path), { seconds: 30, size: "160x120", fps: 15 });
        const t0 = performance.now();
        const atOrigin = await elapsedUntil(() => hasSession(n2, path), t0, 15_000, `${path} on node-2`);
        const [at1, at3] = await Promise.all([
          elapsedUntil(() => hasSession(n1, path), t0, 15_000, `${path} on node-1`),
          elapsedUntil(() => hasSession(n3, path), t0, 15_000, `${path} on node-3`),
        ]);
        assert.ok(
          at1 - atOrigin < PROPAGATION_BOUND_MS,
          `node-1 saw it ${at1 - atOrigin} ms after the origin`,
        );
        assert.ok(
          at3 - atOrigin < PROPAGATION_BOUND_MS,
          `node-3 saw it ${at3 - atOrigin} ms after the origin`,
        );

        const rec = (await n1.api.sessions()).find((s) => s.stream_path === path);
        assert.ok(rec);
        assert.equal(rec.origin_id, "node-2");
        assert.equal(rec.origin_address, n2.address);
        assert.equal(rec.publisher_protocol, "rtmp");
        assert.equal(rec.active, true);
        // The codecs are announced once the sequence headers are in.
        await waitFor(
          async () =>
            (await n3.api.sessions()).find((s) => s.stream_path === path && s.video_codec === "h264"),
          10_000,
          { message: "codec info on node-3" },
        );

        // A player on node 2: node 2 now takes part in the stream, and says so to every peer.
        const subscribers = async (n: ClusterNode) =>
          (await n.api.sessions()).find((s) => s.stream_path === path)?.subscribe_nodes.join(",") ?? "";
        const ac = new AbortController();
        const reading = readFlv(n2.flvUrl(path), { signal: ac.signal, timeoutMs: 20_000 });
        try {
          const tp = performance.now();
          const joined = await Promise.all(
            [n1, n2, n3].map((n) =>
              elapsedUntil(
                async () => (await subscribers(n)) === "node-2",
                tp,
                10_000,
                `node-2 in subscribe_nodes on ${n.serverId}`,
              )
            ),
          );
          for (const ms of joined) {
            assert.ok(ms < PROPAGATION_BOUND_MS, `participation took ${ms} ms to propagate`);
          }
        } finally {
          ac.abort();
        }
        const played = await reading;
        assert.equal(played.status, 200);
        assert.ok(played.tags.length > 0, "the player got media");
        const tl = performance.now();
        const left = await Promise.all(
          [n1, n2, n3].map((n) =>
            elapsedUntil(
              async () => (await subscribers(n)) === "",
              tl,
              10_000,
              `node-2 gone from subscribe_nodes on ${n.serverId}`,
            )
          ),
        );
        for (const ms of left) assert.ok(ms < PROPAGATION_BOUND_MS, `unsubscribe took ${ms} ms to propagate`);

        // Unpublish: the tombstone is pushed at once too.
        await pub.stop("SIGTERM");
        const t1 = performance.now();
        const gone = await Promise.all(
          [n1, n2, n3].map((n) =>
            elapsedUntil(
              async () => !(await hasSession(n, path)),
              t1,
              10_000,
              `${path} gone from ${n.serverId}`,
            )
          ),
        );
        for (const ms of gone) assert.ok(ms < PROPAGATION_BOUND_MS, `unpublish took ${ms} ms to propagate`);
      },
    );

    await t.step("an edge-only node refuses an RTMP publish (ffmpeg fails)", async () => {
      const path = "live/refused";
      await using pub = publish(n1.rtmpUrl(path), { seconds: 10, size: "160x120", fps: 15 });
      const result = await withTimeout(pub.done, 15_000, "ffmpeg refused by an edge-only node");
      assert.notEqual(result.code, 0, `ffmpeg should fail; stderr: ${result.stderr}`);
      assert.match(n1.logs(), /rtmp publish refused.*edge-only/);
      for (const n of [n1, n2, n3]) assert.equal(await hasSession(n, path), false);
      assert.equal(await n1.stream(path), undefined);
    });

    await t.step(
      "SIGSTOP node 3: Suspect, then Offline at the configured counts; its sessions vanish",
      async (st) => {
        const path = "live/from-node-3";
        await using _pub = publish(n3.rtmpUrl(path), { seconds: 60, size: "160x120", fps: 15 });
        await waitFor(async () => (await hasSession(n1, path)) && (await hasSession(n2, path)), 15_000, {
          message: `${path} on nodes 1 and 2`,
        });

        const t0 = performance.now();
        Deno.kill(n3.pid, "SIGSTOP");
        const bound = (OFFLINE + 2) * INTERVAL;
        const [v1, v2] = await Promise.all([
          watchFailure(n1, "node-3", t0, bound + 5000),
          watchFailure(n2, "node-3", t0, bound + 5000),
        ]);
        for (const [name, v] of [["node-1", v1], ["node-2", v2]] as const) {
          const seen = `${name}: Suspect at ${v.suspectAt?.toFixed(0)} ms, Offline at ${
            v.offlineAt.toFixed(0)
          } ms`;
          assert.ok(v.suspectAt !== null, `${seen}: Suspect must come first`);
          assert.ok(
            v.offlineAt <= bound,
            `${seen}: Offline must come within (offline+2) × interval = ${bound} ms`,
          );
          // Offline needs OFFLINE failed rounds, a round per interval: not before OFFLINE - 2 intervals.
          assert.ok(v.offlineAt >= (OFFLINE - 2) * INTERVAL, `${seen}: Offline too early`);
          // Suspect → Offline takes OFFLINE - SUSPECT more rounds.
          assert.ok(
            v.offlineAt - v.suspectAt >= (OFFLINE - SUSPECT - 1) * INTERVAL,
            `${seen}: Suspect too short`,
          );
        }
        // Its session is dropped as soon as it is Offline.
        assert.equal(await hasSession(n1, path), false);
        assert.equal(await hasSession(n2, path), false);
        assert.equal((await n1.api.status()).node_count, 2);
        // The others keep each other (a busy machine may delay an answer: Suspect at worst).
        assert.notEqual(await n1.api.stateOf("node-2"), "Offline");
        assert.notEqual(await n2.api.stateOf("node-1"), "Offline");

        await st.step(
          "SIGCONT: node 3 is Online again (same incarnation) and its session is back",
          async () => {
            const before = (await n1.api.servers()).find((s) => s.server_id === "node-3")?.incarnation;
            const t1 = performance.now();
            Deno.kill(n3.pid, "SIGCONT");
            const back = await Promise.all([n1, n2].map((n) =>
              elapsedUntil(
                async () => (await n.api.stateOf("node-3")) === "Online",
                t1,
                5000,
                `node-3 Online on ${n.serverId}`,
              )
            ));
            for (const ms of back) assert.ok(ms < 5 * INTERVAL, `back Online after ${ms} ms`);
            const after = (await n1.api.servers()).find((s) => s.server_id === "node-3")?.incarnation;
            assert.equal(after, before, "the same process: same incarnation");
            await waitFor(async () => (await hasSession(n1, path)) && (await hasSession(n2, path)), 5000, {
              message: `${path} back on nodes 1 and 2`,
            });
            await waitFormed([n1, n2, n3], 5000);
          },
        );
      },
    );

    await t.step(
      "restart: node 3 killed and started again (same id and ports) rejoins with a higher incarnation",
      async () => {
        const path = "live/before-crash";
        const pub = publish(n3.rtmpUrl(path), { seconds: 60, size: "160x120", fps: 15 });
        try {
          await waitFor(() => hasSession(n1, path), 15_000, { message: `${path} on node-1` });
          const oldInc = (await n1.api.servers()).find((s) => s.server_id === "node-3")?.incarnation;
          assert.ok(oldInc);
          n3.kill("SIGKILL");
          await withTimeout(n3.stop(), 10_000, "node-3 exit");
          const restarted = await startClusterNode({
            ...n3.options,
            httpPort: n3.httpPort,
            rtmpPort: n3.rtmpPort,
          });
          started.push(restarted);
          n3 = restarted;
          assert.equal(n3.address, n3a.address, "same HTTP control address");
          assert.equal(n3.rtmpPort, n3a.rtmpPort);

          await waitFor(
            async () => {
              for (const n of [n1, n2]) {
                const s = (await n.api.servers()).find((x) => x.server_id === "node-3");
                if (s?.state !== "Online" || !(s.incarnation > oldInc)) return false;
              }
              return true;
            },
            10_000,
            { message: "node-3 Online again with a higher incarnation on nodes 1 and 2" },
          );
          const self = (await n3.api.servers())[0];
          assert.ok(self && self.incarnation > oldInc, "the new process reports a higher incarnation itself");
          // The old process's session is gone everywhere.
          await waitFor(async () => !(await hasSession(n1, path)) && !(await hasSession(n2, path)), 5000, {
            message: `${path} dropped after the restart`,
          });
          await waitFormed([n1, n2, n3], 5000);
        } finally {
          await pub.stop("SIGKILL");
        }
      },
    );

    await t.step("a node with the wrong API key is refused (401) and never shows Online", async () => {
      const intruder = await startClusterNode(
        nodeOptions("127.0.0.4", "node-4", [n1.address], { apiKey: "not-the-cluster-key" }),
      );
      started.push(intruder);
      // Give it many heartbeat rounds to try.
      const until = performance.now() + 8 * INTERVAL;
      while (performance.now() < until) {
        for (const n of [n1, n2, n3]) {
          const state = await n.api.stateOf("node-4");
          assert.notEqual(state, "Online", `node-4 must not be Online on ${n.serverId}`);
        }
        await delay(50);
      }
      assert.match(n1.logs(), /cluster api call refused: missing or wrong API key.*heartbeat/);
      const withItsKey = await n1.api.call("GET", "servers", {
        auth: { kind: "header", key: "not-the-cluster-key" },
      });
      assert.equal(withItsKey.status, 401);
      // And it sees nobody.
      const itsView = await intruder.api.servers();
      assert.deepEqual(itsView.map((s) => s.server_id), ["node-4"]);
      assert.equal((await n1.api.status()).node_count, 3);
    });

    await t.step(
      "a second process claiming node 2's server_id is refused (409); node 2 keeps its entry",
      async () => {
        const dup = await startClusterNode(nodeOptions("127.0.0.5", "node-2", [n1.address]));
        started.push(dup);
        await waitFor(() => /peer refused this node: duplicate server_id/.test(dup.logs()), 5000, {
          message: "the duplicate to be told it is one",
        });
        assert.match(n1.logs(), /refused heartbeat: duplicate server_id/);
        const until = performance.now() + 4 * INTERVAL;
        while (performance.now() < until) {
          for (const n of [n1, n3]) {
            const entry = (await n.api.servers()).filter((s) => s.server_id === "node-2");
            assert.equal(entry.length, 1);
            assert.equal(entry[0]?.address, n2.address, `${n.serverId} keeps the live node-2`);
            assert.notEqual(entry[0]?.state, "Offline");
          }
          await delay(50);
        }
        // It may hear of the others through the seed's node list, but none of them answers it.
        const dupView = await dup.api.servers();
        assert.deepEqual(
          dupView.filter((s) => s.state === "Online").map((s) => s.server_id),
          ["node-2"],
          "it joined nobody",
        );
      },
    );
  } finally {
    for (const n of started) resume(n);
    await Promise.all(started.map((n) => n.stop()));
  }
});
