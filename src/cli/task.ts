/**
 * `fabricd task submit|list|cancel`: work for the agents. A task goes on a
 * queue service; an agent runs it and publishes its states on the pub/sub
 * service (`tasks.<id>`); `--wait` follows them until the task ends.
 * @module
 */
import { targetFor } from "../client/route.ts";
import { TASK_ID, type TaskEvent, taskTopic } from "../services/agent/task.ts";
import { FabricRequestError } from "../client/fabric_client.ts";
import { PubsubClient, type PubsubSubscription } from "../services/pubsub/pubsub_client.ts";
import { QueueClient } from "../services/queue/queue_client.ts";
import { EXIT } from "../types/mod.ts";
import { intFlag, keyValueFlag, parseFlags, stringFlag } from "./args.ts";
import { CliError, usage } from "./cli_error.ts";
import { type FabricContext, loadContext } from "./context.ts";
import { serviceOf } from "./_service_of.ts";

/** Help text of `fabricd task`. */
export const TASK_HELP =
  `fabricd task submit [--id TASK_ID] [--wait] [--cores N] [--env K=V]... [--cwd DIR] -- EXECUTABLE [ARG...]
fabricd task list
fabricd task cancel TASK_ID

  submit   puts a task on the queue (the fabric's queue service, or --queue ID) and
           prints its ID; --wait follows its states (QUEUED, RUNNING, DONE, FAILED,
           CANCELED) on the pub/sub service until it ends, and exits 0 only on DONE.
           The task ID (--id, or a new random one) is the put's idempotency key: a
           put whose answer was lost is sent again (for up to 60 s, backing off)
           and stored once; submitting the same --id again stores nothing new
  list     the queue's counts and what every agent runs now
  cancel   asks the agents to cancel a task; exit 1 when no agent runs it

  --queue ID / --pubsub ID   which services, when the fabric has more than one
  --queue-name NAME          queue name the agents read (default tasks)
  --json                     machine-readable output
`;

/** Runs `fabricd task`. */
export async function taskCommand(args: string[]): Promise<number> {
  const dash = args.indexOf("--");
  const parsed = parseFlags("task", dash >= 0 ? args.slice(0, dash) : args, {
    queue: { type: "string" },
    pubsub: { type: "string" },
    "queue-name": { type: "string" },
    cores: { type: "string" },
    env: { type: "string", multiple: true },
    cwd: { type: "string" },
    id: { type: "string" },
    wait: { type: "boolean" },
    json: { type: "boolean" },
    fabric: { type: "string" },
  });
  const [action, ...rest] = parsed.positionals;
  if (parsed.flags.help || !action) {
    console.log(TASK_HELP);
    return parsed.flags.help ? EXIT.OK : EXIT.USAGE;
  }
  const context = await loadContext(stringFlag(parsed, "fabric"));
  const queueName = stringFlag(parsed, "queue-name") ?? "tasks";
  if (action === "submit") {
    const command = dash >= 0 ? args.slice(dash + 1) : rest;
    if (command.length === 0) {
      throw usage('Give the command after "--": fabricd task submit -- /bin/echo hi');
    }
    const id = stringFlag(parsed, "id") ?? `tsk-${crypto.randomUUID().slice(0, 8)}`;
    if (!TASK_ID.test(id)) {
      throw usage(`Invalid --id "${id}": give 1-64 letters, digits, '_' or '-' (e.g. tsk-1a2b)`);
    }
    const task = {
      id,
      executable: command[0]!,
      args: command.slice(1),
      env: keyValueFlag(parsed, "env"),
      cores: intFlag(parsed, "cores", 1) || 1,
      ...(stringFlag(parsed, "cwd") ? { cwd: stringFlag(parsed, "cwd") } : {}),
    };
    const queueId = await queueIdOf(context, stringFlag(parsed, "queue"));
    let events: PubsubSubscription | null = null;
    if (parsed.flags.wait) {
      const pubsub = new PubsubClient(
        context.keys,
        await serviceOf(context, "pubsub", stringFlag(parsed, "pubsub")),
      );
      events = await pubsub.subscribe([taskTopic(id)]);
    }
    const put = await submitOnce(context, queueId, { queueName, task });
    if (!events) {
      const answer = put.duplicate ? { id, duplicate: true } : { id };
      console.log(parsed.flags.json ? JSON.stringify(answer) : id);
      return EXIT.OK;
    }
    for await (const frame of events) {
      if (frame.op !== "message") continue;
      const event = frame.message as TaskEvent;
      if (parsed.flags.json) console.log(JSON.stringify(event));
      else console.log(describe(event));
      if (["DONE", "FAILED", "CANCELED"].includes(event.state)) {
        await events.close();
        return event.state === "DONE" ? EXIT.OK : EXIT.FAILURE;
      }
    }
    throw new CliError(`The pub/sub service closed before task ${id} ended`, EXIT.FAILURE);
  }
  if (action === "list") {
    const queue = new QueueClient(
      context.client,
      await serviceOf(context, "queue", stringFlag(parsed, "queue")),
    );
    const stats = await queue.stats(queueName);
    const records = await context.registry.list();
    const agents = records.filter((r) => r.role === "agent" && r.state === "ALIVE");
    const running: { agent: string; slots: number; free: number; running: string[] }[] = [];
    for (const agent of agents) {
      const status = await context.client.call<{ slots: number; free: number; running: string[] }>(
        targetFor(agent, records),
        { method: "GET", path: "/v1/agent" },
      ).catch(() => null);
      if (status) running.push({ agent: agent.id, ...status });
    }
    if (parsed.flags.json) {
      console.log(JSON.stringify({ queue: stats, agents: running }));
      return EXIT.OK;
    }
    console.log(
      `queue "${stats.name}": ${stats.ready} waiting, ${stats.inflight} taken (capacity ${stats.capacity})`,
    );
    for (const a of running) {
      console.log(
        `  ${a.agent}: ${a.slots - a.free}/${a.slots} cores busy; running ${
          a.running.join(", ") || "nothing"
        }`,
      );
    }
    if (running.length === 0) console.log("  no agent is ALIVE");
    return EXIT.OK;
  }
  if (action === "cancel") {
    const [id, ...extra] = rest;
    if (!id || extra.length > 0) {
      throw usage('Give one task ID: "fabricd task cancel tsk-1a2b3c4d"');
    }
    const records = await context.registry.list();
    for (const agent of records.filter((r) => r.role === "agent" && r.state === "ALIVE")) {
      const answer = await context.client.call(targetFor(agent, records), {
        method: "POST",
        path: `/v1/agent/tasks/${encodeURIComponent(id)}/cancel`,
      }).then(() => true, () => false);
      if (answer) {
        console.log(`Canceled ${id} on ${agent.id}`);
        return EXIT.OK;
      }
    }
    throw new CliError(`No agent runs task "${id}": it ended, or waits on the queue`, EXIT.FAILURE);
  }
  throw usage(`Unknown action "${action}": use submit, list or cancel`);
}

