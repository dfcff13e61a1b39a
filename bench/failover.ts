/**
 * Failover, ours only (nginx-rtmp has no equivalent cluster behaviour to compare with).
 *
 * Republish: nodes A and C (origin + edge roles) and B (edge only) form one cluster. The clip
 * is published from this process to A and `players` HTTP-FLV players play it on B (so B
 * relays from A). The publisher's TCP connection is then cut (no unpublish, as a crashed
 * encoder), and after 300 ms (so frames in flight have drained) it reconnects to the same
 * node, or to the other origin-capable node. Resume time = first coded video frame at each
 * edge player after the reconnect began (TCP connect of the new publisher) − that moment.
 *
 * Offline detection: a fourth node D joins; after it is seen Online, it is killed with
 * SIGKILL and A's `GET /cluster/api/servers` is polled every 25 ms until D is Offline.
 */

import { type Player, startPlayers, wallNow } from "./players.ts";
import { percentile } from "./players.ts";
import { sleep, until } from "./procs.ts";
import { ClipPublisher } from "./media.ts";
import { HEARTBEAT, type OursNode, startClusterNode, waitClusterFormed } from "./servers.ts";
import { targetFor } from "./fanout.ts";

export interface RepublishResult {
  move: "same node" | "another node";
  reps: number;
  samples: number;
  p50: number;
  max: number;
  /** Players that lost their connection during the reconnects. */
  disconnected: number;
  players: number;
  note: string;
}

export interface OfflineResult {
  reps: number;
  suspectMs: number[];
  offlineMs: number[];
  heartbeat: typeof HEARTBEAT;
}

export async function failover(opts: {
  reps: number;
  players: number;
  offlineReps: number;
}): Promise<{ republish: RepublishResult[]; offline: OfflineResult }> {
  const nodes: OursNode[] = [];
  const players: Player[] = [];
  let pub: ClipPublisher | null = null;
  try {
    const a = await startClusterNode({ id: "fo-a", seeds: [] });
    nodes.push(a);
    const b = await startClusterNode({ id: "fo-b", seeds: [a.address], role: ["edge"] });
    nodes.push(b);
    const c = await startClusterNode({ id: "fo-c", seeds: [a.address] });
    nodes.push(c);
    await waitClusterFormed([a, b, c]);

    const path = "live/failover";
    pub = new ClipPublisher(a.host, a.rtmpPort, path);
    await pub.start();
    await until(
      async () => (await b.api.sessions()).some((s) => s.stream_path === path),
      15_000,
      "B to see the stream",
    );
    players.push(...await startPlayers(targetFor(b, "http-flv", path), opts.players, { timeoutMs: 15_000 }));
    await until(() => players.every((p) => p.stats.firstKeyAt > 0), 15_000, "edge players to get video");
    await sleep(1000);

    const republish: RepublishResult[] = [];
    let at = a;
    for (const move of ["same node", "another node"] as const) {
      const samples: number[] = [];
      const notes = new Set<string>();
      for (let i = 0; i < opts.reps; i++) {
        const next = move === "same node" ? at : at === a ? c : a;
        await pub.drop();
        await sleep(300);
        pub = new ClipPublisher(next.host, next.rtmpPort, path);
        const resumed = players.map(() => 0);
        const hooks = players.map((p, j) => {
          p.stats.onVideo = (_dts, t) => {
            if (!resumed[j] && t >= pub!.connectAt) resumed[j] = t;
          };
          return p;
        });
        try {
          await pub.start();
        } catch (e) {
          notes.add(`publish to ${next.serverId} failed: ${e}`);
          continue;
        }
        at = next;
        await until(
          () => resumed.every((t, j) => t > 0 || players[j]!.stats.error),
          8000,
          "players to resume",
        )
          .catch(() => notes.add("some players did not resume within 8 s"));
        for (const t of resumed) if (t > 0) samples.push(t - pub.connectAt);
        for (const p of hooks) p.stats.onVideo = null;
        await sleep(1500);
      }
      samples.sort((x, y) => x - y);
      republish.push({
        move,
        reps: opts.reps,
        samples: samples.length,
        p50: percentile(samples, 0.5),
        max: samples.length ? samples[samples.length - 1]! : NaN,
        disconnected: players.filter((p) => p.stats.error).length,
        players: players.length,
        note: [...notes].join("; "),
      });
    }
    for (const p of players) p.close();
    await pub.drop();
    pub = null;

    const suspectMs: number[] = [];
    const offlineMs: number[] = [];
    for (let i = 0; i < opts.offlineReps; i++) {
      const id = `fo-d${i + 1}`;
      const d = await startClusterNode({ id, seeds: [a.address] });
      nodes.push(d);
      await waitClusterFormed([a, d]);
      const t0 = wallNow();
      d.proc.kill("SIGKILL");
      let suspect = 0;
      await until(
        async () => {
          const st = (await a.api.servers()).find((s) => s.server_id === id)?.state;
          if (st === "Suspect" && !suspect) suspect = wallNow();
          return st === "Offline";
        },
        30_000,
        `${id} Offline`,
        25,
      );
      offlineMs.push(wallNow() - t0);
      suspectMs.push(suspect ? suspect - t0 : NaN);
      await d.proc.exited;
    }
    return { republish, offline: { reps: opts.offlineReps, suspectMs, offlineMs, heartbeat: HEARTBEAT } };
  } finally {
    for (const p of players) p.close();
    await pub?.drop();
    await Promise.all(nodes.map((n) => n.stop()));
  }
}
