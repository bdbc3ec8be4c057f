/**
 * Checking a registry's SQLite file before anything writes to it: a file that
 * is gone, empty or not a fabricd registry is refused while it is still as it
 * was, instead of being given the registry's tables (and losing its records).
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { EXIT } from "../types/mod.ts";
import { FabricError, StateLostError } from "../types/errors.ts";
import { _ADDED_COLUMNS, _SCHEMA } from "./_sqlite_schema.ts";

/** Options of {@linkcode checkSqliteStore}. */
export interface CheckSqliteStoreOptions {
  /**
   * The registry ran before on this file: it must hold its records (a
   * `services` table). Default false: a missing or empty file is a new store.
   */
  mustExist?: boolean;
}

/** A registry store file that is not a fabricd registry (exit 65: a bad input file). */
export class ForeignStoreError extends FabricError {
  /** Why the file is not a registry store, in a few words. */
  readonly why: string;
  /** Builds the error. */
  constructor(message: string, why = message) {
    super(message, { status: 500, exitCode: EXIT.DATA });
    this.why = why;
  }
}

/** What `fabricd up` says to do about a registry store whose records are not there. */
const RESTORE = "Restore the file, or start a new fabric elsewhere " +
  '("fabricd init" with another --fabric file)';

/**
 * Checks that `path` may be opened as a registry store, reading only: a
 * refused file is left byte for byte as it was. A file that does not exist or
 * is empty is a new store, unless `options.mustExist`. An in-memory or `file:`
 * URI store is not checked.
 * @throws {StateLostError} when `options.mustExist` and the file is gone,
 * empty or holds no `services` table: the fabric's records are lost.
 * @throws {ForeignStoreError} when the file is not a SQLite database, or one
 * whose tables are not a fabricd registry's.
 */
export function checkSqliteStore(path: string, options: CheckSqliteStoreOptions = {}): void {
  if (path === ":memory:" || path.startsWith("file:")) return;
  const lost = (why: string) =>
    new StateLostError(
      `Registry store "${path}" ${why}: the records of this fabric cannot be picked up again. ` +
        RESTORE,
    );
  let size = 0;
  try {
    const info = Deno.statSync(path);
    if (!info.isFile) {
      if (options.mustExist) throw lost("is not a file");
      throw new ForeignStoreError(
        `Registry store "${path}" is not a file: give --store sqlite:PATH of a file`,
      );
    }
    size = info.size;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    if (options.mustExist) throw lost("is gone");
    return;
  }
  if (size === 0) {
    if (options.mustExist) throw lost("is empty (0 bytes)");
    return;
  }
  let tables: Map<string, Set<string>>;
  try {
    tables = tablesOf(path);
  } catch (error) {
    // The records of a registry that ran on it are lost either way: 79, restore the file.
    if (!options.mustExist || !(error instanceof ForeignStoreError)) throw error;
    throw lost(`is not a fabricd registry store (${error.why})`);
  }
  const problem = schemaProblem(tables);
  if (!problem) {
    if (!options.mustExist || tables.has("services")) return;
    throw lost(tables.size === 0 ? "holds no tables" : 'holds no table "services"');
  }
  if (options.mustExist) throw lost(`is not a fabricd registry store (${problem})`);
  throw new ForeignStoreError(
    `Registry store "${path}" is not a fabricd registry store (${problem}); it was left as it ` +
      "is: give --store sqlite:PATH of another file, or move this one away",
  );
}

/** The tables of the database at `path` with their columns, read on a read-only connection. */
function tablesOf(path: string): Map<string, Set<string>> {
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { readOnly: true });
  } catch (error) {
    throw foreign(path, error);
  }
  try {
    return columnsOf(db);
  } catch (error) {
    throw foreign(path, error);
  } finally {
    db.close();
  }
}

function foreign(path: string, error: unknown): ForeignStoreError {
  const why = `cannot be read as a SQLite database: ${
    error instanceof Error ? error.message : String(error)
  }`;
  return new ForeignStoreError(
    `Registry store "${path}" ${why}; it was left as it is: give --store sqlite:PATH of ` +
      "another file, or move this one away",
    why,
  );
}

function columnsOf(db: DatabaseSync): Map<string, Set<string>> {
  const tables = new Map<string, Set<string>>();
  const names = db.prepare(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
  ).all() as { name: string }[];
  for (const { name } of names) {
    const columns = db.prepare("SELECT name FROM pragma_table_info(?)").all(name) as {
      name: string;
    }[];
    tables.set(name, new Set(columns.map((c) => c.name)));
  }
  return tables;
}

/** Columns every version of the registry's tables has (the schema less the added columns). */
function requiredColumns(): Map<string, Set<string>> {
  const db = new DatabaseSync(":memory:");
  try {
    db.exec(_SCHEMA);
    const tables = columnsOf(db);
    for (const [table, name] of _ADDED_COLUMNS) tables.get(table)?.delete(name);
    return tables;
  } finally {
    db.close();
  }
}

/**
 * Why `tables` are not a registry's (or none yet), or undefined when they
 * are: each of the registry's tables it has holds their columns, and it has
 * another table only beside `services`.
 */
function schemaProblem(tables: Map<string, Set<string>>): string | undefined {
  const required = requiredColumns();
  const others = [...tables.keys()].filter((name) => !required.has(name));
  if (!tables.has("services") && others.length > 0) {
    const found = others.slice(0, 5).map((t) => `"${t}"`).join(", ");
    return `no table "services"; it has ${found}${others.length > 5 ? ", ..." : ""}`;
  }
  for (const [table, columns] of tables) {
    for (const column of required.get(table) ?? []) {
      if (!columns.has(column)) return `table "${table}" has no column "${column}"`;
    }
  }
  return undefined;
}
