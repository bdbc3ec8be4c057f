/**
 * `fabricd task list|show|cancel`: the queue's task history as squeue and
 * sacct show a batch system's jobs, and scancel for a task whether it waits
 * on the queue or runs on an agent (docs/services.md "### Task history").
 * @module
 */
import { FabricRequestError } from "../client/fabric_client.ts";
import { QueueClient } from "../client/queue_client.ts";
import { targetFor } from "../client/route.ts";
import {
  HISTORY_STATES,
  type HistoryState,
  TASK_HISTORY_LIMITS,
  type TaskHistoryEvent,
  type TaskRecord,
} from "../types/queue_wire.ts";
import { EXIT } from "../types/mod.ts";
import { type ParsedArgs, rangeFlag, stringFlag } from "./args.ts";
import { CliError, usage } from "./cli_error.ts";
import type { FabricContext } from "./context.ts";
import { serviceOf } from "./_service_of.ts";

/** What the actions of `fabricd task` share. */
export interface TaskAction {
  context: FabricContext;
  parsed: ParsedArgs;
  /** The queue name the agents read. */
  queueName: string;
}

/** The client of the queue service a command talks to (`--queue`, or the only one), and its ID. */
export async function queueOf(
  { context, parsed }: TaskAction,
): Promise<{ queue: QueueClient; queueId: string }> {
  const target = await serviceOf(context, "queue", stringFlag(parsed, "queue"));
  return { queue: new QueueClient(context.client, target), queueId: target.id };
}

/**
 * Task `id` of the history, with its state changes.
 * @throws {CliError} exit 1 when the history has no such task.
 */
export async function taskOf(
  action: TaskAction,
  id: string,
): Promise<{ task: TaskRecord; events: TaskHistoryEvent[] }> {
  const { queue, queueId } = await queueOf(action);
  try {
    return await queue.task(action.queueName, id);
  } catch (error) {
    if (error instanceof FabricRequestError && error.status === 404) {
      throw unknownTask(id, action.queueName, queueId);
    }
    throw error;
  }
}

/** `task list`'s `--state` and `--limit`. */
export interface ListFlags {
  state: string | undefined;
  limit: number;
}

/**
 * `task list`'s `--state` (a history state, upper-cased) and `--limit` (1 to
 * the queue's most), checked.
 * @throws {CliError} (64) for a bad one.
 */
export function listFlags(parsed: ParsedArgs): ListFlags {
  const state = stringFlag(parsed, "state")?.toUpperCase();
  if (state !== undefined && !(HISTORY_STATES as readonly string[]).includes(state)) {
    throw usage(`Invalid --state "${state}": use one of ${HISTORY_STATES.join(", ")}`);
  }
  // One check and one message for "abc", "0" and "5000" alike: the range accepted.
  const limit = rangeFlag(parsed, "limit", { min: 1, max: TASK_HISTORY_LIMITS.maxListLimit }) ??
    TASK_HISTORY_LIMITS.defaultListLimit;
  return { state, limit };
}

/**
 * `task list`: the queue's counts, then its tasks, newest first: ID, state,
 * agent, age, exit code.
 */
export async function listTasks(
  action: TaskAction,
  { state, limit }: ListFlags,
): Promise<number> {
  const { parsed, queueName } = action;
  const { queue } = await queueOf(action);
  const stats = await queue.stats(queueName);
  const tasks = await queue.tasks(queueName, {
    limit,
    ...(state ? { state: state as HistoryState } : {}),
  });
  if (parsed.flags.json) {
    console.log(JSON.stringify({ queue: stats, tasks }));
    return EXIT.OK;
  }
  console.log(
    `queue "${stats.name}": ${stats.ready} waiting, ${stats.inflight} taken (capacity ${stats.capacity})`,
  );
  const now = Date.now();
  const rows = [["TASK", "STATE", "AGENT", "AGE", "EXIT"]].concat(tasks.map((t) => [
    t.id,
    t.state,
    t.agent ?? "-",
    age(now - t.submittedAt),
    t.exitCode === null ? "-" : String(t.exitCode),
  ]));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows) {
    console.log(row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd());
  }
  if (tasks.length === 0) console.log(state ? `no ${state} task` : "no task in the history");
  return EXIT.OK;
}

