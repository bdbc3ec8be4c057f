import assert from "node:assert/strict";
import { FabricRequestError } from "../../src/client/fabric_client.ts";
import { aliveRecord, type RecordFacts, Registration } from "../../src/health/registration.ts";
import type { ServiceRecord } from "../../src/types/mod.ts";
import { eventually } from "../_eventually.ts";
import { fakeRegistry } from "../_fake_registry.ts";
import { serviceRecord } from "../_fixtures.ts";

const CHILD = "que-00000001";
const ROOT = "reg-00000001";

function childFacts(patch: Partial<RecordFacts> = {}): RecordFacts {
  return {
    id: CHILD,
    role: "queue",
    host: "node-1",
    instance: "inst-new",
    endpoint: "http://127.0.0.1:7801",
    parent: "spw-parent01",
    route: ["spw-parent01", CHILD],
    launcher: "ssh://node-1",
    incarnation: 1,
    options: { store: "memory" },
    sessions: ["s1"],
    started: 1_000,
    ...patch,
  };
}

function rootFacts(patch: Partial<RecordFacts> = {}): RecordFacts {
  return childFacts({
    id: ROOT,
    role: "registry",
    parent: "",
    route: [ROOT],
    launcher: "local://",
    incarnation: 1,
    ...patch,
  });
}

function oldRecord(id: string, patch: Partial<ServiceRecord>): ServiceRecord {
  return serviceRecord(id, {
    imageHash: "sha256-old",
    lastFailure: "process exited with code 137",
    restarts: 2,
    instance: "inst-old",
    ...patch,
  });
}

Deno.test("Registration.register() writes a new child's ALIVE record at the spawner's incarnation and lists nothing", async () => {
  const fake = fakeRegistry();
  const registration = new Registration(fake.client);
  const before = Date.now();
  const { record, records } = await registration.register(childFacts(), "configured");
  const after = Date.now();
  assert.equal(record.state, "ALIVE");
  assert.equal(record.incarnation, 1);
  assert.equal(record.pid, Deno.pid);
  assert.equal(record.instance, "inst-new");
  assert.equal(record.endpoint, "http://127.0.0.1:7801");
  assert.deepEqual(record.sessions, ["s1"]);
  assert.equal(record.restarts, 0);
  assert.equal(record.imageHash, "");
  assert.ok(record.lastHeartbeat >= before && record.lastHeartbeat <= after);
  assert.deepEqual(records, [], "no old record: nothing to take over");
  assert.equal(fake.callsOf("list").length, 0);
  assert.deepEqual(fake.callsOf("put").map((c) => c.args[1]), ["configured"]);
  assert.equal(registration.incarnation, 1);
});

Deno.test("Registration.register() keeps a restarted child's recorded incarnation, with no transition, and counts its restart once", async () => {
  const other = serviceRecord("spw-parent01");
  // The spawner recorded incarnation 3 RESTARTING and counted the restart.
  const fake = fakeRegistry([oldRecord(CHILD, { state: "RESTARTING", incarnation: 3 }), other]);
  const registration = new Registration(fake.client);
  const { record, records } = await registration.register(childFacts({ incarnation: 3 }), "r");
  assert.equal(record.incarnation, 3);
  assert.equal(record.restarts, 2, "the incarnation did not go up over the record: no restart");
  assert.equal(record.imageHash, "sha256-old");
  assert.equal(record.lastFailure, "process exited with code 137");
  assert.equal(record.instance, "inst-new");
  assert.deepEqual(fake.transitions(), []);
  assert.deepEqual(records.map((r) => r.id).sort(), [CHILD, "spw-parent01"]);
  assert.equal(registration.incarnation, 3);
});

