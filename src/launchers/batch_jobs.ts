/**
 * The batch jobs this process submitted, by service ID, as their launcher
 * last saw them. Batch launchers (`slurm://`) write it; the pilot manager
 * reads it to report and act on a pilot's batch state, which the registry's
 * service states do not carry (a job waiting in the queue is just LAUNCHING).
 * Ended jobs are kept as long, and as many, as the pilot manager keeps its
 * ended pilots, so a manager that runs for months does not grow with them.
 * @module
 */
import { EndedLedger, type EndedLedgerOptions } from "../base/ended_ledger.ts";

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
  /**
   * Set when the launcher cancelled the job itself, its spawner having given
   * up on it: whether the job had started, and why (e.g. `no bootstrap within
   * 8000 ms: the job did not start (PENDING, PartitionConfig)`). A `CANCELLED`
   * job without it was cancelled by someone else (`scancel`, `pilot cancel`).
   */
  killed?: { started: boolean; why: string };
  /** Exit code of the job once ended: 128 + N for signal N; -1 when unknown. */
  exitCode: number | null;
  /** When it was submitted and when its state last changed, ms since the epoch. */
  submitted: number;
  updated: number;
}

/** Called with each job whose state changed. */
export type BatchListener = (job: BatchJob) => void;

/** Options of {@linkcode BatchJobTable}: the clock its ended jobs age by. */
export type BatchJobTableOptions = EndedLedgerOptions;

/**
 * Batch jobs by service ID, bounded: a queued or running job is kept until it
 * ends; then ended jobs are kept as the pilot manager keeps ended pilots
 * (base/ended_ledger.ts: the newest 1,000, for 24 h after their last update),
 * so an ended pilot it still lists still shows its job.
 */
export class BatchJobTable {
  #jobs = new Map<string, BatchJob>();
  #cancels = new Map<string, () => Promise<void>>();
  /** Ended jobs' service IDs, by their `updated`. */
  #ended: EndedLedger<string>;
  #listeners = new Set<BatchListener>();

  /** An empty table. */
  constructor(options: BatchJobTableOptions = {}) {
    this.#ended = new EndedLedger((serviceId) => this.#jobs.delete(serviceId), options);
  }

  /** The job that runs `serviceId` (its latest submission), if any and not forgotten. */
  get(serviceId: string): BatchJob | undefined {
    this.#ended.dropDue();
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
    if (job.phase === "ended") {
      this.#cancels.delete(job.serviceId);
      this.#ended.ended(job.serviceId, job.updated);
    } else {
      this.#ended.delete(job.serviceId);
      if (cancel) this.#cancels.set(job.serviceId, cancel);
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
}

/** The process-wide table of batch jobs. */
export const batchJobs: BatchJobTable = new BatchJobTable();
