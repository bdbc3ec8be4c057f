/**
 * The registry's storage interface (DESIGN.md "Registry": "Storage behind one
 * interface"). SQLite is the embedded default; etcd comes later behind the
 * same contract.
 * @module
 */
import type { ServiceRecord, ServiceState, Transition } from "../types/mod.ts";
import { MAX_SESSIONS } from "../types/service_record.ts";
import { FabricError } from "../types/errors.ts";
import type { Revocation } from "./revocations.ts";

/** What the failure detector needs of a live service. */
export type LiveEntry = Pick<
  ServiceRecord,
  "id" | "incarnation" | "state" | "lastHeartbeat" | "updated"
>;

/** A record together with the transition that produced it, if any. */
export interface StoreChange {
  record: ServiceRecord;
  transition: Transition | null;
  /** The record was removed (`record` is its last state); no transition then. */
  removed?: boolean;
}

/** A state change as a store takes it. */
export interface StoreTransition {
  incarnation: number;
  to: ServiceState;
  reason: string;
  /** Registry time of the change, ms since the epoch. */
  at: number;
  /**
   * The process is known to have ended (its parent saw it exit): with `to`
   * DEAD the record gets `exited`, and is marked so even when it was DEAD
   * already (by TTL). Default false.
   */
  exited?: boolean | undefined;
}

/** Thrown when a write would let an older incarnation overwrite a newer one. */
export class StaleIncarnationError extends FabricError {
  /** The incarnation the store holds. */
  readonly current: number;
  /** Builds the error. */
  constructor(id: string, offered: number, current: number) {
    super(
      offered < current
        ? `Service "${id}" incarnation ${offered} is stale: the registry holds incarnation ${current}`
        : `Service "${id}" has no incarnation ${offered}: the registry holds incarnation ${current}`,
      { status: 409 },
    );
    this.current = current;
  }
}

/** Thrown when a state change is not allowed by the state machine. */
export class InvalidTransitionError extends FabricError {
  /** Builds the error. */
  /**
   * `incarnation`: a new incarnation that may not begin in `to` after `from`
   * (`""`: no record before it).
   */
  constructor(id: string, from: ServiceState | "", to: ServiceState, incarnation?: number) {
    super(
      incarnation === undefined
        ? `Service "${id}" cannot move from ${from} to ${to}`
        : `Service "${id}" cannot begin incarnation ${incarnation} in ${to} ` +
          `${from === "" ? "as its first record" : `after ${from}`}: ` +
          "a new incarnation begins LAUNCHING, RESTARTING (after DEAD, FAILED or STOPPED) or, " +
          "for a root service, ALIVE (first, or after STOPPED or LOST)",
      { status: 409 },
    );
  }
}

/** Thrown when a heartbeat comes from a service the registry holds as ended. */
export class NotLiveError extends FabricError {
  /** Builds the error; `why` replaces the default explanation. */
  constructor(id: string, state: ServiceState, why?: string) {
    super(
      `Service "${id}" is ${state} in the registry${
        why ? ` (${why})` : ""
      }: this instance must stop`,
      { status: 409 },
    );
  }
}

/** Thrown when a record that is not ended (STOPPED, FAILED or LOST) is to be forgotten. */
export class NotEndedError extends FabricError {
  /** Builds the error. */
  constructor(id: string, state: ServiceState) {
    super(
      `Service "${id}" is ${state}, not ended: only STOPPED, FAILED or LOST records can be ` +
        `forgotten; stop it first with "fabricd stop ${id}"`,
      { status: 409 },
    );
  }
}

/** Thrown when a session would take a record past {@linkcode MAX_SESSIONS}. */
export class TooManySessionsError extends FabricError {
  /** Builds the error. */
  constructor(id: string) {
    super(
      `Service "${id}" already serves ${MAX_SESSIONS} sessions: close one before opening another`,
      { status: 409 },
    );
  }
}

/**
 * Thrown when a write finds the store's disk full (HTTP 503: nothing was
 * written; the same request succeeds once there is space again).
 */
export class StoreFullError extends FabricError {
  /** Builds the error; `path` is the store's file. */
  constructor(path: string, options?: ErrorOptions) {
    super(
      `Registry store "${path}": database or disk is full: free space on its disk, then retry`,
      { status: 503 },
      options,
    );
  }
}

/** Thrown when a record does not exist. */
export class UnknownServiceError extends FabricError {
  /** Builds the error. */
  constructor(id: string) {
    super(`No service "${id}" in the registry: check the ID with "fabricd status"`, {
      status: 404,
    });
  }
}

