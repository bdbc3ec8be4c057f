/**
 * How a pilot ends when its job never starts (the launcher cancels it after
 * `wait`), and that a pilot that ended is restarted by no one
 * (docs/services.md "Pilot states and the failure policy").
 */
import assert from "node:assert/strict";
import { eventually } from "../../_eventually.ts";
import { pilotEnd } from "../../../src/services/pilot_manager/_pilot_end.ts";
import { harness, REQUEST, settled } from "./_harness.ts";

const WHY = "no bootstrap within 8000 ms: the job did not start (PENDING, PartitionConfig)";
const KILLED = { started: false, why: WHY };
const HINT = "check the partition's limits (--cores) and squeue";

Deno.test("PilotManager fails, and does not cancel, a pilot whose job its launcher cancelled unstarted", async () => {
  const { manager, spawns, job, states } = harness();
  const [pilot] = await manager.submit({ ...REQUEST, count: 1, policy: "report" });
  const id = pilot!.id;
  job(id, "PENDING", "queued", { reason: "PartitionConfig" });
  // pilot list shows why the job waits (describePilot prints the reason).
  assert.equal((await manager.get(id))?.reason, "Slurm job 7 PENDING (PartitionConfig)");
  job(id, "PENDING", "queued", { reason: "PartitionConfig", killed: KILLED });
  spawns[0]!.settle(false, `Spawn of agent "${id}" failed: no bootstrap within 8000 ms (log x)`);
  await settled();
  // The launcher's scancel shows in squeue after the spawn failed.
  job(id, "CANCELLED", "ended", { killed: KILLED });
  await settled();
  const failed = await manager.get(id);
  assert.equal(failed?.state, "FAILED");
  assert.equal(failed?.reason, `${WHY}; ${HINT}`);
  assert.equal(spawns.length, 1);
  assert.equal(states.get(id), "FAILED");
  await manager.stop();
});

Deno.test("PilotManager resubmits a pilot whose job never starts at most maxResubmits times, then FAILED, its agent not DEAD", async () => {
  const { manager, spawns, job, states } = harness();
  const [pilot] = await manager.submit({ ...REQUEST, count: 1, policy: "resubmit" });
  const id = pilot!.id;
  job(id, "PENDING", "queued", { killed: KILLED });
  spawns[0]!.settle(false, `Spawn of agent "${id}" failed: no bootstrap within 8000 ms`);
  await settled();
  job(id, "CANCELLED", "ended", { killed: KILLED });
  await settled();
  assert.equal(spawns.length, 2, "resubmitted once");
  assert.equal(spawns[1]!.request.restart, id);
  assert.equal((await manager.get(id))?.state, "QUEUED", "the old job's end is not the pilot's");
  // The resubmission's job never starts either; its failed restart is recorded DEAD.
  job(id, "PENDING", "queued", { killed: KILLED });
  spawns[1]!.settle(false, `Restart of agent "${id}" failed: no bootstrap within 8000 ms`);
  await settled();
  job(id, "CANCELLED", "ended", { killed: KILLED });
  await settled();
  const failed = await manager.get(id);
  assert.equal(failed?.state, "FAILED");
  assert.equal(failed?.reason, `${WHY}; ${HINT}; resubmitted 1 times`);
  assert.equal(spawns.length, 2, "no third sbatch");
  assert.equal(states.get(id), "FAILED", "its agent is left FAILED, not DEAD for a supervisor");
  assert.equal(manager.restartable(id), false);
  await manager.stop();
});

Deno.test("PilotManager resubmits a pilot whose job ended under its agent itself, and keeps the supervisor off", async () => {
  const { manager, spawns, job, states, transitions } = harness();
  const [pilot] = await manager.submit({ ...REQUEST, count: 1 });
  const id = pilot!.id;
  job(id, "RUNNING", "running");
  spawns[0]!.settle(true);
  await settled();
  assert.equal(manager.restartable(id), true, "a RUNNING pilot's agent declared DEAD is restarted");
  states.set(id, "DEAD");
  job(id, "NODE_FAIL", "ended");
  assert.equal(manager.restartable(id), false, "while the manager decides");
  await settled();
  assert.equal(spawns.length, 2);
  assert.equal(spawns[1]!.request.restart, id);
  assert.deepEqual(transitions.map((t) => [t.id, t.to]), [[id, "FAILED"]]);
  assert.equal((await manager.get(id))?.resubmits, 1);
  assert.equal(manager.restartable(id), false, "its resubmission is under way");
  await manager.stop();
});

Deno.test("PilotManager records DEAD an agent still ALIVE on record whose job ended, and resubmits it", async () => {
  const { manager, spawns, job, transitions } = harness();
  const [pilot] = await manager.submit({ ...REQUEST, count: 1 });
  const id = pilot!.id;
  job(id, "RUNNING", "running");
  spawns[0]!.settle(true);
  await settled();
  // Killed outright: its job ended, but its record is ALIVE until the TTL passes.
  job(id, "FAILED", "ended");
  await eventually(() => spawns.length === 2, { timeoutMs: 15_000, what: "a resubmission" });
  assert.equal(spawns[1]!.request.restart, id);
  assert.deepEqual(transitions.map((t) => [t.id, t.to]), [[id, "DEAD"], [id, "FAILED"]]);
  await manager.stop();
});

Deno.test("PilotManager.cancel() ends a pilot with nothing running at once, its DEAD agent STOPPED", async () => {
  const { manager, spawns, states, transitions } = harness();
  const submitting = manager.submit({ ...REQUEST, count: 1, on: "local://" });
  await settled();
  spawns[0]!.settle(true);
  const [pilot] = await submitting;
  const id = pilot!.id;
  states.set(id, "DEAD");
  const cancelled = await manager.cancel(id);
  assert.equal(cancelled?.state, "CANCELED");
  await settled();
  assert.deepEqual(transitions, [{ id, to: "STOPPED", reason: "pilot cancelled" }]);
  assert.equal(manager.restartable(id), false);
  assert.equal(spawns.length, 1);
  await manager.stop();
});

Deno.test("pilotEnd() tells an operator's scancel from its launcher's, and a completed job", () => {
  const job = {
    serviceId: "agt-1",
    jobId: "7",
    launcher: "slurm://compute",
    state: "CANCELLED",
    phase: "ended" as const,
    nodes: "",
    reason: "",
    exitCode: 0,
    submitted: 0,
    updated: 0,
  };
  const ended = { reason: "Slurm job 7 ended CANCELLED", cancelRequested: false };
  assert.deepEqual(pilotEnd(job, ended), { kind: "CANCELED", reason: "Slurm job 7 CANCELLED" });
  assert.deepEqual(pilotEnd({ ...job, killed: KILLED }, ended), {
    kind: "failure",
    reason: `${WHY}; ${HINT}`,
  });
  assert.equal(
    pilotEnd({ ...job, killed: KILLED }, { ...ended, cancelRequested: true }).kind,
    "CANCELED",
  );
  assert.equal(pilotEnd({ ...job, state: "COMPLETED" }, ended).kind, "ENDED");
  assert.equal(pilotEnd({ ...job, state: "TIMEOUT" }, ended).kind, "failure");
});
