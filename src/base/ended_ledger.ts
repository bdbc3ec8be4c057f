/**
 * How many ended things (pilots, batch jobs) a service keeps for listing, and
 * for how long: the newest {@linkcode MAX_ENDED_KEPT}, each for
 * {@linkcode ENDED_KEPT_MS} after it ended. One ledger of the ended, in the
 * order they ended, tells its owner which to forget.
 * @module
 */

/** Ended entries kept at most, the most recently ended. */
export const MAX_ENDED_KEPT = 1000;
/** How long an ended entry is kept after it ended, ms: 24 h. */
export const ENDED_KEPT_MS = 24 * 60 * 60 * 1000;

/** Options of {@linkcode EndedLedger}. */
export interface EndedLedgerOptions {
  /** The clock, ms since the epoch, that ended entries age by. Default `Date.now`. */
  now?: () => number;
}

/**
 * The keys of ended entries, the earliest ended first. Beyond
 * {@linkcode MAX_ENDED_KEPT} keys, or once one ended over
 * {@linkcode ENDED_KEPT_MS} ago, the earliest are dropped and `forget` is
 * called with each. Each key is visited once, when it is dropped, so a check
 * costs nothing when none is due.
 */
export class EndedLedger<K> {
  #forget: (key: K) => void;
  #now: () => number;
  /** Keys with the time each ended, in the order they ended. */
  #ended = new Map<K, number>();

  /** An empty ledger that calls `forget` with every key it drops. */
  constructor(forget: (key: K) => void, options: EndedLedgerOptions = {}) {
    this.#forget = forget;
    this.#now = options.now ?? Date.now;
  }

  /** Records that `key` ended at `at` (as its latest end), then drops what is due. */
  ended(key: K, at: number): void {
    // Deleted first so that the order stays the order in which keys ended.
    this.#ended.delete(key);
    this.#ended.set(key, at);
    this.dropDue();
  }

  /** Takes `key` out without calling `forget`: it runs again, or its owner removed it. */
  delete(key: K): void {
    this.#ended.delete(key);
  }

  /** Drops the keys that ended over {@linkcode ENDED_KEPT_MS} ago, then those beyond the count. */
  dropDue(): void {
    const oldest = this.#now() - ENDED_KEPT_MS;
    for (const [key, at] of this.#ended) {
      if (at >= oldest && this.#ended.size <= MAX_ENDED_KEPT) return;
      this.#ended.delete(key);
      this.#forget(key);
    }
  }
}
