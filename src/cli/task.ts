/**
 * `fabricd task submit|list|show|logs|cancel`: work for the agents, like a
 * batch system. A task goes on a queue service; an agent runs it in its own
 * directory, publishes its states on the pub/sub service (`tasks.<id>`) and
 * reports them to the queue's task history; `--wait` follows the states
 * until the task ends (`_task_follow.ts`). History and cancel:
 * `_task_history.ts`; output: `_task_logs.ts`.
 * @module
 */
import { TASK_ID, taskTopic } from "../services/agent/task.ts";
import { FabricRequestError } from "../client/fabric_client.ts";
import { PubsubClient, type PubsubSubscription } from "../client/pubsub_client.ts";
import { QueueClient } from "../client/queue_client.ts";
import { EXIT } from "../types/mod.ts";
import {
  durationFlag,
  idFlag,
  keyValueFlag,
  noMoreArgs,
  type ParsedArgs,
  parseFlags,
  rangeFlag,
  stringFlag,
} from "./args.ts";
import { CliError, echoed, usage } from "./cli_error.ts";
import { type FabricContext, loadContext } from "./context.ts";
import { NotAliveError, recordOf, serviceOf } from "./_service_of.ts";
import { ENDED_STATES, FINAL_STATES } from "../registry/state_machine.ts";
import {
  cancelTask,
  type ListFlags,
  listFlags,
  listTasks,
  showTask,
  type TaskAction,
} from "./_task_history.ts";
import { taskLogs } from "./_task_logs.ts";
import { readSmallFile } from "../base/small_file.ts";
import { endedTask, followTask } from "./_task_follow.ts";
import { setTimeout } from "../base/timers.ts";

/** Help text of `fabricd task`. */
export const TASK_HELP =
  `fabricd task submit [--id TASK_ID] [--wait [--timeout D]] [--cores N] [--env K=V]... [--env-file FILE] [--cwd DIR] -- EXECUTABLE [ARG...]
fabricd task list [--state S] [--limit N]
fabricd task show TASK_ID
fabricd task logs TASK_ID [-f] [--stderr]
fabricd task cancel TASK_ID
  (each also takes [--queue ID] [--pubsub ID] [--queue-name NAME] [--json] [--fabric FILE])

  submit   puts a task on the queue (the fabric's queue service, or --queue ID) and
           prints its ID at once; --wait follows its states (QUEUED, RUNNING, DONE,
           FAILED, CANCELED) on the pub/sub service until it ends, and exits 0 only
           on DONE; --timeout D (e.g. 30s, 5m) gives up after D with exit 1, the task
           staying on the queue. When no agent takes tasks from the queue after 2 s,
           --wait says so on stderr ("waiting: no agent takes tasks from queue X", or
           'from queue "NAME" of X' for a --queue-name other than tasks).
           The task ID (--id, or a new random one) is the put's idempotency key: a
           put whose answer was lost is sent again (for up to 60 s, backing off)
           and stored once; submitting the same --id again stores nothing new.
           --env K=V is on the command line, which every user of the host can
           read (ps): give secrets with --env-file FILE instead (KEY=VALUE lines,
           blank lines and lines starting with # skipped; at most 64 KiB)
  list     the queue's counts, then its tasks from the task history, newest first:
           ID, state, agent, age, exit code; --state QUEUED|RUNNING|DONE|FAILED|
           CANCELED|ENDED, --limit N (default 50, at most 1000)
  show     one task: its states with their times, agent and host, exit code,
           and the paths of its stdout and stderr on the agent's host
  logs     the task's stdout (--stderr: its stderr), fetched from the agent that
           ran it through the fabric; -f/--follow waits for the task to start and
           prints its output as it comes until it ends
  cancel   removes a task that waits on the queue (CANCELED), or asks the agent
           that holds it to cancel it (SIGTERM, SIGKILL after its grace)

  An unknown task ID (never submitted, or pruned from the history) exits 1, as
  does "show", "logs" or "cancel" of a task that cannot be shown or canceled.
  A --queue or --pubsub ID the registry does not have exits 1 at once; submit
  waits (up to 60 s, then exit 69) only for a queue that restarts or does not
  answer. Arguments are checked before anything is sent (exit 64).

  --queue ID / --pubsub ID   which services, when the fabric has more than one
  --queue-name NAME          queue name the agents read (default tasks)
  --json                     machine-readable output
  --fabric FILE              fabric file (default: FABRIC_FILE, then
                             ~/.fabric/fabric.yaml)
`;

/** The actions of `fabricd task`. */
const ACTIONS = ["submit", "list", "show", "logs", "cancel"];

