/**
 * The queue role (`fabricd --role queue`): named queues with at-least-once
 * delivery, stored in `queue-<ID>.db` in the service's directory. Its messages
 * cannot be made up again, so a restarted queue whose file is gone, empty or
 * unreadable exits with "state lost" (79) and the loss is propagated to the
 * applications.
 * @module
 */
import { join } from "../../base/paths.ts";
import type { RoleContext, RoleHandle, RoleModule } from "../../runtime/role.ts";
import { log } from "../../config/logging.ts";
import { QueueService } from "./queue.ts";
import { QueueStore } from "./queue_store.ts";
import { StateLostError } from "../../types/errors.ts";
import { QUEUE_LIMITS, TASK_HISTORY_LIMITS } from "../../types/queue_wire.ts";
import { queueRoutes } from "./routes.ts";
import { queueMetrics } from "./_queue_metrics.ts";
import { clearInterval, setInterval } from "../../base/timers.ts";

/** Settings of a queue service, from its role options. */
export interface QueueSettings {
  /** Option `capacity`: unacknowledged messages per queue. Default 10,000. */
  capacity: number;
  /** Option `maxWaiters`: gets that may wait at once. Default 1,000. */
  maxWaiters: number;
  /** Option `historyDays`: days a finished task stays in the history. Default 7. */
  historyDays: number;
  /** Option `historyMax`: finished tasks the history keeps at most. Default 10,000. */
  historyMax: number;
}

/**
 * The settings in role options (`fabricd spawn --role queue --option capacity=500`).
 * @throws {RangeError} when an option is not a whole number in range (1 or
 * more; `historyDays` and `historyMax` 0 or more).
 */
export function queueSettings(options: Record<string, string>): QueueSettings {
  return {
    capacity: positiveOption(options, "capacity", QUEUE_LIMITS.defaultCapacity),
    maxWaiters: positiveOption(options, "maxWaiters", QUEUE_LIMITS.defaultMaxWaiters),
    historyDays: positiveOption(options, "historyDays", TASK_HISTORY_LIMITS.defaultHistoryDays, 0),
    historyMax: positiveOption(options, "historyMax", TASK_HISTORY_LIMITS.defaultHistoryMax, 0),
  };
}

/** The store file of queue service `serviceId` in `dir`. */
export function queueStorePath(dir: string, serviceId: string): string {
  return join(dir, `queue-${serviceId}.db`);
}

async function start(ctx: RoleContext): Promise<RoleHandle> {
  const settings = queueSettings(ctx.options);
  const path = queueStorePath(ctx.dir, ctx.serviceId);
  const store = openStore(path, ctx, settings);
  const service = new QueueService(store, { maxWaiters: settings.maxWaiters });
  const unmeasure = ctx.metrics ? queueMetrics(service, ctx.metrics) : undefined;
  log("queue").info("Queue store {path} open (capacity {capacity} per queue)", {
    path,
    capacity: settings.capacity,
  });
  let stopped = false;
  let live: QueueService | null = service;
  // By count the history prunes itself as tasks finish; by age it needs a clock.
  const pruner = setInterval(() => {
    if (!service.closed) service.history.prune();
  }, HISTORY_PRUNE_MS);
  return await Promise.resolve({
    routes: queueRoutes(() => live),
    stop: () => {
      if (stopped) return Promise.resolve();
      stopped = true;
      unmeasure?.();
      clearInterval(pruner);
      live = null;
      service.close();
      return Promise.resolve();
    },
  });
}

/**
 * Opens the store of the queue service of `ctx`; on a restart it must be the old one.
 * @throws {StateLostError} (exit 79) when a restarted queue cannot pick up its
 * store, saying what to do: the service ends LOST and its file is left as it was.
 */
function openStore(path: string, ctx: RoleContext, settings: QueueSettings): QueueStore {
  try {
    return QueueStore.open(path, {
      capacity: settings.capacity,
      mustExist: ctx.incarnation > 1,
      history: { days: settings.historyDays, max: settings.historyMax },
    });
  } catch (error) {
    if (!(error instanceof StateLostError)) throw error;
    throw new StateLostError(
      `${error.message}; queue service "${ctx.serviceId}" ends LOST, its file left as it was: ` +
        "restore the file from a backup to recover them, or forget the service " +
        `("fabricd forget ${ctx.serviceId}") and spawn a new queue ("fabricd spawn --role queue")`,
      { cause: error },
    );
  }
}

/** How often finished tasks past `historyDays` are pruned, ms. */
const HISTORY_PRUNE_MS = 60_000;

/** The queue role module. */
export const queueRole: RoleModule = {
  start,
  replacement: "propagate",
};

function positiveOption(
  options: Record<string, string>,
  key: string,
  fallback: number,
  min = 1,
): number {
  const raw = options[key];
  if (raw === undefined) return fallback;
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < min) {
    throw new RangeError(
      `Invalid queue option ${key}="${raw}": give a whole number, ${min} or more`,
    );
  }
  return Number(raw);
}
