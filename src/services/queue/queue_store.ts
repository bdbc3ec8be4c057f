/**
 * The queue's messages on one SQLite file (`node:sqlite`, WAL journal,
 * `synchronous=FULL`): a put that returned survives a crash of the process.
 * Acknowledged messages are deleted; a message is ready when its
 * `invisible_until` has passed and in flight until then, so the redelivery of
 * an unacknowledged message needs no sweeper. The task history
 * (`task_history.ts`) lives in the same file and is written in the same
 * transactions.
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { checkOldStore } from "./_old_store.ts";
import {
  MESSAGE_ID,
  QUEUE_LIMITS,
  type QueueMessage,
  type TaskRecord,
  type TaskReport,
} from "../../types/queue_wire.ts";
import { type CancelOutcome, TaskHistory, type TaskHistoryOptions } from "./task_history.ts";
import { type KeyedPut, PutKeys } from "./put_keys.ts";
import { type RunOptions, SqliteTransactions } from "./_sqlite_tx.ts";
import { QueueTotals } from "./_queue_totals.ts";
import { type AnswerBudget, fitAnswer, MAX_ANSWER_CHARS } from "./answer_budget.ts";

export { KeyConflictError, type KeyedPut, PUT_KEY_RETENTION_MS } from "./put_keys.ts";

/** A put refused because the queue holds `capacity` unacknowledged messages. */
export class QueueFullError extends Error {
  /** The queue's name. */
  readonly queue: string;
  /** Its capacity. */
  readonly capacity: number;
  /** Builds the error. */
  constructor(queue: string, capacity: number) {
    super(`Queue "${queue}" is full (${capacity} messages): retry later or raise capacity`);
    this.name = "QueueFullError";
    this.queue = queue;
    this.capacity = capacity;
  }
}

/** Options of {@linkcode QueueStore.open}. */
export interface QueueStoreOptions {
  /** Unacknowledged messages one queue holds at most. Default 10,000. */
  capacity?: number;
  /** The clock, ms since the epoch. Default `Date.now`. */
  now?: () => number;
  /**
   * The file must already be a queue store (not empty, with its `messages`
   * table), checked before anything is created in it: set for a restarted
   * service (incarnation > 1), whose messages cannot be made up again. Default false.
   */
  mustExist?: boolean;
  /** Retention of the task history (`days`, `max`). Default: its defaults. */
  history?: Pick<TaskHistoryOptions, "days" | "max">;
}

