/**
 * The unacknowledged messages of each queue that holds any, kept in memory so
 * that a put does not count its whole queue. Only queues holding messages have
 * an entry: a get or stats of any name, or a queue emptied by its acks, leaves
 * none, so the map is bounded by the queues with stored messages, not by every
 * name ever asked about.
 * @module
 */
import type { StatementSync } from "node:sqlite";

/** Unacknowledged messages by queue, for the queues that hold some. */
export class QueueTotals {
  #totals = new Map<string, number>();
  #count: StatementSync;

  /** Totals counted with `count` (`SELECT count(*) AS n ... WHERE queue = ?`) when not known. */
  constructor(count: StatementSync) {
    this.#count = count;
  }

  /** Queues whose total is kept: those that held messages when last counted or changed. */
  get size(): number {
    return this.#totals.size;
  }

  /** Unacknowledged messages of `queue`, counted in the file unless kept. */
  get(queue: string): number {
    let total = this.#totals.get(queue);
    if (total === undefined) {
      total = (this.#count.get(queue) as { n: number }).n;
      if (total > 0) this.#totals.set(queue, total);
    }
    return total;
  }

  /** Records that `queue` holds `total` messages now (after a put); 0 drops its entry. */
  set(queue: string, total: number): void {
    if (total > 0) this.#totals.set(queue, total);
    else this.#totals.delete(queue);
  }

  /** Takes `n` deleted messages off the total of `queue`, if it is kept. */
  remove(queue: string, n: number): void {
    const total = this.#totals.get(queue);
    if (total !== undefined && n > 0) this.set(queue, total - n);
  }

  /** Forgets every total (after a rollback): they are counted again when needed. */
  clear(): void {
    this.#totals.clear();
  }
}
