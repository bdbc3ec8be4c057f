/**
 * The service state machine of DESIGN.md "Registry" and docs/failures.md:
 * `LAUNCHING -> BOOTSTRAPPING -> CONFIGURING -> ALIVE`, `ALIVE -> SUSPECT -> DEAD`,
 * `DEAD -> RESTARTING -> ALIVE | FAILED -> LOST`, and `STOPPED` for a clean stop.
 *
 * {@linkcode decidePut} and {@linkcode decideTransition} hold the fencing rules
 * of every registry store: pure functions that a store calls inside its own
 * transaction, between reading the held record and writing the next one.
 * @module
 */
import type { ServiceRecord, ServiceState } from "../types/mod.ts";
import { MAX_SESSIONS } from "../types/service_record.ts";
import {
  InvalidTransitionError,
  NotEndedError,
  StaleIncarnationError,
  type StoreTransition,
  TooManySessionsError,
  UnknownServiceError,
} from "./store.ts";

const NEXT: Record<ServiceState, readonly ServiceState[]> = {
  LAUNCHING: ["BOOTSTRAPPING", "FAILED", "STOPPED"],
  // A restart's bootstrap that ends without the child's fault (its spawner
  // died, the launch or configure failed) is a death, resumed by a restart;
  // FAILED is for exit 79 and exhausted restarts (issue 18).
  BOOTSTRAPPING: ["CONFIGURING", "DEAD", "FAILED", "STOPPED"],
  CONFIGURING: ["ALIVE", "DEAD", "FAILED", "STOPPED"],
  ALIVE: ["SUSPECT", "DEAD", "STOPPED"],
  // A heartbeat that arrives late takes a suspect (or a dead, not yet replaced)
  // service back; DESIGN.md leaves the choice to us and docs/failures.md records it.
  SUSPECT: ["ALIVE", "DEAD", "STOPPED"],
  DEAD: ["ALIVE", "RESTARTING", "FAILED", "LOST", "STOPPED"],
  RESTARTING: ["BOOTSTRAPPING", "CONFIGURING", "ALIVE", "DEAD", "FAILED", "STOPPED"],
  FAILED: ["LOST", "RESTARTING", "STOPPED"],
  LOST: [],
  STOPPED: [],
};

/**
 * How a new incarnation may begin, by the state its predecessor ended in
 * (`""`: no predecessor). A first spawn starts LAUNCHING; a restart starts
 * RESTARTING after a death, a failure or a clean stop; a root service of
 * `fabricd up` (no parent, reads the key file) starts ALIVE when it is new,
 * was stopped cleanly or was given up (LOST).
 */
const FIRST: Record<ServiceState | "", readonly ServiceState[]> = {
  "": ["LAUNCHING", "ALIVE"],
  LAUNCHING: [],
  BOOTSTRAPPING: [],
  CONFIGURING: [],
  ALIVE: [],
  SUSPECT: [],
  RESTARTING: [],
  DEAD: ["RESTARTING"],
  FAILED: ["RESTARTING"],
  STOPPED: ["RESTARTING", "ALIVE"],
  LOST: ["ALIVE"],
};

/** Whether a record may move from `from` to `to` within one incarnation. */
export function canTransition(from: ServiceState, to: ServiceState): boolean {
  return NEXT[from].includes(to);
}

/**
 * Whether the next incarnation may begin in `to` when the previous one ended
 * in `from` (`""` for a service's first record).
 */
export function canBeginIncarnation(from: ServiceState | "", to: ServiceState): boolean {
  return FIRST[from].includes(to);
}

/** States in which a service is expected to heartbeat. */
export const LIVE_STATES: readonly ServiceState[] = ["ALIVE", "SUSPECT"];

/** States after which the incarnation never runs again. */
export const FINAL_STATES: readonly ServiceState[] = ["STOPPED", "LOST"];

/**
 * States of a record that may be forgotten (`fabricd forget`): the
 * incarnation has ended and nobody restarts it on its own.
 */
export const ENDED_STATES: readonly ServiceState[] = ["STOPPED", "FAILED", "LOST"];

/** States of a spawn or restart under way: the record waits for its spawner. */
export const PENDING_STATES: readonly ServiceState[] = [
  "LAUNCHING",
  "BOOTSTRAPPING",
  "CONFIGURING",
  "RESTARTING",
];

/** States of a service that may have a process running: a spawn under way, or live. */
export const RUNNING_STATES: readonly ServiceState[] = [...PENDING_STATES, ...LIVE_STATES];

/** States whose reason is kept as the record's `lastFailure`. */
export const FAILURE_STATES: readonly ServiceState[] = ["SUSPECT", "DEAD", "FAILED", "LOST"];

/** The transition a store writes with a decided record; `to` and `at` are the record's. */
export interface DecidedTransition {
  /** The state before, or `""` for a service's first record. */
  from: ServiceState | "";
  reason: string;
}

/** What a store writes: the next record and, when its state moved, the transition. */
export interface Decision {
  next: ServiceRecord;
  /** Null when the state did not move (the record is still written). */
  transition: DecidedTransition | null;
}

/** The store already holds what was asked: nothing to write. */
export interface Unchanged {
  /** The record as held. */
  unchanged: ServiceRecord;
}

