/**
 * Calls to peers' /cluster/api. Every call carries the API key (when set), has a deadline,
 * and reads at most `MAX_RESPONSE_BYTES` of the answer: a peer that lies or stalls costs a
 * bounded amount of time and memory. The key is never logged.
 */

import type { z } from "zod";
import { concatBytes } from "../../bytes/mod.ts";
import type { ApiEnvelope } from "./types.ts";

const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

export class PeerError extends Error {
  override name = "PeerError";
  constructor(message: string, readonly status: number, options?: ErrorOptions) {
    super(message, options);
  }
}

export class PeerClient {
  constructor(readonly apiKey: string) {}

  /** Calls `path` on the peer at `address` and validates the answer's `data` with `schema`. */
  async call<S extends z.ZodType>(
    address: string,
    method: "GET" | "POST",
    path: string,
    body: unknown,
    timeoutMs: number,
    schema: S,
  ): Promise<z.output<S>> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.apiKey) headers["x-cluster-api-key"] = this.apiKey;
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await fetch(`http://${address}/cluster/api/${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new PeerError(`${address}: ${err instanceof Error ? err.name : "error"}`, 0, { cause: err });
    }
    const text = await readBounded(res, MAX_RESPONSE_BYTES).catch((err) => {
      throw new PeerError(`${address}: bad response body`, res.status, { cause: err });
    });
    let envelope: ApiEnvelope<unknown>;
    try {
      envelope = JSON.parse(text);
    } catch (err) {
      throw new PeerError(`${address}: response is not JSON (HTTP ${res.status})`, res.status, {
        cause: err,
      });
    }
    if (!res.ok || envelope.code !== 0) {
      throw new PeerError(`${address}: ${String(envelope.message ?? "error").slice(0, 200)}`, res.status);
    }
    const parsed = schema.safeParse(envelope.data);
    if (!parsed.success) {
      throw new PeerError(`${address}: answer does not match the API contract`, res.status);
    }
    return parsed.data;
  }
}

async function readBounded(res: Response, limit: number): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > limit) {
      await reader.cancel();
      throw new RangeError(`response larger than ${limit} bytes`);
    }
    parts.push(value);
  }
  return new TextDecoder().decode(concatBytes(parts));
}
