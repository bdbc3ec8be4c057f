/**
 * Counters, gauges and histograms with fixed buckets, and the registry that
 * writes them in the Prometheus text exposition format 0.0.4. Hand-written in
 * place of prom-client, which cost every service about 15 MB of resident
 * memory for the few metric types fabricd uses (docs/performance.md
 * "idle-memory"). The output is prom-client's: a `# HELP` and a `# TYPE` line
 * per metric, metrics separated by a blank line, a histogram's `le` label
 * first.
 * @module
 */

/** Label values by label name; a label left out is not written. */
export type Labels<L extends string = string> = Partial<Record<L, string | number>>;

/** One sample of a metric, as {@linkcode Metric.get} answers it. */
export interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  /** The sample's name when it is not the metric's (a histogram's `_bucket`, `_sum`, `_count`). */
  metricName?: string;
}

/** A metric and its samples at one scrape. */
export interface MetricSnapshot {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  values: MetricValue[];
}

/** Options of every metric. */
export interface MetricOptions<L extends string> {
  /** Full metric name, e.g. `fabricd_requests_total`. */
  name: string;
  help: string;
  /** Label names, in the order they are written. Default: none. */
  labelNames?: readonly L[];
  /** Runs before each scrape (values read from state at scrape time). Default: none. */
  collect?: () => void | Promise<void>;
}

/** Options of a {@linkcode Histogram}. */
export interface HistogramOptions<L extends string> extends MetricOptions<L> {
  /** Upper bounds of the buckets, ascending; `+Inf` is added. */
  buckets: readonly number[];
}

/** Label sets one metric keeps at most; samples of further ones are dropped. */
export const MAX_SERIES = 10_000;

/** The Content-Type of the exposition. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A metric as the registry and its owners see it. */
export interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: MetricSnapshot["type"];
  /** Runs the metric's `collect`, then answers its samples. */
  get(): Promise<MetricSnapshot>;
  /** Forgets every series (a counter or gauge without labels goes back to zero). */
  reset(): void;
}

/** What every metric type shares: name, help, labels, series keyed by their label values. */
abstract class LabelledMetric<L extends string, S> implements Metric {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  abstract readonly type: MetricSnapshot["type"];
  protected series: Map<string, { labels: Record<string, string | number>; data: S }> = new Map();
  readonly #collect: (() => void | Promise<void>) | undefined;

  /** @throws {TypeError} for an invalid metric or label name. */
  constructor(options: MetricOptions<L>) {
    if (!NAME.test(options.name)) throw new TypeError(`Invalid metric name "${options.name}"`);
    for (const label of options.labelNames ?? []) {
      if (!LABEL_NAME.test(label) || label.startsWith("__")) {
        throw new TypeError(`Invalid label name "${label}" of metric "${options.name}"`);
      }
    }
    this.name = options.name;
    this.help = options.help;
    this.labelNames = [...(options.labelNames ?? [])];
    this.#collect = options.collect;
  }

  /** Runs the metric's `collect`, then answers its samples. */
  async get(): Promise<MetricSnapshot> {
    await this.#collect?.();
    return { name: this.name, help: this.help, type: this.type, values: this.values() };
  }

  /** Forgets every series (a metric without labels goes back to zero). */
  abstract reset(): void;

  /** The samples as they are now. */
  protected abstract values(): MetricValue[];

  /** The series of `labels`, made with `initial` when new; undefined beyond {@linkcode MAX_SERIES}. */
  protected seriesOf(labels: Labels<L>, initial: () => S): { data: S } | undefined {
    const key = this.#key(labels);
    let entry = this.series.get(key);
    if (!entry) {
      if (this.series.size >= MAX_SERIES) return undefined;
      const kept: Record<string, string | number> = {};
      for (const [name, value] of Object.entries(labels)) {
        if (value !== undefined) kept[name] = value as string | number;
      }
      entry = { labels: kept, data: initial() };
      this.series.set(key, entry);
    }
    return entry;
  }

  #key(labels: Labels<L>): string {
    let key = "";
    for (const name of Object.keys(labels)) {
      if (!this.labelNames.includes(name as L)) {
        throw new TypeError(`Metric "${this.name}" has no label "${name}"`);
      }
    }
    for (const name of this.labelNames) key += `${labels[name] ?? ""}\u0000`;
    return key;
  }
}

/** A value that only goes up. */
export class Counter<L extends string = string> extends LabelledMetric<L, number> {
  readonly type = "counter" as const;

  /** A counter; one without labels starts at 0. */
  constructor(options: MetricOptions<L>) {
    super(options);
    this.reset();
  }

  /**
   * Adds `value` (default 1) to the series of `labels`.
   * @throws {RangeError} for a negative or non-finite value.
   */
  inc(labels?: Labels<L> | number, value?: number): void {
    const [set, amount] = typeof labels === "number" ? [{}, labels] : [labels ?? {}, value ?? 1];
    if (!Number.isFinite(amount) || amount < 0) {
      throw new RangeError(`Counter "${this.name}" cannot grow by ${amount}`);
    }
    const entry = this.seriesOf(set, () => 0);
    if (entry) entry.data += amount;
  }

  reset(): void {
    this.series = new Map();
    if (this.labelNames.length === 0) this.seriesOf({}, () => 0);
  }