/** One beat of a batch, as a store takes it. */
export interface BeatRequest {
  id: string;
  incarnation: number;
}

/** One beat's outcome in {@linkcode RegistryStore.heartbeatMany}. */
export type BeatOutcome = ServiceRecord | UnknownServiceError | StaleIncarnationError;

/**
 * A batch of heartbeats as lone heartbeats of `store`, `concurrency` at a
 * time, each with its own outcome (what a store without `heartbeatMany` does).
 * @throws {Error} the first failure that is not a beat's own refusal (the store is down).
 */
export async function heartbeatEach(
  store: Pick<RegistryStore, "heartbeat">,
  beats: readonly BeatRequest[],
  options: { at: number; concurrency: number },
): Promise<BeatOutcome[]> {
  const outcomes: BeatOutcome[] = [];
  for (let i = 0; i < beats.length; i += options.concurrency) {
    const chunk = beats.slice(i, i + options.concurrency);
    outcomes.push(
      ...await Promise.all(
        chunk.map((b) =>
          store.heartbeat(b.id, b.incarnation, options.at).catch((error: unknown) => {
            if (error instanceof UnknownServiceError || error instanceof StaleIncarnationError) {
              return error;
            }
            throw error;
          })
        ),
      ),
    );
  }
  return outcomes;
}

/** What every registry store does; every write is durable when its promise resolves. */
export interface RegistryStore {
  /** One record, or undefined. */
  get(id: string): Promise<ServiceRecord | undefined>;
  /** Every record, ordered by start time. */
  list(): Promise<ServiceRecord[]>;
  /**
   * The liveness facts of every ALIVE or SUSPECT service, unordered: what the
   * failure detector reads several times a second, so it must stay cheap.
   */
  live(): Promise<LiveEntry[]>;
  /**
   * Writes a whole record. A higher incarnation replaces the stored one (and
   * clears `exited`); the same incarnation updates it (a state change must be
   * allowed); a lower one throws {@linkcode StaleIncarnationError}. A state
   * change is stored as a transition.
   */
  put(record: ServiceRecord, reason: string): Promise<StoreChange>;
  /**
   * Moves a record to a new state within its incarnation, storing time and reason.
   * @throws {UnknownServiceError | StaleIncarnationError | InvalidTransitionError}
   */
  transition(id: string, change: StoreTransition): Promise<StoreChange>;
  /** Records heartbeats (durable within the store's flush interval). */
  heartbeat(id: string, incarnation: number, at: number): Promise<ServiceRecord>;
  /**
   * Records a batch of heartbeats at once (an aggregator's), in one write.
   * Each beat gets its own outcome, in order: the record, or the error a lone
   * {@linkcode heartbeat} would have thrown. A store without it gets
   * {@linkcode heartbeatEach}.
   */
  heartbeatMany?(beats: readonly BeatRequest[], at: number): Promise<BeatOutcome[]>;
  /**
   * Removes an ended record (STOPPED, FAILED, LOST) and its transitions, as
   * decided by `decideForget`; answers the record as it was. The revocation
   * the record implied is kept, in the same write, until `keepUntil` (ms
   * since the epoch): a certificate of the forgotten service may be valid
   * until then (see {@linkcode keptRevocations}).
   * @throws {UnknownServiceError | NotEndedError}
   */
  delete(id: string, keepUntil: number): Promise<ServiceRecord>;
  /**
   * The revocations of forgotten records kept past `now` (ms since the
   * epoch); the store may drop the expired ones meanwhile. With `since`, only
   * those kept at a change number after it: each takes a number at least that
   * of the forgotten record's last transition, so a reader of the changes
   * after `since` misses no revocation that a forget took out of them.
   */
  keptRevocations(now: number, since?: number): Promise<Revocation[]>;
  /** Adds or removes a session of a service. */
  setSession(id: string, session: string, present: boolean): Promise<ServiceRecord>;
  /** Transitions after `seq`, oldest first, at most `limit`. */
  transitionsSince(seq: number, limit: number): Promise<Transition[]>;
  /** The transitions of one service, oldest first. */
  history(id: string): Promise<Transition[]>;
  /** Flushes and closes; idempotent. */
  close(): Promise<void>;
  /**
   * Stores shared by several registry replicas report every transition, from
   * any replica, here; the registry then streams these instead of its own writes.
   */
  changes?(listener: (change: StoreChange) => void): () => void;
}
