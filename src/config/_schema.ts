/**
 * The configuration schema. Every object is strict (unknown keys are errors) and every field has
 * a default, so `{}` parses to a complete configuration. Durations are seconds and may be
 * fractional. A section or list written with no value (YAML `null`, e.g. every child commented
 * out) counts as absent and takes its defaults.
 */

import { z } from "zod";
import { normalizePeerAddr, splitHostPort } from "./_addr.ts";

/** Longest duration accepted: one day. Keeps every timer well below setTimeout's 2^31 ms limit. */
export const MAX_SECONDS = 86_400;

/** Treats YAML `null` as "not given" so the inner default applies. */
function nullAsAbsent<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => (v === null ? undefined : v), schema);
}

/** A strict section whose fields all default; absent or null → all defaults. */
function section<S extends z.core.$ZodLooseShape>(shape: S) {
  // Generic S hides that {} is a valid input (every field defaults); the cast is safe.
  return nullAsAbsent(z.strictObject(shape).prefault({} as never));
}

/** Period or deadline in seconds: > 0, fractional allowed. */
const seconds = (def: number) => z.number().positive().max(MAX_SECONDS).default(def);
/** Delay or grace in seconds where 0 means "immediately": >= 0. */
const delaySeconds = (def: number) => z.number().min(0).max(MAX_SECONDS).default(def);
const positiveInt = (def: number) => z.int().positive().default(def);

const listenAddr = (def: string) =>
  z.string().check((ctx) => {
    const r = splitHostPort(ctx.value, { allowEmptyHost: true, allowPortZero: true });
    if (!r.ok) ctx.issues.push({ code: "custom", message: r.error, input: ctx.value });
  }).default(def);

/** `host:port` or `http://host:port`, normalised to `host:port`; "" passes through when allowed. */
const peerAddr = (allowEmpty: boolean) =>
  z.string().transform((s, ctx) => {
    if (allowEmpty && s === "") return s;
    const r = normalizePeerAddr(s);
    if (!r.ok) {
      ctx.issues.push({ code: "custom", message: r.error, input: s });
      return z.NEVER;
    }
    return r.value;
  });

/** Optional file path: "" = not set. */
const optionalPath = z.string().default("");

export const ROLES = ["origin", "edge"] as const;
export type Role = (typeof ROLES)[number];

const SERVER_ID_RE = /^[A-Za-z0-9._:-]+$/;

const syncSchema = section({
  enabled: z.boolean().default(true),
  server_id: z.string().max(128).check((ctx) => {
    if (ctx.value !== "" && !SERVER_ID_RE.test(ctx.value)) {
      ctx.issues.push({
        code: "custom",
        message: "may contain only letters, digits, '.', '_', ':' and '-'",
        input: ctx.value,
      });
    }
  }).default(""),
  address: peerAddr(true).default(""),
  seed_servers: nullAsAbsent(z.array(peerAddr(false)).default(() => [])),
  heartbeat_interval: seconds(5),
  sync_interval: seconds(30),
  heartbeat_ttl: seconds(15),
  suspect_threshold: positiveInt(2),
  offline_threshold: positiveInt(3),
  internal_api_key: z.string().check((ctx) => {
    // Sent in an HTTP header: must be visible ASCII. The value is never echoed in errors.
    if (!/^[\x21-\x7e]*$/.test(ctx.value)) {
      ctx.issues.push({
        code: "custom",
        message: "may contain only printable ASCII characters without spaces",
        input: "",
      });
    }
  }).default(""),
}).check((ctx) => {
  const s = ctx.value;
  if (s.offline_threshold < s.suspect_threshold) {
    ctx.issues.push({
      code: "custom",
      path: ["offline_threshold"],
      message: `must be >= suspect_threshold (${s.suspect_threshold}), got ${s.offline_threshold}`,
      input: s.offline_threshold,
    });
  }
});

const testLoadSchema = z.strictObject({
  cpu: z.number().min(0).max(100).default(0),
  egress_mbps: z.number().min(0).default(0),
  subscribers: z.int().min(0).default(0),
});

const clusterSchema = section({
  enable: z.boolean().default(true),
  sync: syncSchema,
  routing: section({
    cpu_threshold: z.number().positive().max(100).default(85.0),
    bandwidth_threshold: z.number().positive().default(8000.0),
    subscriber_threshold: positiveInt(2000),
  }),
  allocation: section({
    ticket_ttl: seconds(30),
    candidate_limit: positiveInt(3),
  }),
  relay: section({
    establish_timeout: seconds(10),
    release_delay: delaySeconds(10),
    max_retry_attempts: z.int().min(0).default(3),
    retry_delay: delaySeconds(2),
    health_check_interval: seconds(5),
    republish_grace: delaySeconds(10),
  }),
  quic: section({
    listenaddr: listenAddr(":44944"),
    cert_file: optionalPath,
    key_file: optionalPath,
    ca_file: optionalPath,
  }).check((ctx) => {
    const q = ctx.value;
    if ((q.cert_file === "") !== (q.key_file === "")) {
      const missing = q.cert_file === "" ? "cert_file" : "key_file";
      ctx.issues.push({
        code: "custom",
        path: [missing],
        message: "cert_file and key_file must be set together",
        input: "",
      });
    }
  }),
  role: nullAsAbsent(
    z.array(z.enum(ROLES)).check((ctx) => {
      ctx.value.forEach((r, i) => {
        if (ctx.value.indexOf(r) !== i) {
          ctx.issues.push({ code: "custom", path: [i], message: `duplicate role "${r}"`, input: r });
        }
      });
    }).default(() => []),
  ),
  test_load: testLoadSchema.nullable().default(null),
});

export const configSchema = nullAsAbsent(
  z.strictObject({
    global: section({
      http: section({ listenaddr: listenAddr(":8180") }),
      log: section({
        level: z.enum(["debug", "info", "warn", "error"]).default("info"),
        format: z.enum(["text", "json"]).default("text"),
      }),
    }),
    rtmp: section({
      tcp: section({ listenaddr: listenAddr(":1935") }),
      chunk_size: z.int().min(128).max(65536).default(4096),
      max_message_size: z.int().min(1024).max(64 * 1024 * 1024).default(8 * 1024 * 1024),
      handshake_timeout: seconds(10),
      publish_idle_timeout: seconds(15),
    }),
    flv: section({
      wait_timeout: delaySeconds(5),
      gop_cache: z.boolean().default(true),
      max_gop_frames: positiveInt(1800),
      player_queue_frames: positiveInt(600),
      player_stall_timeout: seconds(10),
    }),
    cluster: clusterSchema,
  }).prefault({}),
);

/** The fully defaulted configuration. */
export type Config = z.output<typeof configSchema>;
export type GlobalConfig = Config["global"];
export type RtmpConfig = Config["rtmp"];
export type FlvConfig = Config["flv"];
export type ClusterConfig = Config["cluster"];
export type SyncConfig = ClusterConfig["sync"];
export type RoutingConfig = ClusterConfig["routing"];
export type AllocationConfig = ClusterConfig["allocation"];
export type RelayConfig = ClusterConfig["relay"];
export type QuicConfig = ClusterConfig["quic"];
export type TestLoad = NonNullable<ClusterConfig["test_load"]>;
