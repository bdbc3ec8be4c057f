/**
 * One subscriber of the broker: its patterns, its bounded outbox, and the
 * drain loop that moves frames from the outbox to its sink at the sink's own
 * pace. Publishing appends to the outbox and writes to the sink only while the
 * sink has room (a non-blocking send); it never waits for a sink.
 *
 * A subscriber that takes batches gets the frames queued during one turn of
 * the event loop as one `{"op":"batch","frames":[...]}` frame: every WebSocket
 * frame costs a write system call, which is most of the cost of a small
 * message.
 * @module
 */
import { type Frame, Outbox } from "./_outbox.ts";
import { clearTimeout, setTimeout } from "../../base/timers.ts";

/** A batch stops growing once it holds this many bytes of frames. */
export const BATCH_BYTES = 64 * 1024;

/**
 * Where a subscriber's frames go: a WebSocket, or a fake in tests. `send` must
 * not block; `bufferedAmount` tells how much it has accepted but not written.
 */
export interface SubscriberSink {
  /** Queues one text frame for writing. */
  send(text: string): void;
  /** Bytes accepted by `send` and not yet written (WebSocket `bufferedAmount`). */
  readonly bufferedAmount: number;
  /** Closes the sink with a WebSocket close code and reason. */
  close(code: number, reason: string): void;
}

/** Resolved flow-control settings of every subscriber of a broker. */
export interface SubscriberSettings {
  /** Frames an outbox holds before it drops its oldest. */
  buffer: number;
  /** Bytes an outbox holds before it drops its oldest. */
  bufferBytes: number;
  /** Sending stops while the sink's `bufferedAmount` is at or above this. */
  highWaterBytes: number;
  /** Longest wait between two looks at a blocked sink, ms. */
  retryMs: number;
  /** Most patterns one subscriber may hold. */
  maxPatterns: number;
}

/** Options of one subscriber. */
export interface SubscriberOptions {
  /**
   * Whether the sink takes `{"op":"batch","frames":[...]}` frames. Default
   * false: one frame per message or notice.
   */
  batch?: boolean;
}

/** What a subscriber tells its broker. */
export interface SubscriberHooks {
  /** Indexes `pattern` for `subscriber`; throws when the pattern is invalid. */
  add(subscriber: Subscriber, pattern: string): void;
  /** Removes `pattern` of `subscriber` from the index. */
  remove(subscriber: Subscriber, pattern: string): void;
  /** Counts frames dropped from an outbox. */
  dropped(count: number): void;
  /** Forgets a closed subscriber. */
  closed(subscriber: Subscriber): void;
}

/**
 * A subscription of one sink to a set of patterns. Created by
 * `Broker.subscribe()`; frames reach the sink in the order they were published.
 */
export class Subscriber {
  /** Unique within its broker. */
  readonly id: number;
  #sink: SubscriberSink;
  #settings: SubscriberSettings;
  #hooks: SubscriberHooks;
  #outbox: Outbox;
  #patterns = new Set<string>();
  #unreported = 0;
  #dropped = 0;
  #sent = 0;
  #batch: boolean;
  /** Pending while the sink is blocked: the next look at it. */
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Pending while a batch waits for the end of the turn. */
  #immediate: ReturnType<typeof setTimeout> | undefined;
  #backoffMs = 0;
  #closed = false;

  /** A subscriber; use `Broker.subscribe()` rather than this. */
  constructor(
    id: number,
    sink: SubscriberSink,
    settings: SubscriberSettings,
    hooks: SubscriberHooks,
    options: SubscriberOptions = {},
  ) {
    this.id = id;
    this.#sink = sink;
    this.#settings = settings;
    this.#hooks = hooks;
    this.#batch = options.batch ?? false;
    this.#outbox = new Outbox(settings.buffer, settings.bufferBytes);
  }

