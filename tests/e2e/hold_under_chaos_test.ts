/**
 * Issue 18 ("Hold under chaos") on a local fabric of real processes: a
 * registry frozen for several TTLs declares nobody dead; a replaced agent
 * stops, tasks and all, within the bound; heartbeats sent before a death
 * never revive the dead instance.
 */
import assert from "node:assert/strict";
import type { LocalFabric } from "../../src/cli/local_fabric.ts";
import type { ServiceRecord, SpawnResult } from "../../src/types/mod.ts";
import { eventually, withLocalFabric } from "./_fabric.ts";

const HEARTBEAT_MS = 500; // TTL 1.5 s

async function spawn(
  local: LocalFabric,
  role: string,
  options: Record<string, string> = {},
): Promise<ServiceRecord> {
  const result = await local.client.call<SpawnResult>(local.spawner, {
    method: "POST",
    path: "/v1/spawn",
    body: { role, options },
  });
  return (await local.registry.get(result.id))!.record;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test("a registry frozen with SIGSTOP for 3 TTLs declares no service DEAD when it resumes", async () => {
  await withLocalFabric(async (local) => {
    const services = [await spawn(local, "spawner"), await spawn(local, "spawner")];
    const registry = (await local.registry.list()).find((r) => r.role === "registry")!;
    const seqBefore = Math.max(
      ...(await Promise.all(
        (await local.registry.list()).map(async (r) =>
          Math.max(0, ...(await local.registry.get(r.id))!.transitions.map((t) => t.seq))
        ),
      )),
    );
    Deno.kill(registry.pid, "SIGSTOP");
    try {
      await sleep(3 * 3 * HEARTBEAT_MS);
    } finally {
      Deno.kill(registry.pid, "SIGCONT");
    }
    // Well past a full TTL of grace after the resume.
    await sleep(4 * 3 * HEARTBEAT_MS);
    const all = await local.registry.list();
    for (const record of all) {
      const after = (await local.registry.get(record.id))!.transitions.filter((t) =>
        t.seq > seqBefore
      );
      assert.ok(
        !after.some((t) => t.to === "DEAD"),
        `${record.id} was declared DEAD: ${JSON.stringify(after)}`,
      );
      assert.equal(record.state, "ALIVE", record.id);
      assert.equal(record.incarnation, 1, `${record.id} was not restarted`);
    }
    assert.ok(services.every((s) => all.some((r) => r.id === s.id)));
  }, { heartbeatMs: HEARTBEAT_MS });
});
