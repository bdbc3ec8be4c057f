/**
 * A registry store on a full disk: SQLite rolls the failed transaction back
 * itself, so the store's own ROLLBACK threw "cannot rollback - no transaction
 * is active", uncaught in the heartbeat flush timer (the registry crashed),
 * and the pending heartbeats were dropped. `maxPageCount` makes SQLite answer
 * "database or disk is full" as a full disk does, without root or a tmpfs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { SqliteStore } from "../../src/registry/sqlite_store.ts";
import { StoreFullError } from "../../src/registry/store.ts";
import { serviceRecord } from "../_fixtures.ts";
import { eventually } from "../_eventually.ts";

const SERVICES = 200;
const BEAT_AT = 2 ** 40;
const ids = Array.from({ length: SERVICES }, (_, i) => `spw-${String(i).padStart(8, "0")}`);

/**
 * A store file holding `SERVICES` ALIVE records and one FAILED record whose
 * long `host` takes pages that forgetting it frees; its page count.
 */
async function filledStore(path: string): Promise<number> {
  const store = SqliteStore.open(path);
  for (const id of ids) await store.put(serviceRecord(id, { lastHeartbeat: 0 }), "up");
  await store.put(
    serviceRecord("spw-ffffffff", { state: "LAUNCHING", host: "x".repeat(100_000) }),
    "spawned",
  );
  await store.transition("spw-ffffffff", { incarnation: 1, to: "FAILED", reason: "no", at: 2 });
  await store.close();
  const db = new DatabaseSync(path);
  try {
    // No free page left: the file is as full as the cap below.
    db.exec("VACUUM");
    return Number((db.prepare("PRAGMA page_count").get() as { page_count: number }).page_count);
  } finally {
    db.close();
  }
}

function beatsOnDisk(path: string): number {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const row = db.prepare("SELECT count(*) AS n FROM services WHERE last_heartbeat = ?")
      .get(BEAT_AT) as { n: number };
    return Number(row.n);
  } finally {
    db.close();
  }
}

Deno.test("SqliteStore on a full disk answers a clear 503, keeps its heartbeats and writes them once there is space", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "registry.db");
  const store = SqliteStore.open(path, {
    heartbeatFlushMs: 10,
    maxPageCount: await filledStore(path),
  });
  try {
    const full = (error: Error) => {
      assert.ok(error instanceof StoreFullError, String(error));
      assert.equal(error.httpStatus, 503);
      assert.match(
        error.message,
        /^Registry store ".*registry\.db": database or disk is full: free space on its disk/,
      );
      return true;
    };
    await assert.rejects(
      () => store.put(serviceRecord("spw-fffffffe", { lastFailure: "y".repeat(20_000) }), "up"),
      full,
    );
    assert.equal(await store.get("spw-fffffffe"), undefined, "nothing was taken in");
    for (const id of ids) await store.heartbeat(id, 1, BEAT_AT);
    // Flushes fail meanwhile (the timer must not throw), and keep the beats.
    await new Promise((resolve) => setTimeout(resolve, 100));
    await assert.rejects(() => store.heartbeatMany([{ id: ids[0]!, incarnation: 1 }], 3), full);
    assert.equal(beatsOnDisk(path), 0, "no beat was written");
    // Space again: the forgotten record's pages.
    await store.delete("spw-ffffffff", 10_000);
    await eventually(() => beatsOnDisk(path) === SERVICES, {
      what: "every kept beat written",
      timeoutMs: 5000,
    });
    await store.put(serviceRecord("spw-fffffffd"), "up");
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Mounts a 1 MiB tmpfs on `dir`; false (with why) when this process may not. */
async function mountTinyDisk(dir: string): Promise<boolean> {
  if (Deno.uid() !== 0) {
    console.warn("Skipped: mounting a tmpfs needs root");
    return false;
  }
  const out = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "size=1m,mode=700", "tmpfs", dir],
    stdout: "null",
    stderr: "piped",
  }).output().catch((error) => ({ success: false, stderr: new TextEncoder().encode(`${error}`) }));
  if (!out.success) {
    console.warn(`Skipped: cannot mount a tmpfs: ${new TextDecoder().decode(out.stderr)}`);
  }
  return out.success;
}

Deno.test("SqliteStore on a real full disk answers 503 from its COMMIT and carries on once there is space", async () => {
  const dir = await Deno.makeTempDir();
  try {
    if (!(await mountTinyDisk(dir))) return;
    const filler = join(dir, "filler");
    const store = SqliteStore.open(join(dir, "registry.db"), { heartbeatFlushMs: 10 });
    try {
      await store.put(serviceRecord(ids[0]!), "up");
      await Deno.writeFile(filler, new Uint8Array(2 * 1024 * 1024)).catch(() => {});
      await assert.rejects(
        () => store.put(serviceRecord(ids[1]!, { lastFailure: "z".repeat(8000) }), "up"),
        StoreFullError,
      );
      await store.heartbeat(ids[0]!, 1, BEAT_AT);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await assert.rejects(
        () => store.heartbeatMany([{ id: ids[0]!, incarnation: 1 }], 3),
        StoreFullError,
      );
      await Deno.remove(filler);
      await store.heartbeatMany([{ id: ids[0]!, incarnation: 1 }], 3);
      assert.equal(beatsOnDisk(join(dir, "registry.db")), 1, "the kept beat was written");
      await store.put(serviceRecord(ids[1]!), "up");
    } finally {
      await store.close();
      await new Deno.Command("umount", { args: [dir] }).output();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SqliteStore.close() writes the heartbeats still pending", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fabricd-test-" });
  try {
    const path = join(dir, "registry.db");
    const store = SqliteStore.open(path, { heartbeatFlushMs: 3_600_000 });
    await store.put(serviceRecord(ids[0]!, { lastHeartbeat: 0 }), "up");
    await store.heartbeat(ids[0]!, 1, BEAT_AT);
    await store.close();
    const again = SqliteStore.open(path, { mustExist: true });
    try {
      assert.equal((await again.get(ids[0]!))?.lastHeartbeat, BEAT_AT);
    } finally {
      await again.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