/**
 * `task show ID`: the task's states with their times, agent, host, exit
 * code and the paths of its output.
 * @throws {CliError} exit 1 for a task the history does not know.
 */
export async function showTask(action: TaskAction, id: string): Promise<number> {
  const { task, events } = await taskOf(action, id);
  if (action.parsed.flags.json) {
    console.log(JSON.stringify({ task, events }));
    return EXIT.OK;
  }
  const time = (at: number | null): string => at === null ? "-" : new Date(at).toISOString();
  const code = task.exitCode === null ? "" : ` (exit ${task.exitCode})`;
  const lines: [string, string][] = [
    ["task", task.id],
    ["state", `${task.state}${code}`],
    ["agent", task.agent ? `${task.agent} on ${task.host ?? "?"}` : "-"],
    ["submitted", time(task.submittedAt)],
    ["started", time(task.startedAt)],
    ["ended", time(task.endedAt)],
    ["deliveries", String(task.deliveries)],
  ];
  if (task.startedAt !== null && task.endedAt !== null) {
    lines.push(["ran", age(task.endedAt - task.startedAt)]);
  }
  if (task.reason) lines.push(["reason", task.reason]);
  if (task.output) {
    const host = task.host ? `${task.host}:` : "";
    lines.push(["stdout", `${host}${task.output}/stdout`], [
      "stderr",
      `${host}${task.output}/stderr`,
    ]);
  }
  for (const [name, value] of lines) console.log(`${name.padEnd(11)}${value}`);
  console.log("history");
  for (const e of events) {
    const by = e.agent ? ` ${e.agent}` : "";
    console.log(`  ${time(e.at)}  ${e.state.padEnd(8)}${by}${e.note ? ` (${e.note})` : ""}`);
  }
  return EXIT.OK;
}

/**
 * `task cancel ID`: removes the task from the queue when it waits there;
 * otherwise asks the agent that holds it (or, when the history does not
 * name one, every ALIVE agent).
 * @throws {CliError} exit 1 when the task is unknown, has ended, or no agent holds it.
 */
export async function cancelTask(action: TaskAction, id: string): Promise<number> {
  const { queue, queueId } = await queueOf(action);
  let holder: string | null = null;
  let known = true;
  try {
    const answer = await queue.cancelTask(action.queueName, id);
    if (answer.removed) {
      console.log(`Canceled ${id}: removed from queue ${queueId}`);
      return EXIT.OK;
    }
    if (!answer.taken) {
      throw new CliError(
        `Task "${id}" has ended (${answer.state}): nothing to cancel`,
        EXIT.FAILURE,
      );
    }
    holder = answer.agent;
  } catch (error) {
    if (!(error instanceof FabricRequestError && error.status === 404)) throw error;
    known = false;
    // Not in the history: a task of another kind of producer; its agent may still run it.
  }
  const records = await action.context.registry.list();
  const agents = records.filter((r) => r.role === "agent" && r.state === "ALIVE")
    .sort((a, b) => Number(b.id === holder) - Number(a.id === holder));
  for (const agent of agents) {
    const canceled = await action.context.client.call(targetFor(agent, records), {
      method: "POST",
      path: `/v1/agent/tasks/${encodeURIComponent(id)}/cancel`,
    }).then(() => true, () => false);
    if (canceled) {
      console.log(`Canceled ${id} on ${agent.id}`);
      return EXIT.OK;
    }
  }
  if (!known) throw unknownTask(id, action.queueName, queueId);
  throw new CliError(
    `No ALIVE agent holds task "${id}" (taken by ${
      holder ?? "an agent"
    }): it goes back to the queue when its visibility timeout runs out`,
    EXIT.FAILURE,
  );
}

/** The error for a task ID the history does not know: exit 1. */
export function unknownTask(id: string, queueName: string, queueId: string): CliError {
  return new CliError(
    `Unknown task "${id}": queue "${queueName}" of ${queueId} has no such task in its history ` +
      `(see "fabricd task list"; finished tasks are kept for a limited time)`,
    EXIT.FAILURE,
  );
}

/** A duration as "850ms", "42s", "5m", "3h" or "2d". */
function age(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 1) return `${Math.round(s * 1000)}ms`;
  if (s < 120) return `${Math.round(s)}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}
