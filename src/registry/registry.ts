/**
 * The registry's logic, free of HTTP: records, transitions with time and reason,
 * heartbeats, sessions and the change stream. Routes in `routes.ts` translate.
 * @module
 */
import type { RegistryEvent, ServiceRecord, ServiceState, Transition } from "../types/mod.ts";
import type { BeatVerdict } from "../types/wire.ts";
import { FabricError } from "../types/errors.ts";
import {
  heartbeatEach,
  NotLiveError,
  type RegistryStore,
  type StoreChange,
  UnknownServiceError,
} from "./store.ts";
import { ChangeFeed } from "./change_feed.ts";
import { MAX_CERT_SECONDS } from "../crypto/certificate.ts";

/** States from which a heartbeat must not bring a service back. */
const ENDED: readonly ServiceState[] = ["STOPPED", "FAILED", "LOST", "RESTARTING"];

/** Options of {@linkcode Registry}. */
export interface RegistryOptions {
  /** Clock in ms since the epoch. Default `Date.now`. */
  now?: () => number;
}

/** What a heartbeat says about its sender, besides the incarnation. */
export interface HeartbeatFacts {
  /** The sending process's instance ID (made at its start). */
  instance?: string;
  /** When it was sent, ms since the epoch by the sender's clock. */
  sentAt?: number;
}

/** One beat of an aggregator's batch. */
export interface BatchBeat extends HeartbeatFacts {
  id: string;
  incarnation: number;
}

/** A change-stream listener; it must not throw. */
export type RegistryListener = (event: RegistryEvent) => void;

/** Records, transitions and the change stream over one {@linkcode RegistryStore}. */
export class Registry {
  #store: RegistryStore;
  #now: () => number;
  #listeners = new Set<RegistryListener>();
  #beatsAccepted = 0;
  #lastSeq = 0;

  /** Wraps `store`; the registry owns it from now on. */
  constructor(store: RegistryStore, options: RegistryOptions = {}) {
    this.#store = store;
    this.#now = options.now ?? Date.now;
    // A shared store tells every replica about every write; a local one does not.
    this.#shared = store.changes?.((change) => this.#emitChange(change)) !== undefined;
  }

  #shared: boolean;

  /** The store, for the liveness sweeper and tests. */
  get store(): RegistryStore {
    return this.#store;
  }

  /** Current time of the registry's clock. */
  now(): number {
    return this.#now();
  }

