/**
 * Following a task until it ends, for `fabricd task submit --wait`: its
 * events on the pub/sub service, and its state in the queue's task history
 * when no event will come (a task given again under the ID of one that has
 * ended) or when the wait times out.
 * @module
 */
import { FINAL_STATES, type TaskEvent } from "../services/agent/task.ts";
import type { PubsubSubscription } from "../client/pubsub_client.ts";
import { QueueClient } from "../client/queue_client.ts";
import type { TaskRecord } from "../types/queue_wire.ts";
import { EXIT } from "../types/mod.ts";
import { CliError } from "./cli_error.ts";
import type { FabricContext } from "./context.ts";
import { serviceOf } from "./_service_of.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";

/** What {@linkcode followTask} follows. */
export interface FollowOptions {
  id: string;
  queueId: string;
  queueName: string;
  json: boolean;
  /** Give up after this long, ms (the task stays on the queue). Default: never. */
  timeoutMs?: number;
}

/** How long `task submit --wait` waits for a first agent before it says none takes tasks, ms. */
const NO_AGENT_NOTICE_MS = 2000;

/**
 * Prints the task's events until it ends (exit 0 on DONE, else 1) or the
 * timeout passes (exit 1; the task stays on the queue). After 2 s without an
 * agent on the queue it says so on stderr, once.
 */
export async function followTask(
  context: FabricContext,
  events: PubsubSubscription,
  options: FollowOptions,
): Promise<number> {
  const frames = events[Symbol.asyncIterator]();
  const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
  const noticeAt = Date.now() + NO_AGENT_NOTICE_MS;
  let noticed = false;
  // A read still pending when the socket is closed may reject: nobody waits for it then.
  const pull = (): ReturnType<typeof frames.next> => {
    const read = frames.next();
    read.catch(() => {});
    return read;
  };
  let next = pull();
  try {
    for (;;) {
      const wakeAt = Math.min(deadline, noticed ? Infinity : noticeAt);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const woken = Number.isFinite(wakeAt)
        ? new Promise<"wake">((resolve) =>
          timer = setTimeout(() => resolve("wake"), Math.max(0, wakeAt - Date.now()))
        )
        : new Promise<"wake">(() => {});
      const got = await Promise.race([next, woken]);
      clearTimeout(timer);
      if (got === "wake") {
        if (Date.now() >= deadline) {
          const now = await taskState(context, options.queueId, options.queueName, options.id);
          const where = now?.state === "RUNNING"
            ? `it runs on ${
              now.agent ?? "an agent"
            } and goes on (see "fabricd task show ${options.id}")`
            : `it stays on ${queueLabel(options)} and runs when an agent takes it ` +
              '(see "fabricd task list")';
          throw new CliError(
            `Task ${options.id} did not end within ${options.timeoutMs} ms: ${where}`,
            EXIT.FAILURE,
          );
        }
        noticed = true;
        if (!await agentTakes(context, options.queueId, options.queueName)) {
          console.error(`waiting: no agent takes tasks from ${queueLabel(options)}`);
        }
        continue;
      }
      if (got.done) break;
      next = pull();
      const frame = got.value;
      if (frame.op !== "message") continue;
      const event = frame.message as TaskEvent;
      if (event.agent) noticed = true;
      console.log(options.json ? JSON.stringify(event) : describe(event));
      if (FINAL_STATES.includes(event.state)) {
        return event.state === "DONE" ? EXIT.OK : EXIT.FAILURE;
      }
    }
  } finally {
    await events.close();
  }
  throw new CliError(`The pub/sub service closed before task ${options.id} ended`, EXIT.FAILURE);
}

/**
 * The queue a task waits on, in words: `queue que-1a2b3c4d` for the default
 * name (`tasks`), `queue "nobody" of que-1a2b3c4d` for another, so that a
 * `--queue-name` no agent reads is named where it is the reason.
 */
export function queueLabel({ queueId, queueName }: { queueId: string; queueName: string }): string {
  return queueName === "tasks" ? `queue ${queueId}` : `queue "${queueName}" of ${queueId}`;
}

/** Task `id` of the queue's history when it has ended (DONE, FAILED, CANCELED); else null. */
export async function endedTask(
  context: FabricContext,
  queueId: string,
  name: string,
  id: string,
): Promise<TaskRecord | null> {
  const state = await taskState(context, queueId, name, id);
  return state && (FINAL_STATES as readonly string[]).includes(state.state) ? state : null;
}

/** Task `id` of the queue's history, or null when it cannot be read. */
async function taskState(
  context: FabricContext,
  queueId: string,
  name: string,
  id: string,
): Promise<TaskRecord | null> {
  const target = await serviceOf(context, "queue", queueId).catch(() => null);
  if (!target) return null;
  return (await new QueueClient(context.client, target).task(name, id).catch(() => null))?.task ??
    null;
}

/** Whether a live agent takes tasks from queue `name` of service `queueId`. */
async function agentTakes(
  context: FabricContext,
  queueId: string,
  name: string,
): Promise<boolean> {
  const records = await context.registry.list().catch(() => null);
  if (!records) return true;
  return records.some((r) =>
    r.role === "agent" && ["ALIVE", "SUSPECT"].includes(r.state) &&
    r.options.queue === queueId && (r.options.queueName ?? "tasks") === name
  );
}

function describe(event: TaskEvent): string {
  const code = event.exitCode === undefined ? "" : ` exit ${event.exitCode}`;
  const why = event.reason ? ` (${event.reason})` : "";
  const tail = event.tail
    ? `\n${event.tail.trimEnd().split("\n").map((l) => `    ${l}`).join("\n")}`
    : "";
  return `${
    new Date(event.at).toISOString()
  } ${event.id} ${event.state} on ${event.agent}${code}${why}${tail}`;
}
