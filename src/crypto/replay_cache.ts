/**
 * A bounded memory of signature nonces, so that a signed request is acted on
 * at most once within its validity window.
 *
 * @module
 */

/** Options of {@linkcode ReplayCache}. */
export interface ReplayCacheOptions {
  /** Most nonces held at once. Default 100 000. */
  maxEntries?: number;
}

/**
 * Remembers nonces until they expire, in bounded memory.
 *
 * When the cache is full of unexpired nonces it evicts the eighth that
 * expires soonest and raises a floor to their latest expiry: from then on a
 * nonce it does not hold is still refused if it expires at or before the
 * floor, because it may be one of the evicted. So eviction can refuse a
 * fresh request with an unusually short lifetime, but never lets a replay
 * through. A fresh request of the usual lifetime expires after the evicted
 * ones and is not affected.
 *
 * Each call is O(1) amortised: expired entries are swept once per eighth of
 * the capacity inserted, and an eviction sorts the expiry times once per
 * eighth of the capacity.
 */
export class ReplayCache {
  readonly #maxEntries: number;
  readonly #sweepEvery: number;
  readonly #entries = new Map<string, number>();
  #insertsSinceSweep = 0;
  #floor = Number.NEGATIVE_INFINITY;

  /**
   * Creates an empty cache.
   *
   * @param options `maxEntries` bounds the memory (default 100 000).
   * @throws {RangeError} If `maxEntries` is not a positive integer.
   */
  constructor(options: ReplayCacheOptions = {}) {
    const maxEntries = options.maxEntries ?? 100_000;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(
        `Replay cache maxEntries must be a positive integer, got ${String(maxEntries)}`,
      );
    }
    this.#maxEntries = maxEntries;
    this.#sweepEvery = Math.max(1, Math.ceil(maxEntries / 8));
  }

  /**
   * Records a nonce if it is new.
   *
   * A nonce whose `expiresAt` has already passed is not stored and counts as
   * new: the caller must refuse expired signatures before asking.
   *
   * @param nonce The signature's nonce.
   * @param expiresAt Milliseconds since the epoch until which to remember it.
   * @param now The current time in milliseconds since the epoch. Default `Date.now()`.
   * @returns `true` if the nonce is new (it is now remembered), `false` if it
   * was seen before (or may have been, see the class notes).
   * @throws {TypeError} If `nonce` is not a non-empty string.
   * @throws {RangeError} If `expiresAt` or `now` is not a finite number.
   */
  remember(nonce: string, expiresAt: number, now: number = Date.now()): boolean {
    if (typeof nonce !== "string" || nonce === "") {
      throw new TypeError("Nonce must be a non-empty string");
    }
    if (!Number.isFinite(expiresAt) || !Number.isFinite(now)) {
      throw new RangeError(
        `Nonce expiry and time must be finite milliseconds, got ${String(expiresAt)} and ${
          String(now)
        }`,
      );
    }
    const known = this.#entries.get(nonce);
    if (known !== undefined) {
      if (known > now) return false;
      this.#entries.delete(nonce);
    }
    if (expiresAt <= this.#floor) return false;
    if (expiresAt <= now) return true;
    if (this.#insertsSinceSweep >= this.#sweepEvery || this.#entries.size >= this.#maxEntries) {
      this.#sweep(now);
    }
    if (this.#entries.size >= this.#maxEntries) this.#evict();
    this.#entries.set(nonce, expiresAt);
    this.#insertsSinceSweep++;
    return true;
  }

  /** The number of nonces held, expired ones not yet swept included. */
  get size(): number {
    return this.#entries.size;
  }

  #sweep(now: number): void {
    this.#insertsSinceSweep = 0;
    for (const [nonce, expiresAt] of this.#entries) {
      if (expiresAt <= now) this.#entries.delete(nonce);
    }
  }

  #evict(): void {
    const expiries = Float64Array.from(this.#entries.values()).sort();
    const threshold = expiries[Math.min(this.#sweepEvery, expiries.length) - 1];
    if (threshold === undefined) return;
    for (const [nonce, expiresAt] of this.#entries) {
      if (expiresAt <= threshold) this.#entries.delete(nonce);
    }
    this.#floor = Math.max(this.#floor, threshold);
  }
}
