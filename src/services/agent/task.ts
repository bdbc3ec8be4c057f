/**
 * The agent's wire format: a task as it is put on the queue, and the state
 * events the agent publishes on topic `tasks.<id>` (docs/services.md "## agent").
 * @module
 */
import * as z from "zod";
import { TASK_ID } from "../../types/queue_wire.ts";

export { TASK_ID };

/** Bytes of combined stdout and stderr that a final event carries at most. */
export const TAIL_BYTES = 4096;

/**
 * The longest `timeoutMs` a task may give, ms: 2^31 - 1, about 24.8 days. A
 * timer set for longer fires at once, which would kill the task as it starts.
 */
export const MAX_TASK_TIMEOUT_MS = 2_147_483_647;

const TIMEOUT_RANGE =
  `must be a whole number of ms from 1 to ${MAX_TASK_TIMEOUT_MS} (about 24.8 days)`;

/** Every state a task goes through on an agent. */
export const TASK_STATES = ["QUEUED", "RUNNING", "DONE", "FAILED", "CANCELED"] as const;

/** A task state. */
export type TaskState = typeof TASK_STATES[number];

/** States after which the agent acknowledges the task's message. */
export const FINAL_STATES: readonly TaskState[] = ["DONE", "FAILED", "CANCELED"];

/** A task as it is put on the queue. */
export const taskSchema = z.strictObject({
  id: z.string().regex(TASK_ID, "must be 1-64 letters, digits, '_' or '-' (e.g. \"tsk-1a2b\")"),
  executable: z.string().min(1, "must name an executable").max(4096),
  args: z.array(z.string()).max(4096).default([]),
  env: z.record(z.string(), z.string()).default({}),
  cwd: z.string().min(1).optional(),
  cores: z.int().min(1).default(1),
  timeoutMs: z.int(TIMEOUT_RANGE).min(1, TIMEOUT_RANGE).max(MAX_TASK_TIMEOUT_MS, TIMEOUT_RANGE)
    .optional(),
});

/** A validated task. */
export type Task = z.output<typeof taskSchema>;

/** What the agent publishes on `tasks.<id>` at each state change. */
export interface TaskEvent {
  /** The task's ID, or `msg-<message ID>` when the payload had no valid one. */
  id: string;
  state: TaskState;
  /** The agent's service ID. */
  agent: string;
  /** The process's exit code, on DONE and FAILED when the process ran and exited. */
  exitCode?: number;
  /** The last {@linkcode TAIL_BYTES} bytes of stdout and stderr, on final states. */
  tail?: string;
  /** Why a task FAILED without an exit code, was CANCELED or went back to QUEUED. */
  reason?: string;
  /** Milliseconds since the epoch. */
  at: number;
}

/** The result of {@linkcode parseTask}. */
export type ParsedTask =
  | { ok: true; task: Task }
  | { ok: false; id: string; reason: string };

/**
 * Validates a queue payload as a task; never throws. An invalid payload is
 * answered with the ID to report it under (its own `id` when that is valid,
 * else `msg-<messageId>`) and a reason naming the first invalid field.
 */
export function parseTask(payload: unknown, messageId: string): ParsedTask {
  const parsed = taskSchema.safeParse(payload);
  if (parsed.success) return { ok: true, task: parsed.data };
  const raw = typeof payload === "object" && payload !== null && "id" in payload
    ? (payload as { id: unknown }).id
    : undefined;
  const id = typeof raw === "string" && TASK_ID.test(raw) ? raw : `msg-${messageId}`;
  const issue = parsed.error.issues[0];
  if (!issue) return { ok: false, id, reason: "Invalid task" };
  const field = issue.code === "unrecognized_keys"
    ? issue.keys[0] ?? "(unknown)"
    : issue.path.map(String).join(".") || "(whole)";
  const why = issue.code === "unrecognized_keys" ? "is not a known field" : issue.message;
  return { ok: false, id, reason: `Invalid task field "${field}": ${why}` };
}

/** The pub/sub topic of task `id`'s events. */
export function taskTopic(id: string): string {
  return `tasks.${id}`;
}
