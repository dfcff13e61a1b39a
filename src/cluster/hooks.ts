/**
 * ClusterHooks: turns the stream hub's events into cluster state and tells the peers.
 *
 * - A local publish (not a relayed copy) creates this node's session record and pushes it
 *   with `sessions/sync` to every known peer at once; unpublish pushes a tombstone.
 * - This node's participation in a stream changes when its first local player arrives or its
 *   last one leaves; that change is fanned out with `sessions/participation`.
 * Relayed streams are never announced as if this node were their origin.
 */

import { errorMessage, type Logger } from "../log/mod.ts";
import type { LiveStream, StreamHub, Subscriber } from "../media/mod.ts";
import type { PeerClient } from "./protocol/peer_client.ts";
import type { SessionRegistry } from "./registry/registry.ts";
import type { SessionRecord } from "./protocol/types.ts";
import { z } from "zod";

export interface HookIdentity {
  serverId: string;
  address: string;
  incarnation: number;
}

const PUSH_TIMEOUT_MS = 3000;
const anyData = z.unknown();

export class ClusterHooks implements Disposable {
  #version = 0;
  /** Local players per stream path, excluding relay subscribers. */
  readonly #localPlayers = new Map<string, number>();
  readonly #unsubscribe: (() => void)[] = [];
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(
    readonly self: HookIdentity,
    readonly hub: StreamHub,
    readonly registry: SessionRegistry,
    readonly client: PeerClient,
    readonly peers: () => string[],
    readonly log: Logger,
    readonly now: () => number = Date.now,
  ) {
    this.#unsubscribe.push(
      hub.events.on("publish", (s) => this.#onPublish(s)),
      hub.events.on("unpublish", (s) => this.#onUnpublish(s)),
      hub.events.on("subscribe", (s, sub) => this.#onPlayer(s, sub, +1)),
      hub.events.on("unsubscribe", (s, sub) => this.#onPlayer(s, sub, -1)),
    );
  }

  [Symbol.dispose](): void {
    for (const off of this.#unsubscribe) off();
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  #record(s: LiveStream, active: boolean): SessionRecord {
    const prev = this.registry.get(this.self.serverId, s.path);
    return {
      stream_path: s.path,
      origin_id: this.self.serverId,
      origin_address: this.self.address,
      origin_incarnation: this.self.incarnation,
      publisher_protocol: s.publisher?.protocol ?? prev?.publisher_protocol ?? "rtmp",
      video_codec: s.codec.videoCodec,
      audio_codec: s.codec.audioCodec,
      width: s.codec.width,
      height: s.codec.height,
      started_at: s.publishedAt,
      subscribe_nodes: active ? prev?.subscribe_nodes ?? [] : [],
      version: ++this.#version,
      active,
    };
  }

  #isRelayed(s: LiveStream): boolean {
    return s.publisher?.protocol === "relay";
  }

  #onPublish(s: LiveStream): void {
    if (this.#isRelayed(s)) return;
    const rec = this.#record(s, true);
    this.registry.apply(rec, this.now());
    this.pushSessions([rec]);
    // Codecs are known only once the sequence headers arrive: announce them shortly after.
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.refresh(s);
    }, 1500);
    this.#timers.add(timer);
  }

  /** Re-announces a live local stream (codec info, participation changes). */
  refresh(s: LiveStream): void {
    if (!s.live || this.#isRelayed(s) || this.hub.get(s.path) !== s) return;
    const rec = this.#record(s, true);
    this.registry.apply(rec, this.now());
    this.pushSessions([rec]);
  }

  #onUnpublish(s: LiveStream): void {
    const mine = this.registry.get(this.self.serverId, s.path);
    if (!mine?.active) return; // a relayed stream, never announced
    const rec = this.#record(s, false);
    this.registry.apply(rec, this.now());
    this.pushSessions([rec]);
  }

  #onPlayer(s: LiveStream, sub: Subscriber, delta: 1 | -1): void {
    if (sub.info.protocol === "relay") return;
    const before = this.#localPlayers.get(s.path) ?? 0;
    const after = Math.max(0, before + delta);
    if (after === 0) this.#localPlayers.delete(s.path);
    else this.#localPlayers.set(s.path, after);
    if ((before === 0) === (after === 0)) return;
    const subscribe = after > 0;
    this.applyParticipation(s.path, this.self.serverId, subscribe);
    this.#fanOut("sessions/participation", {
      stream_path: s.path,
      node_id: this.self.serverId,
      action: subscribe ? "subscribe" : "unsubscribe",
    });
  }

  /** Records `nodeId` joining or leaving `path`; a local origin re-versions its record. */
  applyParticipation(path: string, nodeId: string, subscribe: boolean): SessionRecord | null {
    const rec = this.registry.participate(path, nodeId, subscribe);
    if (rec && rec.origin_id === this.self.serverId) {
      this.registry.apply({ ...rec, version: ++this.#version }, this.now());
      return this.registry.get(this.self.serverId, path);
    }
    return rec;
  }

  pushSessions(records: SessionRecord[]): void {
    this.#fanOut("sessions/sync", { sessions: records });
  }

  #fanOut(path: string, body: unknown): void {
    for (const address of this.peers()) {
      this.client.call(address, "POST", path, body, PUSH_TIMEOUT_MS, anyData).catch((err) => {
        this.log.debug("push to peer failed", { peer: address, path, error: errorMessage(err) });
      });
    }
  }
}
