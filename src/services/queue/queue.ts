/**
 * The queue service's logic over {@linkcode QueueStore}: puts, gets that may
 * wait for a message (long-poll), acknowledgements. A waiting get is woken by
 * the put, nack or visibility expiry that makes a message ready: no polling.
 * @module
 */
import {
  type AckManyResult,
  PUT_KEY,
  QUEUE_LIMITS,
  QUEUE_NAME,
  type QueueMessage,
  type QueueStats,
  type TaskRecord,
  type TaskReport,
} from "../../types/queue_wire.ts";
import type { KeyedPut, QueueStore } from "./queue_store.ts";
import type { CancelOutcome, TaskHistory } from "./task_history.ts";
import type { RunOptions } from "./_sqlite_tx.ts";
import type { AnswerBudget } from "./answer_budget.ts";
import { clearTimeout, setTimeout } from "../../base/timers.ts";

/** A get refused because as many consumers as allowed are already waiting. */
export class TooManyWaitersError extends Error {
  /** Builds the error. */
  constructor(limit: number) {
    super(`Too many consumers are waiting (${limit}): retry later or raise maxWaiters`);
    this.name = "TooManyWaitersError";
  }
}

/** An ack or nack of a message that the queue does not hold (unknown or already acked). */
export class UnknownMessageError extends Error {
  /** Builds the error. */
  constructor(queue: string, id: string) {
    super(`Message "${id}" is not in queue "${queue}": it is unknown or already acknowledged`);
    this.name = "UnknownMessageError";
  }
}

/** Options of {@linkcode QueueService}. */
export interface QueueServiceOptions {
  /** Gets that may wait at once, over all queues. Default 1,000. */
  maxWaiters?: number;
}

/** Options of {@linkcode QueueService.get}. */
export interface GetOptions {
  /** Messages to take at most, 1-100. Default 1. */
  max?: number;
  /** How long the messages stay invisible unless acknowledged, ms. Default 30000. */
  visibilityMs?: number;
  /** How long to wait for a message when none is ready, ms; `Infinity` waits until one is. Default 0. */
  waitMs?: number;
  /** Ends the wait early, answering no messages. */
  signal?: AbortSignal;
}

/** Options of {@linkcode QueueService.take}. */
export interface TakeOptions extends Pick<GetOptions, "max" | "visibilityMs"> {
  /**
   * What the answer may still hold, charged for the messages taken; gets
   * that share one answer share it. Default: a budget of its own,
   * `MAX_ANSWER_CHARS` (`answer_budget.ts`).
   */
  budget?: AnswerBudget;
}

interface Waiter {
  max: number;
  visibilityMs: number;
  finish(messages: QueueMessage[]): void;
  fail(error: unknown): void;
}

/** Named queues with at-least-once delivery, over one store. */
export class QueueService {
  #store: QueueStore;
  #maxWaiters: number;
  #waiters = new Map<string, Waiter[]>();
  #waiting = 0;
  #timers = new Map<string, ReturnType<typeof setTimeout>>();
  #closed = false;
  #closeListeners = new Set<() => void>();
  #readyListeners = new Set<(name: string) => void>();
  /** Inside {@linkcode QueueService.batch}: wakes wait for the commit. */
  #batching = false;
  #deferred = new Set<string>();

  /**
   * The queues of `store`; the service owns the store and closes it.
   * @throws {RangeError} when `maxWaiters` is not a positive integer.
   */
  constructor(store: QueueStore, options: QueueServiceOptions = {}) {
    const maxWaiters = options.maxWaiters ?? QUEUE_LIMITS.defaultMaxWaiters;
    if (!Number.isSafeInteger(maxWaiters) || maxWaiters < 1) {
      throw new RangeError(`Invalid maxWaiters ${maxWaiters}: give a whole number, 1 or more`);
    }
    this.#store = store;
    this.#maxWaiters = maxWaiters;
  }

  /** Unacknowledged messages one queue holds at most. */
  get capacity(): number {
    return this.#store.capacity;
  }

  /** Whether {@linkcode QueueService.close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Gets waiting now, over all queues. */
  get waiting(): number {
    return this.#waiting;
  }

  /**
   * Puts `payload` at the end of queue `name` and wakes a waiting get.
   * @returns The message's ID.
   * @throws {QueueFullError} when the queue is at capacity.
   * @throws {TypeError} when the name is invalid or the payload is not JSON.
   */
  put(name: string, payload: unknown): string {
    checkName(name);
    const id = this.#store.put(name, payload);
    this.#dispatch(name);
    return id;
  }

