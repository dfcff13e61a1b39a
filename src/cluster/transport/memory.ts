/**
 * An in-memory `RelayTransport` for tests: endpoints registered in one `MemoryNetwork`
 * open streams to each other through TransformStreams, so the relay protocol can be tested
 * without sockets. A test can sever every stream of an endpoint to simulate a dying peer.
 */

import type { PeerEndpoint, RelayStream, RelayTransport } from "./types.ts";

export class MemoryNetwork {
  readonly endpoints = new Map<string, MemoryTransport>();

  endpoint(address: string, certPem = `cert-of-${address}`): MemoryTransport {
    const t = new MemoryTransport(this, address, certPem);
    this.endpoints.set(address, t);
    return t;
  }
}

function pipePair(): [RelayStream, RelayStream, () => void] {
  // Abort through the TransformStreams' controllers: users hold readers and writers, and a
  // locked stream can be neither cancelled nor aborted from outside (that call just rejects).
  let abCtl: TransformStreamDefaultController<Uint8Array> | undefined;
  let baCtl: TransformStreamDefaultController<Uint8Array> | undefined;
  const ab = new TransformStream<Uint8Array, Uint8Array>({ start: (c) => void (abCtl = c) });
  const ba = new TransformStream<Uint8Array, Uint8Array>({ start: (c) => void (baCtl = c) });
  const abort = (reason: string) => {
    const err = new Error(`relay stream aborted: ${reason}`);
    abCtl?.error(err);
    baCtl?.error(err);
  };
  return [
    { readable: ba.readable, writable: ab.writable, abort },
    { readable: ab.readable, writable: ba.writable, abort },
    () => abort("severed"),
  ];
}

export class MemoryTransport implements RelayTransport {
  #handler: ((stream: RelayStream, remote: string) => void) | null = null;
  readonly #severs = new Set<() => void>();

  constructor(readonly network: MemoryNetwork, readonly address: string, readonly certPem: string) {}

  onStream(handler: (stream: RelayStream, remote: string) => void): void {
    this.#handler = handler;
  }

  connectionCount(): number {
    return this.#severs.size;
  }

  openStream(peer: PeerEndpoint, _timeoutMs: number): Promise<RelayStream> {
    const remote = this.network.endpoints.get(peer.address);
    if (!remote || !remote.#handler) return Promise.reject(new Error(`no endpoint at ${peer.address}`));
    if (peer.certPem !== remote.certPem) return Promise.reject(new Error("certificate verification failed"));
    const [mine, theirs, sever] = pipePair();
    this.#severs.add(sever);
    remote.#severs.add(sever);
    remote.#handler(theirs, this.address);
    return Promise.resolve(mine);
  }

  resetPeer(_address: string): void {
    // No connections to reset: every stream is independent.
  }

  /** Breaks every stream this endpoint takes part in. */
  sever(): void {
    for (const s of this.#severs) s();
    this.#severs.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.sever();
    this.network.endpoints.delete(this.address);
    return Promise.resolve();
  }
}
