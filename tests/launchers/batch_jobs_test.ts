import assert from "node:assert/strict";
import { type BatchJob, batchJobs } from "../../src/launchers/batch_jobs.ts";

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
