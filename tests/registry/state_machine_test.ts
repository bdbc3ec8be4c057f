import assert from "node:assert/strict";
import {
  canBeginIncarnation,
  canTransition,
  decidePut,
  decideTransition,
  type Decision,
  type Unchanged,
} from "../../src/registry/state_machine.ts";
import {
  InvalidTransitionError,
  StaleIncarnationError,
  UnknownServiceError,
} from "../../src/registry/store.ts";
import { SERVICE_STATES, type ServiceState } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";

Deno.test("canTransition() lets an interrupted restart die (resumed later) but not a first spawn", () => {
  for (const from of ["RESTARTING", "BOOTSTRAPPING", "CONFIGURING"] as const) {
    assert.ok(canTransition(from, "DEAD"), from);
  }
  assert.ok(!canTransition("LAUNCHING", "DEAD"));
  assert.ok(canTransition("LAUNCHING", "FAILED"));
});

Deno.test("canBeginIncarnation() starts restarts RESTARTING and never ALIVE -> ALIVE", () => {
  assert.ok(canBeginIncarnation("DEAD", "RESTARTING"));
  assert.ok(canBeginIncarnation("FAILED", "RESTARTING"));
  assert.ok(canBeginIncarnation("", "LAUNCHING"));
  assert.ok(canBeginIncarnation("STOPPED", "ALIVE"));
  assert.ok(!canBeginIncarnation("ALIVE", "ALIVE"));
  assert.ok(!canBeginIncarnation("DEAD", "ALIVE"));
  assert.ok(!canBeginIncarnation("SUSPECT", "RESTARTING"));
  assert.ok(!canBeginIncarnation("RESTARTING", "RESTARTING"));
});

Deno.test("decidePut() records a first record as a transition from nothing", () => {
  const record = serviceRecord("spw-a", { state: "LAUNCHING" });
  const { next, transition } = decidePut(undefined, { record, reason: "spawned" });
  assert.deepEqual(next, record);
  assert.deepEqual(transition, { from: "", reason: "spawned" });
});

Deno.test("decidePut() refuses an older incarnation with StaleIncarnationError", () => {
  const old = serviceRecord("spw-a", { incarnation: 3 });
  const record = serviceRecord("spw-a", { incarnation: 2, host: "old" });
  assert.throws(
    () => decidePut(old, { record, reason: "late" }),
    (error: unknown) =>
      error instanceof StaleIncarnationError && error.current === 3 &&
      /incarnation 2 is stale/.test(error.message),
  );
});

Deno.test("decidePut() checks a state change within one incarnation against the state machine", () => {
  const old = serviceRecord("spw-a", { state: "STOPPED" });
  assert.throws(
    () => decidePut(old, { record: { ...old, state: "ALIVE" }, reason: "x" }),
    InvalidTransitionError,
  );
  const launching = serviceRecord("spw-a", { state: "LAUNCHING" });
  const moved = decidePut(launching, {
    record: { ...launching, state: "BOOTSTRAPPING" },
    reason: "keys handed over",
  });
  assert.equal(moved.next.state, "BOOTSTRAPPING");
  assert.deepEqual(moved.transition, { from: "LAUNCHING", reason: "keys handed over" });
});

Deno.test("decidePut() updates the same incarnation in the same state without a transition", () => {
  const old = serviceRecord("spw-a", { exited: true, state: "DEAD" });
  const record = { ...old, host: "elsewhere" };
  const { next, transition } = decidePut(old, { record, reason: "moved" });
  assert.equal(transition, null);
  assert.equal(next.host, "elsewhere");
  assert.equal(next.exited, true, "the same incarnation keeps its exit report");
});

