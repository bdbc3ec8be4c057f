/**
 * The idempotency keys of puts (docs/services.md, queue, "Idempotent puts"),
 * in the queue's own SQLite file: a key is remembered with its message ID
 * and the SHA-256 of the payload's JSON text for
 * {@linkcode PUT_KEY_RETENTION_MS}, written in the put's own transaction.
 * @module
 */
import { sha256Hex } from "../../crypto/hash.ts";
import type { DatabaseSync, StatementSync } from "node:sqlite";

/** How long an idempotency key is remembered after its put, ms (24 h). */
export const PUT_KEY_RETENTION_MS = 24 * 60 * 60 * 1000;

/** A put refused because its idempotency key was used for a different payload. */
export class KeyConflictError extends Error {
  /** Builds the error. */
  constructor(queue: string, key: string, id: string) {
    super(
      `Idempotency key "${key}" of queue "${queue}" was used for a different payload (message ${id}): choose a new key`,
    );
    this.name = "KeyConflictError";
  }
}

/** What a put with an idempotency key answers. */
export interface KeyedPut {
  /** The message's ID: the new one, or the one stored by the first put with the key. */
  id: string;
  /** Whether the key was known: nothing was stored this time. */
  duplicate: boolean;
}

/** The schema of the keys; `IF NOT EXISTS`, so an existing queue file keeps its keys. */
const KEYS_SCHEMA = `
CREATE TABLE IF NOT EXISTS put_keys (
  queue TEXT NOT NULL,
  key TEXT NOT NULL,
  message_id INTEGER NOT NULL,
  digest TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (queue, key)
) STRICT;
CREATE INDEX IF NOT EXISTS put_keys_age ON put_keys (at);
`;

/** The `put_keys` table; the caller runs each method inside its transaction. */
export class PutKeys {
  #find: StatementSync;
  #insert: StatementSync;
  #prune: StatementSync;

  /** The keys in `db` (their table is created when missing). */
  constructor(db: DatabaseSync) {
    db.exec(KEYS_SCHEMA);
    this.#find = db.prepare(
      "SELECT message_id, digest FROM put_keys WHERE queue = ? AND key = ? AND at > ?",
    );
    this.#insert = db.prepare(
      "INSERT OR REPLACE INTO put_keys (queue, key, message_id, digest, at) VALUES (?, ?, ?, ?, ?)",
    );
    this.#prune = db.prepare("DELETE FROM put_keys WHERE at <= ?");
  }

  /** The digest by which a key recognises its payload. */
  digest(text: string): string {
    return sha256Hex(text);
  }

  /**
   * The first put of `key` on `queue` within the retention before `now`, or
   * null when the key is new.
   * @throws {KeyConflictError} when the key was used for another payload.
   */
  known(queue: string, key: string, digest: string, now: number): KeyedPut | null {
    const known = this.#find.get(queue, key, now - PUT_KEY_RETENTION_MS) as
      | { message_id: number; digest: string }
      | undefined;
    if (!known) return null;
    if (known.digest !== digest) throw new KeyConflictError(queue, key, String(known.message_id));
    return { id: String(known.message_id), duplicate: true };
  }

  /** Remembers `key` for message `id`, forgetting the keys past their retention. */
  remember(queue: string, key: string, id: number, digest: string, now: number): void {
    this.#prune.run(now - PUT_KEY_RETENTION_MS);
    this.#insert.run(queue, key, id, digest, now);
  }
}
