/**
 * The distributed registry store: etcd, through its v3 JSON API. Several
 * stateless registry replicas can share one etcd cluster.
 *
 * - Records live under `<prefix>svc/<id>`; every write is a transaction that
 *   compares the record's `mod_revision` with the one just read, so a stale
 *   incarnation or a concurrent replica can never overwrite a newer record
 *   (fencing by revision, never locks).
 * - Transitions live under `<prefix>tr/<id>/<n>`, written in the same
 *   transaction; their etcd revision is their sequence number in the change
 *   stream, so every replica numbers changes the same way.
 * - Liveness is etcd's: an ALIVE service holds one lease (TTL from the
 *   heartbeat settings) on `<prefix>live/<id>`; each heartbeat keeps it alive.
 *   When the lease expires, etcd deletes the key, every replica sees it on its
 *   watch, and the record becomes DEAD (one transaction wins).
 * @module
 */
import type { ServiceRecord, Transition } from "../types/mod.ts";
import {
  decideForget,
  decidePut,
  decideTransition,
  type Decision,
  LIVE_STATES,
  type Unchanged,
} from "./state_machine.ts";
import {
  type LiveEntry,
  type RegistryStore,
  StaleIncarnationError,
  type StoreChange,
  type StoreTransition,
  UnknownServiceError,
} from "./store.ts";
import { EtcdClient, type EtcdEvent, type EtcdOp } from "./_etcd_client.ts";
import { log } from "../config/logging.ts";

/** Options of {@linkcode EtcdStore.open}. */
export interface EtcdStoreOptions {
  /** Key prefix of this fabric's registry. Default `/fabricd/registry/`. */
  prefix?: string;
  /** Lease TTL: silence after which a service is DEAD, ms (rounded up to seconds, at least 2 s). */
  ttlMs: number;
}

/** How often a replica shares the heartbeat times it saw (display only), ms. */
const BEATS_FLUSH_MS = 5000;

/** {@linkcode RegistryStore} on an etcd cluster. */
export class EtcdStore implements RegistryStore {
  #etcd: EtcdClient;
  #prefix: string;
  #ttlSeconds: number;
  #records = new Map<string, { record: ServiceRecord; modRevision: number }>();
  #leases = new Map<string, string>();
  #beats = new Map<string, number>();
  #listeners = new Set<(change: StoreChange) => void>();
  #watch = new AbortController();
  #logger = log("etcd");
  /** Heartbeats this replica took since its last flush, shared through etcd every 5 s. */
  #freshBeats = new Map<string, number>();
  #replica = crypto.randomUUID().slice(0, 8);
  #flushTimer: ReturnType<typeof setInterval> | undefined;
  #beatsLease = "";

  private constructor(etcd: EtcdClient, options: Required<EtcdStoreOptions>) {
    this.#etcd = etcd;
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
    await store.#load();
    return store;
  }

