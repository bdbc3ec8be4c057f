/**
 * The pub/sub broker: fans published messages out to the subscribers whose
 * patterns match, through one bounded outbox per subscriber.
 *
 * Slow consumers: an outbox holds at most `buffer` messages (and `bufferBytes`
 * bytes); when a new message arrives at a full outbox the OLDEST message is
 * dropped and counted, and the subscriber gets `{"op":"dropped","count":N}`
 * before its next delivered message. Publishing only appends to outboxes and
 * never waits for a subscriber, so one stalled subscriber cannot delay the
 * others. Pure logic: sinks are WebSockets in the service, fakes in tests.
 * @module
 */
import type { Frame } from "./_outbox.ts";
import type { BrokerStats, PublishResult } from "../../types/pubsub_frames.ts";
import {
  Subscriber,
  type SubscriberHooks,
  type SubscriberOptions,
  type SubscriberSettings,
  type SubscriberSink,
} from "./_subscriber.ts";
import { assertTopic, compilePattern, type TopicMatcher } from "../../types/pubsub_topics.ts";

export { Subscriber, type SubscriberOptions, type SubscriberSink } from "./_subscriber.ts";

/** Largest serialized message, in bytes: 64 KiB. */
export const MAX_MESSAGE_BYTES = 64 * 1024;

/** Options of {@linkcode Broker}. */
export interface BrokerOptions {
  /** Messages a subscriber's outbox holds before it drops the oldest. Default 1024. */
  buffer?: number;
  /** Bytes a subscriber's outbox holds before it drops the oldest. Default 16 MiB. */
  bufferBytes?: number;
  /**
   * A subscriber's socket is not written to while this many bytes wait in it
   * (its `bufferedAmount`); the rest waits in the outbox. Default 1 MiB.
   */
  highWaterBytes?: number;
  /** Longest wait between two looks at a blocked socket, ms. Default 50. */
  retryMs?: number;
  /** Most patterns one subscriber may hold. Default 256. */
  maxPatterns?: number;
  /** Largest serialized message in bytes. Default {@linkcode MAX_MESSAGE_BYTES}. */
  maxMessageBytes?: number;
}

/** A message whose serialized form is larger than the broker accepts. */
export class MessageTooLargeError extends RangeError {
  /** The limit, in bytes. */
  readonly limit: number;
  /** Builds the error. */
  constructor(bytes: number, limit: number) {
    super(`Message is ${bytes} bytes serialized, more than ${limit}: send a smaller message`);
    this.name = "MessageTooLargeError";
    this.limit = limit;
  }
}

interface WildEntry {
  matcher: TopicMatcher;
  subscribers: Set<Subscriber>;
}

/** Topic-based fan-out with a bounded outbox per subscriber. */
export class Broker {
  #settings: SubscriberSettings;
  #maxMessageBytes: number;
  #exact = new Map<string, Set<Subscriber>>();
  #wild = new Map<string, WildEntry>();
  #subscribers = new Set<Subscriber>();
  #seq = new Map<string, number>();
  #published = 0;
  #dropped = 0;
  #nextId = 1;
  #closed = false;
  #hooks: SubscriberHooks;

