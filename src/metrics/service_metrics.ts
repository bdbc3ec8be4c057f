/**
 * The Prometheus metrics of one service process (issue 13): one registry per
 * service instance, made by the runtime and handed to the API and the role.
 * Counters that only the code path knows are incremented by small hooks;
 * everything a role already holds (queue depth, slots, pilots, records) is
 * read by collectors at scrape time.
 * @module
 */
import {
  Counter,
  EXPOSITION_CONTENT_TYPE,
  Gauge,
  Histogram,
  type Metric,
  MetricRegistry,
} from "./metric_registry.ts";

export { Counter, Gauge, Histogram, type Metric } from "./metric_registry.ts";

/** Prefix of every fabricd metric name. */
export const METRIC_PREFIX = "fabricd_";

/** Reasons of a refused signature, as `fabricd_signature_failures_total{reason}`. */
export type SignatureFailureReason =
  | "missing"
  | "malformed"
  | "expired"
  | "replay"
  | "bad_signature"
  | "wrong_target"
  | "unknown_key"
  | "bad_digest";

/**
 * The label value of a 401 reason text (docs/protocol.md 2.7): the rows
 * grouped by what an operator does about them.
 */
export function signatureFailureReason(reason: string): SignatureFailureReason {
  if (reason.startsWith("Missing Fabric-Target")) return "wrong_target";
  if (reason.startsWith("Missing Signature")) return "missing";
  if (reason.startsWith("Missing Content-Digest") || reason.startsWith("Content-Digest")) {
    return "bad_digest";
  }
  if (reason.startsWith("Signature does not verify")) return "bad_signature";
  if (reason.startsWith("Nonce already used")) return "replay";
  if (reason.startsWith("Request is for service")) return "wrong_target";
  if (reason.startsWith("Unknown key")) return "unknown_key";
  if (
    reason.startsWith("Signature expired") || reason.startsWith("Signature created") ||
    reason.startsWith("Signature expires") || reason.startsWith("Signature lifetime")
  ) return "expired";
  return "malformed";
}

/** A metric with a scrape-time `collect` (a gauge read from a role's state). */
export interface CollectedGauge {
  /** Metric name without the `fabricd_` prefix. */
  name: string;
  help: string;
  labelNames?: readonly string[];
  /** Sets the values; runs at every scrape, so it must be cheap and bounded. */
  collect: (set: (labels: Record<string, string>, value: number) => void) => void | Promise<void>;
}

/** The metrics of one service process. */
export class ServiceMetrics {
  /** The registry: this service's alone. */
  readonly registry: MetricRegistry = new MetricRegistry();
  /** `fabricd_requests_total{route,method,status}`. */
  readonly requests: Counter<"route" | "method" | "status">;
  /** `fabricd_request_duration_seconds{route,method}`. */
  readonly requestSeconds: Histogram<"route" | "method">;
  /** `fabricd_signature_failures_total{reason}`. */
  readonly signatureFailures: Counter<"reason">;
  /** `fabricd_bootstrap_refused_total`. */
  readonly bootstrapRefused: Counter;
  /** `fabricd_authorization_refusals_total`: verified requests refused with 403 by a rule. */
  readonly authorizationRefusals: Counter;
  /** `fabricd_spawns_total{launcher,outcome}`. */
  readonly spawns: Counter<"launcher" | "outcome">;
  /** `fabricd_spawn_duration_seconds{launcher}`. */
  readonly spawnSeconds: Histogram<"launcher">;
  /** `fabricd_restarts_total`: restarts of children this service made. */
  readonly restarts: Counter;

