/**
 * Configuration: the schema, YAML loading, listen-address parsing and the command line.
 *
 * Names follow the cluster plugin's config.yaml (`cluster.sync.heartbeat_interval`, ...).
 * Rules worth knowing:
 * - Every object is strict: an unknown or misspelt key is an error, never silently ignored.
 * - Every field has a default; an empty file is a complete standalone node. A section or list
 *   given with no value (YAML null) also takes its defaults.
 * - Durations are seconds, fractional allowed, at most one day. Periods and deadlines must be
 *   > 0; the delays `flv.wait_timeout`, `cluster.relay.release_delay`, `retry_delay` and
 *   `republish_grace` may be 0 (= immediately).
 * - Listen addresses are `:PORT`, `HOST:PORT` or `[IPv6]:PORT`; port 0 = any free port.
 * - `cluster.sync.seed_servers` and `address` take `host:port` or `http://host:port`, stored as
 *   `host:port`; the port is required and non-zero.
 * - `cluster.sync.server_id` empty: the node uses `deriveServerId(Deno.hostname(), httpPort)`,
 *   i.e. `<hostname>-<port>`. `cluster.sync.address` empty: `deriveAddress(global.http.listenaddr,
 *   boundPort)`, i.e. the listen host (127.0.0.1 if empty or a wildcard) and the bound port.
 *   `resolveIdentity()` does both.
 * - `cluster.role: []` means both origin and edge; see `effectiveRoles()`.
 * - Errors are ConfigError with a one-line message `config: <field.path>: <problem>`.
 *
 * Note: the `yaml` package reads environment variables, so loading YAML needs `--allow-env`.
 */

import { deriveAddress, deriveServerId } from "./_addr.ts";
import type { Config, Role } from "./_schema.ts";

export { ConfigError } from "./_errors.ts";
export {
  deriveAddress,
  deriveServerId,
  formatHostPort,
  isWildcardHost,
  normalizePeerAddr,
  parseListenAddr,
} from "./_addr.ts";
export { defaultConfig, loadConfig, parseCliArgs, parseConfig, parseConfigYaml } from "./_load.ts";
export { configSchema, MAX_SECONDS, ROLES } from "./_schema.ts";
export type {
  AllocationConfig,
  ClusterConfig,
  Config,
  FlvConfig,
  GlobalConfig,
  QuicConfig,
  RelayConfig,
  Role,
  RoutingConfig,
  RtmpConfig,
  SyncConfig,
  TestLoad,
} from "./_schema.ts";

/** The roles this node plays: `cluster.role`, or both when it is empty. */
export function effectiveRoles(config: Config): readonly Role[] {
  return config.cluster.role.length === 0 ? ["origin", "edge"] : config.cluster.role;
}

/**
 * This node's cluster identity: the configured server_id/address, or ones derived from the
 * machine's hostname and the HTTP port actually bound (pass it when listenaddr uses port 0).
 */
export function resolveIdentity(
  config: Config,
  opts: { hostname: string; httpPort: number },
): { serverId: string; address: string } {
  const sync = config.cluster.sync;
  return {
    serverId: sync.server_id !== "" ? sync.server_id : deriveServerId(opts.hostname, opts.httpPort),
    address: sync.address !== "" ? sync.address : deriveAddress(config.global.http.listenaddr, opts.httpPort),
  };
}
