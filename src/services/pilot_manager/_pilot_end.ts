/**
 * How a pilot's start or job ended, in the pilot's words (docs/services.md
 * "Pilot states and the failure policy"): cancelled by an operator (final),
 * completed, or failed, which the pilot's policy then applies to. A job that
 * its own launcher cancelled (no bootstrap within `wait`: it never started)
 * is a failure of the pilot's start, not an operator's cancel, though Slurm
 * calls both `CANCELLED`.
 * @module
 */
import type { BatchJob } from "../../launchers/batch_jobs.ts";

/** What to do with a pilot whose start or job ended. */
export interface PilotEnd {
  /** `CANCELED` and `ENDED` are final; `failure` goes through the pilot's policy. */
  kind: "CANCELED" | "ENDED" | "failure";
  reason: string;
}

/** What a pilot whose job never started is told to look at. */
export const UNSTARTED_HINT = "check the partition's limits (--cores) and squeue";

/**
 * The end of a pilot whose spawn failed or whose job ended with `reason`,
 * given its batch `job` as the launcher last saw it and whether the fabric
 * cancelled it (`pilot cancel`).
 */
export function pilotEnd(
  job: BatchJob | undefined,
  ended: { reason: string; cancelRequested: boolean },
): PilotEnd {
  const { reason, cancelRequested } = ended;
  if (cancelRequested) {
    return { kind: "CANCELED", reason: job ? `Slurm job ${job.jobId} CANCELLED` : reason };
  }
  if (job?.killed) {
    return {
      kind: "failure",
      reason: job.killed.started ? reason : `${job.killed.why}; ${UNSTARTED_HINT}`,
    };
  }
  if (job?.state === "CANCELLED") {
    return { kind: "CANCELED", reason: `Slurm job ${job.jobId} CANCELLED` };
  }
  if (job?.state === "COMPLETED") return { kind: "ENDED", reason };
  return { kind: "failure", reason };
}
