/**
 * Heartbeat aggregation on a local fabric (real processes, local only): a
 * bridge and two spawners below it, whose heartbeats go through the bridge.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { LocalFabric } from "../../src/cli/local_fabric.ts";
import type { ServiceRecord, SpawnResult } from "../../src/types/mod.ts";
import { eventually } from "../_eventually.ts";
import { killQuietly, withLocalFabric } from "./_fabric.ts";

const HEARTBEAT_MS = 500;
const TTL_MS = 3 * HEARTBEAT_MS;

async function spawnAt(
  local: LocalFabric,
  parent: { id: string; url: string },
  role: string,
): Promise<ServiceRecord> {
  const result = await local.client.call<SpawnResult>(parent, {
    method: "POST",
    path: "/v1/spawn",
    body: { role },
  });
  return (await local.registry.get(result.id))!.record;
}

Deno.test("a bridge aggregates its children's heartbeats: ALIVE through it, DEAD within the TTL, a replaced instance told", async () => {
  await withLocalFabric(async (local, dir) => {
    const bridge = await spawnAt(local, local.spawner, "bridge");
    const at = { id: bridge.id, url: bridge.endpoint };
    const a = await spawnAt(local, at, "spawner");
    const b = await spawnAt(local, at, "spawner");
    // Their heartbeats go to the bridge, which batches them to the registry.
    const log = await Deno.readTextFile(join(dir, "logs", `${a.id}.log`));
    assert.ok(
      log.includes(`Heartbeats go through \\"${bridge.id}\\"`),
      "beats go through the bridge",
    );
    const beat0 = (await local.registry.get(a.id))!.record.lastHeartbeat;
    await new Promise((r) => setTimeout(r, 4 * TTL_MS));
    for (const id of [a.id, b.id, bridge.id]) {
      const record = (await local.registry.get(id))!;
      assert.equal(record.record.state, "ALIVE", `${id} stays ALIVE`);
      assert.deepEqual(record.transitions.filter((t) => ["SUSPECT", "DEAD"].includes(t.to)), []);
    }
    assert.ok((await local.registry.get(a.id))!.record.lastHeartbeat > beat0);

    // A hung child (SIGSTOP) is left out of the batches: DEAD by TTL.
    Deno.kill(b.pid, "SIGSTOP");
    const stopped = Date.now();
    await eventually(async () => {
      const record = (await local.registry.get(b.id))!.record;
      assert.ok(["DEAD", "RESTARTING", "ALIVE"].includes(record.state) && record.incarnation >= 1);
      const history = (await local.registry.get(b.id))!.transitions;
      assert.ok(history.some((t) => t.to === "DEAD"), "declared DEAD");
      return true;
    }, { timeoutMs: 3 * TTL_MS });
    const dead = (await local.registry.get(b.id))!.transitions.find((t) => t.to === "DEAD")!;
    assert.ok(
      dead.at - stopped <= 1.3 * TTL_MS + 500,
      `DEAD ${dead.at - stopped} ms after the hang`,
    );

    // Its parent restarts it; the old instance, woken, is told it was replaced and exits.
    await eventually(async () => {
      const record = (await local.registry.get(b.id))!.record;
      assert.equal(record.state, "ALIVE");
      assert.ok(record.incarnation >= 2);
      return true;
    }, { timeoutMs: 20_000 });
    Deno.kill(b.pid, "SIGCONT");
    await eventually(() => {
      let gone = false;
      try {
        const stat = Deno.readTextFileSync(`/proc/${b.pid}/stat`);
        gone = stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
      } catch {
        gone = true;
      }
      assert.ok(gone, "the replaced instance exits");
      return true;
    }, { timeoutMs: 4 * HEARTBEAT_MS + 3000 });
    killQuietly(b.pid);
    const oldLog = await Deno.readTextFile(join(dir, "logs", `${b.id}.log`));
    assert.match(oldLog, /replaced or cut off/);
  }, { heartbeatMs: HEARTBEAT_MS });
});
