/**
 * `GET /metrics`: the registry in the Prometheus text format. Open like `/api/streams`
 * (it carries counts and server ids, no stream names, keys or addresses).
 */

import { Hono } from "hono";
import type { MetricsRegistry } from "./_registry.ts";

export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export function buildMetricsApp(registry: MetricsRegistry): Hono {
  const app = new Hono();
  app.get(
    "/",
    (c) =>
      c.body(registry.render(), 200, {
        "content-type": EXPOSITION_CONTENT_TYPE,
        "cache-control": "no-store",
      }),
  );
  return app;
}
