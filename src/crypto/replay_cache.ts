/**
 * A bounded memory of signature nonces, so that a signed request is acted on
 * at most once within its validity window.
 *
 * @module
 */

/** Options of {@linkcode ReplayCache}. */
export interface ReplayCacheOptions {
  /** Most nonces held at once. Default 200 000. */
  maxEntries?: number;
  /**
   * Where accepted nonces are also written, so that the next process of the
   * same service refuses them too (a restart must not open a replay window).
   * Default: none, the memory ends with the process.
   */
  journal?: NonceSink;
}

/** The validity window of one nonce, in milliseconds since the epoch. */
export interface NonceWindow {
  /** When the signature was created (its `created`, in ms). */
  created: number;
  /** Until when to remember the nonce (`expires` plus the clock skew, in ms). */
  expiresAt: number;
}

/** Something that keeps accepted nonces beyond the process (a {@linkcode NonceJournal}). */
export interface NonceSink {
  /** Records one accepted nonce; must not throw. */
  append(nonce: string, window: NonceWindow): void;
}

interface Entry {
  created: number;
  expiresAt: number;
}

/**
 * Remembers nonces until they expire, in bounded memory.
 *
 * When the cache is full of unexpired nonces it evicts the eighth that was
 * created first and raises a floor to their latest creation time: from then
 * on a nonce it does not hold is still refused if it was created at or
 * before the floor, because it may be one of the evicted. So eviction never
 * lets a replay through, and a flood (which takes a key: only verified
 * requests are remembered) can only refuse requests created no later than
 * the ones it pushed out. Fresh requests, created after them, pass at once,
 * whatever lifetime the flood's signatures had.
 *
 * Each call is O(1) amortised: expired entries are swept once per eighth of
 * the capacity inserted, and an eviction sorts the creation times once per
 * eighth of the capacity.
 */
export class ReplayCache {
  readonly #maxEntries: number;
  readonly #sweepEvery: number;
  readonly #entries = new Map<string, Entry>();
  readonly #journal: NonceSink | undefined;
  #insertsSinceSweep = 0;
  #floor = Number.NEGATIVE_INFINITY;

  /**
   * Creates an empty cache.
   *
   * @param options `maxEntries` bounds the memory (default 200 000); `journal`
   * keeps accepted nonces beyond the process.
   * @throws {RangeError} If `maxEntries` is not a positive integer.
   */
  constructor(options: ReplayCacheOptions = {}) {
    const maxEntries = options.maxEntries ?? 200_000;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(
        `Replay cache maxEntries must be a positive integer, got ${String(maxEntries)}`,
      );
    }
    this.#maxEntries = maxEntries;
    this.#sweepEvery = Math.max(1, Math.ceil(maxEntries / 8));
    this.#journal = options.journal;
  }

  /**
   * Records a nonce if it is new.
   *
   * A nonce whose `expiresAt` has already passed is not stored and counts as
   * new: the caller must refuse expired signatures before asking.
   *
   * @param nonce The signature's nonce.
   * @param window When the signature was created and until when to remember it (ms).
   * @param now The current time in milliseconds since the epoch. Default `Date.now()`.
   * @returns `true` if the nonce is new (it is now remembered), `false` if it
   * was seen before (or may have been, see the class notes).
   * @throws {TypeError} If `nonce` is not a non-empty string.
   * @throws {RangeError} If a time is not a finite number.
   */
  remember(nonce: string, window: NonceWindow, now: number = Date.now()): boolean {
    if (!this.#admit(nonce, window, now)) return false;
    this.#journal?.append(nonce, window);
    return true;
  }

  /**
   * Takes in nonces an earlier process of the same service accepted (from its
   * journal), without writing them again.
   *
   * @param entries The nonces and their windows.
   * @param now The current time in milliseconds since the epoch. Default `Date.now()`.
   * @throws {TypeError} If a nonce is not a non-empty string.
   * @throws {RangeError} If a time is not a finite number.
   */
  restore(entries: Iterable<[string, NonceWindow]>, now: number = Date.now()): void {
    for (const [nonce, window] of entries) this.#admit(nonce, window, now);
  }

  /** The number of nonces held, expired ones not yet swept included. */
  get size(): number {
    return this.#entries.size;
  }

  #admit(nonce: string, window: NonceWindow, now: number): boolean {
    if (typeof nonce !== "string" || nonce === "") {
      throw new TypeError("Nonce must be a non-empty string");
    }
    const { created, expiresAt } = window;
    if (!Number.isFinite(created) || !Number.isFinite(expiresAt) || !Number.isFinite(now)) {
      throw new RangeError(
        `Nonce times must be finite milliseconds, got ${String(created)}, ${
          String(expiresAt)
        } and ${String(now)}`,
      );
    }
    const known = this.#entries.get(nonce);
    if (known !== undefined) {
      if (known.expiresAt > now) return false;
      this.#entries.delete(nonce);
    }
    if (created <= this.#floor) return false;
    if (expiresAt <= now) return true;
    if (this.#insertsSinceSweep >= this.#sweepEvery || this.#entries.size >= this.#maxEntries) {
      this.#sweep(now);
    }
    if (this.#entries.size >= this.#maxEntries) this.#evict();
    this.#entries.set(nonce, { created, expiresAt });
    this.#insertsSinceSweep++;
    return true;
  }

  #sweep(now: number): void {
    this.#insertsSinceSweep = 0;
    for (const [nonce, entry] of this.#entries) {
      if (entry.expiresAt <= now) this.#entries.delete(nonce);
    }
  }

  #evict(): void {
    const created = Float64Array.from(this.#entries.values(), (e) => e.created).sort();
    const threshold = created[Math.min(this.#sweepEvery, created.length) - 1];
    if (threshold === undefined) return;
    for (const [nonce, entry] of this.#entries) {
      if (entry.created <= threshold) this.#entries.delete(nonce);
    }
    this.#floor = Math.max(this.#floor, threshold);
  }
}
