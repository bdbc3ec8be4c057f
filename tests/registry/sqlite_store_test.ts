import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { SqliteStore } from "../../src/registry/sqlite_store.ts";
import {
  InvalidTransitionError,
  StaleIncarnationError,
  UnknownServiceError,
} from "../../src/registry/store.ts";
import { canTransition } from "../../src/registry/state_machine.ts";
import type { ServiceRecord } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";
import { storeContract } from "./_store_contract.ts";

function record(id: string, patch: Partial<ServiceRecord> = {}): ServiceRecord {
  return serviceRecord(id, { state: "LAUNCHING", endpoint: "http://127.0.0.1:1", ...patch });
}

async function withStore(fn: (store: SqliteStore, path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "registry.db");
  const store = SqliteStore.open(path);
  try {
    await fn(store, path);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("SqliteStore.put() stores a transition with time and reason when the state changes", async () => {
  await withStore(async (store) => {
    await store.put(record("spw-a"), "spawned");
    await store.put(record("spw-a", { state: "BOOTSTRAPPING", updated: 5 }), "keys handed over");
    const history = await store.history("spw-a");
    assert.deepEqual(history.map((t) => [t.from, t.to, t.reason, t.at]), [
      ["", "LAUNCHING", "spawned", 1],
      ["LAUNCHING", "BOOTSTRAPPING", "keys handed over", 5],
    ]);
  });
});

Deno.test("SqliteStore.put() refuses a stale incarnation and keeps the newer record", async () => {
  await withStore(async (store) => {
    await store.put(record("spw-a", { incarnation: 2, state: "ALIVE" }), "restarted");
    await assert.rejects(
      () => store.put(record("spw-a", { incarnation: 1, state: "ALIVE", host: "old" }), "late"),
      StaleIncarnationError,
    );
    const kept = await store.get("spw-a");
    assert.equal(kept?.incarnation, 2);
    assert.equal(kept?.host, "h");
  });
});

Deno.test("SqliteStore.transition() refuses moves the state machine forbids", async () => {
  await withStore(async (store) => {
    await store.put(record("spw-a", { state: "ALIVE" }), "up");
    await store.transition("spw-a", { incarnation: 1, to: "STOPPED", reason: "stopped", at: 1 });
    await assert.rejects(
      () => store.transition("spw-a", { incarnation: 1, to: "ALIVE", reason: "x", at: 2 }),
      InvalidTransitionError,
    );
    await assert.rejects(
      () => store.transition("nope", { incarnation: 1, to: "ALIVE", reason: "x", at: 2 }),
      UnknownServiceError,
    );
    assert.equal((await store.get("spw-a"))?.state, "STOPPED");
  });
});

Deno.test("SqliteStore keeps records, transitions and flushed heartbeats across a reopen", async () => {
  await withStore(async (store, path) => {
    await store.put(record("spw-a", { state: "ALIVE" }), "up");
    await store.heartbeat("spw-a", 1, 42);
    await store.setSession("spw-a", "s1", true);
    await store.close();
    const again = SqliteStore.open(path);
    try {
      const kept = await again.get("spw-a");
      assert.equal(kept?.state, "ALIVE");
      assert.equal(kept?.lastHeartbeat, 42);
      assert.deepEqual(kept?.sessions, ["s1"]);
      assert.equal((await again.transitionsSince(0, 10)).length, 1);
    } finally {
      await again.close();
    }
  });
});

Deno.test("SqliteStore.heartbeat() refuses a replaced incarnation", async () => {
  await withStore(async (store) => {
    await store.put(record("spw-a", { state: "ALIVE", incarnation: 3 }), "up");
    await assert.rejects(() => store.heartbeat("spw-a", 2, 10), StaleIncarnationError);
  });
});

Deno.test("canTransition() follows DESIGN.md's state machine", () => {
  assert.ok(canTransition("LAUNCHING", "BOOTSTRAPPING"));
  assert.ok(canTransition("ALIVE", "SUSPECT"));
  assert.ok(canTransition("SUSPECT", "DEAD"));
  assert.ok(canTransition("DEAD", "RESTARTING"));
  assert.ok(canTransition("FAILED", "LOST"));
  assert.ok(!canTransition("LOST", "ALIVE"));
  assert.ok(!canTransition("STOPPED", "ALIVE"));
  assert.ok(!canTransition("LAUNCHING", "ALIVE"));
});

Deno.test("SqliteStore keeps the registry store contract", async (t) => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "contract.db");
  try {
    await storeContract(t, {
      open: () => Promise.resolve(SqliteStore.open(path)),
      reopen: () => Promise.resolve(SqliteStore.open(path)),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SqliteStore.open() creates the database and its WAL readable by the owner only", async () => {
  const dir = await Deno.makeTempDir();
  const old = Deno.umask(0o022);
  try {
    const path = join(dir, "registry.db");
    const store = SqliteStore.open(path);
    await store.put(serviceRecord("spw-00000001"), "created");
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(`${path}-wal`)).mode! & 0o777, 0o600);
    await store.close();
  } finally {
    Deno.umask(old);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SqliteStore.open() adds the change number to the kept revocations of an older store", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "registry.db");
    const db = new DatabaseSync(path);
    db.exec(`CREATE TABLE kept_revocations (
      id TEXT PRIMARY KEY, incarnation INTEGER NOT NULL, cascade INTEGER NOT NULL,
      until INTEGER NOT NULL) STRICT`);
    db.prepare("INSERT INTO kept_revocations VALUES (?, ?, ?, ?)").run("spw-0a", 2, 1, 5000);
    db.close();
    const store = SqliteStore.open(path);
    try {
      const kept = [{ id: "spw-0a", incarnation: 2, cascade: true as const }];
      assert.deepEqual(await store.keptRevocations(10), kept, "in the full list");
      assert.deepEqual(await store.keptRevocations(10, 0), [], "forgotten before any change read");
    } finally {
      await store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
