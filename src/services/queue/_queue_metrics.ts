/**
 * The queue role's metrics (docs/observability.md): `fabricd_queue_depth`
 * and `fabricd_queue_messages_total`, read from the service at scrape time.
 * @module
 */
import type { ServiceMetrics } from "../../metrics/service_metrics.ts";
import type { QueueService } from "./queue.ts";

/**
 * Adds the queue role's metrics to `metrics`: depth by queue and the delivery
 * counters of `service`, read at scrape time.
 * @returns A function that removes them (for the role's `stop()`).
 */
export function queueMetrics(service: QueueService, metrics: ServiceMetrics): () => void {
  const reported = new ReportedQueues();
  const removers = [
    service.onReady((name) => reported.see(name)),
    metrics.gauge({
      name: "queue_depth",
      help: "Messages held by queue and state (ready, inflight)",
      labelNames: ["queue", "state"],
      collect: depthCollector(service, reported),
    }),
    metrics.counterFrom({
      name: "queue_messages_total",
      help: "Messages taken, redelivered and acknowledged since the service started",
      labelNames: ["event"],
      collect: (set) => {
        const { tally } = service.metrics();
        set({ event: "taken" }, tally.taken);
        set({ event: "redelivered" }, tally.redelivered);
        set({ event: "acked" }, tally.acked);
      },
    }),
  ];
  return () => removers.forEach((remove) => void remove());
}

/**
 * Queue names whose depth is still reported (as 0) once drained, at most: the
 * number of queues is not limited, so beyond it the names that last held a
 * message longest ago are dropped first. The same bound as the queues one
 * scrape counts (`QueueStore.allCounts`).
 */
export const MAX_REPORTED_QUEUES = 1000;

/** The queue names of `fabricd_queue_depth`, by when they last held a message, oldest first. */
export class ReportedQueues {
  #names = new Set<string>();

  /** Records that queue `name` holds a message now. */
  see(name: string): void {
    this.#names.delete(name);
    this.#names.add(name);
    if (this.#names.size > MAX_REPORTED_QUEUES) {
      this.#names.delete(this.#names.values().next().value!);
    }
  }

  /** The names kept, at most {@linkcode MAX_REPORTED_QUEUES}, oldest first. */
  names(): IterableIterator<string> {
    return this.#names.values();
  }
}

/**
 * The `collect` of `fabricd_queue_depth`: every queue name this process has
 * seen holding a message (a put or nack made one ready, or a scrape counted
 * it), up to {@linkcode MAX_REPORTED_QUEUES}, with 0 once drained, so its
 * series neither vanish nor go stale.
 */
function depthCollector(
  service: QueueService,
  reported: ReportedQueues,
): (set: (labels: Record<string, string>, value: number) => void) => void {
  return (set) => {
    const held = new Map(service.metrics().queues.map((q) => [q.queue, q]));
    for (const name of held.keys()) reported.see(name);
    for (const name of reported.names()) {
      const counts = held.get(name);
      set({ queue: name, state: "ready" }, counts?.ready ?? 0);
      set({ queue: name, state: "inflight" }, counts?.inflight ?? 0);
    }
  };
}
