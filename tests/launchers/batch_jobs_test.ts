import assert from "node:assert/strict";
import {
  type BatchJob,
  batchJobs,
  BatchJobTable,
  type BatchPhase,
} from "../../src/launchers/batch_jobs.ts";
import { ENDED_KEPT_MS, MAX_ENDED_KEPT } from "../../src/base/ended_ledger.ts";

function job(jobId: string, state: string, submitted: number): BatchJob {
  return {
    serviceId: "agt-batchjob",
    jobId,
    launcher: "slurm://",
    state,
    phase: state === "CANCELLED" ? "ended" : "queued",
    nodes: "",
    reason: "",
    exitCode: null,
    submitted,
    updated: submitted,
  };
}

Deno.test("batchJobs.update() keeps the latest submission when an earlier job reports late", () => {
  const seen: string[] = [];
  const stop = batchJobs.follow((j) => seen.push(`${j.jobId} ${j.state}`));
  try {
    batchJobs.update(job("11", "PENDING", 1000));
    batchJobs.update(job("12", "PENDING", 2000));
    batchJobs.update(job("11", "CANCELLED", 1000));
    assert.equal(batchJobs.get("agt-batchjob")?.jobId, "12");
    assert.deepEqual(seen, ["11 PENDING", "12 PENDING"]);
  } finally {
    stop();
  }
});

/** A job of `serviceId` in `phase`, submitted and last updated at `at`. */
function jobOf(serviceId: string, phase: BatchPhase, at: number): BatchJob {
  const state = phase === "ended" ? "COMPLETED" : phase === "running" ? "RUNNING" : "PENDING";
  return { ...job(`${at}`, state, at), serviceId, phase, exitCode: phase === "ended" ? 0 : null };
}

/** A table on a clock that `clock.now` sets, and a cancel that counts its calls. */
function table() {
  const clock = { now: 1_800_000_000_000 };
  const cancelled: string[] = [];
  const jobs = new BatchJobTable({ now: () => clock.now });
  const cancelFor = (serviceId: string) => () => {
    cancelled.push(serviceId);
    return Promise.resolve();
  };
  return { clock, jobs, cancelled, cancelFor };
}

Deno.test("BatchJobTable.update() forgets the earliest ended job beyond MAX_ENDED_KEPT", () => {
  const { clock, jobs } = table();
  for (let i = 0; i <= MAX_ENDED_KEPT; i++) {
    jobs.update(jobOf(`agt-${i}`, "ended", clock.now++));
  }
  assert.equal(jobs.get("agt-0"), undefined);
  assert.equal(jobs.get("agt-1")?.phase, "ended");
  assert.equal(jobs.get(`agt-${MAX_ENDED_KEPT}`)?.phase, "ended");
});

Deno.test("BatchJobTable.update() orders ended jobs by when they ended, not submitted", () => {
  const { clock, jobs } = table();
  jobs.update(jobOf("agt-first", "running", clock.now));
  for (let i = 1; i < MAX_ENDED_KEPT; i++) {
    jobs.update(jobOf(`agt-${i}`, "ended", clock.now));
  }
  jobs.update({ ...jobOf("agt-first", "ended", clock.now), updated: ++clock.now });
  jobs.update(jobOf("agt-last", "ended", ++clock.now));
  assert.equal(jobs.get("agt-1"), undefined);
  assert.equal(jobs.get("agt-2")?.phase, "ended");
  assert.equal(jobs.get("agt-first")?.phase, "ended");
});

Deno.test("BatchJobTable forgets an ended job last updated more than 24 h ago", () => {
  const { clock, jobs } = table();
  jobs.update(jobOf("agt-old", "ended", clock.now));
  clock.now += ENDED_KEPT_MS / 2;
  jobs.update(jobOf("agt-new", "ended", clock.now));
  clock.now += ENDED_KEPT_MS / 2;
  assert.equal(jobs.get("agt-old")?.phase, "ended");
  clock.now += 1;
  assert.equal(jobs.get("agt-old"), undefined);
  assert.equal(jobs.get("agt-new")?.phase, "ended");
  clock.now += ENDED_KEPT_MS;
  jobs.update(jobOf("agt-other", "queued", clock.now));
  assert.equal(jobs.get("agt-new"), undefined);
});

Deno.test("BatchJobTable keeps a queued or running job of any age, and its cancel", async () => {
  const { clock, jobs, cancelled, cancelFor } = table();
  jobs.update(jobOf("agt-queued", "queued", clock.now), cancelFor("agt-queued"));
  jobs.update(jobOf("agt-running", "running", clock.now), cancelFor("agt-running"));
  clock.now += 2 * ENDED_KEPT_MS;
  for (let i = 0; i <= MAX_ENDED_KEPT; i++) {
    jobs.update(jobOf(`agt-${i}`, "ended", clock.now));
  }
  assert.equal(jobs.get("agt-queued")?.phase, "queued");
  assert.equal(jobs.get("agt-running")?.phase, "running");
  assert.equal(await jobs.cancel("agt-running"), true);
  assert.deepEqual(cancelled, ["agt-running"]);
});

Deno.test("BatchJobTable.cancel() returns false for an ended job and a forgotten one", async () => {
  const { clock, jobs, cancelled, cancelFor } = table();
  jobs.update(jobOf("agt-ended", "running", clock.now), cancelFor("agt-ended"));
  jobs.update(jobOf("agt-ended", "ended", clock.now));
  assert.equal(await jobs.cancel("agt-ended"), false);
  clock.now += ENDED_KEPT_MS + 1;
  assert.equal(jobs.get("agt-ended"), undefined);
  assert.equal(await jobs.cancel("agt-ended"), false);
  assert.deepEqual(cancelled, []);
});

Deno.test("BatchJobTable keeps a service submitted again after its job ended", async () => {
  const { clock, jobs, cancelled, cancelFor } = table();
  jobs.update(jobOf("agt-again", "ended", clock.now));
  jobs.update(jobOf("agt-again", "queued", ++clock.now), cancelFor("agt-again"));
  clock.now += 2 * ENDED_KEPT_MS;
  for (let i = 0; i <= MAX_ENDED_KEPT; i++) {
    jobs.update(jobOf(`agt-${i}`, "ended", clock.now));
  }
  assert.equal(jobs.get("agt-again")?.phase, "queued");
  assert.equal(await jobs.cancel("agt-again"), true);
  assert.deepEqual(cancelled, ["agt-again"]);
});

Deno.test("batchJobs.cancel() does not call the launcher once the job ended", async () => {
  let calls = 0;
  const cancel = () => {
    calls++;
    return Promise.resolve();
  };
  const running: BatchJob = {
    ...job("21", "RUNNING", 3000),
    serviceId: "agt-batchend",
    phase: "running",
  };
  batchJobs.update(running, cancel);
  batchJobs.update({ ...running, state: "COMPLETED", phase: "ended", updated: Date.now() });
  assert.equal(await batchJobs.cancel("agt-batchend"), false);
  assert.equal(calls, 0);
});
