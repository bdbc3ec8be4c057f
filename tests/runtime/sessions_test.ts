import assert from "node:assert/strict";
import { FabricRequestError } from "../../src/client/fabric_client.ts";
import type { RegistryClient } from "../../src/client/registry_client.ts";
import { Sessions } from "../../src/runtime/sessions.ts";
import { TooManySessionsError } from "../../src/registry/store.ts";
import { MAX_SESSIONS } from "../../src/types/service_record.ts";
import { fakeRegistry } from "../_fake_registry.ts";
import { serviceRecord } from "../_fixtures.ts";

const ID = "que-00000001";

function sessionsWith(sessions: string[] = []) {
  const fake = fakeRegistry([serviceRecord(ID, { role: "queue", sessions })]);
  return { fake, sessions: new Sessions(ID, () => fake.client) };
}

Deno.test("Sessions.open() records the session on the service's registry record, then serves it", async () => {
  const { fake, sessions } = sessionsWith();
  assert.deepEqual(await sessions.open("beta"), ["beta"]);
  assert.deepEqual(await sessions.open("alpha"), ["alpha", "beta"], "sorted");
  assert.ok(sessions.has("alpha"));
  assert.deepEqual(fake.callsOf("setSession").map((c) => c.args), [
    [ID, "beta", true],
    [ID, "alpha", true],
  ]);
  assert.deepEqual(fake.records.get(ID)?.sessions, ["alpha", "beta"]);
});

Deno.test("Sessions.open() does not serve a session the registry did not record", async () => {
  const { fake, sessions } = sessionsWith();
  fake.failing.set("setSession", new FabricRequestError("registry away", 0));
  await assert.rejects(sessions.open("alpha"), FabricRequestError);
  assert.equal(sessions.has("alpha"), false);
  assert.deepEqual(sessions.list(), []);
});

Deno.test("Sessions.close() removes the session from the registry record and stops serving it", async () => {
  const { fake, sessions } = sessionsWith(["alpha", "beta"]);
  sessions.adopt(["alpha", "beta"]);
  assert.deepEqual(await sessions.close("alpha"), ["beta"]);
  assert.equal(sessions.has("alpha"), false);
  assert.deepEqual(fake.callsOf("setSession").map((c) => c.args), [[ID, "alpha", false]]);
  assert.deepEqual(fake.records.get(ID)?.sessions, ["beta"]);
});

Deno.test("Sessions.close() keeps serving a session the registry could not remove", async () => {
  const { fake, sessions } = sessionsWith(["alpha"]);
  sessions.adopt(["alpha"]);
  fake.failing.set("setSession", new FabricRequestError("registry away", 0));
  await assert.rejects(sessions.close("alpha"), FabricRequestError);
  assert.ok(sessions.has("alpha"));
});

Deno.test("Sessions.adopt() serves sessions without asking the registry, which is looked up only to open one", async () => {
  let asked = 0;
  const fake = fakeRegistry([serviceRecord(ID, { role: "queue" })]);
  // A service builds its Sessions before it holds the keys to reach the registry.
  const sessions = new Sessions(ID, (): RegistryClient => {
    asked++;
    return fake.client;
  });
  sessions.adopt(["zeta", "alpha", "zeta"]);
  assert.deepEqual(sessions.list(), ["alpha", "zeta"]);
  assert.ok(sessions.has("zeta"));
  assert.equal(asked, 0);
  assert.equal(fake.calls.length, 0);
  await sessions.open("beta");
  assert.equal(asked, 1);
});

Deno.test("Sessions.open() refuses a session past MAX_SESSIONS with 409 before asking the registry", async () => {
  const many = Array.from({ length: MAX_SESSIONS }, (_, i) => `s${i}`);
  const { fake, sessions } = sessionsWith(many);
  sessions.adopt(many);
  await assert.rejects(
    sessions.open("one-more"),
    (e) => e instanceof TooManySessionsError && e.httpStatus === 409,
  );
  assert.deepEqual(fake.callsOf("setSession"), [], "the registry is not asked");
  assert.deepEqual(await sessions.open("s1"), sessions.list(), "one it serves already is fine");
});