/** Runs `fabricd task`. */
export async function taskCommand(args: string[]): Promise<number> {
  const dash = args.indexOf("--");
  const parsed = parseFlags("task", dash >= 0 ? args.slice(0, dash) : args, {
    queue: { type: "string" },
    pubsub: { type: "string" },
    "queue-name": { type: "string" },
    cores: { type: "string" },
    env: { type: "string", multiple: true },
    "env-file": { type: "string" },
    cwd: { type: "string" },
    id: { type: "string" },
    wait: { type: "boolean" },
    timeout: { type: "string" },
    json: { type: "boolean" },
    state: { type: "string" },
    limit: { type: "string" },
    follow: { type: "boolean", short: "f" },
    stderr: { type: "boolean" },
    fabric: { type: "string" },
  });
  const [action, ...rest] = parsed.positionals;
  if (parsed.flags.help || !action) {
    console.log(TASK_HELP);
    return parsed.flags.help ? EXIT.OK : EXIT.USAGE;
  }
  // Every argument is checked before the fabric is loaded: a usage error is 64 on any fabric.
  if (!ACTIONS.includes(action)) {
    throw usage(`Unknown action "${action}": use ${ACTIONS.join(", ")}`);
  }
  idFlag(parsed, "queue", "service");
  idFlag(parsed, "pubsub", "service");
  const queueName = idFlag(parsed, "queue-name", "queue") ?? "tasks";
  const submission = action === "submit"
    ? await submissionOf(parsed, dash >= 0 ? args.slice(dash + 1) : rest)
    : undefined;
  const list = action === "list" ? checkListFlags(parsed, rest) : undefined;
  const id = ["show", "logs", "cancel"].includes(action)
    ? checkTaskId(oneTaskId(rest, action))
    : undefined;
  const context = await loadContext(stringFlag(parsed, "fabric"));
  const run: TaskAction = { context, parsed, queueName };
  if (submission) return await submitTask(run, submission);
  if (list) return await listTasks(run, list);
  if (action === "show") return await showTask(run, id!);
  if (action === "logs") return await taskLogs(run, id!);
  return await cancelTask(run, id!);
}

/** The one task ID of `rest`. @throws {CliError} exit 64 otherwise. */
function oneTaskId(rest: string[], action: string): string {
  const [id, ...extra] = rest;
  if (!id || extra.length > 0) {
    throw usage(`Give one task ID: "fabricd task ${action} tsk-1a2b3c4d"`);
  }
  return id;
}

/** A task ID as the queue takes it. @throws {CliError} (64) otherwise. */
function checkTaskId(id: string): string {
  if (!TASK_ID.test(id)) {
    throw usage(
      `Invalid task ID "${echoed(id)}": give 1-64 letters, digits, '_' or '-' (e.g. tsk-1a2b)`,
    );
  }
  return id;
}

/**
 * `task list`'s arguments: no positional, a known `--state`, `--limit` in range.
 * @throws {CliError} (64) otherwise.
 */
function checkListFlags(parsed: ParsedArgs, rest: string[]): ListFlags {
  noMoreArgs("task", rest);
  return listFlags(parsed);
}

/** What `task submit` puts on the queue, and how long `--wait` waits. */
interface Submission {
  task: {
    id: string;
    executable: string;
    args: string[];
    env: Record<string, string>;
    cores: number;
    cwd?: string;
  };
  timeoutMs: number | undefined;
}

/**
 * `task submit`'s task from its flags and `command`.
 * @throws {CliError} exit 64 without a command, with a bad `--id`, `--cores`,
 * `--env` or `--timeout`, or `--timeout` without `--wait`.
 */
async function submissionOf(parsed: ParsedArgs, command: string[]): Promise<Submission> {
  if (command.length === 0 || command[0] === "") {
    throw usage('Give the command after "--": fabricd task submit -- /bin/echo hi');
  }
  const id = checkTaskId(stringFlag(parsed, "id") ?? `tsk-${crypto.randomUUID().slice(0, 8)}`);
  const timeoutMs = parsed.flags.timeout === undefined
    ? undefined
    : durationFlag(parsed, "timeout", 0, { min: 1 }); // 0 would give up before the task is put
  if (timeoutMs !== undefined && !parsed.flags.wait) throw usage("--timeout goes with --wait");
  const cwd = stringFlag(parsed, "cwd");
  if (cwd === "") throw usage("Empty --cwd: give a directory, or leave --cwd out");
  return {
    task: {
      id,
      executable: command[0]!,
      args: command.slice(1),
      env: await environmentOf(parsed),
      cores: rangeFlag(parsed, "cores", { min: 1, max: 4096 }) ?? 1,
      ...(cwd ? { cwd } : {}),
    },
    timeoutMs,
  };
}

/**
 * `task submit`: puts the task on the queue and prints its ID; with `--wait`,
 * follows the task until it ends.
 */
