/**
 * An attacker that holds a compute node's kind of identity: a valid chain from
 * the fabric root down a subtree of its own (root -> a bridge -> a compute
 * node), and that node's key. Run on the desktop of the test network by
 * `ssh_fabric_test.ts`: `deno run -A _attacker.ts FABRIC_FILE TARGET_ID`.
 * Prints one JSON line: the HTTP status of each attempt on TARGET (reached
 * through the bridges on its route) and on the registry.
 */
import { loadContext } from "../../src/cli/context.ts";
import { FabricClient } from "../../src/client/fabric_client.ts";
import { targetFor } from "../../src/client/route.ts";
import { mintNodeIdentity, statusOf } from "./_identities.ts";

const [fabricPath, targetId] = Deno.args;
const context = await loadContext(fabricPath);
const records = await context.registry.list();
const root = records.find((r) => r.parent === "" && r.role === "spawner")!;
const attacker = new FabricClient(await mintNodeIdentity(context.keys, root.id));
const target = records.find((r) => r.id === targetId)!;
const via = targetFor(target, records);
const registry = records.find((r) => r.role === "registry")!;

console.log(JSON.stringify({
  spawn: await statusOf(
    attacker.call(via, { method: "POST", path: "/v1/spawn", body: { role: "spawner" } }),
  ),
  stop: await statusOf(
    attacker.call(via, { method: "POST", path: "/v1/stop", body: { reason: "evicted" } }),
  ),
  rewrite: await statusOf(attacker.call(targetFor(registry, records), {
    method: "PUT",
    path: `/v1/registry/services/${target.id}`,
    body: { record: { ...target, endpoint: "http://127.0.0.1:9" }, reason: "taken over" },
  })),
  read: await statusOf(attacker.call(via, { method: "GET", path: "/v1/status" })),
}));