/** Ready and in-flight counts of one queue. */
export interface QueueCounts {
  ready: number;
  inflight: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  payload TEXT NOT NULL,
  enqueued_at INTEGER NOT NULL,
  deliveries INTEGER NOT NULL DEFAULT 0,
  invisible_until INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX IF NOT EXISTS messages_fifo ON messages (queue, id);
CREATE INDEX IF NOT EXISTS messages_visibility ON messages (queue, invisible_until);
`;

interface MessageRow {
  id: number;
  payload: string;
  deliveries: number;
}

/** Durable messages of every queue of one queue service. */
export class QueueStore {
  /** Messages handed out, redelivered (handed out again) and acknowledged since the store opened. */
  readonly tally = { taken: 0, redelivered: 0, acked: 0 };
  #db: DatabaseSync;
  #now: () => number;
  #closed = false;
  /** Unacknowledged messages one queue holds at most. */
  readonly capacity: number;
  /** The task history, in the same file. */
  readonly history: TaskHistory;
  #insert: StatementSync;
  #take: StatementSync;
  #delete: StatementSync;
  #release: StatementSync;
  #untake: StatementSync;
  #ready: StatementSync;
  #nextVisible: StatementSync;
  #keys: PutKeys;
  #tx: SqliteTransactions;
  /**
   * Unacknowledged messages of the queues that hold any, counted once and then
   * kept up to date, so a put does not count the whole queue; forgotten on any rollback.
   */
  #totals: QueueTotals;

  private constructor(db: DatabaseSync, parts: Pick<QueueStore, "capacity" | "history" | "now">) {
    this.#db = db;
    this.history = parts.history;
    this.capacity = parts.capacity;
    this.#now = parts.now;
    this.#keys = new PutKeys(db);
    this.#totals = new QueueTotals(
      db.prepare("SELECT count(*) AS n FROM messages WHERE queue = ?"),
    );
    this.#tx = new SqliteTransactions(db, () => this.#totals.clear());
    this.#insert = db.prepare(
      "INSERT INTO messages (queue, payload, enqueued_at) VALUES (?, ?, ?)",
    );
    // One statement, so handing out is atomic; RETURNING gives no order, the caller sorts
    // by ID. Read in ID order: SQLite would read and sort every ready message otherwise.
    this.#take = db.prepare(
      `UPDATE messages SET deliveries = deliveries + 1, invisible_until = :until
       WHERE id IN (SELECT id FROM messages INDEXED BY messages_fifo
                    WHERE queue = :queue AND invisible_until <= :now ORDER BY id LIMIT :max)
       RETURNING id, payload, deliveries`,
    );
    this.#delete = db.prepare("DELETE FROM messages WHERE id = ? AND queue = ?");
    this.#release = db.prepare(
      "UPDATE messages SET invisible_until = 0 WHERE id = ? AND queue = ?",
    );
    // A ready message taken past an answer's budget, as it was before (ready is ready).
    this.#untake = db.prepare(
      "UPDATE messages SET deliveries = deliveries - 1, invisible_until = 0 WHERE id = ?",
    );
    this.#ready = db.prepare(
      "SELECT count(*) AS n FROM messages WHERE queue = ? AND invisible_until <= ?",
    );
    this.#nextVisible = db.prepare(
      "SELECT min(invisible_until) AS at FROM messages WHERE queue = ? AND invisible_until > ?",
    );
  }

  /**
   * Opens (creating if needed) the store at `path`.
   * @throws {StateLostError} when `mustExist` is set and the file is missing,
   * empty, unreadable or not a queue store (nothing is created or changed).
   * @throws {RangeError} when `capacity` is not a positive integer.
   * @throws {Error} when the file cannot be opened as a queue store (without `mustExist`).
   */
  static open(path: string, options: QueueStoreOptions = {}): QueueStore {
    const capacity = options.capacity ?? QUEUE_LIMITS.defaultCapacity;
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`Invalid queue capacity ${capacity}: give a whole number, 1 or more`);
    }
    // Starting empty would silently drop every acknowledged put (docs/services.md).
    if (options.mustExist) checkOldStore(path);
    const db = new DatabaseSync(path);
    try {
      db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;");
      db.exec(SCHEMA);
    } catch (error) {
      db.close();
      throw new Error(`Cannot open queue store "${path}": ${(error as Error).message}`, {
        cause: error,
      });
    }
    const now = options.now ?? Date.now;
    let history: TaskHistory;
    try {
      history = new TaskHistory(db, { ...options.history, now });
      history.prune();
    } catch (error) {
      db.close();
      throw error;
    }
    return new QueueStore(db, { capacity, now, history });
  }

  /**
   * Stores `payload` (any JSON value) at the end of `queue`.
   * @returns The new message's ID.
   * @throws {QueueFullError} when the queue holds `capacity` unacknowledged messages.
   * @throws {TypeError} when `payload` has no JSON form.
   */
  put(queue: string, payload: unknown): string {
    this.#open();
    const text = JSON.stringify(payload);
    if (text === undefined) throw new TypeError("Payload must be a JSON value");
    return this.#tx.run(() => String(this.#insertMessage(queue, text, payload, this.#now())));
  }

  /**
   * Stores `payload` at the end of `queue` once per idempotency `key`: a put
   * with a key seen in the last {@linkcode PUT_KEY_RETENTION_MS} stores
   * nothing and answers the first put's message ID (even when that message
   * was acknowledged since). Key and message are written in one transaction.
   * @throws {KeyConflictError} when the key was used for another payload.
   * @throws {QueueFullError} when a new message does not fit.
   * @throws {TypeError} when `payload` has no JSON form.
   */
  putOnce(queue: string, payload: unknown, key: string): KeyedPut {
    this.#open();
    const text = JSON.stringify(payload);
    if (text === undefined) throw new TypeError("Payload must be a JSON value");
    const digest = this.#keys.digest(text);
    const now = this.#now();
    return this.#tx.run((): KeyedPut => {
      const known = this.#keys.known(queue, key, digest, now);
      if (known) return known;
      const id = this.#insertMessage(queue, text, payload, now);
      this.#keys.remember(queue, key, id, digest, now);
      return { id: String(id), duplicate: false };
    });
  }

  /** Inserts a message in the open transaction, within capacity, with its history row. */
  #insertMessage(queue: string, text: string, payload: unknown, now: number): number {
    const total = this.#totals.get(queue);
    if (total >= this.capacity) throw new QueueFullError(queue, this.capacity);
    const id = Number(this.#insert.run(queue, text, now).lastInsertRowid);
    this.history.submitted(queue, id, payload);
    this.#totals.set(queue, total + 1);
    return id;
  }

  /**
   * Hands out up to `max` ready messages of `queue`, oldest ID first, and
   * makes them invisible for `visibilityMs`; unless acknowledged they are
   * ready again after that. The answer holds the first message and the next
   * ones while their payloads fit in `budget` (default
   * {@linkcode MAX_ANSWER_CHARS}), which is charged for them.
   */
  get(queue: string, max: number, visibilityMs: number, budget?: AnswerBudget): QueueMessage[] {
    this.#open();
    const now = this.#now();
    const room = budget ?? { chars: MAX_ANSWER_CHARS };
    const rows = this.#tx.run(() => {
      const taken = this.#take.all({ queue, now, max, until: now + visibilityMs }) as unknown[];
      const kept = fitAnswer(taken as MessageRow[], room, (id) => this.#untake.run(id));
      this.history.taken(queue, kept);
      return kept;
    });
    this.tally.taken += rows.length;
    for (const r of rows) if (r.deliveries > 1) this.tally.redelivered++;
    return rows.map((r) => ({
      id: String(r.id),
      payload: JSON.parse(r.payload),
      deliveries: r.deliveries,
    }));
  }

  /** Queues whose count of unacknowledged messages is kept in memory: those that hold messages. */
  get countedQueues(): number {
    return this.#totals.size;
  }

  /** Deletes message `id` of `queue`; false when there is no such message (already acked). */
  ack(queue: string, id: string): boolean {
    return this.ackMany(queue, [id]).length > 0;
  }

  /**
   * Deletes the messages `ids` of `queue` in one transaction (one fsync for
   * the lot); an ID the queue does not hold is left out of the answer.
   * @returns The IDs that were deleted, in the order given.
   */
  ackMany(queue: string, ids: readonly string[]): string[] {
    this.#open();
    const acked: string[] = [];
    this.#tx.run(() => {
      for (const id of ids) {
        if (MESSAGE_ID.test(id) && Number(this.#delete.run(Number(id), queue).changes) > 0) {
          acked.push(id);
          this.history.acked(queue, Number(id));
        }
      }
      this.#totals.remove(queue, acked.length);
    });
    this.tally.acked += acked.length;
    return acked;
  }

  /** Makes message `id` of `queue` ready again now; false when there is no such message. */
  nack(queue: string, id: string): boolean {
    this.#open();
    if (!MESSAGE_ID.test(id)) return false;
    return this.#tx.run(() => {
      const released = Number(this.#release.run(Number(id), queue).changes) > 0;
      if (released) this.history.released(queue, Number(id));
      return released;
    });
  }

  /**
   * Cancels task `taskId` of `queue` if it waits on the queue: its message
   * is deleted and it is CANCELED, atomically, so no agent can take it in
   * between. A task whose message an agent holds is left alone ("taken").
   */
  cancelTask(queue: string, taskId: string): CancelOutcome {
    this.#open();
    return this.#tx.run((): CancelOutcome => {
      const task = this.history.find(queue, taskId);
      if (!task) return { outcome: "unknown" };
      if (task.state !== "QUEUED" && task.state !== "RUNNING") return { outcome: "finished", task };
      const removed = this.#db.prepare(
        "DELETE FROM messages WHERE id = ? AND queue = ? AND invisible_until <= ?",
      ).run(Number(task.messageId), queue, this.#now()).changes;
      if (Number(removed) === 0) return { outcome: "taken", task };
      this.#totals.remove(queue, 1);
      this.history.canceled(queue, taskId);
      return { outcome: "canceled", task: this.history.find(queue, taskId)! };
    });
  }

  /** Ready and in-flight messages of every queue that holds any (metrics, at scrape time). */
  allCounts(): (QueueCounts & { queue: string })[] {
    this.#open();
    const rows = this.#db.prepare(
      "SELECT queue, count(*) AS total, sum(invisible_until <= ?) AS ready FROM messages GROUP BY queue LIMIT 1000",
    ).all(this.#now()) as unknown as { queue: string; total: number; ready: number }[];
    return rows.map((r) => ({ queue: r.queue, ready: r.ready, inflight: r.total - r.ready }));
  }

  /** Ready and in-flight messages of `queue` (0 and 0 for a queue never used). */
  counts(queue: string): QueueCounts {
    this.#open();
    const total = this.#totals.get(queue);
    const { n: ready } = this.#ready.get(queue, this.#now()) as { n: number };
    return { ready, inflight: total - ready };
  }

  /** When the first in-flight message of `queue` becomes ready again, or null if none is in flight. */
  nextVisibleAt(queue: string): number | null {
    this.#open();
    const { at } = this.#nextVisible.get(queue, this.#now()) as { at: number | null };
    return at;
  }

  /** The store's clock, ms. */
  now(): number {
    return this.#now();
  }

  /** Closes the file; calling it again does nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  /**
   * Runs `work`, whose store calls then share one transaction (one commit,
   * synced unless `durable` is false); a call that throws in it is rolled
   * back alone (a savepoint), the others stay.
   * @throws whatever `work` throws, or the commit's error (nothing is kept).
   */
  batch<T>(work: () => T, options: RunOptions = {}): T {
    this.#open();
    return this.#tx.run(work, options);
  }

  /**
   * Applies a final `report` of task `taskId` of `queue`, then acknowledges
   * its message `messageId`, in one transaction: the history has the outcome
   * before the message is gone. Nothing is acknowledged when the history
   * does not hold the task.
   * @returns The task as it is now and whether the message was acknowledged
   * now, or null when the history has no such task.
   */
  finish(
    queue: string,
    taskId: string,
    report: TaskReport,
    messageId: string,
  ): { task: TaskRecord; acked: boolean } | null {
    this.#open();
    return this.#tx.run(() => {
      const task = this.history.report(queue, taskId, report);
      return task && { task, acked: this.ackMany(queue, [messageId]).length > 0 };
    });
  }

  #open(): void {
    if (this.#closed) throw new Error("The queue store is closed: the queue service is stopping");
  }
}