  /**
   * Puts `payload` on queue `name` once per idempotency `key` (see
   * {@linkcode QueueStore.putOnce}); a new message wakes a waiting get.
   * @throws {KeyConflictError} when the key was used for another payload.
   * @throws {QueueFullError} when a new message does not fit.
   * @throws {TypeError} when the name or key is invalid or the payload is not JSON.
   */
  putOnce(name: string, payload: unknown, key: string): KeyedPut {
    checkName(name);
    if (!PUT_KEY.test(key)) {
      throw new TypeError(
        `Invalid idempotency key "${key}": use 1-128 letters, digits, '.', '_', ':' or '-'`,
      );
    }
    const put = this.#store.putOnce(name, payload, key);
    if (!put.duplicate) this.#dispatch(name);
    return put;
  }

  /**
   * Takes up to `max` ready messages of queue `name`; when none is ready,
   * waits up to `waitMs` for one and answers `[]` at the end of the wait.
   * Waiting gets are served first come, first served.
   * @throws {TooManyWaitersError} when it would wait and `maxWaiters` gets already wait.
   * @throws {TypeError} when the name is invalid.
   * @throws {RangeError} when `max`, `visibilityMs` or `waitMs` is out of range.
   */
  async get(name: string, options: GetOptions = {}): Promise<QueueMessage[]> {
    const waitMs = options.waitMs ?? 0;
    if (!(waitMs >= 0)) throw new RangeError(`Invalid waitMs ${waitMs}: give 0 or more`);
    const ready = this.take(name, options);
    if (ready.length > 0 || waitMs === 0 || options.signal?.aborted || this.#closed) return ready;
    const max = options.max ?? 1;
    const visibilityMs = options.visibilityMs ?? QUEUE_LIMITS.defaultVisibilityMs;
    if (this.#waiting >= this.#maxWaiters) throw new TooManyWaitersError(this.#maxWaiters);
    return await new Promise<QueueMessage[]>((resolve, reject) => {
      const list = this.#waiters.get(name) ?? [];
      this.#waiters.set(name, list);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = (): void => waiter.finish([]);
      const leave = (): void => {
        const at = list.indexOf(waiter);
        if (at < 0) return;
        list.splice(at, 1);
        this.#waiting--;
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        if (list.length === 0) this.#forget(name);
      };
      const waiter: Waiter = {
        max,
        visibilityMs,
        finish: (messages) => {
          leave();
          resolve(messages);
        },
        fail: (error) => {
          leave();
          reject(error);
        },
      };
      list.push(waiter);
      this.#waiting++;
      if (Number.isFinite(waitMs)) timer = setTimeout(() => waiter.finish([]), waitMs);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.#schedule(name);
    });
  }

  /**
   * Takes up to `max` ready messages of queue `name` now, without waiting
   * (a get with `waitMs` 0, answered in the same turn); past the answer's
   * budget the rest stay ready (the first message is always taken).
   * @throws {TypeError} when the name is invalid.
   * @throws {RangeError} when `max` or `visibilityMs` is out of range.
   */
  take(name: string, options: TakeOptions = {}): QueueMessage[] {
    checkName(name);
    const max = options.max ?? 1;
    const visibilityMs = options.visibilityMs ?? QUEUE_LIMITS.defaultVisibilityMs;
    checkRange("max", max, 1, QUEUE_LIMITS.maxBatch);
    checkRange("visibilityMs", visibilityMs, 0, QUEUE_LIMITS.maxVisibilityMs);
    return this.#store.get(name, max, visibilityMs, options.budget);
  }

  /**
   * Runs `work`, whose calls on this service then share one store
   * transaction (one commit; see {@linkcode QueueStore.batch}); waiting gets
   * are served once it is committed. Not nested.
   * @throws whatever `work` throws, or the commit's error.
   */
  batch<T>(work: () => T, options: RunOptions = {}): T {
    if (this.#batching) return work();
    this.#batching = true;
    try {
      return this.#store.batch(work, options);
    } finally {
      this.#batching = false;
      const names = [...this.#deferred];
      this.#deferred.clear();
      if (!this.#closed) { for (const name of names) this.#dispatch(name); }
    }
  }

  /**
   * Applies a final report of task `taskId` of queue `name` and then
   * acknowledges its message `messageId`, in one transaction
   * ({@linkcode QueueStore.finish}).
   * @returns The task and whether the message was acknowledged now; null
   * when the history holds no such task (nothing was acknowledged).
   * @throws {TypeError} when the name is invalid.
   */
  finish(
    name: string,
    taskId: string,
    report: TaskReport,
    messageId: string,
  ): { task: TaskRecord; acked: boolean } | null {
    checkName(name);
    return this.#store.finish(name, taskId, report, messageId);
  }

  /**
   * Acknowledges message `id` of queue `name`: it is deleted and never delivered again.
   * @throws {UnknownMessageError} when the queue does not hold it.
   */
  ack(name: string, id: string): void {
    checkName(name);
    if (!this.#store.ack(name, id)) throw new UnknownMessageError(name, id);
  }

  /**
   * Acknowledges the messages `ids` of queue `name` at once, in one durable
   * transaction: cheaper than one {@linkcode QueueService.ack} each.
   * @returns The IDs acknowledged now and those the queue does not hold.
   * @throws {TypeError} when the name is invalid.
   */
  ackMany(name: string, ids: readonly string[]): AckManyResult {
    checkName(name);
    const acked = this.#store.ackMany(name, ids);
    const done = new Set(acked);
    return { acked, unknown: ids.filter((id) => !done.has(id)) };
  }

  /**
   * Gives message `id` of queue `name` back: it is ready again now, before
   * newer messages.
   * @throws {UnknownMessageError} when the queue does not hold it.
   */
  nack(name: string, id: string): void {
    checkName(name);
    if (!this.#store.nack(name, id)) throw new UnknownMessageError(name, id);
    this.#dispatch(name);
  }

  /** The task history of every queue (docs/services.md "### Task history"). */
  get history(): TaskHistory {
    return this.#store.history;
  }

  /**
   * Cancels task `id` of queue `name` if it still waits on the queue (see
   * {@linkcode QueueStore.cancelTask}).
   * @throws {TypeError} when the name is invalid.
   */
  cancelTask(name: string, id: string): CancelOutcome {
    checkName(name);
    return this.#store.cancelTask(name, id);
  }

  /** The store's counters and every queue's counts, for the metrics. */
  metrics(): { tally: QueueStore["tally"]; queues: ReturnType<QueueStore["allCounts"]> } {
    return { tally: this.#store.tally, queues: this.#closed ? [] : this.#store.allCounts() };
  }

  /** How full queue `name` is; a queue never used is empty. */
  stats(name: string): QueueStats {
    checkName(name);
    return { name, ...this.#store.counts(name), capacity: this.#store.capacity };
  }

  /** Answers every waiting get with no messages and closes the store; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const list of [...this.#waiters.values()]) {
      for (const waiter of [...list]) waiter.finish([]);
    }
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#store.close();
    for (const listener of [...this.#closeListeners]) listener();
    this.#closeListeners.clear();
  }

  /** Calls `listener` once when the service closes; the returned function unsubscribes. */
  onClose(listener: () => void): () => void {
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  /**
   * Calls `listener` with a queue's name when a put, a nack or a visibility
   * timeout made a message ready in it; the returned function unsubscribes.
   */
  onReady(listener: (name: string) => void): () => void {
    this.#readyListeners.add(listener);
    return () => this.#readyListeners.delete(listener);
  }

  /** Hands ready messages to the waiting gets of `name`, oldest waiter first. */
  #dispatch(name: string): void {
    if (this.#batching) {
      this.#deferred.add(name);
      return;
    }
    for (const listener of this.#readyListeners) listener(name);
    const list = this.#waiters.get(name);
    while (list && list.length > 0) {
      const waiter = list[0]!;
      let messages: QueueMessage[];
      try {
        messages = this.#store.get(name, waiter.max, waiter.visibilityMs);
      } catch (error) {
        waiter.fail(error);
        continue;
      }
      if (messages.length === 0) break;
      waiter.finish(messages);
    }
    this.#schedule(name);
  }

  /** Wakes the waiters of `name` when its first in-flight message becomes ready again. */
  #schedule(name: string): void {
    clearTimeout(this.#timers.get(name));
    this.#timers.delete(name);
    if (this.#closed || !this.#waiters.get(name)?.length) return;
    const at = this.#store.nextVisibleAt(name);
    if (at === null) return;
    const delay = Math.max(0, at - this.#store.now()) + 1;
    this.#timers.set(
      name,
      setTimeout(() => {
        this.#timers.delete(name);
        this.#dispatch(name);
      }, delay),
    );
  }

  #forget(name: string): void {
    this.#waiters.delete(name);
    clearTimeout(this.#timers.get(name));
    this.#timers.delete(name);
  }
}

function checkName(name: string): void {
  if (!QUEUE_NAME.test(name)) {
    throw new TypeError(
      `Invalid queue name "${name}": use 1-64 letters, digits, '.', '_' or '-', starting alphanumeric`,
    );
  }
}

function checkRange(what: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`Invalid ${what} ${value}: give a whole number from ${min} to ${max}`);
  }
}
