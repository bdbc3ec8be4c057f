/**
 * The pilot manager's words: pilot requests, pilots, their states and
 * policies, what the manager needs from its service, and what it keeps of
 * each pilot.
 * @module
 */
import type { SpawnRequest } from "../../types/wire.ts";
import type { BatchJob } from "../../launchers/batch_jobs.ts";
import type { SpawnHooks } from "../../runtime/role.ts";
import type { ServiceRecord, ServiceState, SpawnResult } from "../../types/mod.ts";

/** What happens to a pilot whose job ended before anyone stopped it. */
export type PilotPolicy = "resubmit" | "report";

/**
 * A pilot's state: `SUBMITTING` until its batch job exists, then `QUEUED`,
 * `RUNNING`, and one of `ENDED` (the job completed), `FAILED` (it ended early
 * or never bootstrapped, and is not resubmitted), `CANCELED` (cancelled by
 * the fabric or with `scancel`).
 */
export type PilotState = "SUBMITTING" | "QUEUED" | "RUNNING" | "ENDED" | "FAILED" | "CANCELED";

/** A request for pilots, validated. */
export interface PilotRequest {
  /** Launcher URL, e.g. `slurm://compute`. */
  on: string;
  count: number;
  /** Cores per pilot: the job's request and the agent's slots. */
  cores: number;
  /** Walltime (`30`, `90s`, `2h`, `HH:MM:SS`, `D-HH:MM:SS`), or "" for the partition's default. */
  walltime: string;
  /** Service IDs of the tasks' queue and of the pub/sub for task events. */
  queue: string;
  pubsub: string;
  /** The queue to take tasks from, or "" for the agent's default. */
  queueName: string;
  policy: PilotPolicy;
  sessions: string[];
}

/** A pilot as the API shows it. */
export interface Pilot {
  id: string;
  on: string;
  cores: number;
  walltime: string;
  policy: PilotPolicy;
  state: PilotState;
  /** The agent's state in the registry ("" when not known). */
  service: ServiceState | "";
  /** Its current batch job, as the launcher last saw it (null for non-batch launchers). */
  batch: BatchJob | null;
  /** Times it was resubmitted under its ID. */
  resubmits: number;
  /** Why it is in its state. */
  reason: string;
  submitted: number;
}

/**
 * A pilot request the manager cannot serve as asked (a queue or pub/sub its
 * agents would not reach); nothing was submitted.
 */
export class PilotRequestError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "PilotRequestError";
  }
}

/** What the pilot manager uses. */
export interface PilotDeps {
  /** The manager's own service ID. */
  selfId: string;
  /** Spawns through this service (RoleDeps.spawn). */
  spawn(request: SpawnRequest, hooks?: SpawnHooks): Promise<SpawnResult>;
  /** A service's record in the registry. */
  record(id: string): Promise<ServiceRecord | undefined>;
  /**
   * Moves an agent's record to a new state in the registry: a pilot that
   * ended leaves its agent `FAILED` or `STOPPED`, never `DEAD`, so no one
   * restarts it (RegistryClient.transition).
   */
  transition(
    id: string,
    change: { incarnation: number; to: ServiceState; reason: string },
  ): Promise<unknown>;
  /** Asks a running child to stop cleanly (`POST /v1/stop`). */
  stopService(id: string, reason: string): Promise<void>;
  /** The process's batch jobs (launchers/batch_jobs.ts). */
  batch: {
    get(serviceId: string): BatchJob | undefined;
    cancel(serviceId: string): Promise<boolean>;
    follow(listener: (job: BatchJob) => void): () => void;
  };
  /** Most resubmissions per pilot. Default 2. */
  maxResubmits?: number;
}

/**
 * Pilots reach their queue and pub/sub through their manager: the service
 * `id` (`what`: "queue" or "pub/sub") must be below it.
 * @throws {PilotRequestError} when it is unknown or elsewhere, saying what to spawn.
 */
export async function checkBelow(deps: PilotDeps, what: string, id: string): Promise<void> {
  const record = await deps.record(id);
  if (!record) {
    throw new PilotRequestError(`No ${what} service "${id}" in the registry: see fabricd status`);
  }
  if (!record.route.includes(deps.selfId)) {
    throw new PilotRequestError(
      `The ${what} service "${id}" is not below pilot manager "${deps.selfId}", and ` +
        `pilots on compute nodes reach only what is: spawn one with ` +
        `"fabricd spawn --role ${what === "queue" ? "queue" : "pubsub"} --via ${deps.selfId}"`,
    );
  }
}

/** What the manager keeps of one pilot. */
export interface Entry {
  pilot: Pilot;
  request: PilotRequest;
  /** Resolves the submission once the job is with the batch system (or the agent is up). */
  announce: (() => void) | undefined;
  /** A spawn (submit or resubmit) that has not returned yet. */
  inflight: boolean;
  /** The end of its start or job is being decided (_pilot_end.ts): nothing else acts meanwhile. */
  ending: boolean;
  cancelRequested: boolean;
}

/** A new pilot of `request`, not ended, not resubmitted, its service and job not known yet. */
export function newEntry(
  request: PilotRequest,
  fields: Pick<Pilot, "id" | "state" | "reason" | "submitted">,
): Entry {
  const { on, cores, walltime, policy } = request;
  return {
    pilot: { ...fields, on, cores, walltime, policy, service: "", batch: null, resubmits: 0 },
    request,
    announce: undefined,
    inflight: false,
    ending: false,
    cancelRequested: false,
  };
}

/** The agent options of a pilot. */
export function agentOptions(request: PilotRequest): Record<string, string> {
  return {
    queue: request.queue,
    pubsub: request.pubsub,
    cores: String(request.cores),
    // Reach the queue and the pub/sub through the pilot manager, which relays:
    // compute nodes reach nothing else of the fabric.
    via: "parent",
    ...(request.walltime ? { walltime: request.walltime } : {}),
    ...(request.queueName ? { queueName: request.queueName } : {}),
  };
}
