import assert from "node:assert/strict";
import type { Signer } from "../../src/crypto/certificate.ts";
import { refuseChange, refusePut, refuseReport } from "../../src/registry/authority.ts";
import type { ServiceRecord } from "../../src/types/mod.ts";

function service(id: string, route: string[], incarnation = 1, peers: string[] = []): Signer {
  return {
    kind: "service",
    id,
    role: "spawner",
    incarnation,
    route,
    peers,
    x25519: "",
    key: "",
    expires: 9e9,
  };
}

function record(id: string, route: string[], incarnation = 1): ServiceRecord {
  return {
    id,
    role: "spawner",
    state: "ALIVE",
    incarnation,
    host: "h",
    pid: 1,
    endpoint: "http://127.0.0.1:1",
    parent: route.at(-2) ?? "",
    route,
    launcher: "local://",
    imageHash: "",
    sessions: [],
    started: 0,
    lastHeartbeat: 0,
    restarts: 0,
    lastFailure: "",
    updated: 0,
    options: {},
  };
}

const bridge = service("brg-2", ["spn-1", "brg-2"]);

Deno.test("refusePut(): a service records only its own children, and writes its own and its descendants' records", () => {
  assert.equal(refusePut(bridge, undefined, record("spn-3", ["spn-1", "brg-2", "spn-3"])), null);
  assert.match(refusePut(bridge, undefined, record("spn-3", ["spn-1", "spn-3"]))!, /registry-new/);
  const root = record("spn-1", ["spn-1"]);
  assert.match(refusePut(bridge, root, { ...root, incarnation: 2 })!, /registry-subtree/);
  const own = record("brg-2", ["spn-1", "brg-2"]);
  assert.equal(refusePut(bridge, own, own), null);
  assert.match(refusePut(bridge, own, { ...own, incarnation: 2 })!, /registry-self/);
  const child = record("spn-3", ["spn-1", "brg-2", "spn-3"]);
  assert.match(
    refusePut(bridge, child, { ...child, route: ["spn-1", "spn-3"], parent: "spn-1" })!,
    /registry-place/,
  );
  assert.equal(refusePut({ kind: "operator" }, root, { ...root, incarnation: 2 }), null);
});

Deno.test("refuseChange() and refuseReport(): transitions and beats for the subtree, reports by ancestors and peers", () => {
  const child = record("spn-3", ["spn-1", "brg-2", "spn-3"]);
  assert.equal(refuseChange(bridge, child, 1), null);
  assert.match(refuseChange(service("spn-9", ["spn-1", "spn-9"]), child, 1)!, /registry-subtree/);
  assert.match(
    refuseChange(
      service("spn-3", ["spn-1", "brg-2", "spn-3"], 1),
      record("spn-3", child.route, 2),
      2,
    )!,
    /registry-self/,
  );
  assert.equal(refuseReport(service("agt-5", ["spn-1", "agt-5"], 1, ["spn-3"]), child), null);
  assert.match(refuseReport(service("agt-6", ["spn-1", "agt-6"]), child)!, /registry-report/);
});

Deno.test("refusePut() lets an ancestor adopt the child of a lost service under itself, and nobody else move a record", () => {
  const orphan = record("agt-4", ["spn-1", "brg-2", "spn-3", "agt-4"]);
  const adopted = { ...orphan, parent: "brg-2", route: ["spn-1", "brg-2", "agt-4"] };
  assert.equal(refusePut(bridge, orphan, adopted), null);
  const stranger = service("brg-9", ["spn-1", "brg-9"]);
  const stolen = { ...orphan, parent: "brg-9", route: ["spn-1", "brg-9", "agt-4"] };
  assert.match(refusePut(stranger, orphan, stolen)!, /registry-place/);
});