async function submitTask(
  { context, parsed, queueName }: TaskAction,
  { task, timeoutMs }: Submission,
): Promise<number> {
  const id = task.id;
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
  const answer = put.duplicate ? { id, duplicate: true } : { id };
  // The ID at once, before any wait: it is what every later command takes.
  if (!events || !parsed.flags.json) console.log(parsed.flags.json ? JSON.stringify(answer) : id);
  if (!events) return EXIT.OK;
  // A task given again under its ID may have ended already: no event would come.
  const ended = put.duplicate ? await endedTask(context, queueId, queueName, id) : null;
  if (ended) {
    await events.close();
    const exit = ended.exitCode === null ? "" : ` (exit ${ended.exitCode})`;
    console.log(
      parsed.flags.json
        ? JSON.stringify(ended)
        : `${id} had already ended ${ended.state}${exit}: see "fabricd task show ${id}"`,
    );
    return ended.state === "DONE" ? EXIT.OK : EXIT.FAILURE;
  }
  return await followTask(context, events, {
    id,
    queueId,
    queueName,
    json: parsed.flags.json === true,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
}

/**
 * The queue service to submit to: `--queue`, or the fabric's only queue
 * service that is not ended, even while it restarts (then the put waits).
 * @throws {CliError} exit 1 for a `--queue` the registry does not have as a
 * queue service, or as {@linkcode serviceOf} when there is none or several.
 */
async function queueIdOf(context: FabricContext, given: string | undefined): Promise<string> {
  const records = await context.registry.list();
  if (given) return recordOf(records, "queue", given).id;
  const queues = records.filter((r) => r.role === "queue" && !ENDED_STATES.includes(r.state));
  if (queues.length === 1) return queues[0]!.id;
  return (await serviceOf(context, "queue", undefined)).id;
}

/** How long `task submit` keeps sending a put whose answer did not come, ms. */
const SUBMIT_PATIENCE_MS = 60_000;

/**
 * Whether a put may succeed when sent again: the queue could not be reached,
 * answered 502/503, or exists but is not ALIVE in a state it leaves by itself
 * (restarting). An unknown queue, or one STOPPED or LOST, fails at once.
 */
function retryable(error: unknown): boolean {
  if (error instanceof FabricRequestError) return [0, 502, 503].includes(error.status);
  return error instanceof NotAliveError && !FINAL_STATES.includes(error.state);
}

/**
 * Puts `task` on queue service `queueId` with the task ID as idempotency
 * key, sending it again with backoff (250 ms doubling to 4 s, for at most
 * {@linkcode SUBMIT_PATIENCE_MS}) while it is {@linkcode retryable}: the
 * queue stores it once however often it arrives.
 * @throws {CliError} exit 69 when the queue stayed out of reach, 1 when it
 * refused or does not exist (at once).
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
      if (!retryable(error)) throw error;
      if (Date.now() + delay > deadline) {
        // Out of reach, refusing with 502/503 or not ALIVE: the same to the caller.
        throw new CliError(
          `${error instanceof Error ? error.message : String(error)} (tried for ${
            SUBMIT_PATIENCE_MS / 1000
          } s)`,
          EXIT.UNREACHABLE,
          { cause: error },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(4000, delay * 2);
    }
  }
}

/** Most bytes of an `--env-file`. */
const ENV_FILE_BYTES = 64 * 1024;

/**
 * The task's environment: `--env-file FILE` (KEY=VALUE lines) and `--env
 * K=V`, a key at most once across both.
 * @throws {CliError} 64 for a repeated key or a malformed `--env`, 65 for a
 * file that cannot be read or holds a line that is not KEY=VALUE.
 */
async function environmentOf(parsed: ParsedArgs): Promise<Record<string, string>> {
  const env = keyValueFlag(parsed, "env");
  const file = stringFlag(parsed, "env-file");
  if (file === undefined) return env;
  if (file === "") throw usage("Empty --env-file: give a file of KEY=VALUE lines");
  let text: string;
  try {
    text = await readSmallFile(file, ENV_FILE_BYTES);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new CliError(`Cannot read --env-file ${JSON.stringify(file)}: ${why}`, EXIT.DATA);
  }
  const fromFile: Record<string, string> = {};
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "" || line.trimStart().startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq < 1 || /\s/.test(line.slice(0, eq))) {
      throw new CliError(
        `${file}:${i + 1}: not a KEY=VALUE line: write one variable per line, as NAME=value`,
        EXIT.DATA,
      );
    }
    const key = line.slice(0, eq);
    if (Object.hasOwn(env, key) || Object.hasOwn(fromFile, key)) {
      throw usage(`Repeated environment variable "${key}" (--env, --env-file): give it once`);
    }
    fromFile[key] = line.slice(eq + 1);
  }
  return { ...fromFile, ...env };
}