/**
 * The queue service to submit to: `--queue`, or the fabric's only queue
 * service that is not ended, even while it restarts (then the put waits).
 * @throws {CliError} as {@linkcode serviceOf} when there is none or several.
 */
async function queueIdOf(context: FabricContext, given: string | undefined): Promise<string> {
  if (given) return given;
  const ended = ["STOPPED", "FAILED", "LOST"];
  const queues = (await context.registry.list()).filter((r) =>
    r.role === "queue" && !ended.includes(r.state)
  );
  if (queues.length === 1) return queues[0]!.id;
  return (await serviceOf(context, "queue", undefined)).id;
}

/** How long `task submit` keeps sending a put whose answer did not come, ms. */
const SUBMIT_PATIENCE_MS = 60_000;

/**
 * Puts `task` on queue service `queueId` with the task ID as idempotency
 * key, sending it again with backoff (250 ms doubling to 4 s, for at most
 * {@linkcode SUBMIT_PATIENCE_MS}) while the service cannot be reached or is
 * not ALIVE: the queue stores it once however often it arrives.
 * @throws {CliError} exit 69 when the queue stayed out of reach, 1 when it refused.
 */
async function submitOnce(
  context: FabricContext,
  queueId: string,
  submission: { queueName: string; task: { id: string } },
): Promise<{ id: string; duplicate: boolean }> {
  const deadline = Date.now() + SUBMIT_PATIENCE_MS;
  let delay = 250;
  for (;;) {
    try {
      // Looked up again each time: a restarted queue may listen elsewhere.
      const target = await serviceOf(context, "queue", queueId);
      const put = await new QueueClient(context.client, target).putOnce(submission.queueName, {
        payload: submission.task,
        key: submission.task.id,
      });
      return put;
    } catch (error) {
      const retryable = (error instanceof FabricRequestError &&
        (error.status === 0 || error.status === 502 || error.status === 503)) ||
        (error instanceof CliError && error.exitCode === EXIT.FAILURE &&
          !(error.cause instanceof FabricRequestError));
      if (!retryable || Date.now() + delay > deadline) {
        if (error instanceof CliError && retryable) {
          throw new CliError(
            `${error.message} (tried for ${SUBMIT_PATIENCE_MS / 1000} s)`,
            EXIT.UNREACHABLE,
          );
        }
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(4000, delay * 2);
    }
  }
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
