import assert from "node:assert/strict";
import { FabricRequestError } from "../../src/client/fabric_client.ts";
import type { RegistryClient } from "../../src/client/registry_client.ts";
import { Supervisor } from "../../src/children/supervisor.ts";
import type { ServiceRecord, ServiceState } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";
import { eventually } from "../_eventually.ts";

/** A registry that cannot be reached for its first `outage` calls. */
function flakyRegistry(record: ServiceRecord, outage: number) {
  let calls = 0;
  const transitions: { to: ServiceState; exited?: boolean | undefined }[] = [];
  const reach = (): void => {
    if (calls++ < outage) throw new FabricRequestError("connection refused", 0);
  };
  const registry = {
    get: (_id: string) => {
      try {
        reach();
        return Promise.resolve({ record: structuredClone(record), transitions: [] });
      } catch (error) {
        return Promise.reject(error);
      }
    },
    transition: (
      _id: string,
      change: { incarnation: number; to: ServiceState; reason: string; exited?: boolean },
    ) => {
      try {
        reach();
      } catch (error) {
        return Promise.reject(error);
      }
      transitions.push({ to: change.to, exited: change.exited });
      record.state = change.to;
      record.exited = change.exited;
      return Promise.resolve(structuredClone(record));
    },
  };
  return { registry: registry as unknown as RegistryClient, transitions };
}

Deno.test("Supervisor.childExited() retries the exit report until the registry has it, then restarts the child", async () => {
  const child = serviceRecord("spw-child001", { parent: "spw-parent01" });
  const { registry, transitions } = flakyRegistry(child, 4);
  const restarted: string[] = [];
  const supervisor = new Supervisor({
    selfId: "spw-parent01",
    registry: () => registry,
    restart: (id) => {
      restarted.push(id);
      return Promise.resolve();
    },
    replace: () => Promise.reject(new Error("not expected")),
    policyOf: () => "fresh",
  }, { backoffMs: 10, reportRetryMs: 40 });
  try {
    await supervisor.childExited({ id: child.id, incarnation: 1 }, { code: 137 });
    assert.deepEqual(transitions, [{ to: "DEAD", exited: true }]);
    await eventually(() => restarted.length > 0, { what: "the restart" });
    assert.deepEqual(restarted, [child.id]);
  } finally {
    supervisor.stop();
  }
});

/** A registry holding `records`, recording every transition. */
function listingRegistry(records: ServiceRecord[]) {
  const transitions: {
    id: string;
    to: ServiceState;
    reason: string;
    exited?: boolean | undefined;
  }[] = [];
  const registry = {
    list: () => Promise.resolve(structuredClone(records)),
    get: (id: string) => {
      const record = records.find((r) => r.id === id);
      return Promise.resolve(
        record ? { record: structuredClone(record), transitions: [] } : undefined,
      );
    },
    transition: (
      id: string,
      change: { incarnation: number; to: ServiceState; reason: string; exited?: boolean },
    ) => {
      const record = records.find((r) => r.id === id)!;
      transitions.push({ id, to: change.to, reason: change.reason, exited: change.exited });
      record.state = change.to;
      record.updated += 1;
      return Promise.resolve(structuredClone(record));
    },
  };
  return { registry: registry as unknown as RegistryClient, transitions };
}

function reconcilingSupervisor(registry: RegistryClient, restarted: string[]): Supervisor {
  return new Supervisor({
    selfId: "spw-parent01",
    registry: () => registry,
    restart: (id) => {
      restarted.push(id);
      return Promise.resolve();
    },
    replace: () => Promise.reject(new Error("not expected")),
    policyOf: () => "fresh",
  }, { backoffMs: 10 });
}

Deno.test("Supervisor.reconcile() resumes a restart its previous incarnation was killed in: DEAD, then restarted, never FAILED", async () => {
  const records = [
    serviceRecord("pub-child001", {
      role: "pubsub",
      parent: "spw-parent01",
      state: "RESTARTING",
      incarnation: 2,
      pid: 0,
    }),
    serviceRecord("spw-first001", { parent: "spw-parent01", state: "LAUNCHING", pid: 0 }),
    serviceRecord("spw-other001", { parent: "spw-someone1", state: "RESTARTING", incarnation: 3 }),
  ];
  const { registry, transitions } = listingRegistry(records);
  const restarted: string[] = [];
  const supervisor = reconcilingSupervisor(registry, restarted);
  try {
    await supervisor.reconcile({ orphaned: true });
    assert.deepEqual(transitions.map((t) => [t.id, t.to, t.exited]), [
      ["pub-child001", "DEAD", true],
      ["spw-first001", "FAILED", false],
    ]);
    assert.match(transitions[0]!.reason, /restarted during the bootstrap.*resumed by spw-parent01/);
    await eventually(() => restarted.length > 0, { what: "a restart" });
    assert.deepEqual(restarted, ["pub-child001"]);
  } finally {
    supervisor.stop();
  }
});

