/**
 * The time limits of many calls on one timer. A timer per call costs a
 * `setTimeout` and a `clearTimeout` each (about as much as signing a request
 * in a MAC session); here the calls in flight share one timer, set for the
 * earliest of their deadlines, and a call that ends takes its deadline out of
 * a set. No timer outlives the last call in flight.
 * @module
 */
import { clearTimeout, setTimeout } from "../base/timers.ts";

/** One call's time limit: its signal, until the call ends and releases it. */
export interface Deadline {
  /** Aborts with a `TimeoutError` `DOMException` once the time is up. */
  readonly signal: AbortSignal;
}

interface Entry extends Deadline {
  at: number;
  controller: AbortController;
}

/** The time limits of one client's calls. */
export class Deadlines {
  #pending = new Set<Entry>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #armedAt = Number.POSITIVE_INFINITY;

  /**
   * A time limit of `ms` from now; the caller must {@linkcode release} it
   * when the call ends, whatever the outcome.
   * @throws {RangeError} when `ms` is not a positive finite number.
   */
  start(ms: number): Deadline {
    if (!(ms > 0) || !Number.isFinite(ms)) {
      throw new RangeError(`A time limit must be a positive number of ms, got ${String(ms)}`);
    }
    const controller = new AbortController();
    const entry: Entry = { at: performance.now() + ms, controller, signal: controller.signal };
    this.#pending.add(entry);
    if (entry.at < this.#armedAt) this.#arm(entry.at);
    return entry;
  }

  /** Ends a time limit (idempotent); its signal stays as it is. */
  release(deadline: Deadline): void {
    if (!this.#pending.delete(deadline as Entry) || this.#pending.size > 0) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
  }

  /** Time limits not yet released. */
  get size(): number {
    return this.#pending.size;
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#armedAt = at;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, at - performance.now()));
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    let next = Number.POSITIVE_INFINITY;
    for (const entry of this.#pending) {
      if (entry.at <= now) {
        this.#pending.delete(entry);
        entry.controller.abort(new DOMException("Signal timed out.", "TimeoutError"));
      } else if (entry.at < next) {
        next = entry.at;
      }
    }
    if (next < Number.POSITIVE_INFINITY) this.#arm(next);
  }
}
