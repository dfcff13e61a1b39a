/**
 * Address syntax shared by the schema and by the servers: listen addresses (`:PORT`,
 * `HOST:PORT`, `[IPv6]:PORT`) and peer addresses (`host:port`, optionally `http://host:port`).
 */

import { ConfigError } from "./_errors.ts";

export type HostPortResult =
  | { ok: true; hostname: string; port: number }
  | { ok: false; error: string };

interface HostPortRules {
  /** `:8180` is allowed (listen on every interface). */
  allowEmptyHost: boolean;
  /** Port 0 is allowed (the OS picks a free port). */
  allowPortZero: boolean;
}

const HOSTNAME_RE = /^[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?$/;
const IPV6_RE = /^[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?$/;
const WILDCARD_HOSTS = new Set(["", "0.0.0.0", "::", "[::]"]);

/** Parses `HOST:PORT`, `:PORT` or `[IPv6]:PORT`; the hostname comes back without brackets. */
export function splitHostPort(s: string, rules: HostPortRules): HostPortResult {
  if (s === "") return { ok: false, error: "must not be empty" };
  if (/[^\x21-\x7e]/.test(s)) {
    return { ok: false, error: `${JSON.stringify(s)} contains spaces or non-ASCII characters` };
  }
  let hostname: string;
  let portText: string;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    if (close < 0) return { ok: false, error: `${JSON.stringify(s)}: missing "]" after IPv6 address` };
    hostname = s.slice(1, close);
    const rest = s.slice(close + 1);
    if (!rest.startsWith(":")) {
      return { ok: false, error: `${JSON.stringify(s)}: expected ":PORT" after "]"` };
    }
    portText = rest.slice(1);
    if (!hostname.includes(":") || !IPV6_RE.test(hostname)) {
      return { ok: false, error: `${JSON.stringify(s)}: invalid IPv6 address "${hostname}"` };
    }
  } else {
    const colon = s.lastIndexOf(":");
    if (colon < 0) {
      return {
        ok: false,
        error: `${JSON.stringify(s)}: expected HOST:PORT, :PORT or [IPv6]:PORT`,
      };
    }
    hostname = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (hostname.includes(":")) {
      return {
        ok: false,
        error: `${JSON.stringify(s)}: IPv6 addresses must be in brackets, e.g. [::1]:8180`,
      };
    }
    if (hostname === "") {
      if (!rules.allowEmptyHost) return { ok: false, error: `${JSON.stringify(s)}: host is missing` };
    } else if (!HOSTNAME_RE.test(hostname)) {
      return { ok: false, error: `${JSON.stringify(s)}: invalid host "${hostname}"` };
    }
  }
  if (!/^[0-9]+$/.test(portText)) {
    return {
      ok: false,
      error: portText === "" ? `${JSON.stringify(s)}: port is missing` : `invalid port "${portText}"`,
    };
  }
  const port = Number(portText);
  const min = rules.allowPortZero ? 0 : 1;
  if (port < min || port > 65535) return { ok: false, error: `port ${portText} out of range ${min}..65535` };
  return { ok: true, hostname, port };
}

/**
 * Parses a listen address for `Deno.listen*`: `:PORT` (all interfaces, hostname "0.0.0.0"),
 * `HOST:PORT` or `[IPv6]:PORT` (hostname without brackets). Port 0 means "any free port".
 * Throws ConfigError on bad input (config values were already validated by parseConfig).
 */
export function parseListenAddr(s: string): { hostname: string; port: number } {
  const r = splitHostPort(s, { allowEmptyHost: true, allowPortZero: true });
  if (!r.ok) throw new ConfigError(`invalid listen address: ${r.error}`);
  return { hostname: r.hostname === "" ? "0.0.0.0" : r.hostname, port: r.port };
}

/** `host:port`, with IPv6 hosts bracketed. */
export function formatHostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/**
 * Normalises a peer's HTTP control address: accepts `host:port`, `[v6]:port`,
 * `http://host:port` or `http://host:port/`, and returns `host:port`. Host and a non-zero port
 * are required (no implicit port 80).
 */
export function normalizePeerAddr(s: string): { ok: true; value: string } | { ok: false; error: string } {
  let rest = s;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(s);
  if (scheme) {
    if (scheme[1]?.toLowerCase() !== "http") {
      return { ok: false, error: `scheme "${scheme[1]}" not supported; use host:port or http://host:port` };
    }
    rest = s.slice(scheme[0].length);
    if (rest.endsWith("/")) rest = rest.slice(0, -1);
    if (rest.includes("/") || rest.includes("?") || rest.includes("#") || rest.includes("@")) {
      return {
        ok: false,
        error: `${JSON.stringify(s)}: only http://host:port is allowed (no path or credentials)`,
      };
    }
  }
  const r = splitHostPort(rest, { allowEmptyHost: false, allowPortZero: false });
  if (!r.ok) return r;
  return { ok: true, value: formatHostPort(r.hostname, r.port) };
}

/** True for hosts that mean "every interface" and therefore cannot be advertised to peers. */
export function isWildcardHost(hostname: string): boolean {
  return WILDCARD_HOSTS.has(hostname);
}

/**
 * The control-plane address to advertise when `cluster.sync.address` is empty: the host of
 * `global.http.listenaddr` (127.0.0.1 when it is empty or a wildcard) and the port actually bound
 * (pass it when the configured port is 0).
 */
export function deriveAddress(listenaddr: string, boundPort?: number): string {
  const { hostname, port } = parseListenAddr(listenaddr);
  const host = isWildcardHost(hostname) ? "127.0.0.1" : hostname;
  return formatHostPort(host, boundPort ?? port);
}

/**
 * The server id to use when `cluster.sync.server_id` is empty: `<hostname>-<http port>`, with any
 * character outside `[A-Za-z0-9._-]` in the hostname replaced by "-".
 */
export function deriveServerId(hostname: string, httpPort: number): string {
  const host = hostname.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 100) || "node";
  return `${host}-${httpPort}`;
}