Deno.test("Supervisor.reconcile() ends a spawn with no progress only when none is under way and it did not move between two looks", async () => {
  const records = [
    serviceRecord("spw-stuck001", { parent: "spw-parent01", state: "LAUNCHING", pid: 0 }),
    serviceRecord("spw-busy0001", { parent: "spw-parent01", state: "LAUNCHING", pid: 0 }),
  ];
  const { registry, transitions } = listingRegistry(records);
  const supervisor = reconcilingSupervisor(registry, []);
  try {
    supervisor.began("spw-busy0001");
    await supervisor.reconcile();
    assert.equal(transitions.length, 0, "the first look only notes the record");
    await supervisor.reconcile();
    assert.deepEqual(transitions.map((t) => [t.id, t.to]), [["spw-stuck001", "FAILED"]]);
    assert.match(transitions[0]!.reason, /no progress in LAUNCHING with no process/);
    supervisor.ended("spw-busy0001");
    await supervisor.reconcile();
    assert.equal(transitions.length, 1, "a spawn that just ended is looked at twice first");
  } finally {
    supervisor.stop();
  }
});

Deno.test("Supervisor.reconcile() adopts the unfinished restarts of a LOST child's children", async () => {
  const records = [
    serviceRecord("spw-lost0001", { parent: "spw-parent01", state: "LOST" }),
    serviceRecord("age-orphan01", {
      role: "agent",
      parent: "spw-lost0001",
      state: "RESTARTING",
      incarnation: 2,
    }),
    serviceRecord("age-dead0001", { role: "agent", parent: "spw-lost0001", state: "DEAD" }),
  ];
  const { registry, transitions } = listingRegistry(records);
  const restarted: string[] = [];
  const supervisor = reconcilingSupervisor(registry, restarted);
  try {
    await supervisor.reconcile();
    assert.deepEqual(transitions.map((t) => [t.id, t.to]), [["age-orphan01", "DEAD"]]);
    assert.match(transitions[0]!.reason, /spw-lost0001 is LOST/);
    await eventually(() => restarted.length >= 2, { what: "two restarts" });
    assert.deepEqual(restarted.sort(), ["age-dead0001", "age-orphan01"]);
  } finally {
    supervisor.stop();
  }
});

/** A clock that moves only when told, with the timers it holds. */
function fakeClock() {
  let now = 1_700_000_000_000;
  let next = 1;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    clock: {
      now: () => now,
      setTimer: (fn: () => void, ms: number) => {
        const id = next++;
        timers.set(id, { at: now + ms, fn });
        return id;
      },
      clearTimer: (id: unknown) => void timers.delete(id as number),
    },
    /** The delay of the one pending timer, ms. */
    pending: () => [...timers.values()].map((t) => t.at - now),
    /** Moves to the next timer and runs it. */
    async fire(): Promise<void> {
      const [id, timer] = [...timers.entries()].sort((a, b) => a[1].at - b[1].at)[0]!;
      timers.delete(id);
      now = timer.at;
      timer.fn();
      // Let the restart it started settle.
      for (let i = 0; i < 20; i++) await Promise.resolve();
      await new Promise((r) => setTimeout(r, 0));
    },
    advance: (ms: number) => (now += ms),
  };
}

Deno.test("Supervisor doubles its restart backoff on a fake clock and gives a child up as LOST after maxRestarts in the window", async () => {
  const child = serviceRecord("spw-child003", { parent: "spw-parent03", state: "DEAD" });
  const { registry, transitions } = listingRegistry([child]);
  const time = fakeClock();
  let restarts = 0;
  const supervisor = new Supervisor({
    selfId: "spw-parent03",
    registry: () => registry,
    restart: () => {
      restarts++;
      return Promise.resolve();
    },
    replace: () => Promise.resolve({ id: "spw-new00001" }),
    policyOf: () => "propagate",
  }, { backoffMs: 100, maxRestarts: 3, windowMs: 60_000, clock: time.clock });
  try {
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      await supervisor.childExited({ id: child.id, incarnation: 1 }, { code: 1 });
      delays.push(...time.pending());
      await time.fire();
    }
    assert.deepEqual(
      delays,
      [100, 200, 400],
      "the backoff doubles with each restart in the window",
    );
    assert.equal(restarts, 3);
    await supervisor.childExited({ id: child.id, incarnation: 1 }, { code: 1 });
    assert.deepEqual(time.pending(), [0], "out of restarts: given up at once, no backoff first");
    await time.fire();
    assert.equal(restarts, 3, "no fourth restart within the window");
    assert.ok(transitions.some((t) => t.id === child.id && t.to === "LOST"), "given up as LOST");
  } finally {
    supervisor.stop();
  }
});

