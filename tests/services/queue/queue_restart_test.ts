/**
 * The queue role as real processes: a queue service spawned through a local
 * fabric is killed with SIGKILL, restarted under its old ID by its parent,
 * and still holds every acknowledged put (issue "Queue").
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { QueueClient } from "../../../src/client/queue_client.ts";
import type { ServiceRecord, SpawnResult } from "../../../src/types/mod.ts";
import { runFabricd, withLocalFabric } from "../../e2e/_fabric.ts";
import { eventually } from "../../_eventually.ts";

Deno.test({
  name: "queueRole keeps every acknowledged put when its service is SIGKILLed and restarted",
  fn: async () => {
    await withLocalFabric(async (local, dir) => {
      const spawned = await local.client.call<SpawnResult>(local.spawner, {
        method: "POST",
        path: "/v1/spawn",
        body: { role: "queue", options: { capacity: "50" } },
      });
      const recordOf = async (): Promise<ServiceRecord> =>
        (await local.registry.get(spawned.id))!.record;
      const before = await recordOf();
      const queue = new QueueClient(local.client, { id: before.id, url: before.endpoint });
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) ids.push(await queue.put("jobs", { n: i }));
      assert.equal(new Set(ids).size, 20);
      // Five are in flight when the process dies: they must come back too.
      const inflight = await queue.get("jobs", { max: 5, visibilityMs: 500 });
      assert.deepEqual(inflight.map((m) => m.id), ids.slice(0, 5));
      await Deno.stat(join(dir, `queue-${before.id}.db`));

      Deno.kill(before.pid, "SIGKILL");
      const after = await eventually(async () => {
        const r = await recordOf();
        return r.state === "ALIVE" && r.incarnation === before.incarnation + 1 ? r : undefined;
      }, { timeoutMs: 30_000 });
      assert.notEqual(after.pid, before.pid);

      const again = new QueueClient(local.client, { id: after.id, url: after.endpoint });
      const stats = await again.stats("jobs");
      assert.equal(stats.ready + stats.inflight, 20, JSON.stringify(stats));
      assert.equal(stats.capacity, 50, "the role options survive the restart");
      const seen = new Map<string, number>();
      await eventually(async () => {
        for (const m of await again.get("jobs", { max: 100, waitMs: 1000 })) {
          assert.deepEqual(m.payload, { n: ids.indexOf(m.id) });
          seen.set(m.id, m.deliveries);
          await again.ack("jobs", m.id);
        }
        return seen.size === 20;
      }, { timeoutMs: 20_000 });
      assert.deepEqual([...seen.keys()].sort(), [...ids].sort());
      for (const id of ids.slice(0, 5)) assert.equal(seen.get(id), 2, `${id} was redelivered`);
      assert.deepEqual(await again.stats("jobs"), {
        name: "jobs",
        ready: 0,
        inflight: 0,
        capacity: 50,
      });
    }, { heartbeatMs: 500 });
  },
});

Deno.test({
  name: "queueRole exits 79 and is LOST, not replaced, when its store is gone on restart",
  fn: async () => {
    await withLocalFabric(async (local, dir) => {
      const spawned = await local.client.call<SpawnResult>(local.spawner, {
        method: "POST",
        path: "/v1/spawn",
        body: { role: "queue" },
      });
      const before = (await local.registry.get(spawned.id))!.record;
      await Deno.remove(join(dir, `queue-${before.id}.db`));
      Deno.kill(before.pid, "SIGKILL");
      await eventually(async () => {
        const r = (await local.registry.get(before.id))!.record;
        return r.state === "LOST" ? r : undefined;
      }, { timeoutMs: 30_000 });
      const history = (await local.registry.get(before.id))!.transitions;
      assert.ok(
        history.some((t) => t.to === "FAILED" && /exit 79/.test(t.reason)),
        JSON.stringify(history),
      );
      const queues = (await local.registry.list()).filter((r) => r.role === "queue");
      assert.deepEqual(queues.map((r) => r.id), [before.id], "propagate: no fresh queue");
    }, { heartbeatMs: 500 });
  },
});

Deno.test({
  name:
    "queueRole exits 79 and is LOST, not restarted forever, when its store is garbage on restart",
  fn: async () => {
    await withLocalFabric(async (local, dir) => {
      const spawned = await local.client.call<SpawnResult>(local.spawner, {
        method: "POST",
        path: "/v1/spawn",
        body: { role: "queue" },
      });
      const before = (await local.registry.get(spawned.id))!.record;
      const queue = new QueueClient(local.client, { id: before.id, url: before.endpoint });
      await queue.put("jobs", "lost");
      // Frozen first, so that it writes nothing over the garbage before it dies.
      Deno.kill(before.pid, "SIGSTOP");
      const path = join(dir, `queue-${before.id}.db`);
      for (const suffix of ["", "-wal", "-shm"]) {
        await Deno.writeFile(path + suffix, crypto.getRandomValues(new Uint8Array(8192)));
      }
      const garbage = await Deno.readFile(path);
      Deno.kill(before.pid, "SIGKILL");
      await eventually(async () => {
        const r = (await local.registry.get(before.id))!.record;
        return r.state === "LOST" ? r : undefined;
      }, { timeoutMs: 30_000 });
      const history = (await local.registry.get(before.id))!.transitions;
      assert.ok(
        history.some((t) => t.to === "FAILED" && /exit 79/.test(t.reason)),
        JSON.stringify(history),
      );
      assert.deepEqual(await Deno.readFile(path), garbage, "the store is left as it was");
      const log = await Deno.readTextFile(join(dir, "logs", `${before.id}.log`));
      assert.match(log, /is not a SQLite database/);
      assert.match(log, new RegExp(`fabricd forget ${before.id}`));
    }, { heartbeatMs: 500 });
  },
});

Deno.test({
  name:
    "fabricd task submit stores a task once when the same ID is sent again across a SIGKILL and restart of the queue",
  fn: async () => {
    await withLocalFabric(async (local, dir) => {
      const spawned = await local.client.call<SpawnResult>(local.spawner, {
        method: "POST",
        path: "/v1/spawn",
        body: { role: "queue" },
      });
      const fabric = join(dir, "fabric.yaml");
      const submit = (id: string) =>
        runFabricd(["task", "submit", "--fabric", fabric, "--json", "--id", id, "--", "/bin/true"]);
      const first = await submit("tsk-once");
      assert.equal(first.code, 0, first.stderr);
      assert.deepEqual(JSON.parse(first.stdout), { id: "tsk-once" });

      const before = (await local.registry.get(spawned.id))!.record;
      Deno.kill(before.pid, "SIGKILL");
      // Sent while the queue is dead and restarting: both retry until it is back.
      const [again, during] = await Promise.all([submit("tsk-once"), submit("tsk-during")]);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(JSON.parse(again.stdout), { id: "tsk-once", duplicate: true });
      assert.equal(during.code, 0, during.stderr);
      assert.deepEqual(JSON.parse(during.stdout), { id: "tsk-during" });

      const after = await eventually(async () => {
        const r = (await local.registry.get(spawned.id))!.record;
        return r.state === "ALIVE" && r.incarnation === before.incarnation + 1 ? r : undefined;
      }, { timeoutMs: 30_000 });
      const queue = new QueueClient(local.client, { id: after.id, url: after.endpoint });
      const messages = await queue.get("tasks", { max: 10 });
      assert.deepEqual(
        messages.map((m) => (m.payload as { id: string }).id).sort(),
        ["tsk-during", "tsk-once"],
        "each task is stored once",
      );
      const bad = await submit("not a task id");
      assert.equal(bad.code, 64, bad.stderr);
    }, { heartbeatMs: 500 });
  },
});
