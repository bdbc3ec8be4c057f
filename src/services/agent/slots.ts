/**
 * Core slots of an agent: a task needing k cores waits until k are free.
 * Waiters are served strictly first come, first served, so a wide task is
 * not starved by narrow ones behind it.
 * @module
 */

/** Options of {@linkcode CoreSlots.acquire}. */
export interface AcquireOptions {
  /** Gives up waiting; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

interface Waiter {
  cores: number;
  grant(): void;
}

/** A fixed number of cores handed out to tasks. */
export class CoreSlots {
  #total: number;
  #free: number;
  #waiters: Waiter[] = [];
  #listeners = new Set<() => void>();

  /**
   * `total` cores, all free.
   * @throws {RangeError} when `total` is not a positive whole number.
   */
  constructor(total: number) {
    if (!Number.isSafeInteger(total) || total < 1) {
      throw new RangeError(`Invalid core count ${total}: give a whole number, 1 or more`);
    }
    this.#total = total;
    this.#free = total;
  }

  /** Cores in all. */
  get total(): number {
    return this.#total;
  }

  /** Cores not held by a task. */
  get free(): number {
    return this.#free;
  }

  /** Acquisitions waiting for cores. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /**
   * Waits until `cores` cores are free and no earlier acquisition waits, then
   * holds them; resolves with the function that gives them back (idempotent).
   * @throws {RangeError} when `cores` is not a whole number between 1 and `total`.
   */
  acquire(cores: number, options: AcquireOptions = {}): Promise<() => void> {
    if (!Number.isSafeInteger(cores) || cores < 1 || cores > this.#total) {
      return Promise.reject(
        new RangeError(`Task needs ${cores} cores but this agent has ${this.#total}`),
      );
    }
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const at = this.#waiters.indexOf(waiter);
        if (at < 0) return;
        this.#waiters.splice(at, 1);
        reject(signal!.reason);
        // The head may have been the one blocking the others.
        this.#drain();
      };
      const waiter: Waiter = {
        cores,
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          this.#free -= cores;
          resolve(this.#releaser(cores));
        },
      };
      this.#waiters.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#drain();
    });
  }

  /** Calls `listener` whenever cores are given back or a waiter leaves; returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #releaser(cores: number): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#free += cores;
      this.#drain();
    };
  }

  #drain(): void {
    for (;;) {
      const head = this.#waiters[0];
      if (!head || head.cores > this.#free) break;
      this.#waiters.shift();
      head.grant();
    }
    for (const listener of [...this.#listeners]) listener();
  }
}
