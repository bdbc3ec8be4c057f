/**
 * The queue's task history, in the queue's own SQLite file: one row per task
 * put on any queue of the service (a payload with a task `id` and
 * `executable`), updated from what the queue sees (put, take, ack, nack,
 * cancel) and from the agents' reports, with its state changes. The queue
 * calls it inside its own transactions, so a put and its history row are
 * written together (one fsync). Finished tasks are kept for `days` and at
 * most `max` of them (docs/services.md "### Task history").
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import {
  FINISHED_STATES,
  type HistoryState,
  TASK_HISTORY_LIMITS,
  TASK_ID,
  type TaskHistoryEvent,
  type TaskRecord,
  type TaskReport,
} from "../../types/queue_wire.ts";
import { SqliteTransactions } from "./_sqlite_tx.ts";

/** Options of {@linkcode TaskHistory}. */
export interface TaskHistoryOptions {
  /** Days a finished task is kept. Default 7. */
  days?: number;
  /** Finished tasks kept at most, over all queues. Default 10,000. */
  max?: number;
  /** The clock, ms since the epoch. Default `Date.now`. */
  now?: () => number;
}

/** What {@linkcode QueueStore.cancelTask} did with a task. */
export type CancelOutcome =
  /** It was waiting on the queue: its message is deleted, it is CANCELED. */
  | { outcome: "canceled"; task: TaskRecord }
  /** An agent holds its message (it runs or waits for cores there): ask that agent. */
  | { outcome: "taken"; task: TaskRecord }
  /** It has finished already. */
  | { outcome: "finished"; task: TaskRecord }
  /** The history has no such task (never submitted, or pruned). */
  | { outcome: "unknown" };

/** Options of {@linkcode TaskHistory.list}. */
export interface TaskListOptions {
  /** Only tasks in this state. Default: all. */
  state?: HistoryState;
  /** Rows at most. Default 50. */
  limit?: number;
}

/** The schema of the history; `IF NOT EXISTS`, so an older queue file gains it. */
const HISTORY_SCHEMA = `
CREATE TABLE IF NOT EXISTS tasks (
  queue TEXT NOT NULL,
  id TEXT NOT NULL,
  message_id INTEGER NOT NULL,
  state TEXT NOT NULL,
  submitted_at INTEGER NOT NULL,
  taken_at INTEGER,
  started_at INTEGER,
  ended_at INTEGER,
  deliveries INTEGER NOT NULL DEFAULT 0,
  agent TEXT,
  host TEXT,
  exit_code INTEGER,
  reason TEXT,
  output TEXT,
  PRIMARY KEY (queue, id)
) STRICT;
CREATE INDEX IF NOT EXISTS tasks_message ON tasks (message_id);
CREATE INDEX IF NOT EXISTS tasks_ended ON tasks (ended_at);
CREATE INDEX IF NOT EXISTS tasks_submitted ON tasks (queue, submitted_at);
CREATE TABLE IF NOT EXISTS task_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  id TEXT NOT NULL,
  state TEXT NOT NULL,
  at INTEGER NOT NULL,
  agent TEXT,
  note TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS task_events_task ON task_events (queue, id, seq);
`;

/** Finishes between two prunes by count. */
const PRUNE_EVERY = 100;

const DAY_MS = 24 * 60 * 60 * 1000;

const FINISHED_SQL = FINISHED_STATES.map((s) => `'${s}'`).join(", ");

interface TaskRow {
  queue: string;
  id: string;
  message_id: number;
  state: string;
  submitted_at: number;
  taken_at: number | null;
  started_at: number | null;
  ended_at: number | null;
  deliveries: number;
  agent: string | null;
  host: string | null;
  exit_code: number | null;
  reason: string | null;
  output: string | null;
}

/** The task table of one queue service. */
export class TaskHistory {
  #db: DatabaseSync;
  #now: () => number;
  #days: number;
  #max: number;
  #finishes = 0;
  #tx: SqliteTransactions;
  #byKey: StatementSync;
  #byMessage: StatementSync;
  #update: StatementSync;
  #insertEvent: StatementSync;
  #countEvents: StatementSync;

