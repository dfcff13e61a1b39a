/** A tiny typed event emitter: the stream hub's events, which the cluster listens to. */

// deno-lint-ignore no-explicit-any
export class Emitter<Events extends Record<string, (...args: any[]) => void>> {
  #handlers = new Map<keyof Events, Set<Events[keyof Events]>>();

  on<K extends keyof Events>(event: K, handler: Events[K]): () => void {
    let set = this.#handlers.get(event);
    if (!set) this.#handlers.set(event, set = new Set());
    set.add(handler);
    return () => set.delete(handler);
  }

  emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): void {
    const set = this.#handlers.get(event);
    if (!set) return;
    for (const h of set) {
      try {
        h(...args);
      } catch (err) {
        console.error(`event handler for ${String(event)} threw`, err);
      }
    }
  }
}
