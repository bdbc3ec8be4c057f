/**
 * The pilot manager's logic: submits agents ("pilots") through a launcher
 * with cores and a walltime, follows their batch jobs, and when a job ends
 * early applies the pilot's policy: `resubmit` starts it again under its old
 * ID (the next incarnation), `report` leaves it ended with the reason.
 * @module
 */
import type { SpawnRequest } from "../../types/wire.ts";
import type { BatchJob } from "../../launchers/batch_jobs.ts";
import { log } from "../../config/logging.ts";
import { EndedLedger } from "../../base/ended_ledger.ts";
import { eachAtMost } from "../../base/at_most.ts";
import { clearInterval, setInterval } from "../../base/timers.ts";
import { isBatchLauncher, UNBATCHED_CHECK_MS, unbatchedEnd, Walltimes } from "./_unbatched.ts";
import type { ServiceRecord, Transition } from "../../types/mod.ts";
import { CANCEL_REASON, takenRequest, takeoverOf } from "./_takeover.ts";
import { pilotEnd } from "./_pilot_end.ts";
import { agentDown, agentRecord, retireAgent } from "./_agent_records.ts";
import {
  agentOptions,
  checkBelow,
  type Entry,
  newEntry,
  type Pilot,
  type PilotDeps,
  type PilotPolicy,
  type PilotRequest,
  PilotRequestError,
  type PilotState,
} from "./_pilot_types.ts";

export {
  type Pilot,
  type PilotDeps,
  type PilotPolicy,
  type PilotRequest,
  PilotRequestError,
  type PilotState,
};

/** Registry reads at once when pilots are listed. */
export const PILOT_READS_AT_ONCE = 8;
/** The states of a pilot that ended. */
export const ENDED_PILOT_STATES: readonly PilotState[] = ["ENDED", "FAILED", "CANCELED"];
const ENDED_STATES = new Set<PilotState>(ENDED_PILOT_STATES);

/**
 * Submits pilots and keeps track of them: each until it ends (`ENDED`,
 * `FAILED`, `CANCELED`), then the newest 1,000 ended ones for 24 h
 * (base/ended_ledger.ts).
 */
