/**
 * The batch jobs this process submitted, by service ID, as their launcher
 * last saw them. Batch launchers (`slurm://`) write it; the pilot manager
 * reads it to report and act on a pilot's batch state, which the registry's
 * service states do not carry (a job waiting in the queue is just LAUNCHING).
 * @module
 */

/** Where a batch job is in its life, in the fabric's words. */
export type BatchPhase = "queued" | "running" | "ended";

/** One batch job as its launcher last saw it. */
export interface BatchJob {
  /** The service the job runs. */
  serviceId: string;
  /** The batch system's job ID. */
  jobId: string;
  /** The launcher URL it was submitted through. */
  launcher: string;
  /** The batch system's own state name, e.g. `PENDING`, `RUNNING`, `TIMEOUT`. */
  state: string;
  phase: BatchPhase;
  /** The node(s) it runs on, once running. */
  nodes: string;
  /** The batch system's reason (why pending, why it ended), or "". */
  reason: string;
  /** Exit code of the job once ended: 128 + N for signal N; -1 when unknown. */
  exitCode: number | null;
  /** When it was submitted and when its state last changed, ms since the epoch. */
  submitted: number;
  updated: number;
}

/** Called with each job whose state changed. */
export type BatchListener = (job: BatchJob) => void;

const jobs = new Map<string, BatchJob>();
const cancels = new Map<string, () => Promise<void>>();
const listeners = new Set<BatchListener>();

/** The process-wide table of batch jobs. */
export const batchJobs = {
  /** The job that runs `serviceId` (its latest submission), if any. */
  get(serviceId: string): BatchJob | undefined {
    return jobs.get(serviceId);
  },

  /**
   * Records a job or its new state and tells the listeners. A late update of
   * a service's earlier job (cancelled while its next one was submitted) is
   * ignored: the table holds the latest submission.
   */
  update(job: BatchJob, cancel?: () => Promise<void>): void {
    const known = jobs.get(job.serviceId);
    if (known && known.jobId !== job.jobId && known.submitted > job.submitted) return;
    jobs.set(job.serviceId, { ...job });
    if (cancel) cancels.set(job.serviceId, cancel);
    for (const listener of listeners) listener({ ...job });
  },

  /**
   * Cancels the job that runs `serviceId` through its launcher.
   * @returns false when no such job is known.
   */
  async cancel(serviceId: string): Promise<boolean> {
    const cancel = cancels.get(serviceId);
    if (!cancel) return false;
    await cancel();
    return true;
  },

  /** Calls `listener` on every change until the returned function is called. */
  follow(listener: BatchListener): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};
