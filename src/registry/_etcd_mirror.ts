/**
 * The etcd store's mirror of its prefix: records, leases, shared heartbeat
 * times and the newest transitions, read whole once (in pages at one
 * revision) and then kept by one watch stream, so reads, listings and the
 * change stream do not range etcd again.
 * @module
 */
import type { ServiceRecord, Transition } from "../types/mod.ts";
import type { EtcdClient, EtcdEvent } from "./_etcd_client.ts";
import { SharedBeats } from "./_etcd_beats.ts";
import { rangePages } from "./_etcd_pages.ts";
import { transitionOf, TransitionWindow } from "./_etcd_transitions.ts";
import { log } from "../config/logging.ts";
import { sleep } from "../config/retry.ts";

/**
 * Transitions held in memory for the change stream (about 300 bytes each):
 * a reader up to this many changes behind is answered without etcd.
 */
const TRANSITION_WINDOW = 20_000;
/** Keys per page when the mirror reads the store whole. */
const LOAD_PAGE = 500;

/** A record as mirrored, with the revision that wrote it (what a write compares). */
export interface Mirrored {
  record: ServiceRecord;
  modRevision: number;
}

/** What the watch tells the store about. */
export interface MirrorEvents {
  /** A transition, in revision order, with its record as mirrored (not for unknown records). */
  transition(record: ServiceRecord, transition: Transition): void;
  /** A record forgotten by any replica (its last state). */
  removed(record: ServiceRecord): void;
  /** A live key went: its lease ended (`incarnation` is the key's value). */
  leaseEnded(id: string, incarnation: number): void;
}

/** The mirror of one registry prefix; see the module doc. */
export class EtcdMirror {
  /** Records by ID. */
  records = new Map<string, Mirrored>();
  /** The lease of each live service, by ID. */
  leases = new Map<string, string>();
  /** Heartbeat times, shared between replicas. */
  readonly beats: SharedBeats;
  /** The newest transitions. */
  readonly transitions = new TransitionWindow(TRANSITION_WINDOW);
  #etcd: EtcdClient;
  #prefix: string;
  #events: MirrorEvents;
  #watch = new AbortController();
  #logger = log("etcd");

  private constructor(etcd: EtcdClient, prefix: string, events: MirrorEvents) {
    this.#etcd = etcd;
    this.#prefix = prefix;
    this.#events = events;
    this.beats = new SharedBeats(etcd, `${prefix}beats/`, crypto.randomUUID().slice(0, 8));
  }

  /**
   * Reads the prefix whole and follows it.
   * @throws {EtcdError} when it cannot be read.
   */
  static async open(etcd: EtcdClient, prefix: string, events: MirrorEvents): Promise<EtcdMirror> {
    const mirror = new EtcdMirror(etcd, prefix, events);
    mirror.#follow(await mirror.#load() + 1);
    mirror.beats.start();
    return mirror;
  }

  /** Stops following; idempotent. */
  close(): void {
    this.beats.stop();
    this.#watch.abort();
    this.transitions.close();
  }

  /**
   * Reads records and leases whole, in pages at one revision, and starts the
   * window of transitions there; answers that revision (the watch follows on).
   */
  async #load(): Promise<number> {
    const records = new Map<string, Mirrored>();
    let revision = 0;
    for await (
      const page of rangePages(this.#etcd, `${this.#prefix}svc/`, { pageSize: LOAD_PAGE })
    ) {
      revision = page.revision;
      for (const kv of page.kvs) {
        const record = recordOf(kv.value);
        records.set(record.id, { record, modRevision: kv.modRevision });
      }
    }
    const leases = new Map<string, string>();
    const live = `${this.#prefix}live/`;
    for await (
      const page of rangePages(this.#etcd, live, { pageSize: LOAD_PAGE, keysOnly: true, revision })
    ) {
      for (const kv of page.kvs) leases.set(kv.key.slice(live.length), kv.lease);
    }
    this.records = records;
    this.leases = leases;
    this.transitions.reset(revision);
    return revision;
  }

  /**
   * Follows every change from revision `from`. When etcd has compacted its
   * history past the watch's position, the prefix is read whole again (tried
   * until it works, backing off to 5 s) and followed from there.
   */
  #follow(from: number): void {
    const signal = this.#watch.signal;
    this.#etcd.watch(this.#prefix, from, (events, at) => this.#apply(events, at), signal)
      .catch(async (error) => {
        this.#logger.warn("Registry watch restarts: {error}", { error: String(error) });
        for (let attempt = 0; !signal.aborted; attempt++) {
          try {
            this.#follow(await this.#load() + 1);
            return;
          } catch (error) {
            this.#logger.warn("Cannot read the registry again: {error}", { error: String(error) });
            await sleep(Math.min(5000, 200 * 2 ** attempt));
          }
        }
      });
  }

  #apply(events: EtcdEvent[], revision: number): void {
    const svc = `${this.#prefix}svc/`;
    const live = `${this.#prefix}live/`;
    const tr = `${this.#prefix}tr/`;
    for (const event of events) {
      const key = event.kv.key;
      if (key.startsWith(svc) && event.type === "PUT") {
        const record = recordOf(event.kv.value);
        const held = this.records.get(record.id);
        if (!held || held.modRevision <= event.kv.modRevision) {
          this.records.set(record.id, { record, modRevision: event.kv.modRevision });
        }
      } else if (key.startsWith(svc)) {
        // A record forgotten by any replica: watchers drop it (prev_kv is its last state).
        this.records.delete(key.slice(svc.length));
        this.transitions.forget(key.slice(svc.length));
        if (event.prev) this.#events.removed(recordOf(event.prev.value));
      } else if (event.type === "PUT" && this.beats.apply(key, event.kv.value)) {
        continue;
      } else if (key.startsWith(live)) {
        const id = key.slice(live.length);
        if (event.type === "PUT") this.leases.set(id, event.kv.lease);
        else {
          this.leases.delete(id);
          this.#events.leaseEnded(id, Number(event.prev?.value ?? 0));
        }
      }
    }
    for (const event of events) {
      if (!event.kv.key.startsWith(tr) || event.type !== "PUT") continue;
      const transition = transitionOf(event.kv.value, event.kv.modRevision);
      this.transitions.add(transition);
      const record = this.records.get(transition.id)?.record;
      if (record) this.#events.transition(record, transition);
    }
    this.transitions.advance(revision);
  }
}

/** A stored record; records written before role options get none. */
export function recordOf(json: string): ServiceRecord {
  const record = JSON.parse(json) as ServiceRecord;
  record.options ??= {};
  return record;
}
