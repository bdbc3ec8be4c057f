/**
 * The etcd store's change stream reads: the newest transitions, held in
 * memory as the watch delivers them, and a paged scan of etcd for callers
 * further behind.
 *
 * etcd cannot range by modification revision cheaply: a range with
 * `min_mod_revision` (or a sort) reads every key under the prefix before it
 * filters, so each `transitionsSince` read all transitions of the fabric (one
 * per heartbeat answer that moved a service's revocation mark: every service,
 * after every change). The window answers those from memory; only a caller
 * older than the window (a watcher starting from 0, a service back after a
 * long absence) costs a scan, in bounded pages.
 * @module
 */
import type { Transition } from "../types/mod.ts";
import type { EtcdClient } from "./_etcd_client.ts";
import { rangePages } from "./_etcd_pages.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";

/** Keys per page of {@linkcode scanTransitions}. */
const SCAN_PAGE = 500;

/**
 * The transitions after a revision `floor`, in revision order, as the watch
 * delivered them: at most `capacity`, the oldest dropped first (raising the
 * floor). Complete up to {@linkcode TransitionWindow.seen}.
 */
export class TransitionWindow {
  /** The window is `#held` from `#start` on: dropping the oldest moves `#start`, not the array. */
  #held: Transition[] = [];
  #start = 0;
  #capacity: number;
  #floor = 0;
  #seen = 0;
  #waiters = new Set<{ revision: number; resolve: () => void }>();

  /** A window of at most `capacity` transitions. */
  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** The newest revision the watch has delivered. */
  get seen(): number {
    return this.#seen;
  }

  /** Starts again from a fresh read of the store at `revision` (nothing held). */
  reset(revision: number): void {
    this.#held = [];
    this.#start = 0;
    this.#floor = revision;
    this.advance(revision);
  }

  /** A transition from the watch, newer than every one held. */
  add(transition: Transition): void {
    if (transition.seq <= this.#floor) return;
    this.#held.push(transition);
    if (this.#held.length - this.#start > this.#capacity) {
      this.#floor = this.#held[this.#start++]!.seq;
      // The dropped ones go in one copy per `capacity` drops (a splice each
      // time moved the whole window: ~100 µs a transition at 20,000).
      if (this.#start >= this.#capacity) this.#compact();
    }
  }

  /** The watch has delivered everything up to `revision`. */
  advance(revision: number): void {
    this.#seen = Math.max(this.#seen, revision);
    for (const waiter of this.#waiters) {
      if (waiter.revision <= this.#seen) {
        this.#waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  /** Drops a forgotten service's transitions. */
  forget(id: string): void {
    this.#compact();
    this.#held = this.#held.filter((t) => t.id !== id);
  }

  #compact(): void {
    this.#held = this.#held.slice(this.#start);
    this.#start = 0;
  }

  /**
   * The transitions after `seq`, oldest first, at most `limit`; null when the
   * window does not reach back to `seq` (read etcd instead).
   */
  since(seq: number, limit: number): Transition[] | null {
    if (seq < this.#floor) return null;
    let low = this.#start;
    let high = this.#held.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#held[middle]!.seq <= seq) low = middle + 1;
      else high = middle;
    }
    return this.#held.slice(low, low + limit);
  }

  /** Resolves true once the watch has delivered `revision`, false after `timeoutMs`. */
  caughtUp(revision: number, timeoutMs: number): Promise<boolean> {
    if (revision <= this.#seen) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        revision,
        resolve: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        resolve(false);
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  /** Ends every wait (the store closes). */
  close(): void {
    for (const waiter of this.#waiters) waiter.resolve();
    this.#waiters.clear();
  }
}

/**
 * The transitions under `prefix` (the store's `tr/`) after `seq`, oldest
 * first, at most `limit`, read in pages of 500 keys at one revision; holds
 * at most about twice `limit` of them at a time.
 * @throws {EtcdError} when etcd cannot be read.
 */
export async function scanTransitions(
  etcd: EtcdClient,
  prefix: string,
  options: { seq: number; limit: number },
): Promise<Transition[]> {
  let found: Transition[] = [];
  const { seq, limit } = options;
  for await (const page of rangePages(etcd, prefix, { pageSize: SCAN_PAGE })) {
    for (const kv of page.kvs) {
      if (kv.modRevision <= seq) continue;
      found.push(transitionOf(kv.value, kv.modRevision));
    }
    if (found.length > 2 * limit) found = oldest(found, limit);
  }
  return oldest(found, limit);
}

function oldest(transitions: Transition[], limit: number): Transition[] {
  return transitions.sort((a, b) => a.seq - b.seq).slice(0, limit);
}

/** A stored transition (`tr/` value), numbered by the etcd revision that wrote it. */
export function transitionOf(value: string, modRevision: number): Transition {
  return { ...(JSON.parse(value) as Omit<Transition, "seq">), seq: modRevision };
}
