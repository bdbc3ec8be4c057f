/**
 * The queue's wire format: what `/v1/queue/...` takes and answers, and its
 * limits. Shared by the server and {@linkcode QueueClient}, so a client does
 * not load the store (docs/services.md "## queue").
 * @module
 */

/** A queue name: 1-64 characters of letters, digits, '.', '_' and '-', starting alphanumeric. */
export const QUEUE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/;

/** An idempotency key of a put: 1-128 letters, digits, '.', '_', ':' and '-'. */
export const PUT_KEY = /^[A-Za-z0-9._:-]{1,128}$/;

/** A message ID as the queue hands it out: a positive decimal integer below 2^53. */
export const MESSAGE_ID = /^[1-9][0-9]{0,14}$/;

/** Limits of the queue API. */
export const QUEUE_LIMITS = {
  /** Unacknowledged messages one queue holds unless the `capacity` option says otherwise. */
  defaultCapacity: 10_000,
  /** Messages one get may take, and one batch of acknowledgements may name. */
  maxBatch: 100,
  /** Longest long-poll of an HTTP get, ms. */
  maxWaitMs: 30_000,
  /** Visibility timeout of a get that names none, ms. */
  defaultVisibilityMs: 30_000,
  /** Longest visibility timeout, ms (12 hours). */
  maxVisibilityMs: 43_200_000,
  /** Consumers that may wait at once on one queue service unless `maxWaiters` says otherwise. */
  defaultMaxWaiters: 1_000,
} as const;

/** A message handed out by a get. */
export interface QueueMessage {
  /** The message's ID; acknowledge it with this. */
  id: string;
  /** The JSON value that was put. */
  payload: unknown;
  /** How often it has been handed out, this time included (1 on first delivery). */
  deliveries: number;
}

/** How full one queue is. */
export interface QueueStats {
  name: string;
  /** Messages a get would hand out now. */
  ready: number;
  /** Messages handed out and neither acknowledged nor visible again yet. */
  inflight: number;
  /** Unacknowledged messages the queue holds at most. */
  capacity: number;
}

/** What a batch of acknowledgements answers (`POST .../acks`, the `acks` frame). */
export interface AckManyResult {
  /** The IDs acknowledged now, in the order given. */
  acked: string[];
  /** The IDs the queue does not hold (unknown or already acknowledged). */
  unknown: string[];
}

/**
 * What a queue socket opened with `?batch=1` can do besides the frames of
 * every socket, as its `hello` frame lists them: `batch` frames, and `report`
 * frames that carry the `ack` of the task's message.
 */
export const QUEUE_SOCKET_FEATURES = ["batch", "report-ack"] as const;

/** One frame of {@linkcode QueueClientFrame}, not a batch. */
export type QueueSingleFrame =
  | { op: "put"; payload: unknown; key?: string; ref?: string | number }
  | { op: "get"; max?: number; visibility?: number; wait?: number; ref?: string | number }
  | { op: "ack"; id: string; ref?: string | number }
  | { op: "acks"; ids: string[]; ref?: string | number }
  | { op: "nack"; id: string; ref?: string | number }
  /**
   * An agent's report of a task's state, to the task history (as `POST
   * .../tasks/ID/state`); with `ack` (feature `report-ack`) the message is
   * acknowledged in the report's transaction once the report is applied.
   */
  | { op: "report"; task: string; report: TaskReport; ack?: string; ref?: string | number };

/**
 * A frame a WebSocket client sends; `ref` is echoed in the answer. A `batch`
 * (feature `batch`) is 1-100 frames handled in order in one transaction; with
 * a `ref`, it is always answered by one `batch` frame that carries it.
 */
export type QueueClientFrame =
  | QueueSingleFrame
  | { op: "batch"; frames: QueueSingleFrame[]; ref?: string | number };

/** A frame the server sends on a queue WebSocket. */
export type QueueServerFrame =
  | { op: "put-ok"; id: string; duplicate?: true; ref?: string | number }
  | { op: "messages"; messages: QueueMessage[]; ref?: string | number }
  | { op: "ack-ok"; id: string; ref?: string | number }
  | { op: "acks-ok"; acked: string[]; unknown: string[]; ref?: string | number }
  | { op: "nack-ok"; id: string; ref?: string | number }
  | {
    op: "report-ok";
    task: string;
    state: string;
    /** With the report's `ack`: whether the message was acknowledged now (false: not held). */
    acked?: boolean;
    ref?: string | number;
  }
  /** The first frame of a socket opened with `?batch=1`. */
  | { op: "hello"; features: string[] }
  /** The answers to one `batch` frame that were ready at once, in order; its `ref` if it had one. */
  | { op: "batch"; frames: QueueServerFrame[]; ref?: string | number }
  | {
    op: "error";
    message: string;
    /** The put was refused because the queue is full. */
    full?: boolean;
    /** The ack or nack named a message the queue does not hold. */
    unknown?: boolean;
    /** The put's idempotency key was used for a different payload. */
    conflict?: boolean;
    ref?: string | number;
  };

