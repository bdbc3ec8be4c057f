import assert from "node:assert/strict";
import type { ServiceState } from "../../../src/types/mod.ts";
import { PilotManager } from "../../../src/services/pilot_manager/pilots.ts";
import { serviceRecord } from "../../_fixtures.ts";
import { harness, REQUEST, settled } from "./_harness.ts";
import {
  UNBATCHED_CHECK_MS,
  unbatchedEnd,
  walltimeMs,
} from "../../../src/services/pilot_manager/_unbatched.ts";

Deno.test("PilotManager.submit() spawns agents with cores, walltime and a route through itself", async () => {
  const { manager, spawns } = harness();
  const pilots = await manager.submit(REQUEST);
  assert.equal(pilots.length, 2);
  assert.equal(pilots[0]!.state, "QUEUED");
  assert.equal(spawns.length, 2);
  assert.deepEqual(spawns[0]!.request.options, {
    queue: "que-11111111",
    pubsub: "pub-11111111",
    cores: "2",
    via: "parent",
    walltime: "10",
  });
  assert.equal(spawns[0]!.request.role, "agent");
  await manager.stop();
});

Deno.test("PilotManager follows a pilot from QUEUED to RUNNING through its batch job", async () => {
  const { manager, spawns, job } = harness();
  const [pilot] = await manager.submit({ ...REQUEST, count: 1 });
  job(pilot!.id, "PENDING", "queued");
  assert.equal((await manager.get(pilot!.id))?.state, "QUEUED");
  job(pilot!.id, "RUNNING", "running");
  spawns[0]!.settle(true);
  await settled();
  const running = await manager.get(pilot!.id);
  assert.equal(running?.state, "RUNNING");
  assert.equal(running?.service, "ALIVE");
  assert.equal(running?.batch?.nodes, "compute1");
  await manager.stop();
});

Deno.test("PilotManager resubmits a pilot that ended by TIMEOUT under its ID, at most maxResubmits times", async () => {
  const { manager, spawns, states, job } = harness();
  const [pilot] = await manager.submit({ ...REQUEST, count: 1 });
  const id = pilot!.id;
  spawns[0]!.settle(true);
  await settled();
  states.set(id, "STOPPED");
  job(id, "TIMEOUT", "ended");
  await settled();
  assert.equal(spawns.length, 2, "resubmitted");
  assert.equal(spawns[1]!.request.restart, id);
  assert.equal((await manager.get(id))?.resubmits, 1);
  spawns[1]!.settle(true);
  await settled();
  states.set(id, "STOPPED");
  job(id, "TIMEOUT", "ended");
  await settled();
  assert.equal(spawns.length, 2, "no third submission");
  const failed = await manager.get(id);
  assert.equal(failed?.state, "FAILED");
  assert.match(failed!.reason, /TIMEOUT; resubmitted 1 times/);
  await manager.stop();
});

Deno.test("PilotManager reports, and does not resubmit, a pilot under the report policy", async () => {
  const { manager, spawns, job } = harness();
  const [pilot] = await manager.submit({ ...REQUEST, count: 1, policy: "report" });
  job(pilot!.id, "NODE_FAIL", "ended");
  spawns[0]!.settle(false, "the new service exited before bootstrap (exit 137)");
  await settled();
  assert.equal(spawns.length, 1);
  const failed = await manager.get(pilot!.id);
  assert.equal(failed?.state, "FAILED");
  assert.match(failed!.reason, /exited before bootstrap/);
  await manager.stop();
});

Deno.test("PilotManager.cancel() cancels the job, and a cancelled pilot is never resubmitted", async () => {
  const { manager, spawns, states, job, cancelled } = harness();
  const [pilot] = await manager.submit({ ...REQUEST, count: 1 });
  const id = pilot!.id;
  job(id, "RUNNING", "running");
  spawns[0]!.settle(true);
  await settled();
  await manager.cancel(id);
  assert.deepEqual(cancelled, [id]);
  states.set(id, "STOPPED");
  job(id, "CANCELLED", "ended");
  await settled();
  assert.equal(spawns.length, 1);
  assert.equal((await manager.get(id))?.state, "CANCELED");
  assert.equal(await manager.cancel("agt-unknown"), undefined);
  await manager.stop();
});

Deno.test("PilotManager.stop() cancels the jobs still waiting in the queue", async () => {
  const { manager, job, cancelled } = harness();
  const [a, b] = await manager.submit(REQUEST);
  job(a!.id, "PENDING", "queued");
  job(b!.id, "RUNNING", "running");
  await manager.stop();
  assert.deepEqual(cancelled, [a!.id]);
});

Deno.test("PilotManager.submit() rejects when the spawn fails before the pilot is on record", async () => {
  const manager = new PilotManager({
    selfId: "plm-11111111",
    spawn: () => Promise.reject(new TypeError('Unknown launcher "pbs://"')),
    record: (id) =>
      Promise.resolve(
        id.startsWith("agt-") ? undefined : serviceRecord(id, { route: ["plm-11111111", id] }),
      ),
    stopService: () => Promise.resolve(),
    transition: () => Promise.resolve(),
    batch: {
      get: () => undefined,
      cancel: () => Promise.resolve(false),
      follow: () => () => {},
    },
  });
  await assert.rejects(manager.submit({ ...REQUEST, on: "pbs://" }), /Unknown launcher/);
  assert.deepEqual(await manager.list(), []);
  await manager.stop();
});

