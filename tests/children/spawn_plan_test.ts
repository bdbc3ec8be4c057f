import assert from "node:assert/strict";
import type { RegistryClient } from "../../src/client/registry_client.ts";
import { restartPlan } from "../../src/children/spawn_plan.ts";
import { serviceRecord } from "../_fixtures.ts";

Deno.test("restartPlan() begins the next incarnation without the old one's exit report", async () => {
  const old = serviceRecord("agt-0000dead", {
    state: "DEAD",
    exited: true,
    parent: "spw-00000001",
    route: ["spw-00000001", "agt-0000dead"],
  });
  const registry = {
    get: (id: string) =>
      Promise.resolve(id === old.id ? { record: old, transitions: [] } : undefined),
  };
  const plan = await restartPlan(old.id, {
    registry: registry as unknown as RegistryClient,
    self: { id: "spw-00000001", url: "http://127.0.0.1:1", route: ["spw-00000001"] },
  });
  assert.equal(plan.record.state, "RESTARTING");
  assert.equal(plan.record.incarnation, old.incarnation + 1);
  assert.ok(!("exited" in plan.record), "exited belongs to the incarnation that died");
});
