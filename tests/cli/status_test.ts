import assert from "node:assert/strict";
import { renderTree } from "../../src/cli/status.ts";
import type { ServiceRecord } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";

function rec(id: string, parent: string, patch: Partial<ServiceRecord> = {}): ServiceRecord {
  return serviceRecord(id, {
    host: "node1",
    pid: 10,
    endpoint: "",
    parent,
    route: [],
    lastHeartbeat: 1000,
    started: 0,
    updated: 0,
    ...patch,
  });
}

Deno.test("renderTree() draws children under their parent with state and heartbeat age", () => {
  const text = renderTree([
    rec("reg-1", "", { role: "registry" }),
    rec("spw-1", ""),
    rec("spw-2", "spw-1"),
    rec("spw-3", "spw-2", { state: "SUSPECT" }),
    rec("spw-4", "spw-1", { lastHeartbeat: 0 }),
  ], 3500);
  const lines = text.split("\n");
  assert.match(lines[0]!, /^SERVICE\s+ROLE\s+HOST\s+PID\s+STATE\s+INC\s+HEARTBEAT$/);
  assert.match(lines[3]!, /^├─ spw-2 /);
  assert.match(lines[4]!, /^│ {2}└─ spw-3 .* SUSPECT .* 2\.5s ago$/);
  assert.match(lines[5]!, /^└─ spw-4 .* -$/);
});

Deno.test("renderTree() says so when there is nothing to show", () => {
  assert.equal(renderTree([], 0), "No services in the registry.");
});

Deno.test("renderTree() marks services behind a dead bridge as unreachable", () => {
  const text = renderTree([
    rec("spw-1", "", { route: ["spw-1"] }),
    rec("brg-1", "spw-1", { role: "bridge", state: "DEAD", route: ["spw-1", "brg-1"] }),
    rec("spw-2", "brg-1", { route: ["spw-1", "brg-1", "spw-2"] }),
  ], 3500);
  assert.match(text.split("\n")[3]!, /spw-2 .* ALIVE .* unreachable: brg-1 DEAD$/);
  assert.doesNotMatch(text.split("\n")[1]!, /unreachable/);
});
