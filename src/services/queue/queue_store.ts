/**
 * The queue's messages on one SQLite file (`node:sqlite`, WAL journal,
 * `synchronous=FULL`): a put that returned survives a crash of the process.
 * Acknowledged messages are deleted; a message is ready when its
 * `invisible_until` has passed and in flight until then, so the redelivery of
 * an unacknowledged message needs no sweeper.
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { StateLostError } from "../../runtime/role.ts";
import { MESSAGE_ID, QUEUE_LIMITS, type QueueMessage } from "./queue_wire.ts";

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
   * The file must already exist: set for a restarted service (incarnation > 1),
   * whose messages cannot be made up again. Default false.
   */
  mustExist?: boolean;
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
  #db: DatabaseSync;
  #now: () => number;
  #closed = false;
  /** Unacknowledged messages one queue holds at most. */
  readonly capacity: number;
  #count: StatementSync;
  #insert: StatementSync;
  #take: StatementSync;
  #delete: StatementSync;
  #release: StatementSync;
  #ready: StatementSync;
  #nextVisible: StatementSync;

  private constructor(db: DatabaseSync, capacity: number, now: () => number) {
    this.#db = db;
    this.capacity = capacity;
    this.#now = now;
    this.#count = db.prepare("SELECT count(*) AS n FROM messages WHERE queue = ?");
    this.#insert = db.prepare(
      "INSERT INTO messages (queue, payload, enqueued_at) VALUES (?, ?, ?)",
    );
    // One statement, so handing out is atomic; RETURNING gives no order, the
    // caller sorts by ID.
    this.#take = db.prepare(
      `UPDATE messages SET deliveries = deliveries + 1, invisible_until = :until
       WHERE id IN (SELECT id FROM messages WHERE queue = :queue AND invisible_until <= :now
                    ORDER BY id LIMIT :max)
       RETURNING id, payload, deliveries`,
    );
    this.#delete = db.prepare("DELETE FROM messages WHERE id = ? AND queue = ?");
    this.#release = db.prepare(
      "UPDATE messages SET invisible_until = 0 WHERE id = ? AND queue = ?",
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
   * @throws {StateLostError} when `mustExist` is set and the file is missing.
   * @throws {RangeError} when `capacity` is not a positive integer.
   * @throws {Error} when the file cannot be opened or is not a queue store.
   */
  static open(path: string, options: QueueStoreOptions = {}): QueueStore {
    const capacity = options.capacity ?? QUEUE_LIMITS.defaultCapacity;
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`Invalid queue capacity ${capacity}: give a whole number, 1 or more`);
    }
    if (options.mustExist && !fileExists(path)) {
      // Starting empty would silently drop every acknowledged put (docs/services.md).
      throw new StateLostError(
        `Queue store "${path}" is gone: the queued messages cannot be picked up`,
      );
    }
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
    return new QueueStore(db, capacity, options.now ?? Date.now);
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
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const { n } = this.#count.get(queue) as { n: number };
      if (n >= this.capacity) throw new QueueFullError(queue, this.capacity);
      const result = this.#insert.run(queue, text, this.#now());
      this.#db.exec("COMMIT");
      return String(result.lastInsertRowid);
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  /**
   * Hands out up to `max` ready messages of `queue`, oldest ID first, and
   * makes them invisible for `visibilityMs`; unless acknowledged they are
   * ready again after that.
   */
  get(queue: string, max: number, visibilityMs: number): QueueMessage[] {
    this.#open();
    const now = this.#now();
    const rows = this.#take.all({
      queue,
      now,
      max,
      until: now + visibilityMs,
    }) as unknown as MessageRow[];
    rows.sort((a, b) => a.id - b.id);
    return rows.map((r) => ({
      id: String(r.id),
      payload: JSON.parse(r.payload),
      deliveries: r.deliveries,
    }));
  }

  /** Deletes message `id` of `queue`; false when there is no such message (already acked). */
  ack(queue: string, id: string): boolean {
    this.#open();
    if (!MESSAGE_ID.test(id)) return false;
    return Number(this.#delete.run(Number(id), queue).changes) > 0;
  }

  /**
   * Deletes the messages `ids` of `queue` in one transaction (one fsync for
   * the lot); an ID the queue does not hold is left out of the answer.
   * @returns The IDs that were deleted, in the order given.
   */
  ackMany(queue: string, ids: readonly string[]): string[] {
    this.#open();
    const acked: string[] = [];
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      for (const id of ids) {
        if (MESSAGE_ID.test(id) && Number(this.#delete.run(Number(id), queue).changes) > 0) {
          acked.push(id);
        }
      }
      this.#db.exec("COMMIT");
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
    return acked;
  }

  /** Makes message `id` of `queue` ready again now; false when there is no such message. */
  nack(queue: string, id: string): boolean {
    this.#open();
    if (!MESSAGE_ID.test(id)) return false;
    return Number(this.#release.run(Number(id), queue).changes) > 0;
  }

  /** Ready and in-flight messages of `queue` (0 and 0 for a queue never used). */
  counts(queue: string): QueueCounts {
    this.#open();
    const { n: total } = this.#count.get(queue) as { n: number };
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

  #open(): void {
    if (this.#closed) throw new Error("The queue store is closed: the queue service is stopping");
  }
}

function fileExists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}