Deno.test("decidePut() keeps the exit report the store holds, whatever a write of the same incarnation says", () => {
  // A restart's later writes (BOOTSTRAPPING, ALIVE) carried the old incarnation's mark.
  const restarting = serviceRecord("spw-a", { incarnation: 2, state: "RESTARTING" });
  const offered = { ...restarting, state: "BOOTSTRAPPING" as const, exited: true };
  const { next } = decidePut(restarting, { record: offered, reason: "keys handed over" });
  assert.ok(!("exited" in next), "only a death report marks an incarnation exited");
  const dead = serviceRecord("spw-a", { state: "DEAD", exited: true });
  const cleared = { ...dead, host: "elsewhere", exited: undefined };
  assert.equal(decidePut(dead, { record: cleared, reason: "moved" }).next.exited, true);
});

Deno.test("decidePut() begins a new incarnation as a transition and drops the old exit report", () => {
  const old = serviceRecord("spw-a", { state: "DEAD", exited: true });
  const record = { ...old, incarnation: 2, state: "RESTARTING" as const };
  const { next, transition } = decidePut(old, { record, reason: "restarting" });
  assert.ok(!("exited" in next), "exited belongs to incarnation 1");
  assert.equal(next.incarnation, 2);
  assert.deepEqual(transition, { from: "DEAD", reason: "restarting" });
  assert.equal(record.exited, true, "the offered record is left as it was");
  // A root started again after a clean stop begins its new incarnation ALIVE.
  const again = decidePut(serviceRecord("spw-b", { state: "STOPPED" }), {
    record: serviceRecord("spw-b", { incarnation: 2 }),
    reason: "root started again",
  });
  assert.deepEqual(again.transition, { from: "STOPPED", reason: "root started again" });
});

Deno.test("decidePut() refuses a new incarnation that begins where canBeginIncarnation forbids", () => {
  const refused: [ServiceState | "", ServiceState][] = [
    ["ALIVE", "ALIVE"], // never ALIVE -> ALIVE
    ["SUSPECT", "RESTARTING"], // a SUSPECT service is recorded DEAD first
    ["LOST", "RESTARTING"], // LOST is final
    ["", "RESTARTING"], // a restart of nothing
    ["", "STOPPED"],
    ["DEAD", "ALIVE"], // a restart goes through RESTARTING
  ];
  for (const [from, to] of refused) {
    const old = from === "" ? undefined : serviceRecord("spw-a", { state: from });
    const record = serviceRecord("spw-a", { incarnation: 2, state: to });
    assert.throws(
      () => decidePut(old, { record, reason: "x" }),
      (e) => e instanceof InvalidTransitionError && e.httpStatus === 409,
      `${from || "no record"} -> ${to}`,
    );
  }
  for (
    const [from, to] of [["", "LAUNCHING"], ["DEAD", "RESTARTING"], ["LOST", "ALIVE"]] as const
  ) {
    const old = from === "" ? undefined : serviceRecord("spw-a", { state: from });
    decidePut(old, { record: serviceRecord("spw-a", { incarnation: 2, state: to }), reason: "x" });
  }
});

Deno.test("decideTransition() refuses an unknown service and another incarnation", () => {
  const change = { id: "spw-a", incarnation: 1, to: "DEAD" as const, reason: "x", at: 5 };
  assert.throws(() => decideTransition(undefined, change), UnknownServiceError);
  const old = serviceRecord("spw-a", { incarnation: 2 });
  assert.throws(
    () => decideTransition(old, change),
    (error: unknown) => error instanceof StaleIncarnationError && /is stale/.test(error.message),
  );
  assert.throws(
    () => decideTransition(old, { ...change, incarnation: 3 }),
    (error: unknown) =>
      error instanceof StaleIncarnationError && /has no incarnation 3/.test(error.message),
  );
});

Deno.test("decideTransition() allows exactly the moves canTransition() allows", () => {
  for (const from of SERVICE_STATES) {
    for (const to of SERVICE_STATES.filter((s) => s !== from)) {
      const old = serviceRecord("spw-a", { state: from });
      const decide = (): Decision | Unchanged =>
        decideTransition(old, { id: "spw-a", incarnation: 1, to, reason: "r", at: 9 });
      if (!canTransition(from, to)) {
        assert.throws(decide, InvalidTransitionError, `${from} -> ${to}`);
        continue;
      }
      const decision = decide();
      assert.ok(!("unchanged" in decision), `${from} -> ${to}`);
      assert.equal(decision.next.state, to);
      assert.deepEqual(decision.transition, { from, reason: "r" });
    }
  }
});

