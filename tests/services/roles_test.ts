import assert from "node:assert/strict";
import { BUILT_ROLES, ROLES } from "../../src/types/mod.ts";
import { loadRole, replacementOf, ROLE_TABLE } from "../../src/services/roles.ts";

Deno.test("ROLE_TABLE has an entry for every built role and none for the others", () => {
  for (const role of ROLES) {
    assert.equal(ROLE_TABLE[role] !== undefined, BUILT_ROLES.includes(role), role);
  }
});

Deno.test("loadRole() loads each built role's module, whose policy is the table's", async () => {
  for (const role of BUILT_ROLES) {
    const module = await loadRole(role);
    assert.ok(module, `${role} loads`);
    assert.equal(typeof module.start, "function", `${role} has start()`);
    assert.equal(module.replacement, replacementOf(role), `${role}'s replacement policy`);
  }
});

Deno.test("loadRole() answers the same module on a second call", async () => {
  assert.equal(await loadRole("queue"), await loadRole("queue"));
});

Deno.test("replacementOf() knows the policies without loading: queues propagate, agents are fresh", () => {
  assert.equal(replacementOf("queue"), "propagate");
  assert.equal(replacementOf("registry"), "propagate");
  assert.equal(replacementOf("agent"), "fresh");
  assert.equal(replacementOf("pilot-manager"), "fresh");
});
