/**
 * The application side of the pub/sub role: publish over signed HTTP, and
 * subscribe over a WebSocket whose handshake request is signed like any
 * management request (Deno's `WebSocket` takes handshake `headers`).
 * @module
 */
import {
  type CallOptions,
  FabricClient,
  FabricRequestError,
  type Target,
} from "./fabric_client.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import { signRequest } from "../crypto/signing.ts";
import {
  type BatchFrame,
  type ClientFrame,
  type HelloFrame,
  MAX_BATCH_FRAMES,
  type ServerFrame,
} from "../types/pubsub_frames.ts";
import type { BrokerStats, PublishResult } from "../types/pubsub_frames.ts";
import { compilePattern } from "../types/pubsub_topics.ts";
import { SOCKET_PROOF_QUERY } from "../types/wire.ts";
import { openedAndProven } from "./socket_open.ts";
import { batchFrames } from "./batch_frames.ts";

/** An event of a subscription: a message, a drop notice, or an error notice. */
export type PubsubEvent = ServerFrame;

/** Options of {@linkcode PubsubClient}. */
export interface PubsubClientOptions {
  /** The signed HTTP client to publish with. Default: a new one with `keys`. */
  client?: FabricClient;
}

/**
 * The most characters of the frames one `batch` frame of
 * {@linkcode PubsubSubscription.publishAll} holds, well under a service's
 * 65 KiB frame limit; a larger publish goes alone as its own frame.
 */
export const BATCH_FRAME_BYTES = 16 * 1024;

/** Options of {@linkcode PubsubClient.subscribe}. */
export interface SubscribeOptions {
  /**
   * Called with every event, in order, instead of queuing it for the
   * subscription's async iterator. It runs in the socket's event handler, so
   * it must not throw.
   */
  onEvent?: (event: PubsubEvent) => void;
  /**
   * Events the iterator queue holds before it drops its oldest message and
   * reports `{op: "dropped"}` as the broker does. Default 1024.
   */
  buffer?: number;
  /** Time allowed for the WebSocket handshake, ms. Default 15000. */
  timeoutMs?: number;
}

/** Publishes to and subscribes at one pub/sub service. */
export class PubsubClient {
  #keys: FabricKeys;
  #target: Target;
  #client: FabricClient;

  /** A client of the pub/sub service `target`, signing with `keys`. */
  constructor(keys: FabricKeys, target: Target, options: PubsubClientOptions = {}) {
    this.#keys = keys;
    this.#target = target;
    this.#client = options.client ?? new FabricClient(keys);
  }

