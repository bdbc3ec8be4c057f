/**
 * Transactions on the queue's SQLite file, shared by the message store and
 * the task history: one immediate transaction (one commit, one fsync at
 * `synchronous=FULL`), or a savepoint inside the transaction that is open
 * already, so that a batch of socket frames is one commit while a frame that
 * fails in it leaves nothing behind.
 * @module
 */
import type { DatabaseSync } from "node:sqlite";

/** Options of {@linkcode SqliteTransactions.run}. */
export interface RunOptions {
  /**
   * Whether the commit is synced by itself. False commits at
   * `synchronous=NORMAL` (to the journal, synced with the next synced
   * commit). Only the outermost transaction decides. Default true.
   */
  durable?: boolean;
}

/** Runs work in transactions on one database. */
export class SqliteTransactions {
  #db: DatabaseSync;
  /** The file's own `synchronous` level, restored after a commit that is not synced. */
  #synchronous: number;
  #onRollback: () => void;

  /** Transactions on `db`; `onRollback` is called whenever work is rolled back. */
  constructor(db: DatabaseSync, onRollback: () => void = () => {}) {
    this.#db = db;
    this.#synchronous = Number(db.prepare("PRAGMA synchronous").get()?.synchronous);
    this.#onRollback = onRollback;
  }

  /**
   * Runs `work` in one immediate transaction, or in a savepoint when one is
   * open; rolled back (to the savepoint) when it throws.
   * @throws whatever `work` throws, or the commit's error.
   */
  run<T>(work: () => T, options: RunOptions = {}): T {
    const db = this.#db;
    if (db.isTransaction) {
      db.exec("SAVEPOINT step");
      try {
        const result = work();
        db.exec("RELEASE step");
        return result;
      } catch (error) {
        if (db.isTransaction) db.exec("ROLLBACK TO step; RELEASE step");
        this.#onRollback();
        throw error;
      }
    }
    const relaxed = options.durable === false;
    try {
      db.exec(relaxed ? "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE" : "BEGIN IMMEDIATE");
      const result = work();
      db.exec("COMMIT");
      return result;
    } catch (error) {
      if (db.isTransaction) db.exec("ROLLBACK");
      this.#onRollback();
      throw error;
    } finally {
      if (relaxed) db.exec(`PRAGMA synchronous = ${this.#synchronous}`);
    }
  }
}
