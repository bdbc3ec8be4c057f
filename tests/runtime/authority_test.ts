import assert from "node:assert/strict";
import type { Signer } from "../../src/crypto/certificate.ts";
import { serviceRule } from "../../src/runtime/authority.ts";

function service(id: string, route: string[], peers: string[] = []): Signer {
  return {
    kind: "service",
    id,
    role: "spawner",
    incarnation: 1,
    route,
    peers,
    x25519: "",
    key: "",
    expires: 9e9,
  };
}

// The service under test: brg-2 below the root spawner spn-1.
const rule = serviceRule({
  id: "brg-2",
  route: () => ["spn-1", "brg-2"],
  parentRoute: () => ["spn-1"],
});
const post = (path: string) => ({ method: "POST", path });

Deno.test("serviceRule() lets the operator and ancestors manage a service, and nobody else", () => {
  assert.equal(rule({ kind: "operator" }, post("/v1/spawn")), null);
  assert.equal(rule(service("spn-1", ["spn-1"]), post("/v1/spawn")), null);
  assert.equal(rule(service("brg-2", ["spn-1", "brg-2"]), post("/v1/stop")), null, "itself");
  const sibling = service("spn-3", ["spn-1", "spn-3"]);
  assert.match(rule(sibling, post("/v1/spawn"))!, /rule "subtree"/);
  assert.match(rule(sibling, post("/v1/connect"))!, /rule "subtree"/);
  const child = service("spn-4", ["spn-1", "brg-2", "spn-4"]);
  assert.match(
    rule(child, post("/v1/stop"))!,
    /rule "subtree"/,
    "a child does not manage its parent",
  );
});

Deno.test("serviceRule() lets only the parent configure, any member read, and direct children beat to an aggregator", () => {
  assert.equal(rule(service("spn-1", ["spn-1"]), post("/v1/configure")), null);
  assert.match(
    rule(service("spn-3", ["spn-1", "spn-3"]), post("/v1/configure"))!,
    /rule "configure"/,
  );
  const stranger = service("agt-9", ["spn-1", "spn-3", "agt-9"]);
  assert.equal(rule(stranger, { method: "GET", path: "/v1/status" }), null);
  assert.equal(rule(stranger, { method: "GET", path: "/v1/registry/services" }), null);
  assert.equal(rule(stranger, post("/v1/session")), null);
  assert.equal(rule(service("spn-4", ["spn-1", "brg-2", "spn-4"]), post("/v1/heartbeats")), null);
  assert.match(rule(stranger, post("/v1/heartbeats"))!, /rule "peers"/);
});

Deno.test("serviceRule() takes a ready report from a direct child only", () => {
  assert.equal(rule(service("spn-4", ["spn-1", "brg-2", "spn-4"]), post("/v1/ready")), null);
  for (
    const signer of [
      service("spn-3", ["spn-1", "spn-3"]), // a sibling
      service("spn-5", ["spn-1", "brg-2", "spn-4", "spn-5"]), // a grandchild
    ]
  ) {
    assert.match(
      rule(signer, post("/v1/ready"))!,
      /^Refused by rule "ready": only a child of "brg-2" reports ready to it, not spawner "spn-\d" \(incarnation 1\)$/,
    );
  }
});

Deno.test("serviceRule() lets certified peers use a role's routes, not its management routes", () => {
  const queue = serviceRule({
    id: "que-5",
    route: () => ["spn-1", "que-5"],
    parentRoute: () => ["spn-1"],
  });
  const agent = service("agt-6", ["spn-1", "brg-2", "agt-6"], ["que-5"]);
  assert.equal(queue(agent, post("/v1/queue/tasks/messages")), null);
  assert.match(queue(agent, post("/v1/stop"))!, /rule "subtree"/);
  assert.match(
    queue(service("agt-7", ["spn-1", "agt-7"]), post("/v1/queue/tasks/messages"))!,
    /rule "peers"/,
  );
});

Deno.test("serviceRule() does not let a certificate that borrows an ancestor's ID govern anything", () => {
  // A compromised spawner below brg-2 certified a child named "spn-1", the root's ID.
  const borrowed = service("spn-1", ["spn-0", "brg-2", "spn-7", "spn-1"]);
  const root = serviceRule({ id: "spn-1", route: () => ["spn-1"], parentRoute: () => [] });
  assert.match(root(borrowed, post("/v1/spawn"))!, /rule "subtree"/);
  assert.match(rule(borrowed, post("/v1/stop"))!, /rule "subtree"/);
  // The parent's ID, certified elsewhere in the tree, does not configure either.
  const parentName = service("spn-1", ["spn-0", "spn-3", "spn-1"]);
  assert.match(rule(parentName, post("/v1/configure"))!, /rule "configure"/);
  assert.match(
    root(parentName, post("/v1/configure"))!,
    /rule "configure"/,
    "a root has no parent",
  );
  const unplaced = serviceRule({ id: "brg-2", route: () => null, parentRoute: () => null });
  assert.match(unplaced(service("spn-1", ["spn-1"]), post("/v1/configure"))!, /rule "configure"/);
});