Deno.test("decideTransition() stamps the time and keeps failure reasons as lastFailure", () => {
  const old = serviceRecord("spw-a", { lastFailure: "earlier", updated: 1 });
  const suspect = decideTransition(old, {
    id: "spw-a",
    incarnation: 1,
    to: "SUSPECT",
    reason: "No heartbeat for 4.0 s",
    at: 50,
  });
  assert.ok(!("unchanged" in suspect));
  assert.equal(suspect.next.updated, 50);
  assert.equal(suspect.next.lastFailure, "No heartbeat for 4.0 s");
  const back = decideTransition(suspect.next, {
    id: "spw-a",
    incarnation: 1,
    to: "ALIVE",
    reason: "heartbeat resumed",
    at: 60,
  });
  assert.ok(!("unchanged" in back));
  assert.equal(back.next.lastFailure, "No heartbeat for 4.0 s", "ALIVE is no failure");
  assert.equal(old.state, "ALIVE", "the held record is left as it was");
  assert.equal(old.updated, 1);
});

Deno.test("decideTransition() leaves a record already in the target state unchanged", () => {
  const old = serviceRecord("spw-a", { state: "DEAD", updated: 3 });
  const decision = decideTransition(old, {
    id: "spw-a",
    incarnation: 1,
    to: "DEAD",
    reason: "ttl again",
    at: 9,
  });
  assert.ok("unchanged" in decision);
  assert.equal(decision.unchanged, old);
});

Deno.test("decideTransition() marks a reported exit on DEAD only, once, with or without a move", () => {
  const change = { id: "spw-a", incarnation: 1, reason: "process exited", at: 9, exited: true };
  const died = decideTransition(serviceRecord("spw-a"), { ...change, to: "DEAD" });
  assert.ok(!("unchanged" in died));
  assert.equal(died.next.exited, true);
  assert.deepEqual(died.transition, { from: "ALIVE", reason: "process exited" });

  const deadByTtl = serviceRecord("spw-a", { state: "DEAD", updated: 3 });
  const marked = decideTransition(deadByTtl, { ...change, to: "DEAD" });
  assert.ok(!("unchanged" in marked));
  assert.equal(marked.next.exited, true);
  assert.equal(marked.next.updated, 3, "no state change, no new time");
  assert.equal(marked.transition, null);

  assert.ok("unchanged" in decideTransition(marked.next, { ...change, to: "DEAD" }));

  const suspect = decideTransition(serviceRecord("spw-a"), { ...change, to: "SUSPECT" });
  assert.ok(!("unchanged" in suspect));
  assert.ok(!("exited" in suspect.next), "exited means a death");
});

Deno.test("decidePut() begins a life ALIVE only for a root service (no parent)", () => {
  for (const from of ["", "STOPPED", "LOST"] as const) {
    const old = from === "" ? undefined : serviceRecord("agt-a", { state: from });
    const child = serviceRecord("agt-a", { incarnation: 2, state: "ALIVE", parent: "spw-p" });
    assert.throws(
      () => decidePut(old, { record: child, reason: "x" }),
      (e) =>
        e instanceof InvalidTransitionError && e.httpStatus === 409 &&
        e.message.includes("for a root service, ALIVE"),
      `a child, ${from || "no record"} -> ALIVE`,
    );
    decidePut(old, { record: { ...child, parent: "" }, reason: "root" });
  }
  // A child's own life still ends ALIVE within its incarnation (spawn, restart).
  const configuring = serviceRecord("agt-a", { state: "CONFIGURING", parent: "spw-p" });
  decidePut(configuring, { record: { ...configuring, state: "ALIVE" }, reason: "configured" });
});
