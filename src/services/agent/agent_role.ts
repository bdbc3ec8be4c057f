/**
 * The agent role (`fabricd --role agent`): runs tasks taken from a queue
 * service in its core slots and publishes their state changes on a pub/sub
 * service (docs/services.md "## agent"). It holds no state of its own: a lost
 * agent's tasks come back through the queue, so it is replaced fresh.
 * @module
 */
import type { ServiceMetrics } from "../../metrics/service_metrics.ts";
import { FabricClient } from "../../client/fabric_client.ts";
import type { RoleContext, RoleHandle, RoleModule, RoleStopOptions } from "../../runtime/role.ts";
import { log } from "../../config/logging.ts";
import { QUEUE_LIMITS, QUEUE_NAME } from "../../types/queue_wire.ts";
import { RemoteEventSink } from "./_remote_events.ts";
import { RemoteTaskQueue } from "./_remote_queue.ts";
import { ServiceTarget } from "./_service_target.ts";
import { Agent } from "./agent.ts";
import { agentRoutes } from "./routes.ts";
import { DEFAULT_KEPT_TASKS, DEFAULT_OUTPUT_BYTES, TaskSandbox } from "./sandbox.ts";
import { installSessionHelper } from "./_session_helper.ts";
import { join } from "../../base/paths.ts";
import { clearTimeout, setTimeout } from "../../base/timers.ts";

/** Settings of an agent service, from its role options. */
export interface AgentSettings {
  /** Option `queue`: service ID of the queue service. Required. */
  queue: string;
  /** Option `pubsub`: service ID of the pub/sub service. Required. */
  pubsub: string;
  /** Option `cores`: core slots. Default `navigator.hardwareConcurrency`. */
  cores: number;
  /** Option `queueName`: the queue to take tasks from. Default "tasks". */
  queueName: string;
  /** Option `visibilityMs`: visibility timeout of a taken task. Default 60000. */
  visibilityMs: number;
  /** Option `prefetch`: tasks taken beyond the free cores. Default: `cores`, at most 100. */
  prefetch: number;
  /** Option `graceMs`: SIGTERM to SIGKILL on cancel and stop. Default 10000. */
  graceMs: number;
  /**
   * Option `via`: `parent` sends the agent's requests to the queue and the
   * pub/sub through its parent (a pilot manager, which relays), for agents on
   * compute nodes; `direct` (default) uses the addresses the fabric's root uses.
   */
  via: "parent" | "direct";
  /** Option `outputBytes`: bytes of stdout and stderr one task keeps. Default 10 MiB. */
  outputBytes: number;
  /** Option `keepTasks`: task directories the agent keeps. Default 100. */
  keepTasks: number;
}

/**
 * The settings in role options
 * (`fabricd spawn --role agent --option queue=que-1a2b3c4d --option pubsub=pub-1a2b3c4d`).
 * @throws {TypeError} when `queue` or `pubsub` is missing, or `queueName` is invalid.
 * @throws {RangeError} when a number is not a whole number in range.
 */
export function agentSettings(options: Record<string, string>): AgentSettings {
  const required = (key: string): string => {
    const value = options[key];
    if (!value) {
      throw new TypeError(
        `Agent option "${key}" is missing: give the service ID, e.g. --option ${key}=<ID>`,
      );
    }
    return value;
  };
  const queueName = options.queueName ?? "tasks";
  if (!QUEUE_NAME.test(queueName)) {
    throw new TypeError(
      `Invalid agent option queueName="${queueName}": give 1-64 letters, digits, '.', '_' or '-'`,
    );
  }
  const cores = wholeOption(options, "cores", navigator.hardwareConcurrency || 1, 1, 4096);
  return {
    queue: required("queue"),
    pubsub: required("pubsub"),
    cores,
    queueName,
    visibilityMs: wholeOption(
      options,
      "visibilityMs",
      60_000,
      1000,
      QUEUE_LIMITS.maxVisibilityMs,
    ),
    prefetch: wholeOption(
      options,
      "prefetch",
      Math.min(cores, QUEUE_LIMITS.maxBatch),
      0,
      QUEUE_LIMITS.maxBatch,
    ),
    graceMs: wholeOption(options, "graceMs", 10_000, 0, 600_000),
    via: viaOption(options.via),
    outputBytes: wholeOption(options, "outputBytes", DEFAULT_OUTPUT_BYTES, 1, 999_999_999),
    keepTasks: wholeOption(options, "keepTasks", DEFAULT_KEPT_TASKS, 1, 100_000),
  };
}

/**
 * The directory of agent `serviceId`'s task directories in the service
 * directory `dir`: `DIR/tasks-<ID>/`, one per agent, since services started
 * by one spawner share `DIR` and an agent prunes only its own.
 */
export function agentTasksDir(dir: string, serviceId: string): string {
  return join(dir, `tasks-${serviceId}`);
}

/** SIGTERM to SIGKILL for the tasks of a replaced agent, ms. */
const URGENT_GRACE_MS = 500;