  /**
   * A broker with the given limits.
   * @throws {RangeError} when a limit is not a positive whole number, or the
   * outbox cannot hold one message of the largest size.
   */
  constructor(options: BrokerOptions = {}) {
    this.#maxMessageBytes = positive("maxMessageBytes", options.maxMessageBytes, MAX_MESSAGE_BYTES);
    this.#settings = {
      buffer: positive("buffer", options.buffer, 1024),
      bufferBytes: positive("bufferBytes", options.bufferBytes, 16 * 1024 * 1024),
      highWaterBytes: positive("highWaterBytes", options.highWaterBytes, 1024 * 1024),
      retryMs: positive("retryMs", options.retryMs, 50),
      maxPatterns: positive("maxPatterns", options.maxPatterns, 256),
    };
    if (this.#settings.bufferBytes < this.#maxMessageBytes + 1024) {
      throw new RangeError(
        `Invalid bufferBytes ${this.#settings.bufferBytes}: give at least maxMessageBytes + 1024 ` +
          `(${this.#maxMessageBytes + 1024}) so one message of the largest size fits`,
      );
    }
    this.#hooks = {
      add: (subscriber, pattern) => this.#index(subscriber, pattern),
      remove: (subscriber, pattern) => this.#unindex(subscriber, pattern),
      dropped: (count) => (this.#dropped += count),
      closed: (subscriber) => this.#subscribers.delete(subscriber),
    };
  }

  /** The largest serialized message accepted, in bytes. */
  get maxMessageBytes(): number {
    return this.#maxMessageBytes;
  }

  /** The most patterns one subscriber may hold. */
  get maxPatterns(): number {
    return this.#settings.maxPatterns;
  }

  /**
   * Adds a subscriber that sends to `sink`, subscribed to `patterns`; with
   * `options.batch` it gets what is published during one turn of the event
   * loop as one batch frame.
   * @throws {TopicError} when a pattern is invalid; nothing is subscribed then.
   * @throws {RangeError} when there are more patterns than a subscriber may hold.
   * @throws {Error} when the broker is closed.
   */
  subscribe(
    sink: SubscriberSink,
    patterns: readonly string[] = [],
    options: SubscriberOptions = {},
  ): Subscriber {
    if (this.#closed) throw new Error("Pub/sub broker is stopped: reconnect to the new instance");
    const subscriber = new Subscriber(this.#nextId++, sink, this.#settings, this.#hooks, options);
    this.#subscribers.add(subscriber);
    try {
      for (const pattern of patterns) subscriber.subscribe(pattern);
    } catch (error) {
      subscriber.close();
      throw error;
    }
    return subscriber;
  }

  /**
   * Publishes `message` (any JSON value) on `topic` to every matching
   * subscriber, each once however many of its patterns match. Returns at once.
   * @throws {TopicError} when the topic is invalid.
   * @throws {TypeError} when the message cannot be serialized as JSON.
   * @throws {MessageTooLargeError} when the serialized message is too large.
   * @throws {Error} when the broker is closed.
   */
  publish(topic: string, message: unknown): PublishResult {
    if (this.#closed) throw new Error("Pub/sub broker is stopped: publish to the new instance");
    assertTopic(topic);
    const json = serialize(topic, message);
    const bytes = utf8Length(json);
    if (bytes > this.#maxMessageBytes) throw new MessageTooLargeError(bytes, this.#maxMessageBytes);
    const seq = (this.#seq.get(topic) ?? 0) + 1;
    this.#seq.set(topic, seq);
    this.#published++;
    const targets = this.#match(topic);
    if (targets.size === 0) return { delivered: 0, seq };
    const head = `{"op":"message","topic":${JSON.stringify(topic)},"seq":${seq},"message":`;
    const frame: Frame = { text: `${head}${json}}`, bytes: utf8Length(head) + bytes + 1 };
    for (const subscriber of targets) subscriber.enqueue(frame);
    return { delivered: targets.size, seq };
  }

  /** The broker's counters. */
  stats(): BrokerStats {
    return {
      subscribers: this.#subscribers.size,
      topics: this.#seq.size,
      published: this.#published,
      dropped: this.#dropped,
    };
  }

  /**
   * Closes every subscriber and its sink (WebSocket code 1001, going away),
   * after sending what its outbox holds as far as the sink has room, and
   * refuses further use. Calling it again does nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const subscriber of [...this.#subscribers]) {
      // What waits for the end of this turn goes out ahead of the close frame.
      subscriber.flush();
      subscriber.close();
      subscriber.closeSink(1001, "Pub/sub service is stopping: reconnect");
    }
  }

  #match(topic: string): Set<Subscriber> {
    const targets = new Set<Subscriber>(this.#exact.get(topic));
    if (this.#wild.size === 0) return targets;
    const tokens = topic.split(".");
    for (const { matcher, subscribers } of this.#wild.values()) {
      if (!matcher.matchesTokens(tokens)) continue;
      for (const subscriber of subscribers) targets.add(subscriber);
    }
    return targets;
  }

  #index(subscriber: Subscriber, pattern: string): void {
    const existing = this.#exact.get(pattern) ?? this.#wild.get(pattern)?.subscribers;
    if (existing) {
      existing.add(subscriber);
      return;
    }
    const matcher = compilePattern(pattern);
    if (matcher.exact) this.#exact.set(pattern, new Set([subscriber]));
    else this.#wild.set(pattern, { matcher, subscribers: new Set([subscriber]) });
  }

  #unindex(subscriber: Subscriber, pattern: string): void {
    const exact = this.#exact.get(pattern);
    if (exact?.delete(subscriber) && exact.size === 0) this.#exact.delete(pattern);
    const wild = this.#wild.get(pattern);
    if (wild?.subscribers.delete(subscriber) && wild.subscribers.size === 0) {
      this.#wild.delete(pattern);
    }
  }
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`Invalid ${name} ${value}: give a whole number of 1 or more`);
  }
  return value;
}

function serialize(topic: string, message: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(message);
  } catch (cause) {
    throw new TypeError(`Message for "${topic}" is not JSON: ${String(cause)}`, { cause });
  }
  if (json === undefined) {
    throw new TypeError(`Message for "${topic}" is not JSON: send a JSON value, null included`);
  }
  return json;
}

/**
 * UTF-8 size of `text` without encoding it: a UTF-16 unit takes 1 to 3 bytes,
 * a surrogate pair 4 for its two. Counting stops once it is over `stopAbove`.
 */
export function utf8Length(text: string, stopAbove = Infinity): number {
  let bytes = 0;
  for (let i = 0; i < text.length && bytes <= stopAbove; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}
