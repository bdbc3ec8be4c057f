/**
 * The registry's metrics (issue 13): services by role and state and the
 * heartbeat ages, read from the records at scrape time; heartbeats accepted,
 * lone or in batches, as the registry counts them; transitions by from/to, counted from the
 * change stream; liveness sweeps and their durations, counted by the role's
 * sweeper hook.
 * @module
 */
import type { ServiceMetrics } from "../metrics/service_metrics.ts";
import type { Registry } from "./registry.ts";

/** Options of {@linkcode registryMetrics}. */
export interface RegistryMetricsOptions {
  /**
   * Whether this registry sweeps for silent services itself (on SQLite; on
   * etcd, leases do it): adds `registry_sweeps_total` and
   * `registry_sweep_duration_seconds`. Default false.
   */
  sweeps?: boolean;
}

/** The registry's metrics while they are on. */
export interface RegistryMeasures {
  /** Counts one liveness sweep that took `durationMs`; does nothing without `sweeps`. */
  onSweep(durationMs: number): void;
  /** Removes the metrics and stops counting. */
  stop(): void;
}

/**
 * Adds the registry's metrics to `metrics`.
 * @returns The sweep hook, and the function that removes the metrics.
 */
export function registryMetrics(
  registry: Registry,
  metrics: ServiceMetrics,
  options: RegistryMetricsOptions = {},
): RegistryMeasures {
  const removers: (() => void)[] = [];
  removers.push(metrics.gauge({
    name: "registry_services",
    help: "Services on record by role and state",
    labelNames: ["role", "state"],
    collect: async (set) => {
      const counts = new Map<string, { role: string; state: string; n: number }>();
      for (const r of await registry.list()) {
        const key = `${r.role}\u0000${r.state}`;
        const entry = counts.get(key) ?? { role: r.role, state: r.state, n: 0 };
        entry.n++;
        counts.set(key, entry);
      }
      for (const { role, state, n } of counts.values()) set({ role, state }, n);
    },
  }));
  // The histogram describes the records as they are now, so it is rebuilt at each scrape.
  const ages = metrics.histogram(
    "registry_heartbeat_age_seconds",
    "Time since the last heartbeat of each ALIVE or SUSPECT service, at scrape time",
    {
      buckets: [0.5, 1, 2, 3, 4, 6, 10, 30, 60],
      collect: async () => {
        ages.reset();
        const now = registry.now();
        for (const r of await registry.list()) {
          if (r.state !== "ALIVE" && r.state !== "SUSPECT") continue;
          ages.observe(Math.max(0, now - (r.lastHeartbeat || r.updated)) / 1000);
        }
      },
    },
  );
  const heartbeats = metrics.gauge({
    name: "registry_heartbeats_received",
    help: "Heartbeats this registry process accepted since it started, lone or in batches",
    collect: (set) => set({}, registry.beatsAccepted),
  });
  removers.push(heartbeats);
  const transitions = metrics.counter(
    "registry_transitions_total",
    "State transitions written since this registry process started, by from and to",
    ["from", "to"],
  );
  // Live changes only: the stored history is not replayed into the counter.
  const unfollow = registry.onChange((event) => {
    if (event.kind !== "transition" || !event.transition) return;
    transitions.inc({ from: event.transition.from || "NONE", to: event.transition.to });
  });
  const sweeps = options.sweeps ? sweepMetrics(metrics) : null;
  return {
    onSweep: (durationMs) => sweeps?.observe(durationMs),
    stop: () => {
      unfollow();
      metrics.remove(ages, transitions);
      sweeps?.remove();
      for (const remove of removers) remove();
    },
  };
}

/** The sweep counter and histogram: how one sweep is counted in both, and their remover. */
function sweepMetrics(
  metrics: ServiceMetrics,
): { observe(durationMs: number): void; remove(): void } {
  const count = metrics.counter(
    "registry_sweeps_total",
    "Liveness sweeps this registry process completed since it started",
  );
  const seconds = metrics.histogram(
    "registry_sweep_duration_seconds",
    "Time one liveness sweep of the records took",
    { buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] },
  );
  return {
    observe: (durationMs) => {
      count.inc();
      seconds.observe(durationMs / 1000);
    },
    remove: () => metrics.remove(count, seconds),
  };
}
