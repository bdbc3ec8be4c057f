/**
 * Every service relays along the spawn tree (docs/protocol.md 5.5): a service
 * spawned by a spawner below a bridge is reached through the bridge and then
 * through that spawner (real processes, local only).
 */
import assert from "node:assert/strict";
import { targetFor } from "../../src/client/route.ts";
import type { LocalFabric } from "../../src/cli/local_fabric.ts";
import type { ServiceRecord, ServiceStatus, SpawnResult } from "../../src/types/mod.ts";
import { withLocalFabric } from "./_fabric.ts";

/** Spawns `role` below `parent`, reached as a client at the root reaches it. */
async function spawnBelow(
  local: LocalFabric,
  parent: ServiceRecord,
  role: string,
): Promise<ServiceRecord> {
  const records = await local.registry.list();
  const result = await local.client.call<SpawnResult>(targetFor(parent, records), {
    method: "POST",
    path: "/v1/spawn",
    body: { role },
  });
  return (await local.registry.get(result.id))!.record;
}

Deno.test("a queue spawned by a spawner below a bridge answers through the bridge and the spawner", async () => {
  await withLocalFabric(async (local) => {
    const root = (await local.registry.get(local.spawner.id))!.record;
    const bridge = await spawnBelow(local, root, "bridge");
    const spawner = await spawnBelow(local, bridge, "spawner");
    const queue = await spawnBelow(local, spawner, "queue");
    assert.deepEqual(queue.route, [root.id, bridge.id, spawner.id, queue.id]);
    const target = targetFor(queue, await local.registry.list());
    assert.equal(target.url, bridge.endpoint, "the request goes to the first bridge");
    const status = await local.client.call<ServiceStatus>(target, {
      method: "GET",
      path: "/v1/status",
    });
    assert.equal(status.id, queue.id);
    assert.equal(status.state, "ALIVE");
  });
});
