/**
 * One way to wait and one way to retry with backoff, so that every loop that
 * polls or retries bounds its waits the same way and stops when told to.
 * @module
 */
import { clearTimeout, setTimeout } from "../base/timers.ts";

/**
 * Resolves after `ms` milliseconds, or at once when `signal` aborts.
 *
 * It never rejects: a caller that must stop on abort checks `signal.aborted`
 * after the wait, which keeps every polling loop free of try/catch around
 * its pauses.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** What {@linkcode RetryOptions.retryIf} is told about a failed attempt. */
export interface RetryAttempt {
  /** The attempt that failed, counted from 1. */
  attempt: number;
  /** How long {@linkcode retry} will wait before the next attempt, jitter included. */
  delayMs: number;
}

/** Options of {@linkcode retry}. */
export interface RetryOptions {
  /** Most attempts in all, the first included. Default `Infinity`. */
  attempts?: number;
  /** Wait after the first failure, in milliseconds. */
  firstDelayMs: number;
  /** Longest wait between two attempts, in milliseconds. Default `firstDelayMs`. */
  maxDelayMs?: number;
  /** Each wait is the previous one times this, up to `maxDelayMs`. Default 2. */
  factor?: number;
  /**
   * Share of each wait drawn at random and taken off it, from 0 (none) to 1,
   * so that many clients retrying together spread out. Default 0.
   */
  jitter?: number;
  /** Stops the retries: the wait ends at once and the last error is thrown. */
  signal?: AbortSignal;
  /**
   * Whether `error` is worth another attempt; the last error is thrown at
   * once when it returns false. Default: every error is.
   */
  retryIf?: (error: unknown, attempt: RetryAttempt) => boolean;
}

/**
 * Calls `fn` until it resolves, waiting longer after each failure: the first
 * wait is `firstDelayMs`, each next one `factor` times longer, at most
 * `maxDelayMs`. `fn` gets the attempt number, counted from 1.
 *
 * @throws {RangeError} When `attempts` is below 1, a delay is negative,
 *   `factor` is below 1 or `jitter` is outside 0..1.
 * @throws The last error of `fn` when `attempts` are used up, `retryIf`
 *   says no, or `signal` aborts.
 * @example
 * ```ts
 * const answer = await retry(() => fetch(url), { firstDelayMs: 100, maxDelayMs: 2000 });
 * ```
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const { attempts = Infinity, firstDelayMs, factor = 2, jitter = 0, signal, retryIf } = options;
  const maxDelayMs = options.maxDelayMs ?? firstDelayMs;
  if (!(attempts >= 1)) {
    throw new RangeError(`Cannot retry: attempts is "${attempts}", use 1 or more`);
  }
  if (!(firstDelayMs >= 0) || !(maxDelayMs >= 0)) {
    throw new RangeError(
      `Cannot retry: delays must be 0 or more, got "${firstDelayMs}" and "${maxDelayMs}"`,
    );
  }
  if (!(factor >= 1)) throw new RangeError(`Cannot retry: factor is "${factor}", use 1 or more`);
  if (!(jitter >= 0 && jitter <= 1)) {
    throw new RangeError(`Cannot retry: jitter is "${jitter}", use a number from 0 to 1`);
  }
  let delay = Math.min(firstDelayMs, maxDelayMs);
  for (let attempt = 1;; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      const delayMs = delay - delay * jitter * Math.random();
      if (attempt >= attempts || signal?.aborted) throw error;
      if (retryIf && !retryIf(error, { attempt, delayMs })) throw error;
      await sleep(delayMs, signal);
      if (signal?.aborted) throw error;
      delay = Math.min(maxDelayMs, delay * factor);
    }
  }
}