  /** Called with every transition written by any replica, in revision order. */
  changes(listener: (change: StoreChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get(id: string): Promise<ServiceRecord | undefined> {
    const held = this.#records.get(id);
    return Promise.resolve(held ? this.#withBeat(held.record) : undefined);
  }

  list(): Promise<ServiceRecord[]> {
    const all = [...this.#records.values()].map((h) => this.#withBeat(h.record));
    all.sort((a, b) => a.started - b.started || a.id.localeCompare(b.id));
    return Promise.resolve(all);
  }

  live(): Promise<LiveEntry[]> {
    const entries: LiveEntry[] = [];
    for (const { record } of this.#records.values()) {
      if (!LIVE_STATES.includes(record.state)) continue;
      const { id, incarnation, state, updated } = record;
      entries.push({ id, incarnation, state, updated, lastHeartbeat: this.#beats.get(id) ?? 0 });
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
    let held = this.#records.get(id)?.record;
    if (!held || held.incarnation !== incarnation) held = (await this.#read(id)).record;
    if (!held) throw new UnknownServiceError(id);
    if (held.incarnation !== incarnation) {
      throw new StaleIncarnationError(id, incarnation, held.incarnation);
    }
    const lease = this.#leases.get(id);
    const ttl = lease ? await this.#etcd.leaseKeepAlive(lease) : 0;
    if (ttl <= 0 && LIVE_STATES.includes(held.state)) {
      // The lease was lost (expired just now, or never seen by this replica):
      // a live service gets a new one with its heartbeat.
      await this.#putLive(id, incarnation);
    }
    this.#beats.set(id, Math.max(this.#beats.get(id) ?? 0, at));
    this.#freshBeats.set(id, at);
    return this.#withBeat(held);
  }

  async delete(id: string): Promise<ServiceRecord> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const { record: old, modRevision } = await this.#read(id);
      const removed = decideForget(old, id);
      const result = await this.#etcd.txn(
        [{ key: `${this.#prefix}svc/${id}`, target: "MOD", modRevision }],
        [
          { delete: { key: `${this.#prefix}svc/${id}` } },
          { delete: { key: `${this.#prefix}live/${id}` } },
          { delete: { key: `${this.#prefix}tr/${id}/`, prefix: true } },
        ],
      );
      if (result.succeeded) {
        this.#records.delete(id);
        return removed;
      }
    }
    throw new Error(`Registry removal of "${id}" kept losing races in etcd: retry`);
  }

  async setSession(id: string, session: string, present: boolean): Promise<ServiceRecord> {
    const change = await this.#write(id, (old) => {
      if (!old) throw new UnknownServiceError(id);
      const sessions = new Set(old.sessions);
      if (present) sessions.add(session);
      else sessions.delete(session);
      return { next: { ...old, sessions: [...sessions].sort() }, transition: null };
    });
    return change.record;
  }

  async transitionsSince(seq: number, limit: number): Promise<Transition[]> {
    const { kvs } = await this.#etcd.range(`${this.#prefix}tr/`, {
      prefix: true,
      minModRevision: seq + 1,
      limit,
    });
    return kvs.map((kv) => ({
      ...(JSON.parse(kv.value) as Omit<Transition, "seq">),
      seq: kv.modRevision,
    }));
  }

  async history(id: string): Promise<Transition[]> {
    const { kvs } = await this.#etcd.range(`${this.#prefix}tr/${id}/`, { prefix: true });
    return kvs.map((kv) => ({
      ...(JSON.parse(kv.value) as Omit<Transition, "seq">),
      seq: kv.modRevision,
    }));
  }

  close(): Promise<void> {
    clearInterval(this.#flushTimer);
    this.#watch.abort();
    this.#listeners.clear();
    return Promise.resolve();
  }

  #withBeat(record: ServiceRecord): ServiceRecord {
    const beat = this.#beats.get(record.id) ?? 0;
    return { ...record, lastHeartbeat: Math.max(record.lastHeartbeat, beat) };
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
   * Read, decide, write under a revision compare; on a lost race, read again.
   * Nothing is written when the decision leaves the record unchanged.
   * Lease keys follow the state: a live record holds `live/<id>`, others not.
   */
  async #write(
    id: string,
    decide: (old: ServiceRecord | undefined) => Decision | Unchanged,
  ): Promise<StoreChange> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const { record: old, modRevision } = await this.#read(id);
      const decision = decide(old);
      if ("unchanged" in decision) return { record: decision.unchanged, transition: null };
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
      const result = await this.#etcd.txn(compare, ops);
      if (result.succeeded) {
        if (lease) this.#leases.set(id, lease);
        this.#records.set(id, { record: next, modRevision: result.revision });
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
    const lease = await this.#etcd.leaseGrant(this.#ttlSeconds);
    await this.#etcd.txn([], [{
      put: { key: `${this.#prefix}live/${id}`, value: String(incarnation), lease },
    }]);
    this.#leases.set(id, lease);
  }

  async #load(): Promise<void> {
    const services = await this.#etcd.range(`${this.#prefix}svc/`, { prefix: true });
    for (const kv of services.kvs) {
      const record = recordOf(kv.value);
      this.#records.set(record.id, { record, modRevision: kv.modRevision });
    }
    const live = await this.#etcd.range(`${this.#prefix}live/`, { prefix: true });
    for (const kv of live.kvs) {
      this.#leases.set(kv.key.slice(`${this.#prefix}live/`.length), kv.lease);
    }
    const from = Math.max(services.revision, live.revision) + 1;
    this.#etcd.watch(this.#prefix, from, (events) => this.#apply(events), this.#watch.signal)
      .catch((error) => {
        // History compacted past our position: read everything again and go on.
        this.#logger.warn("Registry watch restarts: {error}", { error: String(error) });
        if (!this.#watch.signal.aborted) {
          void this.#load().catch((error) =>
            this.#logger.debug("Cannot read the registry again: {error}", { error: String(error) })
          );
        }
      });
    this.#flushTimer ??= setInterval(() => void this.#flushBeats(), BEATS_FLUSH_MS);
    this.#flushTimer.unref();
  }

  /**
   * Shares the heartbeat times this replica saw, so `lastHeartbeat` is right on
   * every replica (display only: liveness itself is the leases'). One key per
   * replica, on a lease, so a replica that dies leaves nothing behind.
   */
  async #flushBeats(): Promise<void> {
    if (this.#freshBeats.size === 0) return;
    const beats = Object.fromEntries(this.#freshBeats);
    this.#freshBeats.clear();
    try {
      // One lease for this replica's key, renewed with each flush: no lease churn.
      if (!this.#beatsLease || await this.#etcd.leaseKeepAlive(this.#beatsLease) <= 0) {
        this.#beatsLease = await this.#etcd.leaseGrant(Math.ceil((BEATS_FLUSH_MS * 3) / 1000));
      }
      const lease = this.#beatsLease;
      await this.#etcd.txn([], [{
        put: { key: `${this.#prefix}beats/${this.#replica}`, value: JSON.stringify(beats), lease },
      }]);
    } catch (error) {
      this.#logger.debug("Heartbeat times not shared: {error}", { error: String(error) });
    }
  }

  #apply(events: EtcdEvent[]): void {
    const svc = `${this.#prefix}svc/`;
    const live = `${this.#prefix}live/`;
    const tr = `${this.#prefix}tr/`;
    for (const event of events) {
      const key = event.kv.key;
      if (key.startsWith(svc) && event.type === "PUT") {
        const record = recordOf(event.kv.value);
        const held = this.#records.get(record.id);
        if (!held || held.modRevision <= event.kv.modRevision) {
          this.#records.set(record.id, { record, modRevision: event.kv.modRevision });
        }
      } else if (key.startsWith(svc)) {
        // A record forgotten by any replica: watchers drop it (prev_kv is its last state).
        this.#records.delete(key.slice(svc.length));
        const record = event.prev ? recordOf(event.prev.value) : undefined;
        if (record) {
          for (const listener of this.#listeners) {
            listener({ record, transition: null, removed: true });
          }
        }
      } else if (key.startsWith(`${this.#prefix}beats/`) && event.type === "PUT") {
        for (
          const [id, at] of Object.entries(JSON.parse(event.kv.value) as Record<string, number>)
        ) {
          this.#beats.set(id, Math.max(this.#beats.get(id) ?? 0, at));
        }
      } else if (key.startsWith(live)) {
        const id = key.slice(live.length);
        if (event.type === "PUT") this.#leases.set(id, event.kv.lease);
        else void this.#leaseEnded(id, Number(event.prev?.value ?? 0));
      }
    }
    for (const event of events) {
      if (!event.kv.key.startsWith(tr) || event.type !== "PUT") continue;
      const transition = {
        ...(JSON.parse(event.kv.value) as Omit<Transition, "seq">),
        seq: event.kv.modRevision,
      };
      const record = this.#records.get(transition.id)?.record;
      if (!record) continue;
      for (const listener of this.#listeners) {
        listener({ record: this.#withBeat(record), transition });
      }
    }
  }

  /** A live key went: its lease expired (no heartbeat for the TTL), so the service is DEAD. */
  async #leaseEnded(id: string, incarnation: number): Promise<void> {
    this.#leases.delete(id);
    const record = this.#records.get(id)?.record;
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

/** A stored record; records written before role options get none. */
function recordOf(json: string): ServiceRecord {
  const record = JSON.parse(json) as ServiceRecord;
  record.options ??= {};
  return record;
}
