/**
 * The batch jobs this process submitted, by service ID, as their launcher
 * last saw them. Batch launchers (`slurm://`) write it; the pilot manager
 * reads it to report and act on a pilot's batch state, which the registry's
 * service states do not carry (a job waiting in the queue is just LAUNCHING).
 * Ended jobs are kept as long, and as many, as the pilot manager keeps its
 * ended pilots, so a manager that runs for months does not grow with them.
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

/**
 * Ended jobs a table keeps at most, the most recently ended. Matches the
 * pilot manager's `MAX_ENDED_PILOTS` (services/pilot_manager/pilots.ts), so
 * an ended pilot it still lists still shows its job; defined here because
 * launchers do not import services.
 */
export const MAX_ENDED_BATCH_JOBS = 1000;
/**
 * How long a table keeps an ended job after its last update, ms: 24 h, the
 * pilot manager's `ENDED_PILOT_TTL_MS`.
 */
export const ENDED_BATCH_JOB_TTL_MS = 24 * 60 * 60 * 1000;

/** Options of {@linkcode BatchJobTable}. */
export interface BatchJobTableOptions {
  /** The clock, ms since the epoch, that ended jobs age by. Default `Date.now`. */
  now?: () => number;
}

/**
 * Batch jobs by service ID, bounded: a queued or running job is kept until it
 * ends; then the newest {@linkcode MAX_ENDED_BATCH_JOBS} ended jobs are kept
 * for {@linkcode ENDED_BATCH_JOB_TTL_MS} after their last update.
 */
export class BatchJobTable {
  #now: () => number;
  #jobs = new Map<string, BatchJob>();
  #cancels = new Map<string, () => Promise<void>>();
  /** Ended jobs' service IDs, the earliest ended first, with their `updated`. */
  #ended = new Map<string, number>();
  #listeners = new Set<BatchListener>();

  /** An empty table. */
  constructor(options: BatchJobTableOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** The job that runs `serviceId` (its latest submission), if any and not forgotten. */
  get(serviceId: string): BatchJob | undefined {
    this.#forgetExpired();
    return this.#jobs.get(serviceId);
  }

  /**
   * Records a job or its new state and tells the listeners. A late update of
   * a service's earlier job (cancelled while its next one was submitted) is
   * ignored: the table holds the latest submission. An ended job's `cancel`
   * is dropped (nothing cancels an ended job), and the ended jobs beyond the
   * table's bounds are forgotten.
   */
  update(job: BatchJob, cancel?: () => Promise<void>): void {
    const known = this.#jobs.get(job.serviceId);
    if (known && known.jobId !== job.jobId && known.submitted > job.submitted) return;
    this.#jobs.set(job.serviceId, { ...job });
    // Deleted first so that the order stays the order in which jobs ended.
    this.#ended.delete(job.serviceId);
    if (job.phase === "ended") {
      this.#cancels.delete(job.serviceId);
      this.#ended.set(job.serviceId, job.updated);
      this.#forgetExpired();
      this.#forgetBeyondCount();
    } else if (cancel) {
      this.#cancels.set(job.serviceId, cancel);
    }
    for (const listener of this.#listeners) listener({ ...job });
  }

  /**
   * Cancels the job that runs `serviceId` through its launcher.
   * @returns false when no such job is known or it has ended.
   */
  async cancel(serviceId: string): Promise<boolean> {
    const cancel = this.#cancels.get(serviceId);
    if (!cancel) return false;
    await cancel();
    return true;
  }

  /** Calls `listener` on every change until the returned function is called. */
  follow(listener: BatchListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Forgets the ended jobs last updated over the TTL ago, from the earliest
   * ended: each is removed once, so it costs nothing per call when none is due.
   */
  #forgetExpired(): void {
    const oldest = this.#now() - ENDED_BATCH_JOB_TTL_MS;
    for (const [serviceId, updated] of this.#ended) {
      if (updated >= oldest) return;
      this.#forget(serviceId);
    }
  }

  #forgetBeyondCount(): void {
    for (const serviceId of this.#ended.keys()) {
      if (this.#ended.size <= MAX_ENDED_BATCH_JOBS) return;
      this.#forget(serviceId);
    }
  }

  /** Forgets an ended job (whose cancel went when it ended). */
  #forget(serviceId: string): void {
    this.#ended.delete(serviceId);
    this.#jobs.delete(serviceId);
  }
}

/** The process-wide table of batch jobs. */
export const batchJobs: BatchJobTable = new BatchJobTable();
