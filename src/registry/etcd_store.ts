/**
 * The distributed registry store: etcd, through its v3 JSON API. Several
 * stateless registry replicas can share one etcd cluster.
 *
 * - Records live under `<prefix>svc/<id>`; every write is a transaction that
 *   compares the record's `mod_revision` with the one it was decided on (the
 *   replica's mirror first, kept by the watch; etcd's, read again, when the
 *   compare fails), so a stale incarnation or a concurrent replica can never
 *   overwrite a newer record (fencing by revision, never locks).
 * - Transitions live under `<prefix>tr/<id>/<n>`, written in the same
 *   transaction; their etcd revision is their sequence number in the change
 *   stream, so every replica numbers changes the same way.
 * - Liveness is etcd's: an ALIVE service holds one lease (TTL from the
 *   heartbeat settings) on `<prefix>live/<id>`; each heartbeat keeps it alive.
 *   When the lease expires, etcd deletes the key, every replica sees it on its
 *   watch, and the record becomes DEAD (one transaction wins). A batch of
 *   heartbeats renews its leases in a few requests to the leader
 *   (`_etcd_leases.ts`).
 * - A forgotten record's revocation is kept under `<prefix>kept/<id>`
 *   (`_etcd_kept.ts`).
 * - Reads are the mirror's: records, leases and the newest transitions are
 *   read once, in pages at one revision, and then follow the watch; only a
 *   write, a heartbeat of an unknown incarnation and a change-stream reader
 *   older than the window of transitions (`_etcd_transitions.ts`) ask etcd.
 * @module
 */
import type { ServiceRecord, Transition } from "../types/mod.ts";
import {
  decideForget,
  decidePut,
  decideSession,
  decideTransition,
  type Decision,
  LIVE_STATES,
  type Unchanged,
} from "./state_machine.ts";
import {
  type BeatOutcome,
  type BeatRequest,
  heartbeatEach,
  type LiveEntry,
  type RegistryStore,
  StaleIncarnationError,
  type StoreChange,
  type StoreTransition,
  UnknownServiceError,
} from "./store.ts";
import { EtcdClient, EtcdError, type EtcdOp } from "./_etcd_client.ts";
import { LeaseEnds, LeaseRenewer } from "./_etcd_leases.ts";
import { EtcdMirror, recordOf } from "./_etcd_mirror.ts";
import { scanTransitions, transitionOf } from "./_etcd_transitions.ts";
import { log } from "../config/logging.ts";
import type { Revocation } from "./revocations.ts";
import { keepOp, readKept } from "./_etcd_kept.ts";

/** Options of {@linkcode EtcdStore.open}. */
export interface EtcdStoreOptions {
  /** Key prefix of this fabric's registry. Default `/fabricd/registry/`. */
  prefix?: string;
  /** Lease TTL: silence after which a service is DEAD, ms (rounded up to seconds, at least 2 s). */
  ttlMs: number;
}

/** How long a change-stream read waits for the watch to deliver this replica's own writes, ms. */
const CAUGHT_UP_MS = 2000;

/** {@linkcode RegistryStore} on an etcd cluster. */
export class EtcdStore implements RegistryStore {
  #etcd: EtcdClient;
  #prefix: string;
  #ttlSeconds: number;
  #renewer: LeaseRenewer;
  #mirror!: EtcdMirror;
  /** The newest revision this replica wrote: the window is read once the watch has it. */
  #written = 0;
  #listeners = new Set<(change: StoreChange) => void>();
  #leaseEnds = new LeaseEnds((id, incarnation) => this.#leaseEnded(id, incarnation));
  #logger = log("etcd");

  private constructor(etcd: EtcdClient, options: Required<EtcdStoreOptions>) {
    this.#etcd = etcd;
    this.#renewer = new LeaseRenewer(etcd);
    this.#prefix = options.prefix;
    this.#ttlSeconds = Math.max(2, Math.ceil(options.ttlMs / 1000));
  }