  /**
   * The history in `db` (its tables are created when missing).
   * @throws {RangeError} when `days` or `max` is not a whole number of 0 or more.
   */
  constructor(db: DatabaseSync, options: TaskHistoryOptions = {}) {
    this.#days = options.days ?? TASK_HISTORY_LIMITS.defaultHistoryDays;
    this.#max = options.max ?? TASK_HISTORY_LIMITS.defaultHistoryMax;
    for (const [name, value] of [["days", this.#days], ["max", this.#max]] as const) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new RangeError(`Invalid history ${name} ${value}: give a whole number, 0 or more`);
      }
    }
    this.#db = db;
    this.#now = options.now ?? Date.now;
    db.exec(HISTORY_SCHEMA);
    this.#tx = new SqliteTransactions(db);
    this.#byKey = db.prepare("SELECT * FROM tasks WHERE queue = ? AND id = ?");
    this.#byMessage = db.prepare( // Else SQLite reads every task of the queue (tasks_submitted).
      "SELECT * FROM tasks INDEXED BY tasks_message WHERE message_id = ? AND queue = ?",
    );
    this.#update = db.prepare(
      `UPDATE tasks SET state = :state, taken_at = :taken_at, started_at = :started_at,
         ended_at = :ended_at, deliveries = :deliveries, agent = :agent, host = :host,
         exit_code = :exit_code, reason = :reason, output = :output
       WHERE queue = :queue AND id = :id`,
    );
    this.#insertEvent = db.prepare(
      "INSERT INTO task_events (queue, id, state, at, agent, note) VALUES (?, ?, ?, ?, ?, ?)",
    );
    this.#countEvents = db.prepare(
      "SELECT count(*) AS n FROM task_events WHERE queue = ? AND id = ?",
    );
  }

  /**
   * Records a put of message `messageId` on `queue` when `payload` is a task;
   * a task ID put again starts its history afresh.
   */
  submitted(queue: string, messageId: number, payload: unknown): void {
    const id = taskIdOf(payload);
    if (id === null) return;
    const now = this.#now();
    this.#db.prepare("DELETE FROM task_events WHERE queue = ? AND id = ?").run(queue, id);
    this.#db.prepare(
      `INSERT OR REPLACE INTO tasks (queue, id, message_id, state, submitted_at)
       VALUES (?, ?, ?, 'QUEUED', ?)`,
    ).run(queue, id, messageId, now);
    this.#event(queue, id, "QUEUED", now, null, "submitted");
  }

  /** Records that the messages were handed out (their delivery counts). */
  taken(queue: string, messages: readonly { id: number; deliveries: number }[]): void {
    const now = this.#now();
    for (const m of messages) {
      const row = this.#byMessage.get(m.id, queue) as TaskRow | undefined;
      if (!row) continue;
      this.#write({ ...row, taken_at: row.taken_at ?? now, deliveries: m.deliveries });
    }
  }

  /**
   * Records the acknowledgement of message `messageId`: a task that is not
   * finished yet ends as `ENDED` (its final report did not arrive first).
   */
  acked(queue: string, messageId: number): void {
    const row = this.#byMessage.get(messageId, queue) as TaskRow | undefined;
    if (!row || isFinished(row.state)) return;
    const now = this.#now();
    this.#write({ ...row, state: "ENDED", ended_at: now });
    this.#event(queue, row.id, "ENDED", now, row.agent, "acknowledged before the final report");
    this.#finished();
  }

  /** Records that message `messageId` was given back (nack): its task is QUEUED again. */
  released(queue: string, messageId: number): void {
    const row = this.#byMessage.get(messageId, queue) as TaskRow | undefined;
    if (!row || isFinished(row.state) || row.state === "QUEUED") return;
    const now = this.#now();
    this.#write({ ...row, state: "QUEUED" });
    this.#event(queue, row.id, "QUEUED", now, row.agent, "given back to the queue");
  }

  /** Records that task `id` was removed from the queue before any agent took it. */
  canceled(queue: string, id: string): void {
    const row = this.#byKey.get(queue, id) as TaskRow | undefined;
    if (!row) return;
    const now = this.#now();
    this.#write({ ...row, state: "CANCELED", ended_at: now, reason: "Canceled while queued" });
    this.#event(queue, id, "CANCELED", now, null, "removed from the queue");
    this.#finished();
  }

  /**
   * Applies an agent's report on task `id`. Times are always filled in; the
   * state moves unless the task is finished already (the first final state
   * wins, as the first ack does; only `ENDED` gives way to a real one).
   * Outside a transaction it is one that is not synced by itself
   * (`synchronous=NORMAL`): it survives a crash of the process at once and
   * one of the host with the next synced transaction, such as the ack after
   * a final report (docs/failures.md "Work across failures"). Inside one it
   * is a savepoint of it.
   * @returns The task as it is now, or null when the history has no such task.
   */
  report(queue: string, id: string, report: TaskReport): TaskRecord | null {
    return this.#tx.run(() => this.#report(queue, id, report), { durable: false });
  }

  #report(queue: string, id: string, report: TaskReport): TaskRecord | null {
    const row = this.#byKey.get(queue, id) as TaskRow | undefined;
    if (!row) return null;
    const at = Math.min(report.at, this.#now());
    const final = FINISHED_STATES.includes(report.state);
    // A final report may stand for the RUNNING report of a short task too.
    const started = final && report.startedAt !== undefined ? Math.min(report.startedAt, at) : null;
    const startedAt = report.state === "RUNNING" ? at : started;
    const locked = isFinished(row.state) && !(row.state === "ENDED" && final);
    // A late report of a finished task only fills in a time it lacks.
    const next: TaskRow = {
      ...row,
      started_at: startedAt !== null && !(locked && row.started_at) ? startedAt : row.started_at,
      ended_at: final && !(locked && row.ended_at) ? at : row.ended_at,
    };
    if (!locked) {
      next.state = report.state;
      next.agent = report.agent;
      next.host = report.host ?? row.host;
      next.output = report.output ?? row.output;
      next.exit_code = report.exitCode ?? null;
      next.reason = report.reason ?? null;
    }
    this.#write(next);
    if (!locked) {
      if (final && startedAt !== null) {
        this.#event(queue, id, "RUNNING", startedAt, report.agent, null);
      }
      const code = report.exitCode === undefined ? null : `exit ${report.exitCode}`;
      const note = [code, report.reason].filter((s) => s).join(": ") || null;
      this.#event(queue, id, report.state, at, report.agent, note);
      if (final && !isFinished(row.state)) this.#finished();
    }
    return toRecord(next);
  }

  /** Task `id` of `queue` with its state changes, oldest first; null when unknown. */
  get(queue: string, id: string): { task: TaskRecord; events: TaskHistoryEvent[] } | null {
    const row = this.#byKey.get(queue, id) as TaskRow | undefined;
    if (!row) return null;
    const events = this.#db.prepare(
      "SELECT state, at, agent, note FROM task_events WHERE queue = ? AND id = ? ORDER BY seq",
    ).all(queue, id) as unknown as TaskHistoryEvent[];
    return { task: toRecord(row), events };
  }

  /** The task row that message `messageId` carries, if any. */
  byMessage(queue: string, messageId: number): TaskRecord | null {
    const row = this.#byMessage.get(messageId, queue) as TaskRow | undefined;
    return row ? toRecord(row) : null;
  }

  /** The task `id` of `queue`, if known. */
  find(queue: string, id: string): TaskRecord | null {
    const row = this.#byKey.get(queue, id) as TaskRow | undefined;
    return row ? toRecord(row) : null;
  }

  /** Tasks of `queue`, most recently submitted first. */
  list(queue: string, options: TaskListOptions = {}): TaskRecord[] {
    const limit = options.limit ?? TASK_HISTORY_LIMITS.defaultListLimit;
    const rows = options.state
      ? this.#db.prepare(
        "SELECT * FROM tasks WHERE queue = ? AND state = ? ORDER BY submitted_at DESC, rowid DESC LIMIT ?",
      ).all(queue, options.state, limit)
      : this.#db.prepare(
        "SELECT * FROM tasks WHERE queue = ? ORDER BY submitted_at DESC, rowid DESC LIMIT ?",
      ).all(queue, limit);
    return (rows as unknown as TaskRow[]).map(toRecord);
  }

  /**
   * Deletes finished tasks that ended more than `days` ago and, beyond the
   * newest `max` finished ones, the oldest; unfinished tasks are kept.
   * @returns How many tasks were deleted.
   */
  prune(): number {
    const cutoff = this.#now() - this.#days * DAY_MS;
    const old = this.#db.prepare(
      `DELETE FROM tasks WHERE state IN (${FINISHED_SQL}) AND ended_at < ? RETURNING queue, id`,
    ).all(cutoff) as unknown as { queue: string; id: string }[];
    const many = this.#db.prepare(
      `DELETE FROM tasks WHERE rowid IN (SELECT rowid FROM tasks WHERE state IN (${FINISHED_SQL})
         ORDER BY ended_at DESC, rowid DESC LIMIT -1 OFFSET ?) RETURNING queue, id`,
    ).all(this.#max) as unknown as { queue: string; id: string }[];
    const dropEvents = this.#db.prepare("DELETE FROM task_events WHERE queue = ? AND id = ?");
    for (const task of [...old, ...many]) dropEvents.run(task.queue, task.id);
    return old.length + many.length;
  }

  /** Counts a finish; every {@linkcode PRUNE_EVERY} finishes prunes by count and age. */
  #finished(): void {
    if (++this.#finishes % PRUNE_EVERY === 0) this.prune();
  }

  #write(row: TaskRow): void {
    this.#update.run({
      state: row.state,
      taken_at: row.taken_at,
      started_at: row.started_at,
      ended_at: row.ended_at,
      deliveries: row.deliveries,
      agent: row.agent,
      host: row.host,
      exit_code: row.exit_code,
      reason: row.reason,
      output: row.output,
      queue: row.queue,
      id: row.id,
    });
  }

  /** Adds a state change; a task with too many keeps its first and its newest. */
  #event(
    queue: string,
    id: string,
    state: HistoryState,
    at: number,
    agent: string | null,
    note: string | null,
  ): void {
    const { n } = this.#countEvents.get(queue, id) as { n: number };
    if (n >= TASK_HISTORY_LIMITS.maxEventsPerTask) {
      this.#db.prepare(
        `DELETE FROM task_events WHERE seq = (SELECT seq FROM task_events WHERE queue = ? AND id = ?
           ORDER BY seq LIMIT 1 OFFSET 1)`,
      ).run(queue, id);
    }
    this.#insertEvent.run(queue, id, state, at, agent, note);
  }
}

/** The task ID of a payload that is a task (`{ id, executable, ... }`), else null. */
export function taskIdOf(payload: unknown): string | null {
  if (typeof payload !== "object" || payload === null) return null;
  const { id, executable } = payload as { id?: unknown; executable?: unknown };
  return typeof id === "string" && TASK_ID.test(id) && typeof executable === "string" ? id : null;
}

function isFinished(state: string): boolean {
  return (FINISHED_STATES as readonly string[]).includes(state);
}

function toRecord(row: TaskRow): TaskRecord {
  return {
    id: row.id,
    queue: row.queue,
    messageId: String(row.message_id),
    state: row.state as HistoryState,
    submittedAt: row.submitted_at,
    takenAt: row.taken_at,
    startedAt: row.started_at,
    endedAt: row.ended_at,
    deliveries: row.deliveries,
    agent: row.agent,
    host: row.host,
    exitCode: row.exit_code,
    reason: row.reason,
    output: row.output,
  };
}