  /** A fresh registry with the metrics every service has. */
  constructor() {
    this.requests = this.counter(
      "requests_total",
      "Management API requests by route, method and status",
      ["route", "method", "status"],
    );
    this.requestSeconds = this.histogram(
      "request_duration_seconds",
      "Management API request latency, until the answer's head",
      {
        labelNames: ["route", "method"],
        buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      },
    );
    this.signatureFailures = this.counter(
      "signature_failures_total",
      "Requests refused with 401 by reason",
      ["reason"],
    );
    this.bootstrapRefused = this.counter(
      "bootstrap_refused_total",
      "Bootstrap proofs refused (wrong, used, expired or burnt password, or rate limited)",
    );
    this.authorizationRefusals = this.counter(
      "authorization_refusals_total",
      "Verified requests refused with 403 by a rule (docs/protocol.md 2.12)",
    );
    this.spawns = this.counter(
      "spawns_total",
      "Spawns made by this service by launcher scheme and outcome",
      ["launcher", "outcome"],
    );
    this.spawnSeconds = this.histogram(
      "spawn_duration_seconds",
      "Time from a spawn request to the child ALIVE (or failed), by launcher scheme",
      { labelNames: ["launcher"], buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300] },
    );
    this.restarts = this.counter(
      "restarts_total",
      "Restarts of dead children made by this service",
    );
    this.gauge({
      name: "process_resident_memory_bytes",
      help: "Resident set size of the service process",
      collect: (set) => set({}, Deno.memoryUsage().rss),
    });
    this.counterFrom({
      name: "process_cpu_seconds_total",
      help: "User and system CPU time of the service process",
      collect: (set) => set({}, processCpuSeconds()),
    });
  }

  /**
   * Adds a gauge whose values are read at scrape time.
   * @returns A function that removes it (for a role's `stop()`).
   */
  gauge(spec: CollectedGauge): () => void {
    const gauge: Gauge = this.registry.register(
      new Gauge({
        ...this.#options(spec),
        async collect() {
          gauge.reset();
          await spec.collect((labels, value) => gauge.set(labels, value));
        },
      }),
    );
    return () => this.registry.removeSingleMetric(gauge.name);
  }

  /**
   * Adds a counter whose values are read at scrape time from a total the
   * role already keeps (its name should end in `_total`).
   * @returns A function that removes it.
   */
  counterFrom(spec: CollectedGauge): () => void {
    const counter: Counter = this.registry.register(
      new Counter({
        ...this.#options(spec),
        async collect() {
          counter.reset();
          await spec.collect((labels, value) => counter.inc(labels, Math.max(0, value)));
        },
      }),
    );
    return () => this.registry.removeSingleMetric(counter.name);
  }

  /**
   * Adds a counter for a role's hook.
   * @returns The counter; remove it with {@linkcode ServiceMetrics.remove}.
   * @throws {TypeError} when a metric of that name is already registered.
   */
  counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return this.registry.register(
      new Counter<L>({ name: `${METRIC_PREFIX}${name}`, help, labelNames }),
    );
  }

  /**
   * Adds a histogram for a role's hook; `collect`, when given, runs at each
   * scrape (a histogram of the state as it is now).
   * @throws {TypeError} when a metric of that name is already registered.
   */
  histogram<L extends string>(
    name: string,
    help: string,
    options: { buckets: number[]; labelNames?: readonly L[]; collect?: () => Promise<void> },
  ): Histogram<L> {
    return this.registry.register(
      new Histogram<L>({
        name: `${METRIC_PREFIX}${name}`,
        help,
        buckets: options.buckets,
        labelNames: options.labelNames ?? [],
        ...(options.collect ? { collect: options.collect } : {}),
      }),
    );
  }

  /** Removes metrics a role added, when it stops. */
  remove(...metrics: Metric[]): void {
    for (const metric of metrics) this.registry.removeSingleMetric(metric.name);
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  async text(): Promise<string> {
    return await this.registry.metrics();
  }

  /** The exposition's Content-Type. */
  get contentType(): string {
    return EXPOSITION_CONTENT_TYPE;
  }

  #options(spec: CollectedGauge): { name: string; help: string; labelNames: readonly string[] } {
    return {
      name: `${METRIC_PREFIX}${spec.name}`,
      help: spec.help,
      labelNames: spec.labelNames ?? [],
    };
  }
}

/** What a host without `/proc` offers: Node's `process`, which Deno gives as a global. */
interface NodeProcess {
  cpuUsage(): { user: number; system: number };
}

/**
 * User and system CPU time of this process, seconds. On Linux from
 * `/proc/self/stat`, not `node:process`, whose Node layer would cost every
 * service 4-7 MB of memory (docs/performance.md "idle-memory"); elsewhere
 * from Node's `process.cpuUsage()`.
 */
function processCpuSeconds(): number {
  try {
    return procCpuSeconds("self", USER_HZ);
  } catch {
    const usage = (globalThis as { process?: NodeProcess }).process?.cpuUsage();
    return usage ? (usage.user + usage.system) / 1e6 : 0;
  }
}

/**
 * User and system CPU time of process `pid`, seconds, from `/proc/PID/stat`
 * (fields 14 and 15, in `ticksPerSecond`).
 * @throws {Error} When there is no such file, or it holds no CPU times.
 */
export function procCpuSeconds(pid: number | "self", ticksPerSecond: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces and parentheses: count from its end.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new Error(`Cannot read CPU times from /proc/${pid}/stat`);
  }
  return (utime + stime) / ticksPerSecond;
}

/** Clock ticks per second of `/proc/PID/stat` times (`USER_HZ`, the same on every Linux). */
const USER_HZ = 100;