  /** The patterns subscribed to, sorted. */
  get patterns(): string[] {
    return [...this.#patterns].sort();
  }

  /** Messages dropped from this subscriber's outbox since it subscribed. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Messages handed to the sink, batched or not. */
  get sent(): number {
    return this.#sent;
  }

  /** Frames waiting in the outbox. */
  get pending(): number {
    return this.#outbox.length;
  }

  /** Whether the subscriber is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Adds a pattern; adding one already held does nothing.
   * @throws {TopicError} when the pattern is invalid.
   * @throws {RangeError} when the subscriber already holds the most patterns allowed.
   */
  subscribe(pattern: string): void {
    if (this.#closed || this.#patterns.has(pattern)) return;
    if (this.#patterns.size >= this.#settings.maxPatterns) {
      throw new RangeError(
        `Cannot subscribe to "${pattern}": a subscriber holds at most ` +
          `${this.#settings.maxPatterns} patterns; unsubscribe some or use wildcards`,
      );
    }
    this.#hooks.add(this, pattern);
    this.#patterns.add(pattern);
  }

  /**
   * Removes a pattern; frames already in the outbox are still delivered.
   * Returns false when the pattern was not held.
   */
  unsubscribe(pattern: string): boolean {
    if (!this.#patterns.delete(pattern)) return false;
    this.#hooks.remove(this, pattern);
    return true;
  }

  /** Appends a published frame to the outbox, dropping the oldest when full. */
  enqueue(frame: Frame): void {
    if (this.#closed) return;
    const dropped = this.#outbox.push(frame);
    if (dropped > 0) {
      this.#unreported += dropped;
      this.#dropped += dropped;
      this.#hooks.dropped(dropped);
    }
    // A blocked sink has a retry timer pending and is left alone. A sink with
    // room is written at once (its send never blocks); one that takes batches
    // at the end of this turn of the event loop, or at once when a full batch
    // is waiting or the outbox would drop its oldest at the next message.
    if (this.#timer !== undefined) return;
    if (
      !this.#batch || this.#outbox.bytes >= BATCH_BYTES ||
      this.#outbox.length >= this.#settings.buffer
    ) {
      this.#drain();
    } else {
      // A timer of 0 ms, from base/timers.ts: Deno's global setImmediate is
      // the Node layer's, which loaded on the first batch (4-7 MB).
      this.#immediate ??= setTimeout(() => {
        this.#immediate = undefined;
        if (this.#timer === undefined) this.#drain();
      }, 0);
    }
  }

  /**
   * Sends a control frame (an error notice) at once, ahead of the outbox, when
   * the sink has room; a sink that is not reading does not need it.
   */
  notice(text: string): void {
    if (this.#closed || this.#sink.bufferedAmount >= this.#settings.highWaterBytes) return;
    this.#send(text);
  }

  /**
   * Sends what waits in the outbox now, as far as the sink has room, instead
   * of at the end of this turn: before the service closes the sink.
   */
  flush(): void {
    clearTimeout(this.#immediate);
    this.#immediate = undefined;
    if (this.#timer === undefined) this.#drain();
  }

  /** Stops delivery and leaves the broker; the sink itself is left open. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#immediate);
    this.#outbox.clear();
    for (const pattern of this.#patterns) this.#hooks.remove(this, pattern);
    this.#patterns.clear();
    this.#hooks.closed(this);
  }

  /** Closes the sink itself, e.g. when the service stops. */
  closeSink(code: number, reason: string): void {
    try {
      this.#sink.close(code, reason);
    } catch {
      // Already closed.
    }
  }

  #retryIn(delayMs: number): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#drain();
    }, delayMs);
  }

  #drain(): void {
    while (!this.#closed && this.#outbox.length > 0) {
      if (this.#sink.bufferedAmount >= this.#settings.highWaterBytes) {
        // Look again soon, then less often while the sink stays blocked, so a
        // stalled reader costs little and a busy one is not slowed down.
        this.#backoffMs = Math.min(Math.max(1, this.#backoffMs * 2), this.#settings.retryMs);
        this.#retryIn(this.#backoffMs);
        return;
      }
      this.#backoffMs = 0;
      if (this.#batch) {
        if (!this.#sendBatch()) return;
        continue;
      }
      if (this.#unreported > 0) {
        if (!this.#send(this.#droppedNotice())) return;
        continue;
      }
      const frame = this.#outbox.shift()!;
      if (!this.#send(frame.text)) return;
      this.#sent++;
    }
  }

  /**
   * Sends the drop notice and the oldest frames, about `BATCH_BYTES` of them,
   * as one batch frame, or as a plain frame when there is only one.
   */
  #sendBatch(): boolean {
    const texts: string[] = [];
    if (this.#unreported > 0) texts.push(this.#droppedNotice());
    let bytes = 0;
    let messages = 0;
    while (bytes < BATCH_BYTES) {
      const frame = this.#outbox.shift();
      if (!frame) break;
      texts.push(frame.text);
      bytes += frame.bytes;
      messages++;
    }
    const text = texts.length === 1 ? texts[0]! : `{"op":"batch","frames":[${texts.join(",")}]}`;
    if (!this.#send(text)) return false;
    this.#sent += messages;
    return true;
  }

  #droppedNotice(): string {
    const count = this.#unreported;
    this.#unreported = 0;
    return `{"op":"dropped","count":${count}}`;
  }

  #send(text: string): boolean {
    try {
      this.#sink.send(text);
      return true;
    } catch {
      // A sink that refuses frames is gone; its owner sees the close too.
      this.close();
      return false;
    }
  }
}
