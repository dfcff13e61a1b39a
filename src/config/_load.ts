/**
 * Parsing raw values, reading the YAML file and the command line.
 */

import YAML from "yaml";
import { ConfigError, errorFromIssues, oneLine } from "./_errors.ts";
import { type Config, configSchema } from "./_schema.ts";

/**
 * Validates an already-decoded value (e.g. parsed YAML) and fills in defaults.
 * `undefined`/`null` give the all-defaults configuration. Throws ConfigError.
 */
export function parseConfig(raw: unknown): Config {
  return parseWithSuffix(raw, "");
}

function parseWithSuffix(raw: unknown, suffix: string): Config {
  const r = configSchema.safeParse(raw, { reportInput: true });
  if (!r.success) throw errorFromIssues(r.error.issues, suffix);
  return r.data;
}

/** The configuration an empty file gives. */
export function defaultConfig(): Config {
  return parseConfig({});
}

/**
 * Reads and validates a YAML config file. An empty file (or one with only comments) gives all
 * defaults. Throws ConfigError naming the file for a missing/unreadable file, the line and column
 * for a YAML syntax error, and the field path for a schema violation.
 */
export async function loadConfig(path: string): Promise<Config> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new ConfigError(`${path}: file not found`);
    if (e instanceof Deno.errors.IsADirectory) throw new ConfigError(`${path}: is a directory`);
    throw new ConfigError(`${path}: cannot read: ${e instanceof Error ? e.message : String(e)}`);
  }
  return parseConfigYaml(text, path);
}

/** Parses YAML text as a config file; `source` names it in error messages. Throws ConfigError. */
export function parseConfigYaml(text: string, source = "config"): Config {
  const lineCounter = new YAML.LineCounter();
  const doc = YAML.parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
  const err = doc.errors[0];
  if (err) {
    const pos = lineCounter.linePos(err.pos[0]);
    const where = `${source}:${pos.line}:${pos.col}`;
    throw new ConfigError(`${where}: invalid YAML: ${oneLine(err.message)}`);
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  return parseWithSuffix(raw, ` (in ${source})`);
}

/**
 * Command-line arguments: `--config PATH` or `--config=PATH` (default "config.yaml").
 * Anything else is a ConfigError.
 */
export function parseCliArgs(args: readonly string[]): { configPath: string } {
  let configPath = "config.yaml";
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (arg === "--config") {
      const value = args[i + 1];
      if (value === undefined || value === "" || value.startsWith("--")) {
        throw new ConfigError("--config needs a file path");
      }
      configPath = value;
      i++;
    } else if (arg.startsWith("--config=")) {
      const value = arg.slice("--config=".length);
      if (value === "") throw new ConfigError("--config needs a file path");
      configPath = value;
    } else if (arg.startsWith("-")) {
      throw new ConfigError(`unknown flag ${JSON.stringify(arg)} (usage: --config PATH)`);
    } else {
      throw new ConfigError(`unexpected argument ${JSON.stringify(arg)} (usage: --config PATH)`);
    }
  }
  return { configPath };
}
