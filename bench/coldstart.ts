/**
 * Cold start: from the play request (before the TCP connect) to the first video key frame
 * (and the first coded frame of any kind), on an edge that does not carry the stream yet and
 * on the origin. `parallel` streams are published at once and each round plays all of them
 * concurrently, one player per stream; between rounds the edge lets go of its relays (ours:
 * `cluster.relay.release_delay: 0.2`, polled until the edge reports no relay; nginx-rtmp
 * closes an on-demand pull when its last player leaves; we wait 0.5 s).
 */

import { type Protocol, startPlayers } from "./players.ts";
import { percentile } from "./players.ts";
import { type Proc, sleep, until } from "./procs.ts";
import { publishFfmpeg } from "./media.ts";
import { type RelayPair, type RelaySystem, startRelayPair, waitEdgeKnows } from "./relay.ts";
import { targetFor, waitLive } from "./fanout.ts";

export interface ColdResult {
  system: RelaySystem;
  where: "edge" | "origin";
  protocol: Protocol;
  tries: number;
  ok: number;
  keyP50: number;
  keyP99: number;
  /** First coded frame of any type (nginx-rtmp starts players mid-GOP). */
  anyP50: number;
  anyP99: number;
  note: string;
}

async function oneRound(pair: RelayPair, where: "edge" | "origin", protocol: Protocol, paths: string[]) {
  const server = where === "edge" ? pair.edge : pair.origin;
  return await Promise.all(paths.map(async (path) => {
    const [p] = await startPlayers(targetFor(server, protocol, path), 1, { timeoutMs: 10_000 });
    const s = p!.stats;
    const deadline = performance.now() + 10_000;
    let keyAt = 0;
    s.onVideo = null;
    // First key frame: watch coded frames until one is a key frame.
    const done = new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (keyAt || s.error || performance.now() > deadline) {
          clearInterval(check);
          resolve();
        }
      }, 5);
    });
    p!.stats.onVideo = () => {};
    const origAdd = s.addVideo.bind(s);
    s.addVideo = (dts: number, at: number) => {
      origAdd(dts, at);
    };
    await done.catch(() => {});
    keyAt = s.firstKeyAt;
    const r = { key: keyAt ? keyAt - s.connectAt : NaN, any: s.firstVideoAt ? s.firstVideoAt - s.connectAt : NaN, err: s.error };
    p!.close();
    await p!.done;
    return r;
  }));
}

export async function coldStart(
  system: RelaySystem,
  cases: { where: "edge" | "origin"; protocol: Protocol }[],
  tries: number,
  parallel: number,
): Promise<ColdResult[]> {
  const pair = await startRelayPair(system, 0.2);
  const pubs: Proc[] = [];
  const out: ColdResult[] = [];
  try {
    const paths = Array.from({ length: parallel }, (_, i) => `live/cold${i + 1}`);
    for (const p of paths) pubs.push(publishFfmpeg(pair.origin.rtmpUrl(p), `publisher-cold-${system}-${p}`));
    for (const p of paths) await waitLive(targetFor(pair.origin, "rtmp", p));
    for (const p of paths) await waitEdgeKnows(pair, p);
    for (const c of cases) {
      const key: number[] = [];
      const any: number[] = [];
      const errors = new Set<string>();
      for (let done = 0; done < tries;) {
        const batch = paths.slice(0, Math.min(parallel, tries - done));
        const rs = await oneRound(pair, c.where, c.protocol, batch);
        for (const r of rs) {
          if (Number.isFinite(r.key)) key.push(r.key);
          if (Number.isFinite(r.any)) any.push(r.any);
          if (r.err && r.err !== "closed") errors.add(r.err);
        }
        done += batch.length;
        if (c.where === "edge") await released(pair);
      }
      key.sort((a, b) => a - b);
      any.sort((a, b) => a - b);
      out.push({
        system,
        where: c.where,
        protocol: c.protocol,
        tries,
        ok: key.length,
        keyP50: percentile(key, 0.5),
        keyP99: percentile(key, 0.99),
        anyP50: percentile(any, 0.5),
        anyP99: percentile(any, 0.99),
        note: [...errors].slice(0, 3).join("; "),
      });
    }
    return out;
  } finally {
    await Promise.all(pubs.map((p) => p.stop(2000)));
    await pair.stop();
  }
}

/** Waits until the edge carries no relay any more. */
async function released(pair: RelayPair): Promise<void> {
  if (pair.oursEdge) {
    const api = pair.oursEdge.api;
    await until(async () => (await api.relayCount()) === 0, 5000, "edge relays released", 25).catch(() => {});
    await sleep(50);
  } else {
    await sleep(500);
  }
}
