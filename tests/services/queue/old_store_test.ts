/**
 * A restarted queue opens its store only when the file is its old store: a
 * zero-length, garbage or table-less file is state lost (exit 79), checked
 * before anything is created in it, and the files are left as they were.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { StateLostError } from "../../../src/types/errors.ts";
import { QueueStore } from "../../../src/services/queue/queue_store.ts";

const SUFFIXES = ["", "-wal", "-shm"] as const;

/** Runs `fn` with the path of a store in a fresh temporary directory, removed after. */
async function withPath(fn: (path: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fabricd-old-store-" });
  try {
    await fn(join(dir, "queue-que-00000002.db"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Size and digest of the store and its `-wal` and `-shm`, for "nothing changed". */
async function snapshot(path: string): Promise<(string | null)[]> {
  return await Promise.all(SUFFIXES.map(async (suffix) => {
    try {
      const bytes = await Deno.readFile(path + suffix);
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
      return `${suffix}: ${bytes.length} bytes, ${Array.from(digest).join(".")}`;
    } catch {
      return `${suffix}: none`;
    }
  }));
}

async function assertLost(path: string, pattern: RegExp): Promise<void> {
  const before = await snapshot(path);
  assert.throws(
    () => QueueStore.open(path, { mustExist: true }).close(),
    (error: unknown) => {
      assert.ok(error instanceof StateLostError, String(error));
      assert.ok(error.message.includes(`"${path}"`), error.message);
      assert.match(error.message, pattern);
      return true;
    },
  );
  assert.deepEqual(await snapshot(path), before, "the files are left as they were");
}

Deno.test("QueueStore.open() throws StateLostError when a restarted queue's store is zero-length", async () => {
  await withPath(async (path) => {
    for (const suffix of SUFFIXES) Deno.writeFileSync(path + suffix, new Uint8Array());
    await assertLost(path, /is empty \(0 bytes\): the queued messages cannot be picked up/);
  });
});

Deno.test("QueueStore.open() throws StateLostError when a restarted queue's store is not a database", async () => {
  await withPath(async (path) => {
    for (const suffix of SUFFIXES) {
      Deno.writeFileSync(path + suffix, crypto.getRandomValues(new Uint8Array(8192)));
    }
    await assertLost(path, /is not a SQLite database/);
  });
  await withPath(async (path) => {
    const header = new TextEncoder().encode("SQLite format 3\0");
    const bytes = crypto.getRandomValues(new Uint8Array(8192));
    bytes.set(header);
    Deno.writeFileSync(path, bytes);
    await assertLost(path, /cannot be read \(/);
  });
});

Deno.test("QueueStore.open() throws StateLostError when a restarted queue's store has no messages table", async () => {
  await withPath(async (path) => {
    const other = new DatabaseSync(path);
    other.exec("CREATE TABLE notes (text TEXT)");
    other.close();
    await assertLost(path, /holds no queue \(no "messages" table\)/);
  });
});

Deno.test("QueueStore.open() picks up a restarted queue's store left by a killed process", async () => {
  await withPath(async (path) => {
    // A child that puts and dies without closing: the store is left with its -wal and -shm.
    const script = `
      import { QueueStore } from ${
      JSON.stringify(import.meta.resolve("../../../src/services/queue/queue_store.ts"))
    };
      QueueStore.open(${JSON.stringify(path)}).put("jobs", "kept");
      Deno.exit(0);
    `;
    const child = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", script],
      stdout: "null",
      stderr: "inherit",
    }).output();
    assert.equal(child.code, 0);
    const store = QueueStore.open(path, { mustExist: true });
    try {
      assert.deepEqual(store.counts("jobs"), { ready: 1, inflight: 0 });
    } finally {
      store.close();
    }
  });
});
