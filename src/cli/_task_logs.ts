/**
 * `fabricd task logs ID [-f] [--stderr]`: a task's output, read from its
 * directory on the agent that ran it through a signed call routed like every
 * call (through the bridges to a compute node), as `nomad alloc logs` does;
 * `-f` follows it until the task ends.
 * @module
 */
import { FabricRequestError } from "../client/fabric_client.ts";
import { targetFor } from "../client/route.ts";
import { sleep } from "../config/retry.ts";
import {
  FINISHED_STATES,
  TASK_HISTORY_LIMITS,
  type TaskLogChunk,
  type TaskRecord,
} from "../types/queue_wire.ts";
import { EXIT } from "../types/mod.ts";
import { CliError } from "./cli_error.ts";
import { type TaskAction, taskOf } from "./_task_history.ts";

/** How often `-f` asks for more output, and for the task's state while it waits, ms. */
const FOLLOW_POLL_MS = 500;

/**
 * Prints task `ID`'s stdout (or `--stderr`); with `-f`, waits for the task
 * to start and prints its output as it comes until it ends.
 * @throws {CliError} exit 1 when the task is unknown, has not started
 * (without `-f`), its agent is gone, or the agent has no output for it.
 */
export async function taskLogs(action: TaskAction, id: string): Promise<number> {
  const follow = action.parsed.flags.follow === true;
  const stream = action.parsed.flags.stderr === true ? "stderr" : "stdout";
  let { task } = await taskOf(action, id);
  while (task.agent === null || task.output === null) {
    if (isFinished(task)) {
      throw new CliError(`Task "${id}" ended ${task.state} without output`, EXIT.FAILURE);
    }
    if (!follow) {
      throw new CliError(
        `Task "${id}" has not started (${task.state}): no output yet; "-f" waits for it`,
        EXIT.FAILURE,
      );
    }
    await sleep(FOLLOW_POLL_MS);
    ({ task } = await taskOf(action, id));
  }
  const reader = await agentReader(action, task, stream);
  const out = new TextEncoder();
  let offset = 0;
  for (;;) {
    const chunk = await reader.read(offset);
    if (chunk.data) await Deno.stdout.write(out.encode(chunk.data));
    offset = chunk.next;
    if (chunk.next < chunk.size) continue;
    if (!follow) break;
    if (!chunk.running) {
      // The agent has let go of the task, so the file is complete: the task
      // ended (the history may lag behind its final report) or went elsewhere.
      const { task: now } = await taskOf(action, id);
      if (isFinished(now) || now.agent !== task.agent) break;
    }
    await sleep(FOLLOW_POLL_MS);
  }
  if (reader.truncated) {
    console.error(`(output of ${id} was cut at the agent's outputBytes; later bytes were dropped)`);
  }
  return EXIT.OK;
}

/**
 * Reads `stream` of `task` from the agent that ran it, from an offset.
 * @throws {CliError} exit 1 when that agent is not ALIVE or has no output of the task.
 */
async function agentReader(
  { context }: TaskAction,
  task: TaskRecord,
  stream: "stdout" | "stderr",
): Promise<{ read(offset: number): Promise<TaskLogChunk>; truncated: boolean }> {
  const records = await context.registry.list();
  const agent = records.find((r) => r.id === task.agent);
  const where = `${task.host ?? "its host"}:${task.output}`;
  if (!agent || agent.state !== "ALIVE") {
    throw new CliError(
      `Agent ${task.agent} that ran task "${task.id}" is ${
        agent?.state ?? "gone"
      }: its output stays in ${where}`,
      EXIT.FAILURE,
    );
  }
  const target = targetFor(agent, records);
  const reader = {
    truncated: false,
    read: async (offset: number): Promise<TaskLogChunk> => {
      const query = new URLSearchParams({
        stream,
        offset: String(offset),
        max: String(TASK_HISTORY_LIMITS.maxLogBytes),
      });
      try {
        const chunk = await context.client.call<TaskLogChunk>(target, {
          method: "GET",
          path: `/v1/agent/tasks/${encodeURIComponent(task.id)}/logs?${query}`,
        });
        reader.truncated ||= chunk.truncated;
        return chunk;
      } catch (error) {
        if (error instanceof FabricRequestError && error.status === 404) {
          throw new CliError(`${error.message} (${where})`, EXIT.FAILURE, { cause: error });
        }
        throw error;
      }
    },
  };
  return reader;
}

function isFinished(task: TaskRecord): boolean {
  return FINISHED_STATES.includes(task.state);
}
