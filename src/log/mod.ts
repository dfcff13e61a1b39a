/**
 * The one logging module. Lines go to stderr as text or JSON lines (for log shippers).
 * Every connection and relay logs through a child logger carrying its id, so one
 * `grep conn=r12` shows a whole session. Secrets never reach here: callers log stream
 * paths (never query strings) and never log API keys; `redact()` exists for URLs that
 * might carry them.
 */

export const LogLevels = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
export type LogLevel = keyof typeof LogLevels;
export type LogFormat = "text" | "json";
export type LogFields = Record<string, string | number | boolean | undefined>;

interface Sink {
  level: number;
  format: LogFormat;
}

const sink: Sink = { level: LogLevels.info, format: "text" };

/** Sets the process-wide level and format (called once from main). */
export function configureLogging(level: LogLevel, format: LogFormat): void {
  sink.level = LogLevels[level];
  sink.format = format;
}

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  try {
    Deno.stderr.writeSync(encoder.encode(line));
  } catch {
    // stderr closed: nothing sensible left to do with a log line.
  }
}

let writeLine: (line: string) => void = writeStderr;

/**
 * Sends log lines (each ending in "\n") to `write` instead of stderr; `null` restores stderr.
 * Returns the writer that was in place. For tests that check what gets logged.
 */
export function setLogWriter(write: ((line: string) => void) | null): (line: string) => void {
  const previous = writeLine;
  writeLine = write ?? writeStderr;
  return previous;
}

/** Field names whose values never reach a log line, whoever passes them. */
const SECRET_FIELD = /(^|_)(api_?key|key|token|secret|password|authorization)$/i;

export class Logger {
  constructor(readonly fields: LogFields = {}) {}

  /** A logger whose lines all carry `fields` in addition to this one's. */
  child(fields: LogFields): Logger {
    return new Logger({ ...this.fields, ...fields });
  }

  debug(msg: string, fields?: LogFields): void {
    this.#write("debug", msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.#write("info", msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.#write("warn", msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.#write("error", msg, fields);
  }

  #write(level: Exclude<LogLevel, "silent">, msg: string, fields?: LogFields): void {
    if (LogLevels[level] < sink.level) return;
    const all: LogFields = fields ? { ...this.fields, ...fields } : { ...this.fields };
    for (const k of Object.keys(all)) if (SECRET_FIELD.test(k) && all[k] !== undefined) all[k] = "<redacted>";
    let line: string;
    if (sink.format === "json") {
      line = JSON.stringify({ ts: new Date().toISOString(), level, msg, ...all });
    } else {
      let kv = "";
      for (const [k, v] of Object.entries(all)) {
        if (v === undefined) continue;
        const s = String(v);
        kv += ` ${k}=${/[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
      }
      line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${msg}${kv}`;
    }
    writeLine(line + "\n");
  }
}

/** The root logger; modules take a child of it through their constructor. */
export const rootLogger = new Logger();

/** Strips the query string (tokens, keys) from a URL or path before it is logged. */
export function redact(urlOrPath: string): string {
  const q = urlOrPath.indexOf("?");
  return q < 0 ? urlOrPath : urlOrPath.slice(0, q) + "?<redacted>";
}

/** Formats an unknown thrown value for a log line. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
