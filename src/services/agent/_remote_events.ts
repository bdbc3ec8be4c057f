/**
 * Where the agent publishes task events: frames on one pub/sub WebSocket
 * (its handshake signed once; a publish is a frame sent without waiting for
 * an answer), opened again after it broke; through relays too (bridges, a
 * pilot manager), which carry WebSockets along the service's route.
 *
 * Work never waits on events (issue 18): a publish only appends the event to
 * a bounded buffer, and a pump sends the buffer whenever the pub/sub is
 * there. While it is away (dead, restarting, not ALIVE in the registry) the
 * buffer keeps the newest events; the oldest are dropped, counted and logged.
 * @module
 */
import { type FabricClient, FabricRequestError } from "../../client/fabric_client.ts";
import type { FabricKeys } from "../../crypto/keys.ts";
import { log } from "../../config/logging.ts";
import { sleep } from "../../config/retry.ts";
import { PubsubClient, type PubsubSubscription } from "../../client/pubsub_client.ts";
import type { ServiceTarget } from "./_service_target.ts";
import type { TaskEventSink } from "./agent.ts";

/** Options of {@linkcode RemoteEventSink}. */
export interface RemoteEventSinkOptions {
  /** Events held while the pub/sub is away; beyond it the oldest are dropped. Default 10000. */
  bufferEvents?: number;
  /** First wait after the pub/sub could not be reached, ms; doubled up to 5000. Default 250. */
  retryMs?: number;
  /** How long `close()` still tries to send what is buffered, ms. Default 2000. */
  flushMs?: number;
  /**
   * How long an event waits for others to share its frame, ms (0: sent at
   * the end of the current turn). Default {@linkcode FRAME_LINGER_MS}.
   */
  lingerMs?: number;
}

/**
 * How long an agent's frame waits for others to share it, ms: its events
 * then go out in one frame per few milliseconds instead of one each, which
 * the pub/sub and every subscriber take in one turn of their event loops;
 * its queue frames (a get, the reports and acks of the tasks that ended) in
 * one batch, which the queue commits in one transaction.
 */
export const FRAME_LINGER_MS = 5;

interface PendingEvent {
  topic: string;
  message: unknown;
}

/** A {@linkcode TaskEventSink} on a pub/sub service found in the registry. */
export class RemoteEventSink implements TaskEventSink {
  #keys: FabricKeys;
  #client: FabricClient;
  #target: ServiceTarget;
  #halt = new AbortController();
  #signal: AbortSignal;
  #socket: Promise<PubsubSubscription> | null = null;
  #buffer: PendingEvent[] = [];
  #limit: number;
  #retryMs: number;
  #flushMs: number;
  #lingerMs: number;
  #pump: Promise<void> | null = null;
  #dropped = 0;
  #droppedTotal = 0;
  #closed = false;
  #logger = log("agent");

