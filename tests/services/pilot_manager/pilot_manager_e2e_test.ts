/**
 * The pilot manager as real processes on a local fabric: pilots submitted
 * with `fabricd pilot submit` become agents that run tasks through a queue
 * and a pub/sub below the manager; `fabricd pilot cancel` stops one.
 * (The same on a real Slurm: tests/e2e/slurm_pilots_test.ts.)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Pilot } from "../../../src/services/pilot_manager/pilots.ts";
import type { SpawnResult } from "../../../src/types/mod.ts";
import { runFabricd, withLocalFabric } from "../../e2e/_fabric.ts";
import { eventually } from "../../_eventually.ts";

Deno.test({
  name: "fabricd pilot submit|list|cancel drives agents through a pilot manager",
  fn: async () => {
    await withLocalFabric(async (local, dir) => {
      const env = { FABRIC_FILE: join(dir, "fabric.yaml") };
      const call = <T>(via: { id: string; url: string }, path: string, body: unknown) =>
        local.client.call<T>(via, { method: "POST", path, body }, { timeoutMs: 60_000 });
      const manager = await call<SpawnResult>(local.spawner, "/v1/spawn", {
        role: "pilot-manager",
        options: { on: "local://", policy: "report" },
      });
      const managerTarget = { id: manager.id, url: manager.endpoint };
      await call(managerTarget, "/v1/spawn", { role: "queue" });
      await call(managerTarget, "/v1/spawn", { role: "pubsub" });

      const bad = await runFabricd(["pilot", "submit", "--walltime", "soon"], { env });
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /walltime/);

      const submitted = await runFabricd(["pilot", "submit", "--cores", "1", "--json"], { env });
      assert.equal(submitted.code, 0, submitted.stderr);
      const [pilot] = (JSON.parse(submitted.stdout) as { pilots: Pilot[] }).pilots;
      assert.match(pilot!.id, /^agt-/);

      const running = await eventually(async () => {
        const out = await runFabricd(["pilot", "list", "--json"], { env });
        const found = (JSON.parse(out.stdout) as { pilots: Pilot[] }).pilots[0];
        return found?.state === "RUNNING" && found.service === "ALIVE" ? found : undefined;
      }, { timeoutMs: 30_000 });
      assert.equal(running.id, pilot!.id);

      const task = await runFabricd(["task", "submit", "--wait", "--", "/bin/echo", "pilot"], {
        env,
      });
      assert.equal(task.code, 0, task.stderr);
      assert.match(task.stdout, new RegExp(`DONE on ${pilot!.id}`));

      const cancelled = await runFabricd(["pilot", "cancel", pilot!.id], { env });
      assert.equal(cancelled.code, 0, cancelled.stderr);
      assert.match(cancelled.stdout, /CANCELED/);
      await eventually(async () => {
        const found = await local.registry.get(pilot!.id);
        return found?.record.state === "STOPPED";
      }, { timeoutMs: 15_000 });

      const elsewhere = await call<SpawnResult>(local.spawner, "/v1/spawn", { role: "queue" });
      const refused = await runFabricd(["pilot", "submit", "--queue", elsewhere.id], { env });
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, new RegExp(`not below pilot manager "${manager.id}"`));

      const unknown = await runFabricd(["pilot", "cancel", "agt-00000000"], { env });
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /No pilot "agt-00000000"/);
    });
  },
});
