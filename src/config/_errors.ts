/**
 * ConfigError and the turning of zod issues into one-line, operator-readable messages.
 */

import type { z } from "zod";

/** Any problem with configuration or command-line arguments. `message` is always one line. */
export class ConfigError extends Error {
  override name = "ConfigError";
  /** Dotted path of the offending field (`cluster.sync.heartbeat_interval`), when there is one. */
  readonly field: string | undefined;

  constructor(message: string, field?: string) {
    super(`config: ${oneLine(message)}`);
    this.field = field;
  }
}

/** Collapses any line breaks so a message stays a single log line. */
export function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, " ").trim();
}

/** `["cluster", "sync", "seed_servers", 1]` → `cluster.sync.seed_servers[1]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? String(seg) : `.${String(seg)}`;
  }
  return out === "" ? "top level" : out;
}

const expectedNames: Record<string, string> = {
  object: "a mapping",
  array: "a list",
  int: "an integer",
  number: "a number",
  string: "a string",
  boolean: "a boolean (true or false)",
};

function received(v: unknown): string {
  if (v === null) return "an empty value (null)";
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "number" && !Number.isFinite(v)) return String(v);
  const t = typeof v;
  return `${/^[aeiou]/.test(t) ? "an" : "a"} ${t}`;
}

/** One short problem description for a zod issue (without the path). */
function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type": {
      const exp = expectedNames[issue.expected] ?? issue.expected;
      if (issue.expected === "int" && typeof issue.input === "number" && Number.isFinite(issue.input)) {
        return Number.isInteger(issue.input)
          ? `${issue.input} is not a safe integer`
          : `must be an integer, got ${issue.input}`;
      }
      return `expected ${exp}, got ${received(issue.input)}`;
    }
    case "too_small": {
      const min = String(issue.minimum);
      if (issue.origin === "number" || issue.origin === "int" || issue.origin === "bigint") {
        return issue.inclusive ? `must be at least ${min}` : `must be greater than ${min}`;
      }
      if (issue.origin === "string") return `must be at least ${min} characters long`;
      return `must have at least ${min} items`;
    }
    case "too_big": {
      const max = String(issue.maximum);
      if (issue.origin === "number" || issue.origin === "int" || issue.origin === "bigint") {
        return issue.inclusive ? `must be at most ${max}` : `must be less than ${max}`;
      }
      if (issue.origin === "string") return `must be at most ${max} characters long`;
      return `must have at most ${max} items`;
    }
    case "invalid_value": {
      const opts = issue.values.map((v) => JSON.stringify(v)).join(", ");
      return `must be one of ${opts}, got ${
        typeof issue.input === "string" ? JSON.stringify(issue.input) : received(issue.input)
      }`;
    }
    case "unrecognized_keys":
      return "unknown key";
    default:
      return issue.message;
  }
}

/** Flattens zod issues (an unrecognized_keys issue becomes one entry per key) to `path: problem`. */
export function issueLines(issues: readonly z.core.$ZodIssue[]): { field: string; text: string }[] {
  const out: { field: string; text: string }[] = [];
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        const field = formatPath([...issue.path, key]);
        out.push({ field, text: `${field}: unknown key` });
      }
      continue;
    }
    const field = formatPath(issue.path);
    out.push({ field, text: `${field}: ${oneLine(describeIssue(issue))}` });
  }
  return out;
}

/** Builds the ConfigError for a failed parse: every problem on one line, the first one's path as `field`. */
export function errorFromIssues(issues: readonly z.core.$ZodIssue[], suffix = ""): ConfigError {
  const lines = issueLines(issues);
  const first = lines[0];
  if (first === undefined) return new ConfigError(`invalid configuration${suffix}`);
  return new ConfigError(lines.map((l) => l.text).join("; ") + suffix, first.field);
}
