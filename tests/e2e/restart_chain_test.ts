/**
 * Issue 18, items 1 and 6, on a local fabric of real processes: a restart
 * interrupted by its parent's death is resumed by the parent's next
 * incarnation; `up`'s repairs of its roots go through DEAD -> RESTARTING ->
 * ALIVE; a spawn with no progress is reconciled to FAILED, and
 * `stop --all` does not wait on one that cannot come up.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { SqliteStore } from "../../src/registry/sqlite_store.ts";
import type { LocalFabric } from "../../src/cli/local_fabric.ts";
import type { ServiceRecord, SpawnResult, Transition } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";
import { withLocalFabric } from "./_fabric.ts";
import { eventually } from "../_eventually.ts";

async function spawnVia(
  local: LocalFabric,
  via: { id: string; url: string },
  role: string,
): Promise<ServiceRecord> {
  const result = await local.client.call<SpawnResult>(via, {
    method: "POST",
    path: "/v1/spawn",
    body: { role },
  });
  return (await local.registry.get(result.id))!.record;
}

async function history(local: LocalFabric, id: string): Promise<Transition[]> {
  return (await local.registry.get(id))!.transitions;
}

function aliveAfter(local: LocalFabric, id: string, incarnation: number) {
  return async () => {
    const record = (await local.registry.get(id))?.record;
    return record?.state === "ALIVE" && record.incarnation > incarnation ? record : undefined;
  };
}

Deno.test("a child killed, then its parent within 0.5 s: both ALIVE again within 2 TTLs, no FAILED, no operator", async () => {
  const heartbeatMs = 2000; // TTL 6 s: the bound is 12 s
  await withLocalFabric(async (local) => {
    const parent = await spawnVia(local, local.spawner, "spawner");
    const child = await spawnVia(local, { id: parent.id, url: parent.endpoint }, "pubsub");
    Deno.kill(child.pid, "SIGKILL");
    const killed = Date.now();
    // Kill the parent while it restarts the child (at most 0.5 s after the child).
    await eventually(async () => {
      const state = (await local.registry.get(child.id))?.record.state;
      return state !== "ALIVE" && state !== "DEAD" || Date.now() - killed > 450;
    }, { timeoutMs: 2000 }).catch(() => true);
    Deno.kill(parent.pid, "SIGKILL");
    const start = Date.now();
    const [p, c] = await Promise.all([
      eventually(aliveAfter(local, parent.id, parent.incarnation), { timeoutMs: 30_000 }),
      eventually(aliveAfter(local, child.id, child.incarnation), { timeoutMs: 30_000 }),
    ]);
    const took = Date.now() - start;
    const transitions = await history(local, child.id);
    assert.ok(
      !transitions.some((t) => t.to === "FAILED" || t.to === "LOST"),
      `the child's restart was failed: ${JSON.stringify(transitions.slice(-6))}`,
    );
    assert.ok(p.incarnation > parent.incarnation && c.incarnation > child.incarnation);
    assert.ok(took < 2 * 3 * heartbeatMs, `both ALIVE only after ${took} ms (2 TTLs: 12000)`);
  }, { heartbeatMs });
});

Deno.test("up's repairs of its root spawner and registry are recorded DEAD -> RESTARTING -> ALIVE, never ALIVE -> ALIVE", async () => {
  await withLocalFabric(async (local) => {
    for (const target of [local.spawner, local.registryTarget]) {
      const before = (await local.registry.get(target.id))!.record;
      Deno.kill(before.pid, "SIGKILL");
      await eventually(aliveAfter(local, target.id, before.incarnation), { timeoutMs: 30_000 });
      const moves = (await history(local, target.id))
        .filter((t) => t.incarnation >= before.incarnation)
        .map((t) => `${t.incarnation}:${t.from}->${t.to}`);
      const next = before.incarnation + 1;
      assert.deepEqual(moves.slice(-3), [
        `${before.incarnation}:ALIVE->DEAD`,
        `${next}:DEAD->RESTARTING`,
        `${next}:RESTARTING->ALIVE`,
      ], target.id);
    }
  });
});

Deno.test("a LAUNCHING record with no process is reconciled to FAILED by its live spawner, with the reason", async () => {
  await withLocalFabric(async (local) => {
    // The root spawner supervises once it has spawned.
    await spawnVia(local, local.spawner, "spawner");
    const stuck = serviceRecord("spw-0badc0de", {
      state: "LAUNCHING",
      pid: 0,
      endpoint: "",
      parent: local.spawner.id,
      route: [local.spawner.id, "spw-0badc0de"],
      launcher: "local://",
    });
    await local.registry.put(stuck, "a spawn the registry lost track of (test)");
    const failed = await eventually(async () => {
      const record = (await local.registry.get(stuck.id))?.record;
      return record?.state === "FAILED" ? record : undefined;
    }, { timeoutMs: 30_000 });
    assert.match(failed.lastFailure, /no progress in LAUNCHING with no process/);
  }, { heartbeatMs: 500 });
});

Deno.test("stopServices() does not wait on a LAUNCHING record whose spawner is gone, and records it STOPPED", async () => {
  await withLocalFabric(async (local, dir) => {
    const stuck = serviceRecord("spw-0ddba11e", {
      state: "LAUNCHING",
      pid: 0,
      endpoint: "",
      parent: "spw-00000000",
      route: ["spw-00000000", "spw-0ddba11e"],
      launcher: "local://",
    });
    await local.registry.put(stuck, "a spawn whose spawner vanished (test)");
    const start = Date.now();
    await local.stopAll("test stop");
    const took = Date.now() - start;
    // The old loop spun to its 30 s deadline on such a record.
    assert.ok(took < 20_000, `stop took ${took} ms`);
    // The registry is stopped too by now: read its store.
    const store = SqliteStore.open(join(dir, "registry.db"));
    try {
      const record = await store.get(stuck.id);
      assert.equal(record?.state, "STOPPED");
      assert.match((await store.history(stuck.id)).at(-1)!.reason, /never came up from LAUNCHING/);
    } finally {
      await store.close();
    }
  }, { heartbeatMs: 500 });
});
