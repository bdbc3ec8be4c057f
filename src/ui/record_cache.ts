/**
 * The registry's records as `fabricd ui` needs them for routing scrapes and
 * calls: listed at most once per `maxAgeMs` and kept current in between by
 * the change stream the UI follows anyway. The Prometheus gateway, the task
 * sampler and the pilots route then cost the registry no request of their
 * own (the `ui-overhead` benchmark measures what is left).
 * @module
 */
import type { ServiceRecord } from "../types/mod.ts";

/** Options of {@linkcode RecordCache}. */
export interface RecordCacheOptions {
  /** Longest time between two listings, ms. Default 30,000. */
  maxAgeMs?: number;
}

/** Records from the registry, refreshed by listing and by change events. */
export class RecordCache {
  #list: () => Promise<ServiceRecord[]>;
  #maxAgeMs: number;
  #records = new Map<string, ServiceRecord>();
  #listedAt = -Infinity;
  #pending: Promise<ServiceRecord[]> | null = null;
  /** Changes that arrived while a listing was under way: they may be newer than it. */
  #during = new Map<string, ServiceRecord>();

  /** A cache over `list` (the registry's list of every record). */
  constructor(list: () => Promise<ServiceRecord[]>, options: RecordCacheOptions = {}) {
    this.#list = list;
    this.#maxAgeMs = options.maxAgeMs ?? 30_000;
  }

  /**
   * Every record: the cached ones while younger than `maxAgeMs`, else a new
   * listing (callers at the same time share it).
   * @throws {Error} what the listing throws when the cache is stale.
   */
  async list(): Promise<ServiceRecord[]> {
    if (performance.now() - this.#listedAt < this.#maxAgeMs) return [...this.#records.values()];
    this.#pending ??= this.#list().then((records) => {
      this.#records = new Map(records.map((r) => [r.id, r]));
      for (const record of [...this.#during.values()]) this.apply(record);
      this.#listedAt = performance.now();
      return records;
    }).finally(() => {
      this.#pending = null;
      this.#during.clear();
    });
    await this.#pending;
    return [...this.#records.values()];
  }

  /** Takes a record from the change stream unless the cache holds a newer one. */
  apply(record: ServiceRecord): void {
    const held = this.#records.get(record.id);
    if (
      held &&
      (held.incarnation > record.incarnation ||
        (held.incarnation === record.incarnation && held.updated > record.updated))
    ) return;
    this.#records.set(record.id, record);
    if (this.#pending) this.#during.set(record.id, record);
  }

  /** Drops a record the registry forgot (`fabricd forget`). */
  remove(id: string): void {
    this.#records.delete(id);
    this.#during.delete(id);
  }

  /** Forgets the listing time, so the next {@linkcode RecordCache.list} asks the registry. */
  invalidate(): void {
    this.#listedAt = -Infinity;
  }
}