Deno.test("PilotManager.cancel() stops a pilot that is no batch job (local://) through its API", async () => {
  const { manager, spawns, stopped } = harness();
  const submitting = manager.submit({ ...REQUEST, count: 1, on: "local://" });
  await settled();
  spawns[0]!.settle(true);
  const [pilot] = await submitting;
  const cancelled = await manager.cancel(pilot!.id);
  assert.deepEqual(stopped, [pilot!.id]);
  assert.equal(cancelled?.state, "CANCELED");
  await manager.stop();
});

Deno.test("PilotManager.submit() rejects, and keeps no pilot, when the launcher refuses the job", async () => {
  const { manager, spawns } = harness();
  const submitting = manager.submit({ ...REQUEST, count: 2, on: "local://" });
  await settled();
  spawns[0]!.settle(false, "launch failed: sbatch: error: invalid partition specified");
  await assert.rejects(submitting, /invalid partition/);
  assert.equal(spawns.length, 1, "the second pilot is not tried");
  assert.deepEqual(await manager.list(), []);
  await manager.stop();
});

Deno.test("PilotManager cancels a job that reaches the batch system after its pilot was cancelled", async () => {
  const { manager, job, cancelled, stopped } = harness();
  const submitting = manager.submit({ ...REQUEST, count: 1, on: "slurm+late://" });
  await settled();
  // The pilot is on record but its job is not with the batch system yet.
  const [pilot] = await Promise.race([
    submitting,
    manager.list().then(async (all) => {
      await manager.cancel(all[0]!.id);
      job(all[0]!.id, "PENDING", "queued");
      return await submitting;
    }),
  ]);
  assert.deepEqual(stopped, [pilot!.id]);
  assert.deepEqual(cancelled, [pilot!.id], "the late job is cancelled when it arrives");
  await manager.stop();
});

Deno.test("PilotManager.submit() refuses a queue that is not below the manager, submitting nothing", async () => {
  const { manager, spawns } = harness();
  await assert.rejects(
    manager.submit({ ...REQUEST, queue: "que-elsewhere" }),
    (error: Error) => {
      assert.equal(error.name, "PilotRequestError");
      assert.match(error.message, /not below pilot manager "plm-11111111".*--via plm-11111111/);
      return true;
    },
  );
  await assert.rejects(manager.submit({ ...REQUEST, pubsub: "pub-missing" }), /No pub\/sub/);
  assert.equal(spawns.length, 0);
  await manager.stop();
});

Deno.test("walltimeMs() reads Slurm's walltime forms", () => {
  const cases: [string, number | null][] = [
    ["30", 30 * 60_000],
    ["90s", 90_000],
    ["30m", 30 * 60_000],
    ["2h", 2 * 3_600_000],
    ["05:30", null],
    ["1:02:03", 3_723_000],
    ["1-00:00:10", 86_410_000],
    ["", null],
    ["soon", null],
  ];
  for (const [text, ms] of cases) assert.equal(walltimeMs(text), ms, text);
});

Deno.test("PilotManager ends a local:// pilot with its agent: stopped at its walltime, then ENDED", async () => {
  const { manager, spawns, states, stopped } = harness();
  try {
    const [pilot] = await Promise.all([
      manager.submit({ ...REQUEST, on: "local://", count: 1, walltime: "1s" }),
      settled().then(() => spawns[0]!.settle(true)),
    ]);
    const id = pilot[0]!.id;
    assert.equal((await manager.get(id))?.state, "RUNNING");
    await new Promise((r) => setTimeout(r, 1300));
    assert.deepEqual(stopped, [id], "the agent is stopped once its walltime passed");
    states.set(id, "STOPPED");
    await new Promise((r) => setTimeout(r, UNBATCHED_CHECK_MS + 300));
    const ended = await manager.get(id);
    assert.equal(ended?.state, "ENDED");
    assert.equal(ended?.reason, "walltime reached");
  } finally {
    await manager.stop();
  }
});

Deno.test("unbatchedEnd() reads how a pilot without a batch system ended from its agent's record", () => {
  const end = (state: ServiceState, reached = false) =>
    unbatchedEnd(serviceRecord("agt-1", { state, lastFailure: "why" }), reached);
  assert.equal(end("ALIVE"), null);
  assert.equal(end("DEAD"), null, "its parent restarts it");
  assert.deepEqual(end("STOPPED"), { state: "ENDED", reason: "agent stopped" });
  assert.deepEqual(end("STOPPED", true), { state: "ENDED", reason: "walltime reached" });
  assert.deepEqual(end("LOST"), { state: "FAILED", reason: "agent LOST: why" });
  assert.deepEqual(end("FAILED"), { state: "policy", reason: "agent FAILED: why" });
});