  protected values(): MetricValue[] {
    return [...this.series.values()].map(({ labels, data }) => ({ labels, value: data }));
  }
}

/** A value that goes up and down. */
export class Gauge<L extends string = string> extends LabelledMetric<L, number> {
  readonly type = "gauge" as const;

  /** A gauge; one without labels starts at 0. */
  constructor(options: MetricOptions<L>) {
    super(options);
    this.reset();
  }

  /** Sets the series of `labels` to `value`. */
  set(labels: Labels<L> | number, value?: number): void {
    const [set, to] = typeof labels === "number" ? [{}, labels] : [labels, value ?? 0];
    const entry = this.seriesOf(set, () => 0);
    if (entry) entry.data = to;
  }

  reset(): void {
    this.series = new Map();
    if (this.labelNames.length === 0) this.seriesOf({}, () => 0);
  }

  protected values(): MetricValue[] {
    return [...this.series.values()].map(({ labels, data }) => ({ labels, value: data }));
  }
}

/** Counts per bucket (not cumulative; the last is above every bound), sum and count. */
interface HistogramData {
  buckets: number[];
  sum: number;
  count: number;
}

/** Observations counted in fixed buckets. */
export class Histogram<L extends string = string> extends LabelledMetric<L, HistogramData> {
  readonly type = "histogram" as const;
  readonly buckets: readonly number[];

  /** @throws {TypeError} for a label named `le` or buckets not ascending. */
  constructor(options: HistogramOptions<L>) {
    super(options);
    if (this.labelNames.includes("le" as L)) throw new TypeError('"le" is a reserved label');
    if (options.buckets.some((b, i) => i > 0 && b <= options.buckets[i - 1]!)) {
      throw new TypeError(`Buckets of "${options.name}" must be ascending`);
    }
    this.buckets = [...options.buckets];
    if (this.labelNames.length === 0) this.seriesOf({}, () => this.#empty());
  }

  /**
   * Counts `value` in the series of `labels`.
   * @throws {RangeError} for a non-finite value.
   */
  observe(labels: Labels<L> | number, value?: number): void {
    const [set, seen] = typeof labels === "number" ? [{}, labels] : [labels, value ?? NaN];
    if (!Number.isFinite(seen)) {
      throw new RangeError(`Histogram "${this.name}" cannot observe ${seen}`);
    }
    const entry = this.seriesOf(set, () => this.#empty());
    if (!entry) return;
    const at = this.buckets.findIndex((bound) => seen <= bound);
    entry.data.buckets[at === -1 ? this.buckets.length : at]!++;
    entry.data.sum += seen;
    entry.data.count++;
  }

  /** Forgets every series, even of a histogram without labels (nothing is written until the next observation). */
  reset(): void {
    this.series = new Map();
  }

  protected values(): MetricValue[] {
    const values: MetricValue[] = [];
    for (const { labels, data } of this.series.values()) {
      let total = 0;
      this.buckets.forEach((bound, i) => {
        total += data.buckets[i]!;
        values.push({
          labels: { le: bound, ...labels },
          value: total,
          metricName: `${this.name}_bucket`,
        });
      });
      values.push(
        { labels: { le: "+Inf", ...labels }, value: data.count, metricName: `${this.name}_bucket` },
        { labels: { ...labels }, value: data.sum, metricName: `${this.name}_sum` },
        { labels: { ...labels }, value: data.count, metricName: `${this.name}_count` },
      );
    }
    return values;
  }

  #empty(): HistogramData {
    return { buckets: new Array(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }
}

/** The metrics of one process, written as one exposition. */
export class MetricRegistry {
  readonly #metrics = new Map<string, Metric>();
  #scrape: Promise<unknown> = Promise.resolve();

  /**
   * Adds `metric`.
   * @throws {TypeError} when another metric of that name is registered.
   */
  register<M extends Metric>(metric: M): M {
    const known = this.#metrics.get(metric.name);
    if (known && known !== metric) {
      throw new TypeError(`A metric named "${metric.name}" is already registered`);
    }
    this.#metrics.set(metric.name, metric);
    return metric;
  }

  /** Removes the metric named `name`, if any. */
  removeSingleMetric(name: string): void {
    this.#metrics.delete(name);
  }

  /**
   * The exposition text. Scrapes run one at a time, so two scrapes never
   * interleave one metric's `collect` (a reset and its new values).
   */
  metrics(): Promise<string> {
    const text = this.#scrape.then(() => this.#text());
    this.#scrape = text.catch(() => {});
    return text;
  }

  async #text(): Promise<string> {
    const blocks: string[] = [];
    for (const metric of [...this.#metrics.values()]) {
      const { name, help, type, values } = await metric.get();
      const lines = [`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`];
      for (const value of values) {
        lines.push(
          `${value.metricName ?? name}${labelText(value.labels)} ${numberText(value.value)}`,
        );
      }
      blocks.push(lines.join("\n"));
    }
    return `${blocks.join("\n\n")}\n`;
  }
}

function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function labelText(labels: Record<string, string | number>): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(labels)) {
    parts.push(`${name}="${escapeHelp(String(value)).replaceAll('"', '\\"')}"`);
  }
  return parts.length > 0 ? `{${parts.join(",")}}` : "";
}

function numberText(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
