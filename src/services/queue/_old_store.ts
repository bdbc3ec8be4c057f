/**
 * What a restarted queue checks before it opens its store: the file must be
 * the old store (a SQLite database with the queue's `messages` table), or
 * every task would be lost silently under a queue that reads "0 waiting".
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { StateLostError } from "../../types/errors.ts";

/** The first bytes of every SQLite database file. */
const SQLITE_HEADER = new TextEncoder().encode("SQLite format 3\0");

/**
 * Checks that `path` holds a queue store, before anything is created in it.
 * A file that is missing, empty or without the SQLite header fails before
 * SQLite opens it, so it and its `-wal` and `-shm` are left exactly as they
 * were; otherwise the tables are read through a read-only connection (a
 * read-write one would delete the `-wal` and `-shm` of a file that fails when
 * it closes), which writes at most SQLite's `-shm`, an index it rebuilds from
 * the `-wal`.
 * @throws {StateLostError} when the file is missing, empty, unreadable, not a
 * SQLite database, or without a `messages` table.
 */
export function checkOldStore(path: string): void {
  // A WAL store has its header in the main file from its first transaction on.
  const head = headOf(path);
  if (head.length === 0) throw lost(path, "is empty (0 bytes)");
  if (!SQLITE_HEADER.every((byte, i) => head[i] === byte)) {
    throw lost(path, "is not a SQLite database (its first bytes are not the SQLite header)");
  }
  let tables: string[];
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path, { readOnly: true });
    const rows = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all();
    tables = rows.map((row) => String(row.name));
  } catch (error) {
    throw lost(path, `cannot be read (${(error as Error).message})`, error);
  } finally {
    try {
      db?.close();
    } catch {
      // Nothing was written through it: nothing to lose.
    }
  }
  if (!tables.includes("messages")) throw lost(path, 'holds no queue (no "messages" table)');
}

/** The first bytes of the file at `path`, as many as the SQLite header has at most. */
function headOf(path: string): Uint8Array {
  let file: Deno.FsFile | undefined;
  try {
    if (!Deno.statSync(path).isFile) throw lost(path, "is not a file");
    file = Deno.openSync(path, { read: true });
    const head = new Uint8Array(SQLITE_HEADER.length);
    let filled = 0;
    while (filled < head.length) {
      const n = file.readSync(head.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    return head.subarray(0, filled);
  } catch (error) {
    if (error instanceof StateLostError) throw error;
    if (error instanceof Deno.errors.NotFound) throw lost(path, "is gone");
    throw lost(path, `cannot be read (${(error as Error).message})`, error);
  } finally {
    file?.close();
  }
}

function lost(path: string, what: string, cause?: unknown): StateLostError {
  return new StateLostError(
    `Queue store "${path}" ${what}: the queued messages cannot be picked up`,
    cause === undefined ? undefined : { cause },
  );
}