  /**
   * Connects to etcd at `endpoints`, loads the records and follows changes.
   * @throws {EtcdError} when no member answers.
   */
  static async open(endpoints: string[], options: EtcdStoreOptions): Promise<EtcdStore> {
    const store = new EtcdStore(new EtcdClient(endpoints), {
      prefix: "/fabricd/registry/",
      ...options,
    });
    store.#mirror = await EtcdMirror.open(store.#etcd, store.#prefix, {
      transition: (record, transition) =>
        store.#emit({ record: store.#withBeat(record), transition }),
      removed: (record) => store.#emit({ record, transition: null, removed: true }),
      leaseEnded: (id, incarnation) => store.#leaseEnds.add(id, incarnation),
    });
    return store;
  }

  /** Called with every transition written by any replica, in revision order. */
  changes(listener: (change: StoreChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get(id: string): Promise<ServiceRecord | undefined> {
    const held = this.#mirror.records.get(id);
    return Promise.resolve(held ? this.#withBeat(held.record) : undefined);
  }

  list(): Promise<ServiceRecord[]> {
    const all = [...this.#mirror.records.values()].map((h) => this.#withBeat(h.record));
    all.sort((a, b) => a.started - b.started || a.id.localeCompare(b.id));
    return Promise.resolve(all);
  }

  live(): Promise<LiveEntry[]> {
    const entries: LiveEntry[] = [];
    for (const { record } of this.#mirror.records.values()) {
      if (!LIVE_STATES.includes(record.state)) continue;
      const { id, incarnation, state, updated } = record;
      entries.push({ id, incarnation, state, updated, lastHeartbeat: this.#mirror.beats.of(id) });
    }
    return Promise.resolve(entries);
  }

  async put(record: ServiceRecord, reason: string): Promise<StoreChange> {
    return await this.#write(record.id, (old) => decidePut(old, { record, reason }));
  }

  async transition(id: string, change: StoreTransition): Promise<StoreChange> {
    return await this.#write(id, (old) => decideTransition(old, { ...change, id }));
  }

  async heartbeat(id: string, incarnation: number, at: number): Promise<ServiceRecord> {
    let held = this.#mirror.records.get(id)?.record;
    if (!held || held.incarnation !== incarnation) held = (await this.#read(id)).record;
    if (!held) throw new UnknownServiceError(id);
    if (held.incarnation !== incarnation) {
      throw new StaleIncarnationError(id, incarnation, held.incarnation);
    }
    const lease = this.#mirror.leases.get(id);
    const ttl = lease ? (await this.#renewer.renew([lease])).get(lease) ?? 0 : 0;
    if (ttl <= 0 && LIVE_STATES.includes(held.state)) {
      // The lease was lost (expired just now, or never seen by this replica):
      // a live service gets a new one with its heartbeat.
      await this.#putLive(id, incarnation);
    }
    this.#mirror.beats.note(id, at);
    return this.#withBeat(held);
  }

  /**
   * A batch of heartbeats: the beats of incarnations this replica holds renew
   * their leases together (`_etcd_leases.ts`), the others are lone heartbeats.
   * @throws {EtcdError} when etcd fails (the batch fails whole).
   */
  async heartbeatMany(beats: readonly BeatRequest[], at: number): Promise<BeatOutcome[]> {
    const outcomes: BeatOutcome[] = [];
    const held: { index: number; record: ServiceRecord; lease: string | undefined }[] = [];
    const others: number[] = [];
    for (const [index, beat] of beats.entries()) {
      const record = this.#mirror.records.get(beat.id)?.record;
      if (record?.incarnation === beat.incarnation) {
        held.push({ index, record, lease: this.#mirror.leases.get(beat.id) });
      } else others.push(index);
    }
    const ttls = await this.#renewer.renew(held.flatMap((h) => h.lease ? [h.lease] : []));
    const lost = held.filter((h) =>
      (h.lease ? ttls.get(h.lease) ?? 0 : 0) <= 0 && LIVE_STATES.includes(h.record.state)
    );
    for (let i = 0; i < lost.length; i += 16) {
      await Promise.all(
        lost.slice(i, i + 16).map((h) => this.#putLive(h.record.id, h.record.incarnation)),
      );
    }
    for (const { index, record } of held) {
      this.#mirror.beats.note(record.id, at);
      outcomes[index] = this.#withBeat(record);
    }
    const lone = await heartbeatEach(this, others.map((i) => beats[i]!), { at, concurrency: 64 });
    for (const [i, outcome] of lone.entries()) outcomes[others[i]!] = outcome;
    return outcomes;
  }

  async delete(id: string, keepUntil: number): Promise<ServiceRecord> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const { record: old, modRevision } = await this.#read(id);
      const removed = decideForget(old, id);
      const result = await this.#etcd.txn(
        [{ key: `${this.#prefix}svc/${id}`, target: "MOD", modRevision }],
        [
          { delete: { key: `${this.#prefix}svc/${id}` } },
          { delete: { key: `${this.#prefix}live/${id}` } },
          { delete: { key: `${this.#prefix}tr/${id}/`, prefix: true } },
          keepOp(this.#prefix, removed, keepUntil),
        ],
      );
      if (result.succeeded) {
        this.#mirror.records.delete(id);
        this.#mirror.transitions.forget(id);
        this.#written = Math.max(this.#written, result.revision);
        return removed;
      }
    }
    throw new Error(`Registry removal of "${id}" kept losing races in etcd: retry`);
  }

  async setSession(id: string, session: string, present: boolean): Promise<ServiceRecord> {
    const change = await this.#write(id, (old) => ({
      next: decideSession(old, id, session, present),
      transition: null,
    }));
    return change.record;
  }

  /**
   * From the window of recent transitions, once the watch has delivered this
   * replica's own writes (waiting at most 2 s: a lagging watch answers what it
   * has, and the caller continues from there); only a reader older than the
   * window gets a paged scan of etcd.
   */
  async transitionsSince(seq: number, limit: number): Promise<Transition[]> {
    await this.#mirror.transitions.caughtUp(this.#written, CAUGHT_UP_MS);
    const held = this.#mirror.transitions.since(seq, limit);
    if (held) return held;
    return await scanTransitions(this.#etcd, `${this.#prefix}tr/`, { seq, limit });
  }

  keptRevocations(now: number, since?: number): Promise<Revocation[]> {
    return readKept(this.#etcd, this.#prefix, now, since);
  }

  async history(id: string): Promise<Transition[]> {
    const { kvs } = await this.#etcd.range(`${this.#prefix}tr/${id}/`, { prefix: true });
    return kvs.map((kv) => transitionOf(kv.value, kv.modRevision));
  }

  close(): Promise<void> {
    this.#mirror.close();
    this.#listeners.clear();
    return Promise.resolve();
  }

  #emit(change: StoreChange): void {
    for (const listener of this.#listeners) listener(change);
  }

  #withBeat(record: ServiceRecord): ServiceRecord {
    const beat = this.#mirror.beats.of(record.id);
    return { ...record, lastHeartbeat: Math.max(record.lastHeartbeat, beat) };
  }

  #mirrored(id: string): { record: ServiceRecord | undefined; modRevision: number } {
    const held = this.#mirror.records.get(id);
    return held ?? { record: undefined, modRevision: 0 };
  }

  async #read(id: string): Promise<{ record: ServiceRecord | undefined; modRevision: number }> {
    const { kvs } = await this.#etcd.range(`${this.#prefix}svc/${id}`);
    const kv = kvs[0];
    return kv ? { record: recordOf(kv.value), modRevision: kv.modRevision } : {
      record: undefined,
      modRevision: 0,
    };
  }

  /**
   * Decide, then write under a revision compare: first on the mirror's record
   * (no read), then, when the compare fails or the mirror's answer was not a
   * write (it may be stale), on the record read from etcd, again after each
   * lost race. Nothing is written when the decision leaves the record
   * unchanged. Lease keys follow the state: a live record holds `live/<id>`.
   */
  async #write(
    id: string,
    decide: (old: ServiceRecord | undefined) => Decision | Unchanged,
  ): Promise<StoreChange> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const mirrored = attempt === 0;
      const { record: old, modRevision } = mirrored ? this.#mirrored(id) : await this.#read(id);
      let decision: Decision | Unchanged;
      try {
        decision = decide(old);
      } catch (error) {
        if (mirrored) continue;
        throw error;
      }
      if ("unchanged" in decision) {
        if (mirrored) continue;
        return { record: decision.unchanged, transition: null };
      }
      const { next } = decision;
      const ops: EtcdOp[] = [{
        put: { key: `${this.#prefix}svc/${id}`, value: JSON.stringify(next) },
      }];
      const becomesLive = LIVE_STATES.includes(next.state) &&
        (!old || !LIVE_STATES.includes(old.state) || old.incarnation !== next.incarnation);
      let lease = "";
      if (becomesLive) {
        lease = await this.#etcd.leaseGrant(this.#ttlSeconds);
        ops.push({
          put: { key: `${this.#prefix}live/${id}`, value: String(next.incarnation), lease },
        });
      } else if (!LIVE_STATES.includes(next.state) && old && LIVE_STATES.includes(old.state)) {
        ops.push({ delete: { key: `${this.#prefix}live/${id}` } });
      }
      const transition = decision.transition && {
        id,
        incarnation: next.incarnation,
        from: decision.transition.from,
        to: next.state,
        reason: decision.transition.reason,
        at: next.updated,
      };
      if (transition) {
        const key = `${this.#prefix}tr/${id}/${String(Date.now()).padStart(15, "0")}-${
          crypto.randomUUID().slice(0, 8)
        }`;
        ops.push({ put: { key, value: JSON.stringify(transition) } });
      }
      const compare = modRevision
        ? [{ key: `${this.#prefix}svc/${id}`, target: "MOD" as const, modRevision }]
        : [{ key: `${this.#prefix}svc/${id}`, target: "VERSION" as const, version: 0 }];
      const result = await this.#etcd.txn(compare, ops).catch((error: unknown) => {
        // The new lease expired before the write reached etcd (a starved
        // cluster): nothing was written; try again with a new one.
        if (lease && leaseGone(error)) return null;
        throw error;
      });
      if (!result) continue;
      if (result.succeeded) {
        if (lease) this.#mirror.leases.set(id, lease);
        this.#mirror.records.set(id, { record: next, modRevision: result.revision });
        this.#written = Math.max(this.#written, result.revision);
        return {
          record: next,
          transition: transition ? { ...transition, seq: result.revision } : null,
        };
      }
      if (lease) await this.#etcd.leaseRevoke(lease);
    }
    throw new Error(`Registry write of "${id}" kept losing races in etcd: retry`);
  }

  async #putLive(id: string, incarnation: number): Promise<void> {
    for (let attempt = 0;; attempt++) {
      const lease = await this.#etcd.leaseGrant(this.#ttlSeconds);
      try {
        await this.#etcd.txn([], [{
          put: { key: `${this.#prefix}live/${id}`, value: String(incarnation), lease },
        }]);
        this.#mirror.leases.set(id, lease);
        return;
      } catch (error) {
        if (attempt >= 2 || !leaseGone(error)) throw error;
      }
    }
  }

  /** A live key went: its lease expired (no heartbeat for the TTL), so the service is DEAD. */
  async #leaseEnded(id: string, incarnation: number): Promise<void> {
    const record = this.#mirror.records.get(id)?.record;
    if (!record || record.incarnation !== incarnation || !LIVE_STATES.includes(record.state)) {
      return;
    }
    try {
      await this.transition(id, {
        incarnation,
        to: "DEAD",
        reason:
          `No heartbeat for ${this.#ttlSeconds} s: its etcd lease expired (TTL ${this.#ttlSeconds} s)`,
        at: Date.now(),
      });
    } catch (error) {
      // Another replica recorded it first, or the service moved on: nothing to do.
      this.#logger.debug("Lease end of {id} not recorded: {error}", { id, error: String(error) });
    }
  }
}

/** etcd refused a write because its lease no longer exists. */
function leaseGone(error: unknown): boolean {
  return error instanceof EtcdError && /requested lease not found/.test(error.message);
}
