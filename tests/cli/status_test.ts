import assert from "node:assert/strict";
import { renderTree, shortFailure } from "../../src/cli/status_tree.ts";
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
  assert.match(
    lines[0]!,
    /^SERVICE\s+ROLE\s+HOST\s+PID\s+STATE\s+INC\s+UPTIME\s+RESTARTS\s+HEARTBEAT\s+LAST FAILURE$/,
  );
  assert.match(lines[3]!, /^├─ spw-2 /);
  assert.match(lines[4]!, /^│ {2}└─ spw-3 .* SUSPECT .* 2\.5s ago +-$/);
  assert.match(lines[5]!, /^└─ spw-4 .* - +-$/);
});

Deno.test("renderTree() shows uptime of running services, restarts and the last failure shortened", () => {
  const failure = "process exited with code 137 (killed by SIGKILL) while the fabric was busy";
  const text = renderTree([
    rec("spw-1", "", { started: 1000, restarts: 2, lastFailure: failure, state: "ALIVE" }),
    rec("spw-2", "spw-1", { started: 1000, state: "STOPPED", lastFailure: "" }),
  ], 1000 + 185_000);
  const [header, first, second] = text.split("\n");
  const column = (name: string): number => header!.indexOf(name);
  assert.equal(first!.slice(column("UPTIME")).split(/\s+/)[0], "3m");
  assert.equal(first!.slice(column("RESTARTS")).split(/\s+/)[0], "2");
  assert.equal(first!.slice(column("LAST FAILURE")), shortFailure(failure));
  assert.equal(
    second!.slice(column("UPTIME")).split(/\s+/)[0],
    "-",
    "a stopped service has no uptime",
  );
  assert.equal(second!.slice(column("LAST FAILURE")), "-");
});

Deno.test("shortFailure() keeps one line of at most 40 characters", () => {
  assert.equal(shortFailure(""), "-");
  assert.equal(shortFailure("exit 1\n  at main"), "exit 1 at main");
  const long = shortFailure("x".repeat(100));
  assert.equal([...long].length, 40);
  assert.ok(long.endsWith("…"));
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

Deno.test("renderTree() marks a service behind a bridge that is not shown (STOPPED) as unreachable", () => {
  const all = [
    rec("spw-1", "", { route: ["spw-1"] }),
    rec("brg-1", "spw-1", { role: "bridge", state: "STOPPED", route: ["spw-1", "brg-1"] }),
    rec("que-1", "brg-1", { role: "queue", route: ["spw-1", "brg-1", "que-1"] }),
  ];
  const text = renderTree(all.filter((r) => r.state !== "STOPPED"), 3500, all);
  assert.match(text, /que-1 .* ALIVE .* unreachable: brg-1 STOPPED$/m);
});

Deno.test("renderTree() marks only what a request passes through: from the first bridge down", () => {
  const text = renderTree([
    rec("spw-1", "", { route: ["spw-1"] }),
    rec("spw-2", "spw-1", { state: "DEAD", route: ["spw-1", "spw-2"] }),
    rec("que-1", "spw-2", { role: "queue", route: ["spw-1", "spw-2", "que-1"] }),
    rec("brg-1", "spw-2", { role: "bridge", route: ["spw-1", "spw-2", "brg-1"] }),
    rec("spw-3", "brg-1", { state: "DEAD", route: ["spw-1", "spw-2", "brg-1", "spw-3"] }),
    rec("agt-1", "spw-3", { role: "agent", route: ["spw-1", "spw-2", "brg-1", "spw-3", "agt-1"] }),
  ], 3500);
  const line = (id: string) => text.split("\n").find((l) => l.includes(id))!;
  // Called directly: a dead spawner above it is not on the way.
  assert.doesNotMatch(line("que-1"), /unreachable/);
  assert.doesNotMatch(line("brg-1 "), /unreachable/);
  // Below a bridge, every hop from it down relays.
  assert.match(line("agt-1"), /unreachable: spw-3 DEAD$/);
});
