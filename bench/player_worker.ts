/**
 * A player process: `deno run -A bench/player_worker.ts '<json>'` with
 * `{ target, count, concurrency }`. It connects `count` players, prints
 * `{"event":"ready",...}`, then waits for `window START END` (epoch ms) on stdin, and after
 * END prints `{"event":"result", summary, cpu}` (cpu = this process's own CPU seconds inside
 * the window, to tell when the reader itself is the bottleneck) and exits.
 */

import { type PlayTarget, startPlayers, summarize, wallNow, type Window } from "./players.ts";
import { cpuSeconds, sleep } from "./procs.ts";

interface Args {
  target: PlayTarget;
  count: number;
  concurrency?: number;
  lateMs?: number;
}

const args = JSON.parse(Deno.args[0] ?? "{}") as Args;
const win: Window = { start: Infinity, end: -Infinity };
const out = (o: unknown) => console.log(JSON.stringify(o));

const t0 = performance.now();
const players = await startPlayers(args.target, args.count, {
  concurrency: args.concurrency ?? 50,
  window: win,
  timeoutMs: 30_000,
});
const started = players.filter((p) => p.stats.readyAt > 0).length;
out({
  event: "ready",
  started,
  failed: players.length - started,
  connectMs: Math.round(performance.now() - t0),
  errors: [...new Set(players.map((p) => p.stats.error).filter(Boolean))].slice(0, 3),
});

const decoder = new TextDecoder();
let pending = "";
for await (const chunk of Deno.stdin.readable) {
  pending += decoder.decode(chunk, { stream: true });
  const nl = pending.indexOf("\n");
  if (nl < 0) continue;
  const [cmd, a, b] = pending.slice(0, nl).trim().split(/\s+/);
  pending = pending.slice(nl + 1);
  if (cmd !== "window") break;
  win.start = Number(a);
  win.end = Number(b);
  await sleep(Math.max(0, win.start - wallNow()));
  const cpu0 = cpuSeconds(Deno.pid);
  await sleep(Math.max(0, win.end - wallNow()));
  const cpu1 = cpuSeconds(Deno.pid);
  await sleep(300); // frames stamped before END may still be in this read
  out({
    event: "result",
    summary: summarize(players.map((p) => p.stats), win, args.lateMs ?? 500),
    cpu: cpu1 - cpu0,
  });
  break;
}
for (const p of players) p.close();
Deno.exit(0);
