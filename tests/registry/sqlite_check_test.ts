/**
 * A registry store file is checked before anything writes to it: a store that
 * must hold a fabric's records and is empty or table-less was opened as a new,
 * empty store (every record lost), and a foreign SQLite file was given the
 * registry's tables and a WAL before it was refused.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { SqliteStore } from "../../src/registry/sqlite_store.ts";
import { checkSqliteStore, ForeignStoreError } from "../../src/registry/sqlite_check.ts";
import { StateLostError } from "../../src/types/errors.ts";
import { serviceRecord } from "../_fixtures.ts";

async function inTempDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every file of `dir` with its bytes, to show that nothing was changed or added. */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of Deno.readDirSync(dir)) {
    files.set(entry.name, Deno.readFileSync(join(dir, entry.name)).join(","));
  }
  return files;
}

Deno.test("SqliteStore.open() refuses a store that must exist when it is empty or table-less, and leaves it as it was", async () => {
  await inTempDir((dir) => {
    const empty = join(dir, "empty.db");
    Deno.writeFileSync(empty, new Uint8Array());
    const tableless = join(dir, "tableless.db");
    const db = new DatabaseSync(tableless);
    db.exec("PRAGMA user_version = 7");
    db.close();
    for (const [path, why] of [[empty, /is empty \(0 bytes\)/], [tableless, /holds no tables/]]) {
      const before = snapshot(dir);
      assert.throws(
        () => SqliteStore.open(path as string, { mustExist: true }),
        (error: Error) => {
          assert.ok(error instanceof StateLostError, `${path}: ${error}`);
          assert.match(error.message, why as RegExp);
          assert.match(error.message, /cannot be picked up again\. Restore the file/);
          return true;
        },
      );
      assert.deepEqual(snapshot(dir), before, `${path} and its neighbours are unchanged`);
    }
  });
});

Deno.test("SqliteStore.open() reopens a store that must exist and holds records", async () => {
  await inTempDir(async (dir) => {
    const path = join(dir, "registry.db");
    const first = SqliteStore.open(path);
    await first.put(serviceRecord("spw-0000000a"), "up");
    await first.close();
    const again = SqliteStore.open(path, { mustExist: true });
    try {
      assert.equal((await again.get("spw-0000000a"))?.state, "ALIVE");
    } finally {
      await again.close();
    }
  });
});

Deno.test("SqliteStore.open() opens a missing or empty file as a new store when it need not exist", async () => {
  await inTempDir(async (dir) => {
    const empty = join(dir, "empty.db");
    Deno.writeFileSync(empty, new Uint8Array());
    for (const path of [empty, join(dir, "new.db")]) {
      const store = SqliteStore.open(path);
      await store.put(serviceRecord("spw-0000000b"), "up");
      await store.close();
    }
  });
});

Deno.test("SqliteStore.open() refuses a foreign SQLite file and leaves it byte for byte as it was", async () => {
  await inTempDir((dir) => {
    const path = join(dir, "other.db");
    const db = new DatabaseSync(path);
    db.exec(
      "CREATE TABLE services (id TEXT PRIMARY KEY, name TEXT); INSERT INTO services VALUES ('a', 'b')",
    );
    db.close();
    const before = snapshot(dir);
    for (const mustExist of [false, true]) {
      assert.throws(
        () => SqliteStore.open(path, { mustExist }),
        (error: Error) => {
          const kind = mustExist ? StateLostError : ForeignStoreError;
          assert.ok(error instanceof kind, `mustExist ${mustExist}: ${error}`);
          assert.match(
            error.message,
            /^Registry store ".*other\.db" is not a fabricd registry store \(table "services" has no column "role"\)/,
          );
          return true;
        },
      );
      assert.deepEqual(snapshot(dir), before, "no table, WAL or shared memory file was added");
    }
  });
});

Deno.test("checkSqliteStore() refuses a file that is not a SQLite database, or a registry-less one, as foreign", async () => {
  await inTempDir((dir) => {
    const garbage = join(dir, "garbage.db");
    Deno.writeFileSync(
      garbage,
      new TextEncoder().encode("not a database, just text\n".repeat(200)),
    );
    const other = join(dir, "other.db");
    const db = new DatabaseSync(other);
    db.exec("CREATE TABLE notes (body TEXT)");
    db.close();
    const before = snapshot(dir);
    assert.throws(() => checkSqliteStore(garbage), ForeignStoreError);
    assert.throws(
      () => checkSqliteStore(other),
      /is not a fabricd registry store \(no table "services"; it has "notes"\); it was left as it is/,
    );
    assert.throws(() => checkSqliteStore(dir), /is not a file/);
    assert.deepEqual(snapshot(dir), before);
  });
});

Deno.test("checkSqliteStore() refuses with StateLostError a store that must exist and is no SQLite file or no file", async () => {
  await inTempDir((dir) => {
    const garbage = join(dir, "garbage.db");
    Deno.writeFileSync(garbage, new TextEncoder().encode("not a database\n".repeat(300)));
    const before = snapshot(dir);
    assert.throws(
      () => checkSqliteStore(garbage, { mustExist: true }),
      (error: unknown) =>
        error instanceof StateLostError &&
        /is not a fabricd registry store \(cannot be read as a SQLite database: .*\): the records of this fabric cannot be picked up again\. Restore the file/
          .test(error.message),
    );
    assert.throws(() => checkSqliteStore(dir, { mustExist: true }), StateLostError);
    assert.deepEqual(snapshot(dir), before);
  });
});
