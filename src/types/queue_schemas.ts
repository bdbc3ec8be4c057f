/**
 * Zod schemas of the queue's requests and WebSocket frames (docs/services.md
 * "## queue"), and the 400 message that names the invalid field.
 * @module
 */
import * as z from "zod";
import { issueText } from "./issue_text.ts";
import {
  HISTORY_STATES,
  MESSAGE_ID,
  PUT_KEY,
  QUEUE_LIMITS,
  QUEUE_NAME,
  TASK_HISTORY_LIMITS,
  TASK_ID,
} from "./queue_wire.ts";

/** A queue name in a path. */
export const queueNameSchema = z.string().regex(
  QUEUE_NAME,
  "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
);

/** A message ID in a path or frame. */
export const messageIdSchema = z.string().regex(
  MESSAGE_ID,
  "must be a message ID as put returned it (a positive whole number)",
);

const payload = z.unknown().refine((v) => v !== undefined, "required: give any JSON value");

/** An idempotency key of a put. */
const key = z.string().regex(PUT_KEY, "must be 1-128 letters, digits, '.', '_', ':' or '-'")
  .optional();

/** Body of `POST /queue/:name/messages`. */
export const putBodySchema = z.strictObject({ payload, key });

/** The IDs of a batch of acknowledgements. */
const ackIds = z.array(messageIdSchema).min(1, "must name at least one message").max(
  QUEUE_LIMITS.maxBatch,
);

/** Body of `POST /queue/:name/acks`. */
export const acksBodySchema = z.strictObject({ ids: ackIds });

/** A whole number from a query string, `fallback` when absent. */
function queryInt(min: number, max: number, fallback: number) {
  return z.string().regex(/^\d{1,9}$/, "must be a whole number").optional()
    .transform((v) => v === undefined ? fallback : Number(v))
    .pipe(z.int().min(min).max(max));
}

/** Query of `GET /queue/:name/messages`. */
export const getQuerySchema = z.strictObject({
  max: queryInt(1, QUEUE_LIMITS.maxBatch, 1),
  wait: queryInt(0, QUEUE_LIMITS.maxWaitMs, 0),
  visibility: queryInt(0, QUEUE_LIMITS.maxVisibilityMs, QUEUE_LIMITS.defaultVisibilityMs),
});

const ref = z.union([z.string().max(64), z.int()]).optional();

/** A frame a WebSocket client sends. */
export const clientFrameSchema = z.discriminatedUnion("op", [
  z.strictObject({ op: z.literal("put"), payload, key, ref }),
  z.strictObject({
    op: z.literal("get"),
    max: z.int().min(1).max(QUEUE_LIMITS.maxBatch).default(1),
    visibility: z.int().min(0).max(QUEUE_LIMITS.maxVisibilityMs).default(
      QUEUE_LIMITS.defaultVisibilityMs,
    ),
    /** Without it the get waits until a message is ready. */
    wait: z.int().min(0).max(QUEUE_LIMITS.maxWaitMs).optional(),
    ref,
  }),
  z.strictObject({ op: z.literal("ack"), id: messageIdSchema, ref }),
  z.strictObject({ op: z.literal("acks"), ids: ackIds, ref }),
  z.strictObject({ op: z.literal("nack"), id: messageIdSchema, ref }),
  z.strictObject({
    op: z.literal("report"),
    task: z.lazy(() => taskIdSchema),
    report: z.lazy(() => taskReportSchema),
    ack: messageIdSchema.optional(),
    ref,
  }),
]);

/** A parsed client frame, not a batch. */
export type ClientFrame = z.output<typeof clientFrameSchema>;

/**
 * A `batch` frame: 1-100 frames, each checked on its own by
 * {@linkcode clientFrameSchema} (so one invalid frame is answered alone),
 * and a `ref` as any client frame may carry.
 */
export const batchFrameSchema = z.strictObject({
  op: z.literal("batch"),
  frames: z.array(z.unknown()).min(1, "must hold at least one frame").max(QUEUE_LIMITS.maxBatch),
  ref,
});

/**
 * "Invalid field "x": why" for the first issue of a failed parse of `input`
 * (given, a missing field reads "required: give ...": see `issue_text.ts`).
 */
export function _invalidField(error: z.ZodError, kind: string, input?: unknown): string {
  const issue = error.issues[0];
  if (!issue) return `Invalid ${kind}`;
  const field = issue.code === "unrecognized_keys"
    ? issue.keys[0] ?? "(unknown)"
    : issue.path.map(String).join(".") || "(whole)";
  const why = issue.code === "unrecognized_keys" ? "is not a known field" : issueText(issue, input);
  return `Invalid ${kind} "${field}": ${why}`;
}

/** A task ID in a path. */
export const taskIdSchema = z.string().regex(TASK_ID, "must be 1-64 letters, digits, '_' or '-'");

/** Query of `GET /queue/:name/tasks`. */
export const taskListQuerySchema = z.strictObject({
  state: z.enum(HISTORY_STATES).optional(),
  limit: queryInt(1, TASK_HISTORY_LIMITS.maxListLimit, TASK_HISTORY_LIMITS.defaultListLimit),
});

/** Body of `POST /queue/:name/tasks/:id/state`: an agent's report. */
export const taskReportSchema = z.strictObject({
  state: z.enum(["QUEUED", "RUNNING", "DONE", "FAILED", "CANCELED"]),
  agent: z.string().min(1).max(128),
  host: z.string().min(1).max(255).optional(),
  at: z.int().min(0),
  exitCode: z.int().min(-1).max(255).optional(),
  reason: z.string().max(4096).optional(),
  output: z.string().min(1).max(4096).optional(),
  startedAt: z.int().min(0).optional(),
});

/** Query of `GET /agent/tasks/:id/logs`. */
export const taskLogQuerySchema = z.strictObject({
  stream: z.enum(["stdout", "stderr"]).default("stdout"),
  offset: z.string().regex(/^\d{1,15}$/, "must be a whole number").optional()
    .transform((v) => v === undefined ? 0 : Number(v)),
  max: queryInt(1, TASK_HISTORY_LIMITS.maxLogBytes, TASK_HISTORY_LIMITS.defaultLogBytes),
});