/**
 * Time after the grace for the nacks and the last events before the sockets
 * close, ms: a stopping agent never waits for a queue or a pub/sub that is
 * gone, so it exits within its grace plus 2 s (issue 12).
 */
const SETTLE_AFTER_GRACE_MS = 1000;

async function start(ctx: RoleContext): Promise<RoleHandle> {
  const settings = agentSettings(ctx.options);
  const client = new FabricClient(ctx.keys);
  // Aborted once the agent has stopped, after its last nack.
  const life = new AbortController();
  if (settings.via === "parent" && !ctx.parent) {
    throw new TypeError('Agent option via="parent" needs a parent: this agent was not spawned');
  }
  const via = settings.via === "parent" && ctx.parent ? { via: ctx.parent } : {};
  const queueTarget = new ServiceTarget(ctx.registry, settings.queue, via);
  const pubsubTarget = new ServiceTarget(ctx.registry, settings.pubsub, via);
  const queue = new RemoteTaskQueue(ctx.keys, queueTarget, life.signal);
  const events = new RemoteEventSink(ctx.keys, client, pubsubTarget, life.signal);
  const startWait = ctx.metrics?.histogram(
    "agent_task_start_seconds",
    "Time from the agent taking a task off the queue to its start",
    { buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600] },
  );
  const sandbox = new TaskSandbox(agentTasksDir(ctx.dir, ctx.serviceId), {
    maxBytes: settings.outputBytes,
    keep: settings.keepTasks,
  });
  // A failed install leaves the tasks to setsid(1) (docs/services.md, agent).
  const sessionHelper = await installSessionHelper(sandbox.root);
  const agent = new Agent(queue, events, {
    sandbox,
    ...(sessionHelper === null ? {} : { sessionHelper }),
    ...(startWait ? { onTaskStart: (seconds: number) => startWait.observe(seconds) } : {}),
    agentId: ctx.serviceId,
    cores: settings.cores,
    queueName: settings.queueName,
    visibilityMs: settings.visibilityMs,
    prefetch: settings.prefetch,
    graceMs: settings.graceMs,
  });
  let live: Agent | null = agent;
  const removers = ctx.metrics ? agentMetrics(agent, ctx.metrics) : [];
  agent.start();
  const logger = log("agent");
  logger.info("Agent takes tasks from {queue}/{queueName} on {cores} cores", { ...settings });
  let stopping: Promise<void> | null = null;
  let hurry: ReturnType<typeof setTimeout> | undefined;
  return {
    routes: agentRoutes(() => live, sandbox),
    stop: (options: RoleStopOptions = {}) => {
      // Replaced: another instance may run these tasks now. They get a short
      // grace, and what is left (nacks, events) gets a second before the
      // sockets close, so the whole stop stays well under 2 s (issue 18).
      // Otherwise the stop request's grace (or the agent's own) applies.
      const graceMs = options.urgent ? URGENT_GRACE_MS : options.graceMs ?? settings.graceMs;
      void agent.stop({ graceMs });
      const deadline = graceMs + SETTLE_AFTER_GRACE_MS;
      if (options.urgent) {
        clearTimeout(hurry);
        hurry = undefined;
      }
      hurry ??= setTimeout(() => life.abort(), deadline);
      stopping ??= (async () => {
        await agent.stop();
        // The last events (QUEUED for the tasks given back) go out first.
        await Promise.all([queue.close(), events.close()]);
        clearTimeout(hurry);
        life.abort();
        live = null;
        for (const remove of removers) remove();
        if (startWait) ctx.metrics?.remove(startWait);
        logger.info("Agent stopped; its unfinished tasks went back to the queue");
      })();
      return stopping;
    },
  };
}

/** The agent role module. */
export const agentRole: RoleModule = {
  start,
  replacement: "fresh",
};

/** Slots and ended tasks, read from the agent at scrape time. */
function agentMetrics(agent: Agent, metrics: ServiceMetrics): (() => void)[] {
  return [
    metrics.gauge({
      name: "agent_slots",
      help: "Core slots of the agent by state (busy, free)",
      labelNames: ["state"],
      collect: (set) => {
        const status = agent.status();
        set({ state: "busy" }, status.slots - status.free);
        set({ state: "free" }, status.free);
      },
    }),
    metrics.counterFrom({
      name: "agent_tasks_total",
      help: "Tasks ended on this agent by final state",
      labelNames: ["state"],
      collect: (set) => {
        for (const [state, n] of Object.entries(agent.tally)) set({ state }, n);
      },
    }),
  ];
}

function wholeOption(
  options: Record<string, string>,
  key: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = options[key];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d{1,9}$/.test(raw) || value < min || value > max) {
    throw new RangeError(
      `Invalid agent option ${key}="${raw}": give a whole number from ${min} to ${max}`,
    );
  }
  return value;
}

function viaOption(raw: string | undefined): "parent" | "direct" {
  if (raw === undefined || raw === "direct" || raw === "parent") return raw ?? "direct";
  throw new TypeError(`Invalid agent option via="${raw}": use parent or direct`);
}
