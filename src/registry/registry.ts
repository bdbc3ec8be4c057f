/**
 * The registry's logic, free of HTTP: records, transitions with time and reason,
 * heartbeats, sessions and the change stream. Routes in `routes.ts` translate.
 * @module
 */
import { type Revocation, revocationOf, revocationsOf } from "./revocations.ts";
import type { RegistryEvent, ServiceRecord, ServiceState, Transition } from "../types/mod.ts";
import {
  NotLiveError,
  type RegistryStore,
  type StoreChange,
  UnknownServiceError,
} from "./store.ts";
import { PENDING_STATES } from "./state_machine.ts";

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

/** A change-stream listener; it must not throw. */
export type RegistryListener = (event: RegistryEvent) => void;

/** Records, transitions and the change stream over one {@linkcode RegistryStore}. */
export class Registry {
  #store: RegistryStore;
  #now: () => number;
  #listeners = new Set<RegistryListener>();
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
    const held = await this.#store.get(id);
    if (held && held.incarnation === incarnation) {
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
    }
    const record = await this.#store.heartbeat(id, incarnation, this.#now());
    if (record.state === "SUSPECT" || record.state === "DEAD") {
      return await this.transition(id, { incarnation, to: "ALIVE", reason: "heartbeat resumed" });
    }
    return record;
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

  /**
   * Replays the changes after `since`, then follows new ones until the returned
   * function is called. Nothing is missed between replay and follow.
   */
  async follow(since: number, listener: RegistryListener): Promise<() => void> {
    const buffered: RegistryEvent[] = [];
    let live = false;
    const hook: RegistryListener = (event) => live ? listener(event) : buffered.push(event);
    this.#listeners.add(hook);
    let last = since;
    for (;;) {
      const page = await this.#store.transitionsSince(last, 500);
      for (const transition of page) {
        const record = await this.#store.get(transition.id);
        if (record) listener({ seq: transition.seq, kind: "transition", record, transition });
        last = transition.seq;
      }
      if (page.length < 500) break;
    }
    for (const event of buffered) {
      if (event.kind !== "transition" || event.seq > last) listener(event);
    }
    live = true;
    return () => this.#listeners.delete(hook);
  }

  /**
   * Revocations (`revocations.ts`): from the records when `since` is
   * undefined, else from the transitions after `since` (at most `limit`).
   * `seq` is where the next call continues from.
   */
  async revocations(
    since?: number,
    limit = 5000,
  ): Promise<{ seq: number; revoked: Revocation[]; more: boolean }> {
    if (since === undefined) {
      const seq = this.#lastSeq;
      return { seq, revoked: revocationsOf(await this.#store.list()), more: false };
    }
    const page = await this.#store.transitionsSince(since, limit);
    const revoked = page.map(revocationOf).filter((r): r is Revocation => r !== null);
    return { seq: page.at(-1)?.seq ?? since, revoked, more: page.length === limit };
  }

  /**
   * Cuts a service off at once (`fabricd revoke`): its record goes to LOST
   * (through DEAD when it runs), which revokes its incarnation everywhere.
   * @throws {UnknownServiceError} when there is no such record.
   */
  async revoke(id: string, reason: string): Promise<ServiceRecord> {
    let record = await this.#store.get(id);
    if (!record) throw new UnknownServiceError(id);
    const why = `revoked: ${reason}`;
    // A running incarnation dies first, one still starting fails first: both may then be LOST.
    const first = ["ALIVE", "SUSPECT"].includes(record.state)
      ? "DEAD"
      : PENDING_STATES.includes(record.state)
      ? "FAILED"
      : null;
    if (first) {
      record = await this.transition(id, {
        incarnation: record.incarnation,
        to: first,
        reason: why,
      });
    }
    if (record.state !== "LOST" && record.state !== "STOPPED") {
      record = await this.transition(id, {
        incarnation: record.incarnation,
        to: "LOST",
        reason: why,
      });
    }
    return record;
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