Deno.test("Registration.register() counts a restart when a child's incarnation went up over its old record", async () => {
  const fake = fakeRegistry([oldRecord(CHILD, { state: "DEAD", incarnation: 2 })]);
  const { record } = await new Registration(fake.client).register(
    childFacts({ incarnation: 3 }),
    "r",
  );
  assert.equal(record.incarnation, 3);
  assert.equal(record.restarts, 3);
  assert.deepEqual(fake.transitions(), [], "a child never begins its own incarnation");
  assert.deepEqual(fake.callsOf("put").map((c) => (c.args[0] as ServiceRecord).state), ["ALIVE"]);
});

Deno.test("Registration.register() takes a root's old ALIVE record through DEAD and RESTARTING to the next incarnation", async () => {
  const fake = fakeRegistry([oldRecord(ROOT, { role: "registry", incarnation: 3 })]);
  const registration = new Registration(fake.client);
  const { record, records } = await registration.register(rootFacts(), "root up");
  assert.deepEqual(
    fake.transitions().map((t) => [t.id, t.incarnation, t.to, t.exited]),
    [[ROOT, 3, "DEAD", true]],
  );
  const puts = fake.callsOf("put").map((c) => c.args[0] as ServiceRecord);
  assert.deepEqual(puts.map((r) => [r.state, r.incarnation]), [["RESTARTING", 4], ["ALIVE", 4]]);
  assert.equal(record.incarnation, 4);
  assert.equal(record.restarts, 3, "one restart, counted once");
  assert.equal(record.imageHash, "sha256-old");
  assert.equal(registration.incarnation, 4);
  assert.deepEqual(records.map((r) => r.id), [ROOT]);
});

Deno.test("Registration.register() continues a root's RESTARTING incarnation without a transition", async () => {
  const fake = fakeRegistry([
    oldRecord(ROOT, { role: "registry", state: "RESTARTING", incarnation: 5 }),
  ]);
  const { record } = await new Registration(fake.client).register(rootFacts(), "r");
  assert.deepEqual(fake.transitions(), []);
  assert.deepEqual(
    fake.callsOf("put").map((c) => (c.args[0] as ServiceRecord).state),
    ["ALIVE"],
  );
  assert.equal(record.incarnation, 5);
  assert.equal(record.restarts, 2);
});

Deno.test("Registration.register() starts a root that stopped cleanly at the next incarnation, writing only its ALIVE record", async () => {
  const fake = fakeRegistry([
    oldRecord(ROOT, { role: "registry", state: "STOPPED", incarnation: 2 }),
  ]);
  const { record } = await new Registration(fake.client).register(rootFacts(), "r");
  assert.deepEqual(fake.transitions(), []);
  assert.equal(fake.callsOf("put").length, 1);
  assert.equal(record.state, "ALIVE");
  assert.equal(record.incarnation, 3);
});

Deno.test("Registration.register() registers a root without an old record at the incarnation given", async () => {
  const fake = fakeRegistry();
  const { record, records } = await new Registration(fake.client).register(
    rootFacts({ incarnation: 1 }),
    "r",
  );
  assert.equal(record.incarnation, 1);
  assert.deepEqual(records, []);
  assert.deepEqual(fake.transitions(), []);
  assert.equal(fake.callsOf("list").length, 0);
});

Deno.test("Registration.register() throws when the registry refuses the record, and registers nothing", async () => {
  const fake = fakeRegistry();
  fake.failing.set("put", new FabricRequestError("Invalid field", 400));
  const registration = new Registration(fake.client);
  await assert.rejects(registration.register(childFacts(), "r"), FabricRequestError);
  assert.equal(registration.incarnation, 0);
  await registration.end("STOPPED", "stopping");
  assert.deepEqual(fake.transitions(), [], "nothing registered: nothing to end");
});

Deno.test("Registration.end() records the final state for the incarnation registered", async () => {
  const fake = fakeRegistry([
    oldRecord(ROOT, { role: "registry", state: "STOPPED", incarnation: 2 }),
  ]);
  const registration = new Registration(fake.client);
  await registration.register(rootFacts(), "r");
  await registration.end("STOPPED", "stopped by request");
  assert.deepEqual(fake.transitions(), [{
    id: ROOT,
    incarnation: 3,
    to: "STOPPED",
    reason: "stopped by request",
  }]);
  assert.equal(fake.records.get(ROOT)?.state, "STOPPED");
});