  /** Sequence number of the newest change seen by this process. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** Registers or updates a whole record (see {@linkcode RegistryStore.put}). */
  async put(record: ServiceRecord, reason: string): Promise<ServiceRecord> {
    const stamped = { ...record, updated: this.#now() };
    return this.#publish(await this.#store.put(stamped, reason));
  }

  /**
   * Moves a service to `to` within `incarnation`, with a reason. `exited`
   * says the process is known to have ended (its parent's exit report): such
   * a death is final for the incarnation.
   */
  async transition(
    id: string,
    change: {
      incarnation: number;
      to: ServiceState;
      reason: string;
      exited?: boolean | undefined;
    },
  ): Promise<ServiceRecord> {
    return this.#publish(await this.#store.transition(id, { ...change, at: this.#now() }));
  }

  /**
   * Records a heartbeat. A suspect (or dead, not yet replaced) service that beats
   * again is taken back: it moves to ALIVE with the reason "heartbeat resumed".
   * Deaths are final for their instance (issue 18): a heartbeat from another
   * instance than the one that registered the incarnation, or of an
   * incarnation whose death its parent reported, is refused; one sent before
   * a death (by TTL) is recorded nowhere and takes nobody back.
   * @throws {NotLiveError} when the sender must stop.
   */
  async heartbeat(
    id: string,
    incarnation: number,
    facts: HeartbeatFacts = {},
  ): Promise<ServiceRecord> {
    const early = this.#fence(await this.#store.get(id), incarnation, facts);
    const record = early ??
      await this.#resume(await this.#store.heartbeat(id, incarnation, this.#now()));
    this.#beatsAccepted++;
    return record;
  }

  /** Heartbeats accepted since this registry started, lone or in batches (a metric). */
  get beatsAccepted(): number {
    return this.#beatsAccepted;
  }

  /**
   * Records an aggregator's batch of heartbeats (docs/failures.md
   * "Aggregated heartbeats"): the rules of {@linkcode heartbeat} for each
   * beat, the beats that pass written at once (SQLite: one transaction). Never
   * throws for one beat: each gets its verdict, in the batch's order.
   * @throws {Error} only when the store itself fails.
   */
  async heartbeatMany(
    beats: readonly BatchBeat[],
    refuse: (held: ServiceRecord | undefined) => string | null = () => null,
  ): Promise<BeatVerdict[]> {
    const verdicts: BeatVerdict[] = [];
    const passed: { index: number; id: string; incarnation: number }[] = [];
    for (const [index, beat] of beats.entries()) {
      try {
        const held = await this.#store.get(beat.id);
        // A beat its sender may not give (docs/protocol.md 2.12) is not written.
        const why = refuse(held);
        if (why !== null) {
          verdicts[index] = { id: beat.id, result: "unknown", message: why };
          continue;
        }
        const early = this.#fence(held, beat.incarnation, beat);
        if (early) {
          verdicts[index] = okVerdict(early);
          this.#beatsAccepted++;
        } else passed.push({ index, id: beat.id, incarnation: beat.incarnation });
      } catch (error) {
        verdicts[index] = refusal(beat.id, error);
      }
    }
    const at = this.#now();
    const outcomes = this.#store.heartbeatMany
      ? await this.#store.heartbeatMany(passed, at)
      : await heartbeatEach(this.#store, passed, { at, concurrency: 64 });
    for (const [i, outcome] of outcomes.entries()) {
      const { index, id } = passed[i]!;
      try {
        if (outcome instanceof Error) throw outcome;
        verdicts[index] = okVerdict(await this.#resume(outcome));
        this.#beatsAccepted++;
      } catch (error) {
        verdicts[index] = refusal(id, error);
      }
    }
    return verdicts;
  }

  /**
   * The instance rules of a heartbeat: throws when the sender must stop,
   * answers the record as held when the beat changes nothing (sent before a
   * death by TTL), else null (record it).
   */
  #fence(
    held: ServiceRecord | undefined,
    incarnation: number,
    facts: HeartbeatFacts,
  ): ServiceRecord | null {
    if (!held || held.incarnation !== incarnation) return null;
    const id = held.id;
    if (ENDED.includes(held.state)) throw new NotLiveError(id, held.state);
    if (facts.instance && held.instance && facts.instance !== held.instance) {
      throw new NotLiveError(
        id,
        held.state,
        `incarnation ${incarnation} belongs to instance ${held.instance}, not ${facts.instance}`,
      );
    }
    if (held.state === "DEAD" && held.exited) {
      throw new NotLiveError(id, held.state, "its parent saw this instance's process end");
    }
    if (held.state === "DEAD" && facts.sentAt !== undefined && facts.sentAt <= held.updated) {
      return held;
    }
    return null;
  }

  /** A beaten record: SUSPECT or DEAD (by TTL) is taken back to ALIVE. */
  async #resume(record: ServiceRecord): Promise<ServiceRecord> {
    if (record.state !== "SUSPECT" && record.state !== "DEAD") return record;
    return await this.transition(record.id, {
      incarnation: record.incarnation,
      to: "ALIVE",
      reason: "heartbeat resumed",
    });
  }

  /**
   * A caller could not reach a service (DESIGN.md "a failing contact reports
   * the failure"): an ALIVE service becomes SUSPECT at once, so the sweeper's
   * TTL decides sooner whether it is DEAD; anything else is left as it is.
   */
  async report(
    id: string,
    incarnation: number,
    reason: string,
  ): Promise<ServiceRecord | undefined> {
    const record = await this.#store.get(id);
    if (!record || record.incarnation !== incarnation || record.state !== "ALIVE") return record;
    return await this.transition(id, {
      incarnation,
      to: "SUSPECT",
      reason: `contact failed: ${reason}`,
    });
  }

  /**
   * Removes an ended record (STOPPED, FAILED or LOST) and its transitions
   * (`fabricd forget`); watchers get a `removed` event. Its revocation stays
   * in the full list for the longest life of a certificate
   * (`MAX_CERT_SECONDS`): a service that starts after the forget must still
   * refuse what the forgotten one may hold.
   * @throws {UnknownServiceError} when there is no such record.
   * @throws {NotEndedError} when the service has not ended.
   */
  async forget(id: string): Promise<ServiceRecord> {
    const keepUntil = this.#now() + MAX_CERT_SECONDS * 1000;
    const record = await this.#store.delete(id, keepUntil);
    return this.#publish({ record, transition: null, removed: true });
  }

  /** Adds or removes a session of a service and tells watchers. */
  async setSession(id: string, session: string, present: boolean): Promise<ServiceRecord> {
    const record = await this.#store.setSession(id, session, present);
    this.#emit({ seq: this.#lastSeq, kind: "sessions", record });
    return record;
  }

  /** One record. */
  get(id: string): Promise<ServiceRecord | undefined> {
    return this.#store.get(id);
  }

  /** Every record. */
  list(): Promise<ServiceRecord[]> {
    return this.#store.list();
  }

  /** One service's stored transitions. */
  history(id: string): Promise<Transition[]> {
    return this.#store.history(id);
  }

  /** Calls `listener` with each live change (no replay) until the returned function is called. */
  onChange(listener: RegistryListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * The change stream after `since` for one consumer that may be slow (a
   * watcher's socket): stored transitions are read as it asks for them, and at
   * most `maxQueuedBytes` of live changes wait for it before it is cut off
   * (`change_feed.ts`), and `onCut` is called.
   */
  feed(since: number, maxQueuedBytes: number, onCut?: () => void): ChangeFeed {
    return new ChangeFeed(
      {
        page: async (seq, limit) => {
          const transitions = await this.#store.transitionsSince(seq, limit);
          const events: RegistryEvent[] = [];
          for (const transition of transitions) {
            const record = await this.#store.get(transition.id);
            if (record) {
              events.push({ seq: transition.seq, kind: "transition", record, transition });
            }
          }
          const last = transitions.at(-1)?.seq ?? seq;
          return { events, last, more: transitions.length === limit };
        },
        subscribe: (listener) => this.onChange(listener),
      },
      since,
      maxQueuedBytes,
      onCut,
    );
  }

  /** Closes the store; idempotent. */
  async close(): Promise<void> {
    this.#listeners.clear();
    await this.#store.close();
  }

  #publish(change: StoreChange): ServiceRecord {
    if (!this.#shared) this.#emitChange(change);
    return change.record;
  }

  #emitChange(change: StoreChange): void {
    if (change.removed) {
      this.#emit({ seq: this.#lastSeq, kind: "removed", record: change.record });
      return;
    }
    if (!change.transition) return;
    this.#lastSeq = Math.max(this.#lastSeq, change.transition.seq);
    this.#emit({
      seq: change.transition.seq,
      kind: "transition",
      record: change.record,
      transition: change.transition,
    });
  }

  #emit(event: RegistryEvent): void {
    for (const listener of this.#listeners) listener(event);
  }
}

function okVerdict(record: ServiceRecord): BeatVerdict {
  return { id: record.id, result: "ok", state: record.state, incarnation: record.incarnation };
}

/** What a lone heartbeat's 404 or 409 becomes in a batch; anything else is the store failing. */
function refusal(id: string, error: unknown): BeatVerdict {
  if (error instanceof UnknownServiceError) {
    return { id, result: "unknown", message: error.message };
  }
  if (error instanceof FabricError && error.httpStatus === 409) {
    return { id, result: "replaced", message: error.message };
  }
  throw error;
}
