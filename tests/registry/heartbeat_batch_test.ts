import assert from "node:assert/strict";
import { join } from "node:path";
import { Hono } from "hono";
import { Registry } from "../../src/registry/registry.ts";
import { registryRoutes } from "../../src/registry/routes.ts";
import { SqliteStore } from "../../src/registry/sqlite_store.ts";
import { filterRecords } from "../../src/registry/record_filter.ts";
import type { ServiceRecord } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";

async function withRegistry(
  fn: (registry: Registry, clock: { now: number }, path: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const clock = { now: 1_000_000 };
  const path = join(dir, "r.db");
  const registry = new Registry(SqliteStore.open(path, { heartbeatFlushMs: 3_600_000 }), {
    now: () => clock.now,
  });
  try {
    await fn(registry, clock, path);
  } finally {
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function alive(id: string, at: number, patch: Partial<ServiceRecord> = {}): ServiceRecord {
  return serviceRecord(id, { started: at, lastHeartbeat: at, updated: at, ...patch });
}

Deno.test("Registry.heartbeatMany() answers ok, replaced and unknown per beat, in order", async () => {
  await withRegistry(async (registry, clock) => {
    await registry.put(alive("agt-ok", clock.now, { instance: "i1" }), "up");
    await registry.put(alive("agt-other", clock.now, { instance: "i1" }), "up");
    await registry.put(alive("agt-old", clock.now, { incarnation: 2 }), "up");
    await registry.put(alive("agt-gone", clock.now), "up");
    await registry.transition("agt-gone", { incarnation: 1, to: "STOPPED", reason: "stopped" });
    clock.now += 1000;
    const verdicts = await registry.heartbeatMany([
      { id: "agt-ok", incarnation: 1, instance: "i1" },
      { id: "agt-other", incarnation: 1, instance: "i2" },
      { id: "agt-old", incarnation: 1 },
      { id: "agt-none", incarnation: 1 },
      { id: "agt-gone", incarnation: 1 },
    ]);
    assert.deepEqual(verdicts.map((v) => [v.id, v.result]), [
      ["agt-ok", "ok"],
      ["agt-other", "replaced"],
      ["agt-old", "replaced"],
      ["agt-none", "unknown"],
      ["agt-gone", "replaced"],
    ]);
    assert.equal((await registry.get("agt-ok"))?.lastHeartbeat, clock.now);
    assert.equal((await registry.get("agt-other"))?.lastHeartbeat, clock.now - 1000);
    assert.equal(registry.beatsAccepted, 1, "only the beat that was taken counts");
    await registry.heartbeat("agt-ok", 1, { instance: "i1" });
    assert.equal(registry.beatsAccepted, 2, "lone and batched beats count alike");
  });
});

Deno.test("Registry.heartbeatMany() takes a SUSPECT service back, but not a beat sent before its death", async () => {
  await withRegistry(async (registry, clock) => {
    await registry.put(alive("agt-sus", clock.now), "up");
    await registry.put(alive("agt-dead", clock.now), "up");
    await registry.transition("agt-sus", { incarnation: 1, to: "SUSPECT", reason: "silent" });
    await registry.transition("agt-dead", { incarnation: 1, to: "DEAD", reason: "TTL" });
    const [sus, dead] = await registry.heartbeatMany([
      { id: "agt-sus", incarnation: 1 },
      { id: "agt-dead", incarnation: 1, sentAt: clock.now - 10 },
    ]);
    assert.deepEqual(sus, { id: "agt-sus", result: "ok", state: "ALIVE", incarnation: 1 });
    assert.deepEqual(dead, { id: "agt-dead", result: "ok", state: "DEAD", incarnation: 1 });
    const history = await registry.history("agt-sus");
    assert.equal(history.at(-1)?.reason, "heartbeat resumed");
  });
});

Deno.test("SqliteStore.heartbeatMany() commits the batch before it answers", async () => {
  await withRegistry(async (registry, clock, path) => {
    await registry.put(alive("agt-a", clock.now), "up");
    await registry.put(alive("agt-b", clock.now), "up");
    clock.now += 5000;
    await registry.heartbeatMany([{ id: "agt-a", incarnation: 1 }, {
      id: "agt-b",
      incarnation: 1,
    }]);
    // A second reader sees the beats although the timed flush is an hour away.
    const other = SqliteStore.open(path);
    try {
      assert.equal((await other.get("agt-a"))?.lastHeartbeat, clock.now);
      assert.equal((await other.get("agt-b"))?.lastHeartbeat, clock.now);
    } finally {
      await other.close();
    }
  });
});

Deno.test("POST /registry/heartbeats answers results and refuses a batch too big", async () => {
  await withRegistry(async (registry, clock) => {
    await registry.put(alive("agt-a", clock.now), "up");
    const app = new Hono().route("/v1", registryRoutes(() => registry));
    const post = (body: unknown) =>
      app.request("/v1/registry/heartbeats", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const ok = await post({ via: "brg-a", beats: [{ id: "agt-a", incarnation: 1, sentAt: 5 }] });
    assert.equal(ok.status, 200);
    const answer = await ok.json();
    assert.deepEqual(answer.results, [{
      id: "agt-a",
      result: "ok",
      state: "ALIVE",
      incarnation: 1,
    }]);
    assert.equal(typeof answer.revocations, "number", "the registry's revocation mark");
    const beats = Array.from({ length: 5001 }, () => ({ id: "agt-a", incarnation: 1 }));
    assert.equal((await post({ via: "brg-a", beats })).status, 400);
  });
});

Deno.test("filterRecords() keeps a subtree, roles and states", () => {
  const records = [
    serviceRecord("spw-root", { parent: "", role: "spawner" }),
    serviceRecord("brg-a", { parent: "spw-root", role: "bridge" }),
    serviceRecord("agt-a", { parent: "brg-a", role: "agent" }),
    serviceRecord("agt-b", { parent: "brg-a", role: "agent", state: "DEAD" }),
    serviceRecord("agt-c", { parent: "spw-root", role: "agent" }),
  ];
  const ids = (r: ServiceRecord[]) => r.map((x) => x.id);
  assert.deepEqual(ids(filterRecords(records, { under: "brg-a" })), ["brg-a", "agt-a", "agt-b"]);
  assert.deepEqual(ids(filterRecords(records, { under: "brg-a", roles: ["agent"] })), [
    "agt-a",
    "agt-b",
  ]);
  assert.deepEqual(ids(filterRecords(records, { states: ["DEAD"] })), ["agt-b"]);
});