Deno.test("Registration.end() does nothing before register()", async () => {
  const fake = fakeRegistry();
  await new Registration(fake.client).end("STOPPED", "early");
  assert.equal(fake.calls.length, 0);
});

Deno.test("Registration.end() logs a refused transition instead of throwing: the service stops anyway", async () => {
  const fake = fakeRegistry();
  const registration = new Registration(fake.client);
  await registration.register(childFacts(), "r");
  fake.failing.set("transition", new FabricRequestError("Cannot go from DEAD to STOPPED", 409));
  await registration.end("STOPPED", "stopping");
  assert.equal(fake.transitions().length, 1, "it was tried");
});

Deno.test("Registration.beat() heartbeats the registered incarnation with the instance and calls onReplaced on a 409", async () => {
  const fake = fakeRegistry();
  const registration = new Registration(fake.client);
  await registration.register(childFacts({ incarnation: 2 }), "r");
  fake.onHeartbeat = () => {
    throw new FabricRequestError("incarnation 2 belongs to instance other", 409);
  };
  const replaced = new Promise<string>((resolve) =>
    registration.beat({ id: CHILD, instance: "inst-new" }, 10, resolve)
  );
  try {
    assert.match(await replaced, /belongs to instance other/);
    const [beat] = fake.callsOf("heartbeat");
    assert.deepEqual(beat?.args.slice(0, 2), [CHILD, 2]);
    assert.equal((beat?.args[2] as { instance?: string }).instance, "inst-new");
  } finally {
    registration.stopBeating();
  }
});

Deno.test("Registration.stopBeating() ends the heartbeats, and may be called again", async () => {
  const fake = fakeRegistry();
  const registration = new Registration(fake.client);
  registration.stopBeating();
  await registration.register(childFacts(), "r");
  registration.beat({ id: CHILD }, 10, () => assert.fail("not replaced"));
  await eventually(() => fake.callsOf("heartbeat").length > 0, { timeoutMs: 2000 });
  registration.stopBeating();
  registration.stopBeating();
  const beats = fake.callsOf("heartbeat").length;
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(fake.callsOf("heartbeat").length, beats);
});

Deno.test("aliveRecord() leaves out the instance when the service has none", () => {
  const record = aliveRecord(childFacts({ instance: undefined }), undefined);
  assert.equal("instance" in record, false);
  assert.equal(record.lastFailure, "");
});

Deno.test("Registration.beat() fences a child off after 20 intervals without a beat through, and never a root", async () => {
  const unreachable = () => {
    throw new FabricRequestError("connection refused", 0);
  };
  const child = fakeRegistry();
  const parent = { id: "spw-parent01", url: "http://127.0.0.1:9" };
  const childRegistration = new Registration(child.client, { parent });
  await childRegistration.register(childFacts(), "r");
  child.onHeartbeat = unreachable;
  const root = fakeRegistry();
  const rootRegistration = new Registration(root.client);
  await rootRegistration.register(rootFacts(), "r");
  root.onHeartbeat = unreachable;
  let rootFenced = false;
  try {
    const fenced = new Promise<string>((resolve) =>
      childRegistration.beat({ id: CHILD, instance: "inst-new" }, 10, resolve)
    );
    rootRegistration.beat({ id: ROOT, instance: "inst-new" }, 10, () => rootFenced = true);
    assert.match(await fenced, /no heartbeat reached the registry/);
    // The root keeps trying well past its own 20 intervals.
    await eventually(() => root.callsOf("heartbeat").length >= 40, { timeoutMs: 5000 });
    assert.equal(rootFenced, false, "a root service has nobody to replace it: it never fences");
  } finally {
    childRegistration.stopBeating();
    rootRegistration.stopBeating();
  }
});