export class PilotManager {
  #deps: PilotDeps;
  #entries = new Map<string, Entry>();
  /** Ended pilots by when they ended; one still ended when dropped is forgotten. */
  #ended = new EndedLedger<string>((id) => {
    const entry = this.#entries.get(id);
    if (entry && ENDED_STATES.has(entry.pilot.state)) this.#entries.delete(id);
  });
  #unfollow: () => void;
  #stopped = false;
  /** Pilots without a batch system: their walltimes, and a look at their records. */
  #walltimes = new Walltimes();
  #looking = setInterval(() => void this.#checkUnbatched(), UNBATCHED_CHECK_MS);

  /** A manager over `deps`; it follows batch job changes until `stop()`. */
  constructor(deps: PilotDeps) {
    this.#deps = deps;
    this.#unfollow = deps.batch.follow((job) => this.#onBatch(job));
  }

  /**
   * Submits `request.count` pilots; resolves once each job is with the batch
   * system (for a launcher without a queue: once each agent is up), while
   * the jobs may still wait in the queue.
   * @throws {Error} when a submission is refused (a malformed launcher URL,
   * `sbatch` refusing the job); the pilots after it are not tried.
   */
  async submit(request: PilotRequest): Promise<Pilot[]> {
    for (const [what, id] of [["queue", request.queue], ["pub/sub", request.pubsub]]) {
      await checkBelow(this.#deps, what!, id!);
    }
    const pilots: Pilot[] = [];
    for (let i = 0; i < request.count; i++) {
      const id = await this.#launch(request);
      pilots.push(this.#entries.get(id)!.pilot);
    }
    return pilots.map((p) => ({ ...p }));
  }

  /** Every pilot, with its agent's registry state, read for a few pilots at a time. */
  async list(): Promise<Pilot[]> {
    const entries = this.#kept();
    const pilots: Pilot[] = [];
    await eachAtMost(entries, PILOT_READS_AT_ONCE, async (entry, i) => {
      pilots[i] = await this.#view(entry);
    });
    return pilots;
  }

  /** The state of every pilot, read from nothing but the manager (metrics). */
  states(): PilotState[] {
    return this.#kept().map((entry) => entry.pilot.state);
  }

  /** One pilot, or undefined (also once it ended and was forgotten). */
  async get(id: string): Promise<Pilot | undefined> {
    this.#ended.dropDue();
    const entry = this.#entries.get(id);
    return entry ? await this.#view(entry) : undefined;
  }

  /**
   * Takes over a pilot that an earlier incarnation of this manager submitted
   * (its agent's record and transitions, found in the registry after a
   * restart). One whose agent runs, or is about to again (`DEAD`: the
   * supervisor restarts it), is followed with the walltime it had; one that
   * ended is kept as ended (24 h from its end, like the others).
   * @returns the pilot's state.
   */
  adopt(
    found: { record: ServiceRecord; transitions: Transition[] },
    policy: PilotPolicy,
  ): PilotState {
    const { record } = found;
    const known = this.#entries.get(record.id);
    if (known) return known.pilot.state;
    const taken = takeoverOf(record, found.transitions);
    const entry = newEntry(takenRequest(record, policy), {
      id: record.id,
      state: taken.state,
      reason: taken.reason,
      submitted: taken.submitted,
    });
    entry.pilot.service = record.state;
    entry.pilot.resubmits = taken.resubmits;
    this.#entries.set(record.id, entry);
    if (ENDED_STATES.has(taken.state)) this.#ended.ended(record.id, taken.endedAt);
    else this.#keepWalltime(entry, taken.walltimeFrom);
    return taken.state;
  }

  /**
   * Whether the supervisor may restart child `id` once it is `DEAD`: any
   * child that is no pilot, and the agent of a `RUNNING` pilot that died
   * while its job runs (heartbeats lost). Never the agent of a pilot that
   * ended or is cancelled, nor one this manager is starting or deciding the
   * end of: those it resubmits itself, within `maxResubmits`.
   */
  restartable(id: string): boolean {
    const entry = this.#entries.get(id);
    if (!entry) return true;
    return entry.pilot.state === "RUNNING" && !entry.cancelRequested && !entry.inflight &&
      !entry.ending;
  }

  /**
   * Cancels a pilot's batch job (`scancel`): the agent stops, its tasks go
   * back to the queue, and the pilot is not resubmitted. A pilot with nothing
   * left to cancel (its job ended, its agent never started) is `CANCELED` at once.
   * @returns undefined for an unknown pilot.
   */
  async cancel(id: string): Promise<Pilot | undefined> {
    const entry = this.#entries.get(id);
    if (!entry) return undefined;
    entry.cancelRequested = true;
    // The agent stops cleanly first (STOPPED, so no one restarts it), then
    // its job goes; a job not yet with the batch system is cancelled when
    // it arrives (#onBatch).
    await this.#deps.stopService(id, CANCEL_REASON).catch((error) =>
      log("pilot-manager").debug("Cannot stop the agent of pilot {id}: {error}", {
        id,
        error: String(error),
      })
    );
    const job = this.#deps.batch.get(id);
    const queuedOrRunning = job !== undefined && job.phase !== "ended";
    if (queuedOrRunning) await this.#deps.batch.cancel(id).catch(() => false);
    // A batch pilot whose job is cancelled ends when the job does (#onBatch).
    const waits = isBatchLauncher(entry.pilot.on) && (queuedOrRunning || entry.inflight);
    if (!waits && !entry.ending && !ENDED_STATES.has(entry.pilot.state)) {
      this.#settle(entry, "CANCELED", "cancelled by the fabric");
    }
    return await this.#view(entry);
  }

  /**
   * Stops following; cancels the jobs still waiting in the queue, whose
   * passwords die with this process (running agents are services of their own).
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#unfollow();
    clearInterval(this.#looking);
    this.#walltimes.clear();
    for (const entry of this.#entries.values()) {
      if (this.#deps.batch.get(entry.pilot.id)?.phase !== "queued") continue;
      entry.cancelRequested = true;
      await this.#deps.batch.cancel(entry.pilot.id).catch(() => false);
    }
  }

  #launch(request: PilotRequest, restartId?: string): Promise<string> {
    const { promise: submitted, resolve, reject } = Promise.withResolvers<string>();
    let entry = restartId ? this.#entries.get(restartId) : undefined;
    // A resubmission is under way from now: the old job's end is not its end.
    if (entry) entry.inflight = true;
    const spawnRequest: SpawnRequest = {
      role: "agent",
      on: request.on,
      sessions: request.sessions,
      options: agentOptions(request),
      ...(restartId ? { restart: restartId } : {}),
    };
    const spawned = this.#deps.spawn(spawnRequest, {
      onRecorded: ({ id }) => {
        if (!entry) {
          entry = newEntry(request, {
            id,
            state: "SUBMITTING",
            reason: "submitting",
            submitted: Date.now(),
          });
          this.#entries.set(id, entry);
        }
        entry.inflight = true;
        entry.announce = () => resolve(id);
      },
    });
    spawned.then(
      () => {
        if (!entry) return;
        this.#announce(entry);
        entry.inflight = false;
        if (entry.pilot.state === "SUBMITTING" || entry.pilot.state === "QUEUED") {
          entry.pilot.state = "RUNNING";
          entry.pilot.reason = "agent started";
          this.#keepWalltime(entry, Date.now());
        }
      },
      (error: unknown) => {
        if (!entry) return reject(error);
        entry.inflight = false;
        if (entry.announce) {
          // Refused before the batch system took it: the caller hears why.
          entry.announce = undefined;
          if (!restartId) this.#entries.delete(entry.pilot.id);
          return reject(error);
        }
        void this.#endedEarly(entry, error instanceof Error ? error.message : String(error));
      },
    );
    return submitted;
  }

  #announce(entry: Entry): void {
    entry.announce?.();
    entry.announce = undefined;
  }

  #onBatch(job: BatchJob): void {
    const entry = this.#entries.get(job.serviceId);
    if (!entry) return;
    this.#announce(entry);
    entry.pilot.batch = job;
    if (entry.cancelRequested && job.phase !== "ended") {
      void this.#deps.batch.cancel(job.serviceId).catch(() => false);
    }
    // A pilot that ended stays ended: its old job's last state changes nothing.
    if (ENDED_STATES.has(entry.pilot.state)) return;
    if (job.phase === "queued") {
      entry.pilot.state = "QUEUED";
      entry.pilot.reason = `Slurm job ${job.jobId} ${job.state}${
        job.reason ? ` (${job.reason})` : ""
      }`;
    } else if (job.phase === "running" && entry.pilot.state !== "RUNNING") {
      entry.pilot.state = "RUNNING";
      entry.pilot.reason = `Slurm job ${job.jobId} RUNNING on ${job.nodes}`;
    } else if (job.phase === "ended" && !entry.inflight) {
      // A job that ends before its agent bootstrapped fails the spawn, which
      // applies the policy; one that ends later is handled here.
      void this.#endedEarly(entry, `Slurm job ${job.jobId} ended ${job.state}`);
    }
  }

  /**
   * Applies the end of a pilot's start or job (_pilot_end.ts): final, or
   * through its policy. Once at a time per pilot, and never for one that ended.
   */
  async #endedEarly(entry: Entry, reason: string): Promise<void> {
    if (entry.ending || ENDED_STATES.has(entry.pilot.state)) return;
    entry.ending = true;
    try {
      await this.#applyEnd(entry, reason);
    } finally {
      entry.ending = false;
    }
  }

  async #applyEnd(entry: Entry, ended: string): Promise<void> {
    const id = entry.pilot.id;
    const end = pilotEnd(this.#deps.batch.get(id), {
      reason: ended,
      cancelRequested: entry.cancelRequested,
    });
    if (end.kind !== "failure") return this.#settle(entry, end.kind, end.reason);
    const { reason } = end;
    const max = this.#deps.maxResubmits ?? 2;
    if (entry.pilot.policy !== "resubmit" || this.#stopped || entry.pilot.resubmits >= max) {
      const why = entry.pilot.policy === "resubmit"
        ? `${reason}; resubmitted ${max} times`
        : reason;
      return this.#settle(entry, "FAILED", why);
    }
    const down = await agentDown(this.#deps, id, reason);
    if (this.#stopped) return;
    if (entry.cancelRequested) return this.#settle(entry, "CANCELED", "cancelled by the fabric");
    if (!down) return;
    entry.pilot.resubmits += 1;
    entry.pilot.state = "SUBMITTING";
    entry.pilot.reason = `${reason}: resubmitting (${entry.pilot.resubmits} of ${max})`;
    log("pilot-manager").info("Pilot {id}: {reason}", { id, reason: entry.pilot.reason });
    this.#launch(entry.request, id).catch((error) => {
      this.#settle(entry, "FAILED", `resubmission refused: ${(error as Error).message}`);
    });
  }

  /** A pilot without a batch system: its agent is stopped once its walltime has passed. */
  #keepWalltime(entry: Entry, startedAt: number): void {
    if (isBatchLauncher(entry.pilot.on)) return;
    this.#walltimes.keep(entry.pilot.id, entry.pilot.walltime, startedAt, () => {
      this.#stopAtWalltime(entry);
    });
  }

  #stopAtWalltime(entry: Entry): void {
    const id = entry.pilot.id;
    this.#deps.stopService(id, `walltime ${entry.pilot.walltime} reached`).catch((error) =>
      log("pilot-manager").warn("Cannot stop pilot {id}: {error}", { id, error: String(error) })
    );
  }

  /** Ends the running pilots without a batch system whose agents ended (their records). */
  async #checkUnbatched(): Promise<void> {
    const running = this.#kept().filter((entry) =>
      entry.pilot.state === "RUNNING" && !entry.inflight && !isBatchLauncher(entry.pilot.on)
    );
    await eachAtMost(running, PILOT_READS_AT_ONCE, async (entry) => {
      const record = await agentRecord(this.#deps, entry.pilot.id);
      const reached = this.#walltimes.reached.has(entry.pilot.id);
      const end = record && unbatchedEnd(record, reached);
      // An agent DEAD when its walltime passed could not be stopped: it is once it is back.
      if (reached && record?.state === "ALIVE") this.#stopAtWalltime(entry);
      if (!end || entry.pilot.state !== "RUNNING") return;
      if (end.state === "policy") {
        // A resubmitted agent gets its own walltime once it runs.
        this.#walltimes.forget(entry.pilot.id);
        await this.#endedEarly(entry, end.reason);
      } else this.#settle(entry, end.state, end.reason);
    });
  }

  #settle(entry: Entry, state: PilotState, reason: string): void {
    this.#walltimes.forget(entry.pilot.id);
    if (!ENDED_STATES.has(entry.pilot.state)) this.#ended.ended(entry.pilot.id, Date.now());
    entry.pilot.state = state;
    entry.pilot.reason = reason;
    const level = state === "FAILED" ? "warn" : "info";
    log("pilot-manager")[level]("Pilot {id} {state}: {reason}", {
      id: entry.pilot.id,
      state,
      reason,
    });
    if (!entry.inflight) void retireAgent(this.#deps, entry.pilot.id, { state, reason });
  }

  /** The pilots kept, once those ended beyond the newest 1,000 or over 24 h ago are forgotten. */
  #kept(): Entry[] {
    this.#ended.dropDue();
    return [...this.#entries.values()];
  }

  async #view(entry: Entry): Promise<Pilot> {
    const record = await agentRecord(this.#deps, entry.pilot.id);
    return {
      ...entry.pilot,
      service: record?.state ?? "",
      batch: this.#deps.batch.get(entry.pilot.id) ?? null,
    };
  }
}
