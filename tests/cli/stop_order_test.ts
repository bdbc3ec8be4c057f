import assert from "node:assert/strict";
import { stopOrder } from "../../src/cli/stop_services.ts";
import { subtreeIds } from "../../src/registry/record_filter.ts";
import type { Role, ServiceRecord } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";

function rec(id: string, role: Role, route: string[]): ServiceRecord {
  return serviceRecord(id, { role, route, parent: route.at(-2) ?? "" });
}

// reg and spw are roots; a pilot manager under spw relays for a queue and an
// agent below it; a bridge relays for a spawner with an agent.
const FABRIC = [
  rec("reg", "registry", ["reg"]),
  rec("spw", "spawner", ["spw"]),
  rec("que", "queue", ["spw", "que"]),
  rec("pub", "pubsub", ["spw", "pub"]),
  rec("agt", "agent", ["spw", "agt"]),
  rec("plm", "pilot-manager", ["spw", "plm"]),
  rec("plq", "queue", ["spw", "plm", "plq"]),
  rec("pla", "agent", ["spw", "plm", "pla"]),
  rec("brg", "bridge", ["spw", "brg"]),
  rec("spw2", "spawner", ["spw", "brg", "spw2"]),
  rec("agt2", "agent", ["spw", "brg", "spw2", "agt2"]),
];

Deno.test("stopOrder() stops agents, then queues and pub/subs, then spawners and bridges, the registry last", () => {
  const order = stopOrder(FABRIC).map((group) => group.map((r) => r.id).sort());
  const position = (id: string): number => order.findIndex((group) => group.includes(id));
  for (const agent of ["agt", "pla", "agt2"]) {
    for (const later of ["que", "pub", "plq", "spw", "spw2", "brg", "reg"]) {
      assert.ok(position(agent) < position(later), `${agent} before ${later}: ${order}`);
    }
  }
  for (const queue of ["que", "pub", "plq"]) {
    for (const later of ["spw", "spw2", "brg", "reg"]) {
      assert.ok(position(queue) < position(later), `${queue} before ${later}: ${order}`);
    }
  }
  assert.deepEqual(order.at(-1), ["reg"]);
});

Deno.test("stopOrder() never stops a relay before a service below it", () => {
  const order = stopOrder(FABRIC).map((group) => group.map((r) => r.id));
  const position = (id: string): number => order.findIndex((group) => group.includes(id));
  // The pilot manager is an agent-tier role but relays for its queue.
  assert.ok(position("plq") < position("plm"), `${order}`);
  assert.ok(position("spw2") < position("brg"), `${order}`);
  for (const r of FABRIC) {
    for (const above of r.route.slice(0, -1)) {
      assert.ok(position(r.id) < position(above), `${r.id} before ${above}: ${order}`);
    }
  }
});

Deno.test("subtreeIds() finds services and everything below them, and nothing else", () => {
  assert.deepEqual([...subtreeIds(FABRIC, ["brg"])].sort(), ["agt2", "brg", "spw2"]);
  assert.deepEqual([...subtreeIds(FABRIC, ["agt"])], ["agt"]);
  assert.deepEqual([...subtreeIds(FABRIC, ["agt", "brg"])].sort(), ["agt", "agt2", "brg", "spw2"]);
  assert.deepEqual([...subtreeIds(FABRIC, ["nope"])], ["nope"]);
});
