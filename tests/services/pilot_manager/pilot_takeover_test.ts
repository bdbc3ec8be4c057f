import assert from "node:assert/strict";
import type { RoleContext } from "../../../src/runtime/role.ts";
import { pilotManagerRole } from "../../../src/services/pilot_manager/pilot_manager_role.ts";
import { PilotManager } from "../../../src/services/pilot_manager/pilots.ts";
import { takeoverOf } from "../../../src/services/pilot_manager/_takeover.ts";
import { UNBATCHED_CHECK_MS } from "../../../src/services/pilot_manager/_unbatched.ts";
import type { ServiceRecord, ServiceState, Transition } from "../../../src/types/mod.ts";
import { serviceRecord } from "../../_fixtures.ts";

const MANAGER = "plm-11111111";
const HOUR = 3_600_000;

/** An agent pilot of the manager, as the registry keeps it. */
function agent(id: string, state: ServiceState, patch: Partial<ServiceRecord> = {}): ServiceRecord {
  return serviceRecord(id, {
    role: "agent",
    state,
    parent: MANAGER,
    route: ["spw-1", MANAGER, id],
    endpoint: "",
    options: { queue: "que-11111111", pubsub: "pub-11111111", cores: "2", walltime: "2h" },
    ...patch,
  });
}

/** Transitions of `id`: each `[from, to, at, reason?]`, oldest first. */
function history(id: string, steps: [ServiceState | "", ServiceState, number, string?][]) {
  return steps.map(([from, to, at, reason = ""], i): Transition => ({
    seq: i + 1,
    id,
    incarnation: 1,
    from,
    to,
    reason,
    at,
  }));
}

Deno.test("pilotManagerRole.start() takes over a DEAD pilot and an ended one after a restart", async () => {
  const now = Date.now();
  const dead = agent("agt-0000dead", "DEAD", { updated: now - 1000 });
  const gone = agent("agt-0000c0de", "STOPPED", { updated: now - HOUR });
  const other = agent("agt-00000001", "ALIVE", { parent: "plm-22222222" });
  const transitions = new Map([
    [
      dead.id,
      history(dead.id, [["", "LAUNCHING", now - HOUR], ["CONFIGURING", "ALIVE", now - HOUR]]),
    ],
    [
      gone.id,
      history(gone.id, [["", "LAUNCHING", now - 2 * HOUR], [
        "ALIVE",
        "STOPPED",
        now - HOUR,
        "pilot cancelled",
      ]]),
    ],
  ]);
  const records = [dead, gone, other];
  const dir = await Deno.makeTempDir({ prefix: "fabricd-plm-" });
  // Only what the role reads of its context when it starts and lists.
  const ctx = {
    serviceId: MANAGER,
    role: "pilot-manager",
    dir,
    endpoint: "http://127.0.0.1:9",
    options: { on: "local://" },
    incarnation: 2,
    registries: [],
    registry: {
      list: () => Promise.resolve(records),
      get: (id: string) => {
        const record = records.find((r) => r.id === id);
        return Promise.resolve(
          record && { record, transitions: transitions.get(id) ?? [] },
        );
      },
    },
  } as unknown as RoleContext;
  const handle = await pilotManagerRole.start(ctx);
  try {
    const listed = await handle.routes!.request("/pilots");
    const { pilots } = await listed.json() as { pilots: { id: string; state: string }[] };
    assert.deepEqual(
      pilots.map((p) => [p.id, p.state]).sort(),
      [[gone.id, "CANCELED"], [dead.id, "RUNNING"]],
    );
    const one = await handle.routes!.request(`/pilots/${dead.id}`);
    assert.equal(one.status, 200);
    const pilot = await one.json();
    assert.equal(pilot.walltime, "2h");
    assert.equal(pilot.submitted, now - HOUR);
  } finally {
    await handle.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PilotManager.adopt() keeps a taken-over pilot's walltime from its first start, not its restart", async () => {
  const stopped: string[] = [];
  const states = new Map<string, ServiceState>([["agt-0000dead", "DEAD"]]);
  const manager = new PilotManager({
    selfId: MANAGER,
    spawn: () => Promise.reject(new Error("no spawns here")),
    record: (id) => {
      const state = states.get(id);
      return Promise.resolve(state && agent(id, state));
    },
    transition: () => Promise.resolve(),
    stopService: (id) => {
      stopped.push(id);
      return Promise.resolve();
    },
    batch: { get: () => undefined, cancel: () => Promise.resolve(false), follow: () => () => {} },
  });
  try {
    const now = Date.now();
    // Submitted 2 h 30 ago with a 2 h walltime, killed, restarted (by the supervisor) 10 min ago.
    const id = "agt-0000dead";
    const record = agent(id, "DEAD", { started: now - 600_000 });
    const steps = history(id, [
      ["", "LAUNCHING", now - 9_000_000],
      ["CONFIGURING", "ALIVE", now - 9_000_000],
      ["ALIVE", "DEAD", now - 700_000],
      ["DEAD", "RESTARTING", now - 650_000],
      ["CONFIGURING", "ALIVE", now - 600_000],
      ["ALIVE", "DEAD", now - 1000],
    ]);
    assert.equal(manager.adopt({ record, transitions: steps }, "report"), "RUNNING");
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(stopped, [id], "its walltime passed: the agent is stopped");
    // DEAD, it could not be: once its supervisor restarted it, it is stopped again.
    states.set(id, "ALIVE");
    await new Promise((r) => setTimeout(r, UNBATCHED_CHECK_MS + 300));
    assert.deepEqual(stopped, [id, id], "the restarted agent is stopped for its walltime");
  } finally {
    await manager.stop();
  }
});

Deno.test("takeoverOf() reads an ended pilot and a resubmitted one from the agent's transitions", () => {
  const id = "agt-00000001";
  const cancelled = takeoverOf(
    agent(id, "STOPPED", { updated: 50 }),
    history(id, [["", "LAUNCHING", 10], ["ALIVE", "STOPPED", 50, "pilot cancelled"]]),
  );
  assert.deepEqual(
    [cancelled.state, cancelled.reason, cancelled.submitted, cancelled.endedAt],
    ["CANCELED", "cancelled by the fabric", 10, 50],
  );
  const walltime = takeoverOf(
    agent(id, "STOPPED"),
    history(id, [["ALIVE", "STOPPED", 50, "walltime 2h reached"]]),
  );
  assert.deepEqual([walltime.state, walltime.reason], ["ENDED", "walltime reached"]);
  const lost = takeoverOf(agent(id, "LOST", { lastFailure: "node gone" }), []);
  assert.deepEqual([lost.state, lost.reason], ["FAILED", "agent LOST: node gone"]);
  const resubmitted = takeoverOf(
    agent(id, "ALIVE"),
    history(id, [
      ["", "LAUNCHING", 10],
      ["CONFIGURING", "ALIVE", 20],
      ["ALIVE", "FAILED", 30],
      ["FAILED", "RESTARTING", 40],
      ["CONFIGURING", "ALIVE", 60],
    ]),
  );
  assert.deepEqual(
    [resubmitted.state, resubmitted.walltimeFrom, resubmitted.resubmits],
    ["RUNNING", 60, 1],
  );
});