/** A task ID: 1-64 letters, digits, '_' and '-', so that `tasks.<id>` is a topic and a file name. */
export const TASK_ID = /^[a-zA-Z0-9_-]{1,64}$/;

/**
 * States of a task in the queue's history: the agent's five, and `ENDED` for
 * a task whose message was acknowledged before its final report arrived.
 */
export const HISTORY_STATES = ["QUEUED", "RUNNING", "DONE", "FAILED", "CANCELED", "ENDED"] as const;

/** A state of a task in the history. */
export type HistoryState = typeof HISTORY_STATES[number];

/** History states after which a task is finished (and may be pruned). */
export const FINISHED_STATES: readonly HistoryState[] = ["DONE", "FAILED", "CANCELED", "ENDED"];

/** Limits of the task history and of the agents' task directories. */
export const TASK_HISTORY_LIMITS = {
  /** Days a finished task is kept unless the `historyDays` option says otherwise. */
  defaultHistoryDays: 7,
  /** Finished tasks kept per queue service unless the `historyMax` option says otherwise. */
  defaultHistoryMax: 10_000,
  /** Rows `GET .../tasks` answers unless `limit` says otherwise, and at most. */
  defaultListLimit: 50,
  maxListLimit: 1000,
  /** State changes kept per task (a task delivered over and over keeps its first ones). */
  maxEventsPerTask: 32,
  /** Bytes of output `GET /agent/tasks/ID/logs` answers unless `max` says otherwise, and at most. */
  defaultLogBytes: 65_536,
  maxLogBytes: 262_144,
} as const;

/** One row of the task history (`GET /queue/NAME/tasks[/ID]`). */
export interface TaskRecord {
  id: string;
  /** The queue name it was put on. */
  queue: string;
  /** The queue message that carries it. */
  messageId: string;
  state: HistoryState;
  /** Milliseconds since the epoch: put, first taken, started, ended; null when not yet. */
  submittedAt: number;
  takenAt: number | null;
  startedAt: number | null;
  endedAt: number | null;
  /** How often the queue handed it out. */
  deliveries: number;
  /** The agent that last reported on it, and its host. */
  agent: string | null;
  host: string | null;
  exitCode: number | null;
  reason: string | null;
  /** The task's directory on the agent's host (`stdout`, `stderr` in it). */
  output: string | null;
}

/** One state change of a task, as `GET /queue/NAME/tasks/ID` lists them (oldest first). */
export interface TaskHistoryEvent {
  state: HistoryState;
  at: number;
  agent: string | null;
  /** What happened: "submitted", "removed from the queue", an exit code, a reason. */
  note: string | null;
}

/** What an agent reports about a task (`POST /queue/NAME/tasks/ID/state`). */
export interface TaskReport {
  state: "QUEUED" | "RUNNING" | "DONE" | "FAILED" | "CANCELED";
  agent: string;
  host?: string;
  /** When it happened on the agent, ms since the epoch. */
  at: number;
  exitCode?: number;
  reason?: string;
  /** The task's directory on the agent's host. */
  output?: string;
  /**
   * When the task started, ms since the epoch: with a final state only, sent
   * by an agent instead of a RUNNING report of its own for a task that ended
   * quickly; the history records RUNNING at that time, then the final state.
   */
  startedAt?: number;
}

/** What `GET /agent/tasks/ID/logs` answers: a piece of one output file. */
export interface TaskLogChunk {
  id: string;
  stream: "stdout" | "stderr";
  /** Byte offset of `data` in the file, and of the next piece. */
  offset: number;
  next: number;
  /** The file's size now. */
  size: number;
  /** Whole UTF-8 characters from `offset` to `next` (bytes that are not UTF-8 read as U+FFFD). */
  data: string;
  /** Whether the task still runs (or waits) on the agent: more may come. */
  running: boolean;
  /** Whether the task's output reached the agent's cap and later bytes were dropped. */
  truncated: boolean;
}
