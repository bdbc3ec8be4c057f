/** `fabricd forget` and `status --prune` (issue 12, item 4): refusals are collected, not fatal. */
import assert from "node:assert/strict";
import { forgetRecords, reportForgotten } from "../../src/cli/forget.ts";
import { FabricRequestError } from "../../src/client/fabric_client.ts";
import { EXIT, type ServiceRecord } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";
import { join } from "node:path";
import { runFabricd, spawnLocal, withLocalFabric } from "../e2e/_fabric.ts";

/** A registry that holds `records` and refuses what the real one refuses. */
function fakeRegistry(records: ServiceRecord[]): { forget(id: string): Promise<ServiceRecord> } {
  const held = new Map(records.map((r) => [r.id, r]));
  return {
    forget(id) {
      const record = held.get(id);
      if (!record) {
        return Promise.reject(new FabricRequestError(`No service "${id}" in the registry`, 404));
      }
      if (!["STOPPED", "FAILED", "LOST"].includes(record.state)) {
        return Promise.reject(
          new FabricRequestError(`Service "${id}" is ${record.state}, not ended`, 409),
        );
      }
      held.delete(id);
      return Promise.resolve(record);
    },
  };
}

Deno.test("forgetRecords() forgets ended records and collects refusals of running or unknown ones", async () => {
  const registry = fakeRegistry([
    serviceRecord("spw-a", { state: "STOPPED" }),
    serviceRecord("spw-b", { state: "ALIVE" }),
    serviceRecord("spw-c", { state: "LOST" }),
  ]);
  const outcome = await forgetRecords(registry, ["spw-a", "spw-b", "spw-x", "spw-c"]);
  assert.deepEqual(outcome.forgotten.map((r) => r.id), ["spw-a", "spw-c"]);
  assert.deepEqual(outcome.refused.map((r) => r.id), ["spw-b", "spw-x"]);
  assert.match(outcome.refused[0]!.reason, /ALIVE, not ended/);
});

Deno.test("forgetRecords() stops at an unreachable registry", async () => {
  const registry = {
    forget: () => Promise.reject(new FabricRequestError("Cannot reach reg-1", 0)),
  };
  await assert.rejects(() => forgetRecords(registry, ["spw-a"]), FabricRequestError);
});

Deno.test("reportForgotten() exits 1 when any record was refused, else 0", () => {
  const quiet = { log: console.log, error: console.error };
  console.log = () => {};
  console.error = () => {};
  try {
    const forgotten = [serviceRecord("spw-a", { state: "STOPPED" })];
    assert.equal(reportForgotten({ forgotten, refused: [] }), EXIT.OK);
    assert.equal(
      reportForgotten({ forgotten, refused: [{ id: "spw-b", reason: "not ended" }] }),
      EXIT.FAILURE,
    );
  } finally {
    console.log = quiet.log;
    console.error = quiet.error;
  }
});

Deno.test("status --prune --json forgets only what the filters keep, and prints JSON alone on stdout", async () => {
  await withLocalFabric(async (local, dir) => {
    const fabric = join(dir, "fabric.yaml");
    const spawner = (await spawnLocal(local, "spawner")).id;
    const queue = (await spawnLocal(local, "queue")).id;
    for (const id of [spawner, queue]) {
      const out = await runFabricd(["stop", id, "--fabric", fabric]);
      assert.equal(out.code, 0, out.stderr);
    }
    const out = await runFabricd([
      "status",
      "--all",
      "--prune",
      "--role",
      "spawner",
      "--json",
      "--fabric",
      fabric,
    ]);
    assert.equal(out.code, 0, out.stderr);
    const shown = (JSON.parse(out.stdout) as { services: { id: string }[] }).services;
    assert.ok(!shown.some((r) => r.id === spawner), "the stopped spawner is forgotten");
    assert.match(out.stderr, new RegExp(`forgot ${spawner} \\(spawner, STOPPED\\)`));
    assert.equal((await local.registry.get(queue))?.record.state, "STOPPED", "not a spawner: kept");
  });
});
