/**
 * The Prometheus metrics of one service process (issue 13): one prom-client
 * registry per service instance, made by the runtime and handed to the API
 * and the role. Counters that only the code path knows are incremented by
 * small hooks; everything a role already holds (queue depth, slots, pilots,
 * records) is read by collectors at scrape time.
 * @module
 */
import process from "node:process";
import { Counter, Gauge, Histogram, type Metric, Registry } from "prom-client";

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
  /** The prom-client registry: this service's alone. */
  readonly registry: Registry = new Registry();
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
    const registers = [this.registry];
    this.requests = new Counter({
      name: `${METRIC_PREFIX}requests_total`,
      help: "Management API requests by route, method and status",
      labelNames: ["route", "method", "status"],
      registers,
    });
    this.requestSeconds = new Histogram({
      name: `${METRIC_PREFIX}request_duration_seconds`,
      help: "Management API request latency, until the answer's head",
      labelNames: ["route", "method"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    });
    this.signatureFailures = new Counter({
      name: `${METRIC_PREFIX}signature_failures_total`,
      help: "Requests refused with 401 by reason",
      labelNames: ["reason"],
      registers,
    });
    this.bootstrapRefused = new Counter({
      name: `${METRIC_PREFIX}bootstrap_refused_total`,
      help: "Bootstrap proofs refused (wrong, used, expired or burnt password, or rate limited)",
      registers,
    });
    this.authorizationRefusals = new Counter({
      name: `${METRIC_PREFIX}authorization_refusals_total`,
      help: "Verified requests refused with 403 by a rule (docs/protocol.md 2.12)",
      registers,
    });
    this.spawns = new Counter({
      name: `${METRIC_PREFIX}spawns_total`,
      help: "Spawns made by this service by launcher scheme and outcome",
      labelNames: ["launcher", "outcome"],
      registers,
    });
    this.spawnSeconds = new Histogram({
      name: `${METRIC_PREFIX}spawn_duration_seconds`,
      help: "Time from a spawn request to the child ALIVE (or failed), by launcher scheme",
      labelNames: ["launcher"],
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers,
    });
    this.restarts = new Counter({
      name: `${METRIC_PREFIX}restarts_total`,
      help: "Restarts of dead children made by this service",
      registers,
    });
    this.gauge({
      name: "process_resident_memory_bytes",
      help: "Resident set size of the service process",
      collect: (set) => set({}, Deno.memoryUsage().rss),
    });
    this.#processCpu();
  }

  /**
   * Adds a gauge whose values are read at scrape time.
   * @returns A function that removes it (for a role's `stop()`).
   */
  gauge(spec: CollectedGauge): () => void {
    const name = `${METRIC_PREFIX}${spec.name}`;
    const gauge: Gauge<string> = new Gauge({
      name,
      help: spec.help,
      labelNames: [...(spec.labelNames ?? [])],
      registers: [this.registry],
      async collect() {
        gauge.reset();
        await spec.collect((labels, value) => gauge.set(labels, value));
      },
    });
    return () => this.registry.removeSingleMetric(name);
  }

  /**
   * Adds a counter whose values are read at scrape time from a total the
   * role already keeps (its name should end in `_total`).
   * @returns A function that removes it.
   */
  counterFrom(spec: CollectedGauge): () => void {
    const name = `${METRIC_PREFIX}${spec.name}`;
    const counter: Counter<string> = new Counter({
      name,
      help: spec.help,
      labelNames: [...(spec.labelNames ?? [])],
      registers: [this.registry],
      async collect() {
        counter.reset();
        await spec.collect((labels, value) => {
          if (value > 0) counter.inc(labels, value);
          else counter.inc(labels, 0);
        });
      },
    });
    return () => this.registry.removeSingleMetric(name);
  }

  /**
   * Adds a counter for a role's hook.
   * @returns The counter; remove it with {@linkcode ServiceMetrics.remove}.
   */
  counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return new Counter<L>({
      name: `${METRIC_PREFIX}${name}`,
      help,
      labelNames: [...labelNames],
      registers: [this.registry],
    });
  }

  /**
   * Adds a histogram for a role's hook; `collect`, when given, runs at each
   * scrape (a histogram of the state as it is now).
   */
  histogram<L extends string>(
    name: string,
    help: string,
    options: { buckets: number[]; labelNames?: readonly L[]; collect?: () => Promise<void> },
  ): Histogram<L> {
    const collect = options.collect;
    return new Histogram<L>({
      name: `${METRIC_PREFIX}${name}`,
      help,
      buckets: options.buckets,
      labelNames: [...(options.labelNames ?? [])],
      registers: [this.registry],
      ...(collect ? { collect: () => collect() } : {}),
    });
  }

  /** Removes metrics a role added, when it stops. */
  remove(...metrics: Metric[]): void {
    for (const metric of metrics) {
      this.registry.removeSingleMetric((metric as unknown as { name: string }).name);
    }
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  async text(): Promise<string> {
    return await this.registry.metrics();
  }

  /** The exposition's Content-Type. */
  get contentType(): string {
    return this.registry.contentType;
  }

  #processCpu(): void {
    new Counter({
      name: `${METRIC_PREFIX}process_cpu_seconds_total`,
      help: "User and system CPU time of the service process",
      registers: [this.registry],
      collect(this: Counter) {
        const usage = process.cpuUsage();
        this.reset();
        this.inc((usage.user + usage.system) / 1e6);
      },
    });
  }
}