  /**
   * The pub/sub service of `target`, reached with `keys` (the socket) and
   * `client` (to explain a refused handshake); sending ends when `life` aborts.
   * @throws {RangeError} when `bufferEvents` is not a whole number of at least 1.
   */
  constructor(
    keys: FabricKeys,
    client: FabricClient,
    target: ServiceTarget,
    life: AbortSignal,
    options: RemoteEventSinkOptions = {},
  ) {
    this.#keys = keys;
    this.#client = client;
    this.#target = target;
    this.#signal = AbortSignal.any([life, this.#halt.signal]);
    this.#limit = options.bufferEvents ?? 10_000;
    if (!Number.isSafeInteger(this.#limit) || this.#limit < 1) {
      throw new RangeError(`Invalid bufferEvents ${this.#limit}: give a whole number, 1 or more`);
    }
    this.#retryMs = options.retryMs ?? 250;
    this.#flushMs = options.flushMs ?? 2000;
    this.#lingerMs = options.lingerMs ?? FRAME_LINGER_MS;
  }

  /** Events dropped so far because the buffer was full. */
  get dropped(): number {
    return this.#droppedTotal;
  }

  /** Events waiting to be sent. */
  get buffered(): number {
    return this.#buffer.length;
  }

  /**
   * Takes `message` for `topic` and resolves at once: it is sent, in order,
   * as soon as the pub/sub can be reached. When the buffer is full the
   * oldest waiting event is dropped to make room.
   */
  publish(topic: string, message: unknown): Promise<unknown> {
    if (this.#closed) {
      this.#logger.warn("Task event for {topic} after the agent's sink closed: dropped", { topic });
      this.#droppedTotal++;
      return Promise.resolve(undefined);
    }
    this.#buffer.push({ topic, message });
    if (this.#buffer.length > this.#limit) {
      this.#buffer.shift();
      this.#count(1);
    }
    this.#pump ??= this.#drain().finally(() => (this.#pump = null));
    return Promise.resolve(undefined);
  }

  /**
   * Sends what is buffered for at most `flushMs`, then drops the rest (logged)
   * and closes the socket. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pump) {
      const drained = new AbortController();
      await Promise.race([this.#pump, sleep(this.#flushMs, drained.signal)]);
      drained.abort();
    }
    this.#halt.abort();
    await this.#pump;
    this.#report();
    if (this.#buffer.length > 0) {
      this.#logger.warn("Dropped {count} task events the pub/sub did not take before the stop", {
        count: this.#buffer.length,
      });
      this.#droppedTotal += this.#buffer.length;
      this.#buffer = [];
    }
    const socket = this.#socket;
    this.#socket = null;
    await socket?.then((s) => s.close(), () => {});
  }

  /** Sends the buffer until it is empty or the sink is halted. */
  async #drain(): Promise<void> {
    if (this.#lingerMs > 0) await sleep(this.#lingerMs, this.#signal);
    let delay = this.#retryMs;
    while (this.#buffer.length > 0 && !this.#signal.aborted) {
      let socket: PubsubSubscription;
      try {
        socket = await this.#open();
      } catch (error) {
        if (this.#signal.aborted) return;
        this.#logger.debug("Pub/sub not reachable; task events wait: {error}", {
          error: String(error),
        });
        await sleep(delay, this.#signal);
        delay = Math.min(5000, delay * 2);
        continue;
      }
      delay = this.#retryMs;
      this.#report();
      try {
        // In as few frames as the pub/sub takes (batches when it says so).
        socket.publishAll(this.#buffer);
        this.#buffer = [];
      } catch {
        // The socket broke before the first frame: the events stay in line for the next one.
        this.#socket = null;
        this.#target.forget();
      }
    }
  }

  #count(n: number): void {
    if (this.#dropped === 0) {
      this.#logger.warn(
        "Task event buffer full ({limit} events) while the pub/sub is away: dropping the oldest",
        { limit: this.#limit },
      );
    }
    this.#dropped += n;
    this.#droppedTotal += n;
  }

  /** Logs the drops since the last report, once the pub/sub is back (or on close). */
  #report(): void {
    if (this.#dropped === 0) return;
    this.#logger.warn("Dropped {count} task events while the pub/sub was away ({total} in all)", {
      count: this.#dropped,
      total: this.#droppedTotal,
    });
    this.#dropped = 0;
  }

  #open(): Promise<PubsubSubscription> {
    if (this.#signal.aborted) {
      return Promise.reject(new FabricRequestError("The agent's pub/sub connection is closed", 0));
    }
    if (this.#socket) return this.#socket;
    const socket = (async () => {
      const target = await this.#target.get(this.#signal);
      return await new PubsubClient(this.#keys, target, { client: this.#client }).subscribe([], {
        onEvent: (event) => {
          if (event.op === "error") {
            this.#logger.warn("Pub/sub refused a task event: {error}", { error: event.message });
          }
        },
      });
    })();
    this.#socket = socket;
    socket.then((s) => {
      s.closed.then(() => {
        if (this.#socket !== socket) return;
        // Closed by the service (it stops or died): it may come back elsewhere.
        this.#socket = null;
        this.#target.forget();
      });
    }, () => {
      if (this.#socket === socket) this.#socket = null;
      this.#target.forget();
    });
    return socket;
  }
}