/** A whole record offered to a store, as {@linkcode decidePut} takes it. */
export interface PutRequest {
  record: ServiceRecord;
  /** Reason of the transition, stored when the state moves. */
  reason: string;
}

/** A state change of one service, as {@linkcode decideTransition} takes it. */
export interface TransitionRequest extends StoreTransition {
  id: string;
}

/**
 * Decides a whole-record write over `old`, the record the store holds: the
 * fencing rules every store keeps, so each store only reads and writes.
 * A higher incarnation replaces `old` and loses the `exited` mark of the
 * earlier one; the same incarnation updates it and keeps the mark as `old`
 * has it, whatever the request says; a new incarnation or a moved
 * state is a transition from `old`'s state (`""` when there is none).
 * @throws {StaleIncarnationError} when `request` is of an older incarnation than `old`.
 * @throws {InvalidTransitionError} when the same incarnation moves where the state machine
 * forbids, or a new incarnation begins in a state it may not (`canBeginIncarnation`).
 */
export function decidePut(old: ServiceRecord | undefined, request: PutRequest): Decision {
  const { record, reason } = request;
  if (old && record.incarnation < old.incarnation) {
    throw new StaleIncarnationError(record.id, record.incarnation, old.incarnation);
  }
  const sameIncarnation = old !== undefined && old.incarnation === record.incarnation;
  if (sameIncarnation && old.state !== record.state && !canTransition(old.state, record.state)) {
    throw new InvalidTransitionError(record.id, old.state, record.state);
  }
  const from: ServiceState | "" = old?.state ?? "";
  // Only a root service (no parent: it reads the key file) begins a life ALIVE;
  // any other comes through a spawn or a restart, which its parent records.
  const rootOnly = record.state === "ALIVE" && record.parent !== "";
  if (!sameIncarnation && (rootOnly || !canBeginIncarnation(from, record.state))) {
    throw new InvalidTransitionError(record.id, from, record.state, record.incarnation);
  }
  const moved = !sameIncarnation || from !== record.state;
  // Only a death report of an incarnation marks it `exited` (decideTransition);
  // a write keeps the mark the store holds, and a death reported for one
  // incarnation is not the next one's.
  const next = withoutExited(record);
  return {
    next: sameIncarnation && old.exited ? { ...next, exited: true } : next,
    transition: moved ? { from, reason } : null,
  };
}

/**
 * Decides a state change within the incarnation of `old`, the record the
 * store holds. A move stamps `updated` with `request.at` and, into a failure
 * state, keeps the reason as `lastFailure`; `exited` with `to` DEAD marks the
 * record, also one that is DEAD already (without a transition then).
 * @returns The decision, or {@linkcode Unchanged} when `old` is already in `to`.
 * @throws {UnknownServiceError} when there is no `old`.
 * @throws {StaleIncarnationError} when `request` is of another incarnation than `old`.
 * @throws {InvalidTransitionError} when the state machine forbids the move.
 */
export function decideTransition(
  old: ServiceRecord | undefined,
  request: TransitionRequest,
): Decision | Unchanged {
  const { id, to, reason } = request;
  if (!old) throw new UnknownServiceError(id);
  if (request.incarnation !== old.incarnation) {
    throw new StaleIncarnationError(id, request.incarnation, old.incarnation);
  }
  const exited = request.exited === true && to === "DEAD";
  if (old.state === to) {
    if (!exited || old.exited) return { unchanged: old };
    return { next: { ...old, exited: true }, transition: null };
  }
  if (!canTransition(old.state, to)) throw new InvalidTransitionError(id, old.state, to);
  return {
    next: {
      ...old,
      state: to,
      updated: request.at,
      lastFailure: FAILURE_STATES.includes(to) ? reason : old.lastFailure,
      ...(exited ? { exited: true } : {}),
    },
    transition: { from: old.state, reason },
  };
}

/**
 * Decides a session change of `old`, the record a store holds for `id`:
 * `session` added (`present`) or removed, the set kept sorted.
 * @returns The record to write.
 * @throws {UnknownServiceError} when there is no `old`.
 * @throws {TooManySessionsError} when the record would serve more than `MAX_SESSIONS`.
 */
export function decideSession(
  old: ServiceRecord | undefined,
  id: string,
  session: string,
  present: boolean,
): ServiceRecord {
  if (!old) throw new UnknownServiceError(id);
  const sessions = new Set(old.sessions);
  if (present) sessions.add(session);
  else sessions.delete(session);
  if (sessions.size > MAX_SESSIONS) throw new TooManySessionsError(id);
  return { ...old, sessions: [...sessions].sort() };
}

/**
 * Decides whether a store may remove `old`, the record it holds for `id`
 * (`fabricd forget`, `status --prune`): only an ended one.
 * @returns The record to remove, as it is.
 * @throws {UnknownServiceError} when there is no `old`.
 * @throws {NotEndedError} when `old` is not STOPPED, FAILED or LOST.
 */
export function decideForget(old: ServiceRecord | undefined, id: string): ServiceRecord {
  if (!old) throw new UnknownServiceError(id);
  if (!ENDED_STATES.includes(old.state)) throw new NotEndedError(id, old.state);
  return old;
}

/** `record` without the death report of an earlier incarnation. */
function withoutExited(record: ServiceRecord): ServiceRecord {
  const { exited: _exited, ...rest } = record;
  return rest;
}
