/**
 * This node's load, as it goes into its heartbeat summary: machine CPU % (from /proc/stat,
 * smoothed), egress Mbit/s (bytes actually written to players and relays), players, streams,
 * relays. A test-only injected load (`cluster.test_load`) replaces the measured values so
 * integration tests can make a node "busy" without burning CPU.
 */

import type { StreamHub } from "../media/mod.ts";
import type { NodeLoad } from "./protocol/types.ts";

export interface InjectedLoad {
  cpu: number;
  egress_mbps: number;
  subscribers: number;
}

const SAMPLE_MS = 1000;
const SMOOTHING = 0.5;

export class LoadMonitor implements Disposable {
  #cpu = 0;
  #egressMbps = 0;
  #lastCpu: { idle: number; total: number } | null = null;
  #lastBytesOut = 0;
  #lastAt = 0;
  readonly #timer: ReturnType<typeof setInterval>;
  /** Test only: when set, replaces the measured cpu, egress and subscriber values. */
  injected: InjectedLoad | null;
  relayCount: () => number = () => 0;

  constructor(readonly hub: StreamHub, injected: InjectedLoad | null) {
    this.injected = injected;
    this.#lastBytesOut = hub.stats.bytesOut;
    this.#lastAt = performance.now();
    this.#timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.sample();
  }

  [Symbol.dispose](): void {
    clearInterval(this.#timer);
  }

  sample(): void {
    const now = performance.now();
    const cpu = readProcStat();
    if (cpu && this.#lastCpu) {
      const total = cpu.total - this.#lastCpu.total;
      const busy = total - (cpu.idle - this.#lastCpu.idle);
      if (total > 0) this.#cpu = this.#cpu * SMOOTHING + (100 * busy / total) * (1 - SMOOTHING);
    }
    if (cpu) this.#lastCpu = cpu;
    const elapsed = (now - this.#lastAt) / 1000;
    if (elapsed > 0) {
      const mbps = ((this.hub.stats.bytesOut - this.#lastBytesOut) * 8) / elapsed / 1e6;
      this.#egressMbps = this.#egressMbps * SMOOTHING + mbps * (1 - SMOOTHING);
    }
    this.#lastBytesOut = this.hub.stats.bytesOut;
    this.#lastAt = now;
  }

  current(): NodeLoad {
    const inj = this.injected;
    return {
      cpu_percent: round(inj ? inj.cpu : this.#cpu),
      egress_mbps: round(inj ? inj.egress_mbps : this.#egressMbps),
      subscriber_count: inj ? inj.subscribers : this.hub.subscriberCount(),
      stream_count: this.hub.liveStreams().length,
      relay_count: this.relayCount(),
    };
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

function readProcStat(): { idle: number; total: number } | null {
  try {
    const line = Deno.readTextFileSync("/proc/stat").split("\n", 1)[0] ?? "";
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    if (fields.length < 4) return null;
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    const total = fields.reduce((a, b) => a + b, 0);
    return { idle, total };
  } catch {
    return null;
  }
}
