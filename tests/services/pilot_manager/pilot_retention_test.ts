import assert from "node:assert/strict";
import type { SpawnRequest } from "../../../src/types/wire.ts";
import type { SpawnHooks } from "../../../src/runtime/role.ts";
import { ENDED_KEPT_MS, MAX_ENDED_KEPT } from "../../../src/base/ended_ledger.ts";
import {
  PILOT_READS_AT_ONCE,
  PilotManager,
  type PilotRequest,
} from "../../../src/services/pilot_manager/pilots.ts";
import type { ServiceRecord, SpawnResult } from "../../../src/types/mod.ts";
import { serviceRecord } from "../../_fixtures.ts";

/**
 * A manager whose pilots are local agents that come up at once; each
 * registry read of a pilot takes `readMs`, and `reads` counts them.
 */
function harness(readMs = 0) {
  let next = 1;
  const reads = { total: 0, now: 0, most: 0 };
  const manager = new PilotManager({
    selfId: "plm-11111111",
    spawn(request: SpawnRequest, hooks?: SpawnHooks): Promise<SpawnResult> {
      const id = `agt-${String(next++).padStart(8, "0")}`;
      hooks?.onRecorded?.({ id, incarnation: 1 });
      return Promise.resolve({ id, endpoint: `http://${request.on}`, state: "ALIVE" });
    },
    transition: () => Promise.resolve(),
    stopService: () => Promise.resolve(),
    record: async (id): Promise<ServiceRecord | undefined> => {
      if (!id.startsWith("agt-")) {
        return serviceRecord(id, { role: "queue", route: ["spw-1", "plm-11111111", id] });
      }
      reads.total++;
      reads.now++;
      reads.most = Math.max(reads.most, reads.now);
      await new Promise((resolve) => setTimeout(resolve, readMs));
      reads.now--;
      return serviceRecord(id, { role: "agent", state: "ALIVE" });
    },
    batch: {
      get: () => undefined,
      cancel: () => Promise.resolve(false),
      follow: () => () => {},
    },
  });
  return { manager, reads };
}

const REQUEST: PilotRequest = {
  on: "local://",
  count: 1,
  cores: 1,
  walltime: "",
  queue: "que-11111111",
  pubsub: "pub-11111111",
  queueName: "",
  policy: "report",
  sessions: [],
};

/** Submits `count` pilots and cancels them all, in order; returns their IDs. */
async function endPilots(manager: PilotManager, count: number): Promise<string[]> {
  const pilots = await manager.submit({ ...REQUEST, count });
  for (const pilot of pilots) assert.equal((await manager.cancel(pilot.id))?.state, "CANCELED");
  return pilots.map((p) => p.id);
}

/** Runs `body` with `Date.now()` reading `clock.now`. */
async function withClock(body: (clock: { now: number }) => Promise<void>): Promise<void> {
  const real = Date.now;
  const clock = { now: 1_800_000_000_000 };
  Date.now = () => clock.now;
  try {
    await body(clock);
  } finally {
    Date.now = real;
  }
}

function count(states: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const state of states) counts[state] = (counts[state] ?? 0) + 1;
  return counts;
}

Deno.test("PilotManager keeps only the newest MAX_ENDED_KEPT ended pilots, and every running one", async () => {
  assert.equal(MAX_ENDED_KEPT, 1000);
  const { manager } = harness();
  try {
    const running = (await manager.submit({ ...REQUEST, count: 2 })).map((p) => p.id);
    const ended = await endPilots(manager, MAX_ENDED_KEPT + 5);
    const listed = (await manager.list()).map((p) => p.id);
    assert.deepEqual(listed, [...running, ...ended.slice(5)]);
    assert.equal(await manager.get(ended[0]!), undefined);
    assert.equal(await manager.cancel(ended[4]!), undefined);
    assert.equal((await manager.get(ended[5]!))?.state, "CANCELED");
    assert.deepEqual(count(manager.states()), { RUNNING: 2, CANCELED: MAX_ENDED_KEPT });
  } finally {
    await manager.stop();
  }
});

Deno.test("PilotManager forgets an ended pilot once it ended more than 24 h ago", async () => {
  assert.equal(ENDED_KEPT_MS, 24 * 60 * 60 * 1000);
  await withClock(async (clock) => {
    const { manager } = harness();
    try {
      const [running] = (await manager.submit(REQUEST)).map((p) => p.id);
      const [first] = await endPilots(manager, 1);
      clock.now += ENDED_KEPT_MS / 2;
      const [second] = await endPilots(manager, 1);
      clock.now += ENDED_KEPT_MS / 2;
      assert.deepEqual((await manager.list()).map((p) => p.id), [running, first, second]);
      clock.now += 1;
      assert.deepEqual((await manager.list()).map((p) => p.id), [running, second]);
      assert.equal(await manager.get(first!), undefined);
      clock.now += ENDED_KEPT_MS;
      assert.deepEqual(manager.states(), ["RUNNING"]);
      assert.deepEqual((await manager.list()).map((p) => p.id), [running]);
    } finally {
      await manager.stop();
    }
  });
});

Deno.test("PilotManager.list() reads the registry for PILOT_READS_AT_ONCE pilots at a time, in order", async () => {
  const { manager, reads } = harness(20);
  try {
    const pilots = await manager.submit({ ...REQUEST, count: 20 });
    reads.total = 0;
    reads.most = 0;
    const listed = await manager.list();
    assert.deepEqual(listed.map((p) => p.id), pilots.map((p) => p.id));
    assert.ok(listed.every((p) => p.service === "ALIVE"));
    assert.equal(reads.total, 20);
    assert.equal(reads.most, PILOT_READS_AT_ONCE);
    assert.deepEqual(await harness().manager.list(), []);
  } finally {
    await manager.stop();
  }
});

Deno.test("PilotManager.states() tells every pilot's state without reading the registry", async () => {
  const { manager, reads } = harness();
  try {
    await manager.submit({ ...REQUEST, count: 3 });
    await endPilots(manager, 1);
    reads.total = 0;
    assert.deepEqual(count(manager.states()), { RUNNING: 3, CANCELED: 1 });
    assert.equal(reads.total, 0);
  } finally {
    await manager.stop();
  }
});