  /**
   * Publishes `message` (any JSON value, at most 64 KiB serialized) on `topic`.
   * @throws {FabricRequestError} 400 for a bad topic, 413 for a message too
   * large, 0 when the service cannot be reached.
   */
  async publish(
    topic: string,
    message: unknown,
    options: CallOptions = {},
  ): Promise<PublishResult> {
    return await this.#client.call<PublishResult>(this.#target, {
      method: "POST",
      path: "/v1/pubsub/publish",
      body: { topic, message },
    }, options);
  }

  /**
   * The service's counters.
   * @throws {FabricRequestError} when the service cannot be asked.
   */
  async stats(options: CallOptions = {}): Promise<BrokerStats> {
    return await this.#client.call<BrokerStats>(
      this.#target,
      { method: "GET", path: "/v1/pubsub" },
      options,
    );
  }

  /**
   * Opens a subscription to `patterns` (more can be added later) over a
   * WebSocket with a signed handshake; resolves once the socket is open.
   * @throws {TopicError} when a pattern is invalid, before connecting.
   * @throws {FabricRequestError} when the handshake fails; the message says
   * why when the service can tell (401 bad signature, 400 bad pattern, 404 not
   * a pub/sub service), else status 0.
   */
  async subscribe(
    patterns: readonly string[],
    options: SubscribeOptions = {},
  ): Promise<PubsubSubscription> {
    for (const pattern of patterns) compilePattern(pattern);
    const url = new URL("/v1/pubsub/ws", this.#target.url);
    if (patterns.length > 0) url.searchParams.set("topics", patterns.join(","));
    // Batches are unpacked below; a service that predates them ignores this.
    url.searchParams.set("batch", "1");
    // A service that takes client batches says so in a first `hello` frame.
    url.searchParams.set("hello", "1");
    // Who accepted the socket: the service's signed first frame (socket_open.ts).
    url.searchParams.set(SOCKET_PROOF_QUERY, "1");
    const headers = new Headers();
    if (this.#target.route?.length) headers.set("fabric-route", this.#target.route.join(","));
    const signed = await signRequest(
      { method: "GET", url, headers, body: new Uint8Array() },
      this.#keys,
      { target: this.#target.id },
    );
    const wsUrl = new URL(url);
    wsUrl.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(wsUrl, { headers: signed.headers });
    const proven = await openedAndProven(socket, {
      keys: this.#keys,
      target: this.#target,
      nonce: signed.nonce,
      timeoutMs: options.timeoutMs ?? 15_000,
    });
    if (typeof proven === "string") throw await this.#handshakeError(url, proven);
    return new PubsubSubscription(socket, options, proven.early);
  }

  /** Explains a failed handshake by asking the same service over signed HTTP. */
  async #handshakeError(url: URL, why: string): Promise<FabricRequestError> {
    const prefix = `Cannot subscribe at "${this.#target.id}" (${url.origin})`;
    try {
      await this.stats({ timeoutMs: 5000 });
    } catch (error) {
      if (error instanceof FabricRequestError) {
        return new FabricRequestError(`${prefix}: ${error.message}`, error.status, error.body, {
          cause: error,
        });
      }
    }
    return new FabricRequestError(
      `${prefix}: the WebSocket handshake failed (${why}); check the patterns and the fabric keys`,
      0,
    );
  }
}

/**
 * An open subscription: an async iterator of events (unless `onEvent` was
 * given), plus subscribe, unsubscribe and publish frames on the same socket.
 * Leaving a `for await` loop closes it.
 */
export class PubsubSubscription implements AsyncIterable<PubsubEvent> {
  #socket: WebSocket;
  #onEvent: ((event: PubsubEvent) => void) | undefined;
  #buffer: number;
  #queue: PubsubEvent[] = [];
  #unreported = 0;
  #wake: (() => void) | null = null;
  #done = false;
  /** Whether the service greeted this socket with `hello` and takes `batch` frames. */
  #batches = false;
  /** Resolves with the close code and reason once the socket is closed. */
  readonly closed: Promise<{ code: number; reason: string }>;

  /** Wraps an open socket; use {@linkcode PubsubClient.subscribe}. */
  constructor(socket: WebSocket, options: SubscribeOptions = {}, early: readonly unknown[] = []) {
    this.#socket = socket;
    this.#onEvent = options.onEvent;
    this.#buffer = Math.max(1, options.buffer ?? 1024);
    socket.onmessage = (event) => this.#receive(event.data);
    // Frames that came while the socket's proof was checked, first.
    for (const data of early) this.#receive(data);
    this.closed = new Promise((resolve) => {
      socket.addEventListener("close", (event) => {
        this.#done = true;
        this.#wakeUp();
        resolve({ code: event.code, reason: event.reason });
      });
    });
  }

  /** Whether the service said (its `hello`) that it takes `batch` frames. */
  get takesBatches(): boolean {
    return this.#batches;
  }

  /**
   * Adds a pattern; an invalid one is answered with an error event.
   * @throws {Error} when the subscription is closed.
   */
  subscribe(pattern: string): void {
    this.#send({ op: "subscribe", pattern });
  }

  /**
   * Removes a pattern; messages already on their way still arrive.
   * @throws {Error} when the subscription is closed.
   */
  unsubscribe(pattern: string): void {
    this.#send({ op: "unsubscribe", pattern });
  }

  /**
   * Publishes over the socket without waiting for an answer; a refused
   * publish comes back as an error event.
   * @throws {Error} when the subscription is closed.
   */
  publish(topic: string, message: unknown): void {
    this.#send({ op: "publish", topic, message });
  }

  /**
   * Publishes `messages` in order like {@linkcode publish}, in as few frames
   * as the service takes: `batch` frames of at most {@linkcode MAX_BATCH_FRAMES}
   * publishes and {@linkcode BATCH_FRAME_BYTES} bytes once the service said
   * it takes them (its `hello`), one frame each before that or otherwise.
   * A refused publish comes back as an error event.
   * @throws {Error} when the subscription is closed (nothing of the call was
   * sent when it threw at the first frame).
   */
  publishAll(messages: readonly { topic: string; message: unknown }[]): void {
    if (!this.#batches) {
      for (const { topic, message } of messages) this.publish(topic, message);
      return;
    }
    const frames = messages.map(({ topic, message }) =>
      JSON.stringify({ op: "publish", topic, message })
    );
    const limits = { maxFrames: MAX_BATCH_FRAMES, maxChars: BATCH_FRAME_BYTES };
    for (const text of batchFrames(frames, limits)) this.#sendText(text);
  }

  /** Closes the socket; resolves once it is closed. Calling it again does nothing. */
  async close(): Promise<void> {
    if (this.#socket.readyState < WebSocket.CLOSING) this.#socket.close(1000, "done");
    await this.closed;
  }

  /** The events in arrival order; ends when the socket closes. */
  [Symbol.asyncIterator](): AsyncIterator<PubsubEvent> {
    return {
      next: async (): Promise<IteratorResult<PubsubEvent>> => {
        for (;;) {
          const event = this.#take();
          if (event) return { done: false, value: event };
          if (this.#done) return { done: true, value: undefined };
          await new Promise<void>((resolve) => (this.#wake = resolve));
        }
      },
      return: async (): Promise<IteratorResult<PubsubEvent>> => {
        await this.close();
        return { done: true, value: undefined };
      },
    };
  }

  #take(): PubsubEvent | undefined {
    if (this.#unreported > 0) {
      const count = this.#unreported;
      this.#unreported = 0;
      return { op: "dropped", count };
    }
    return this.#queue.shift();
  }

  #receive(data: unknown): void {
    if (typeof data !== "string") return;
    let frame: ServerFrame | BatchFrame | HelloFrame;
    try {
      frame = JSON.parse(data) as ServerFrame | BatchFrame | HelloFrame;
    } catch {
      return;
    }
    if (frame.op === "hello") {
      this.#batches = Array.isArray(frame.features) && frame.features.includes("batch");
    } else if (frame.op !== "batch") this.#deliver(frame);
    else if (Array.isArray(frame.frames)) {
      for (const event of frame.frames) {
        this.#deliver(event);
      }
    }
  }

  #deliver(event: PubsubEvent): void {
    if (this.#onEvent) {
      this.#onEvent(event);
      return;
    }
    this.#queue.push(event);
    if (this.#queue.length > this.#buffer) {
      const oldest = this.#queue.shift()!;
      this.#unreported += oldest.op === "dropped" ? oldest.count : 1;
    }
    this.#wakeUp();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  #send(frame: { op: ClientFrame["op"]; [field: string]: unknown }): void {
    this.#sendText(JSON.stringify(frame));
  }

  #sendText(text: string): void {
    if (this.#socket.readyState !== WebSocket.OPEN) {
      throw new Error("Pub/sub subscription is closed: subscribe again");
    }
    this.#socket.send(text);
  }
}
