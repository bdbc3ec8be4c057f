/**
 * A per-source rate limit in bounded memory: a token bucket for each source
 * address, the least recently seen dropped when the table is full.
 * @module
 */

/** Options of {@linkcode RateLimiter}. */
export interface RateLimiterOptions {
  /** Attempts a source may make at once. Default 10. */
  burst?: number;
  /** Attempts regained per second. Default 2. */
  perSecond?: number;
  /** Most sources tracked; the least recently seen goes first. Default 4096. */
  maxSources?: number;
  /** The clock, ms since the epoch. Default `Date.now`. */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Counts attempts per source and says when one must wait. */
export class RateLimiter {
  readonly #burst: number;
  readonly #perMs: number;
  readonly #maxSources: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();

  /**
   * Creates an empty limiter.
   * @throws {RangeError} If a number option is not positive.
   */
  constructor(options: RateLimiterOptions = {}) {
    const { burst = 10, perSecond = 2, maxSources = 4096, now = Date.now } = options;
    for (
      const [name, value] of [["burst", burst], ["perSecond", perSecond], [
        "maxSources",
        maxSources,
      ]] as const
    ) {
      if (!(Number.isFinite(value) && value > 0)) {
        throw new RangeError(`Rate limiter ${name} must be positive, got ${String(value)}`);
      }
    }
    this.#burst = burst;
    this.#perMs = perSecond / 1000;
    this.#maxSources = maxSources;
    this.#now = now;
  }

  /**
   * Takes one attempt from `source`'s bucket.
   * @param source The source address.
   * @returns 0 when the attempt is allowed, else the seconds to wait (at least 1).
   */
  take(source: string): number {
    const now = this.#now();
    let bucket = this.#buckets.get(source);
    if (bucket) {
      this.#buckets.delete(source);
      bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#perMs);
      bucket.at = now;
    } else {
      if (this.#buckets.size >= this.#maxSources) {
        const oldest = this.#buckets.keys().next().value;
        if (oldest !== undefined) this.#buckets.delete(oldest);
      }
      bucket = { tokens: this.#burst, at: now };
    }
    // Re-inserted: the map's order is the order sources were last seen.
    this.#buckets.set(source, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.#perMs / 1000));
  }

  /** The number of sources tracked. */
  get size(): number {
    return this.#buckets.size;
  }
}