Deno.test("Supervisor forgets restarts older than its window on a fake clock: the backoff starts again", async () => {
  const child = serviceRecord("spw-child004", { parent: "spw-parent04", state: "DEAD" });
  const { registry } = listingRegistry([child]);
  const time = fakeClock();
  const supervisor = new Supervisor({
    selfId: "spw-parent04",
    registry: () => registry,
    restart: () => Promise.resolve(),
    replace: () => Promise.reject(new Error("not expected")),
    policyOf: () => "fresh",
  }, { backoffMs: 100, maxRestarts: 5, windowMs: 60_000, clock: time.clock });
  try {
    await supervisor.childExited({ id: child.id, incarnation: 1 }, { code: 1 });
    await time.fire();
    await supervisor.childExited({ id: child.id, incarnation: 1 }, { code: 1 });
    assert.deepEqual(time.pending(), [200]);
    await time.fire();
    time.advance(61_000);
    await supervisor.childExited({ id: child.id, incarnation: 1 }, { code: 1 });
    assert.deepEqual(time.pending(), [100], "restarts outside the window no longer count");
  } finally {
    supervisor.stop();
  }
});

Deno.test("Supervisor keeps trying a child whose host does not answer, backing off to 10 s, and never gives it up", async () => {
  const child = serviceRecord("spw-child005", { parent: "spw-parent05", state: "DEAD" });
  const { registry, transitions } = listingRegistry([child]);
  const time = fakeClock();
  let tries = 0;
  let hostAway = true;
  const supervisor = new Supervisor({
    selfId: "spw-parent05",
    registry: () => registry,
    restart: () => {
      tries++;
      return hostAway
        ? Promise.reject(new Error("cannot prepare ssh://h: Connection timed out"))
        : Promise.resolve();
    },
    replace: () => Promise.reject(new Error("not expected")),
    policyOf: () => "fresh",
  }, { backoffMs: 200, maxRestarts: 5, windowMs: 600_000, clock: time.clock });
  try {
    await supervisor.childExited({ id: child.id, incarnation: 1 }, { code: 1 });
    const delays: number[] = [];
    for (let i = 0; i < 12; i++) {
      delays.push(...time.pending());
      await time.fire();
    }
    assert.deepEqual(delays, [
      200,
      400,
      800,
      1600,
      3200,
      6400,
      10_000,
      10_000,
      10_000,
      10_000,
      10_000,
      10_000,
    ]);
    assert.equal(tries, 12);
    assert.ok(!transitions.some((t) => t.to === "FAILED" || t.to === "LOST"), "not given up");
    hostAway = false;
    await time.fire();
    assert.equal(tries, 13, "the host answers: the restart goes through");
    assert.deepEqual(time.pending(), [], "nothing more to do");
  } finally {
    supervisor.stop();
  }
});

Deno.test("Supervisor leaves a DEAD child that its parent's role keeps down (restartable false)", async () => {
  const kept = serviceRecord("agt-pilot001", { parent: "spw-parent01", state: "DEAD" });
  const other = serviceRecord("que-child001", { parent: "spw-parent01", state: "DEAD" });
  const { registry } = listingRegistry([kept, other]);
  const restarted: string[] = [];
  const asked: string[] = [];
  const supervisor = new Supervisor({
    selfId: "spw-parent01",
    registry: () => registry,
    restart: (id) => {
      restarted.push(id);
      return Promise.resolve();
    },
    replace: () => Promise.reject(new Error("not expected")),
    policyOf: () => "fresh",
    restartable: (record) => {
      asked.push(record.id);
      return record.id !== kept.id;
    },
  }, { backoffMs: 10 });
  try {
    await supervisor.reconcile();
    await eventually(() => restarted.includes(other.id), { what: "the other child's restart" });
    await eventually(() => asked.includes(kept.id), { what: "the role asked" });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(restarted, [other.id], "the kept child is not restarted");
  } finally {
    supervisor.stop();
  }
});
