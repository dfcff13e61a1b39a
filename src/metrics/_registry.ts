/**
 * A small Prometheus registry, written out in the text exposition format (version 0.0.4).
 *
 * Two kinds of families:
 * - stored: declared once with `counter()` / `gauge()`, then moved with `inc()` / `set()` by
 *   whoever owns the event (e.g. the relay counting reconnects). A family declared with
 *   `initial` label sets shows them at 0 before the first event, so dashboards see the series.
 * - collected: a collector registered with `collect()` returns samples at scrape time, read
 *   from the state the node keeps anyway (hub stats, membership, relay sessions).
 *
 * Invariants: a family has one name, type and fixed set of label names; every sample carries
 * exactly those labels; names match Prometheus' grammar (checked at declaration, a
 * `RangeError` otherwise); counters only go up (`inc` refuses negative steps).
 */

export type MetricType = "counter" | "gauge";
export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  labels?: Labels;
  value: number;
}

export interface FamilyDef {
  name: string;
  help: string;
  type: MetricType;
  /** The label names every sample of the family carries (order used in the output). */
  labelNames?: readonly string[];
}

/** A family and its samples as a collector reports them at scrape time. */
export interface CollectedFamily extends FamilyDef {
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

interface Stored {
  def: Required<FamilyDef>;
  values: Map<string, { labels: Labels; value: number }>;
}

export class MetricsRegistry {
  readonly #stored = new Map<string, Stored>();
  readonly #collectors: (() => CollectedFamily[])[] = [];

  /** Declares a counter; `initial` label sets are shown at 0 until they move. */
  counter(name: string, help: string, labelNames: readonly string[] = [], initial: Labels[] = []): void {
    this.#declare({ name, help, type: "counter", labelNames }, initial);
  }

  /** Declares a gauge; `initial` label sets are shown at 0 until they are set. */
  gauge(name: string, help: string, labelNames: readonly string[] = [], initial: Labels[] = []): void {
    this.#declare({ name, help, type: "gauge", labelNames }, initial);
  }

  #declare(def: Required<FamilyDef>, initial: Labels[]): void {
    checkDef(def);
    if (this.#stored.has(def.name)) throw new RangeError(`metric ${def.name} is already declared`);
    const fam: Stored = { def, values: new Map() };
    this.#stored.set(def.name, fam);
    if (def.labelNames.length === 0) fam.values.set("", { labels: {}, value: 0 });
    for (const labels of initial) fam.values.set(this.#key(fam, labels), { labels, value: 0 });
  }

  /** Adds `by` (default 1) to a declared counter or gauge. Counters refuse negative steps. */
  inc(name: string, labels: Labels = {}, by = 1): void {
    const fam = this.#family(name);
    if (fam.def.type === "counter" && !(by >= 0)) {
      throw new RangeError(`counter ${name} cannot go down (${by})`);
    }
    const key = this.#key(fam, labels);
    const cur = fam.values.get(key);
    if (cur) cur.value += by;
    else fam.values.set(key, { labels: { ...labels }, value: by });
  }

  /** Sets a declared gauge. */
  set(name: string, labels: Labels, value: number): void {
    const fam = this.#family(name);
    if (fam.def.type !== "gauge") throw new RangeError(`metric ${name} is a ${fam.def.type}, not a gauge`);
    fam.values.set(this.#key(fam, labels), { labels: { ...labels }, value });
  }

  /** The current value of a stored series (0 if it never moved); for tests and collectors. */
  value(name: string, labels: Labels = {}): number {
    const fam = this.#family(name);
    return fam.values.get(this.#key(fam, labels))?.value ?? 0;
  }

  /** Registers a scrape-time collector. Its family names must not clash with stored ones. */
  collect(collector: () => CollectedFamily[]): void {
    this.#collectors.push(collector);
  }

  /** Every family, stored ones first, in the text exposition format. */
  render(): string {
    const families: CollectedFamily[] = [];
    for (const { def, values } of this.#stored.values()) {
      families.push({ ...def, samples: [...values.values()] });
    }
    for (const c of this.#collectors) families.push(...c());
    const seen = new Set<string>();
    let out = "";
    for (const fam of families) {
      if (seen.has(fam.name)) throw new RangeError(`metric ${fam.name} reported twice`);
      seen.add(fam.name);
      out += renderFamily(fam);
    }
    return out;
  }

  #family(name: string): Stored {
    const fam = this.#stored.get(name);
    if (!fam) throw new RangeError(`metric ${name} is not declared`);
    return fam;
  }

  #key(fam: Stored, labels: Labels): string {
    const names = fam.def.labelNames;
    const given = Object.keys(labels);
    if (given.length !== names.length || !names.every((n) => typeof labels[n] === "string")) {
      throw new RangeError(
        `metric ${fam.def.name} takes labels [${names.join(", ")}], got [${given.join(", ")}]`,
      );
    }
    return names.map((n) => labels[n]).join("\u0000");
  }
}

function checkDef(def: Required<FamilyDef>): void {
  if (!METRIC_NAME.test(def.name)) throw new RangeError(`invalid metric name ${JSON.stringify(def.name)}`);
  for (const l of def.labelNames) {
    if (!LABEL_NAME.test(l) || l.startsWith("__")) {
      throw new RangeError(`invalid label name ${JSON.stringify(l)}`);
    }
  }
}

/** One family: `# HELP`, `# TYPE`, then one line per sample. */
export function renderFamily(fam: CollectedFamily): string {
  const def = { ...fam, labelNames: fam.labelNames ?? [] };
  checkDef(def);
  let out = `# HELP ${fam.name} ${escapeHelp(fam.help)}\n# TYPE ${fam.name} ${fam.type}\n`;
  for (const s of fam.samples) {
    const labels = s.labels ?? {};
    const parts = def.labelNames.map((n) => `${n}="${escapeLabelValue(labels[n] ?? "")}"`);
    out += `${fam.name}${parts.length ? `{${parts.join(",")}}` : ""} ${formatValue(s.value)}\n`;
  }
  return out;
}

function escapeHelp(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** Label values escape backslash, double quote and newline. */
export function escapeLabelValue(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Prometheus floats: integers as is, `NaN`, `+Inf`, `-Inf`. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}
