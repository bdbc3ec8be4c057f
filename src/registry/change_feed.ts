/**
 * The change stream for one consumer that takes its time (a watcher on the
 * other end of a socket): stored transitions are read a page at a time as the
 * consumer asks for them, and live changes wait in a queue of bounded size.
 * A consumer that lets more than that wait is cut off ({@linkcode ChangeFeed.next}
 * answers `null`); it resumes, as after any disconnect, from the last
 * transition it got. Memory per consumer is one page plus the queue, however
 * long the history and however slow the consumer.
 * @module
 */
import type { RegistryEvent } from "../types/mod.ts";

/** Stored transitions read per page while replaying. */
export const FEED_PAGE = 500;

/** What a feed reads from: the stored history, and the live changes. */
export interface FeedSource {
  /**
   * The stored transitions after `seq`, at most `limit`, oldest first, as
   * events (fewer when a record is gone); `last`: the `seq` of the last one
   * read, `more`: whether there may be more.
   */
  page(
    seq: number,
    limit: number,
  ): Promise<{ events: RegistryEvent[]; last: number; more: boolean }>;
  /** Calls `listener` with each live change until the returned function is called. */
  subscribe(listener: (event: RegistryEvent) => void): () => void;
}

/** One event and its JSON text (what a watcher is sent). */
export interface FedEvent {
  event: RegistryEvent;
  json: string;
}

/** The change stream after a sequence number, for one consumer. */
export class ChangeFeed {
  #source: FeedSource;
  #maxQueuedBytes: number;
  #last: number;
  #page: RegistryEvent[] = [];
  /** The `seq` of the last stored transition read while replaying. */
  #read: number;
  #replaying = true;
  #queue: FedEvent[] = [];
  #queuedBytes = 0;
  #cut = false;
  #closed = false;
  #wake: (() => void) | null = null;
  #unsubscribe: () => void;
  #onCut: () => void;

  /**
   * Follows the changes after `since`; live changes are queued from now on,
   * at most `maxQueuedBytes` of their JSON. Beyond that the feed is cut off
   * and `onCut` is called (to give up a write the consumer does not take).
   */
  constructor(
    source: FeedSource,
    since: number,
    maxQueuedBytes: number,
    onCut: () => void = () => {},
  ) {
    this.#source = source;
    this.#onCut = onCut;
    this.#last = since;
    this.#read = since;
    this.#maxQueuedBytes = maxQueuedBytes;
    this.#unsubscribe = source.subscribe((event) => this.#offer(event));
  }

  /** The `seq` of the last transition handed out (or `since`): where to resume. */
  get last(): number {
    return this.#last;
  }

  /** True once the consumer fell too far behind; the feed then hands out nothing more. */
  get cut(): boolean {
    return this.#cut;
  }

  /**
   * The next change: replayed ones first, then live ones as they come.
   * Answers `null` once the feed is cut off or closed.
   */
  async next(): Promise<FedEvent | null> {
    while (!this.#cut && !this.#closed) {
      const replayed = this.#page.shift();
      if (replayed) return this.#handOut(replayed, JSON.stringify(replayed));
      if (this.#replaying) {
        const page = await this.#source.page(this.#read, FEED_PAGE);
        if (this.#cut || this.#closed) break;
        this.#page = page.events;
        this.#read = Math.max(this.#read, page.last);
        if (!page.more) this.#endReplay();
        continue;
      }
      const queued = this.#queue.shift();
      if (queued) {
        this.#queuedBytes -= queued.json.length;
        return this.#handOut(queued.event, queued.json);
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    return null;
  }

  /** Stops following; a waiting {@linkcode next} answers `null`. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    this.#drop();
  }

  #handOut(event: RegistryEvent, json: string): FedEvent {
    if (event.kind === "transition") this.#last = Math.max(this.#last, event.seq);
    return { event, json };
  }

  /**
   * Replay is done once the last page is read: a queued transition it
   * reached is a repeat and goes (the page hands it out, or its record is
   * gone).
   */
  #endReplay(): void {
    this.#replaying = false;
    const read = this.#read;
    this.#queue = this.#queue.filter((q) => q.event.kind !== "transition" || q.event.seq > read);
    this.#queuedBytes = this.#queue.reduce((sum, q) => sum + q.json.length, 0);
  }

  #offer(event: RegistryEvent): void {
    if (this.#cut || this.#closed) return;
    const json = JSON.stringify(event);
    this.#queue.push({ event, json });
    this.#queuedBytes += json.length;
    if (this.#queuedBytes > this.#maxQueuedBytes) {
      this.#cut = true;
      this.#unsubscribe();
      this.#drop();
      this.#onCut();
      return;
    }
    this.#wake?.();
    this.#wake = null;
  }

  #drop(): void {
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#page = [];
    this.#wake?.();
    this.#wake = null;
  }
}
