/**
 * A consumer's (or producer's) one WebSocket on one queue: the handshake is
 * signed once, then gets, acks, nacks and puts are unsigned JSON frames, so a
 * message costs no signature, no HTTP request and, with batched acks, a share
 * of one SQLite transaction (docs/services.md "## queue", "### WebSocket").
 * @module
 */
import { log } from "../config/logging.ts";
import { FabricRequestError, type Target } from "./fabric_client.ts";
import type { FabricKeys } from "../crypto/mod.ts";
import { type QueueGetOptions, signedQueueSocket } from "./queue_client.ts";
import {
  QUEUE_LIMITS,
  type QueueClientFrame,
  type QueueMessage,
  type QueueServerFrame,
  type QueueSingleFrame,
  type TaskReport,
} from "../types/queue_wire.ts";
import { openedAndProven } from "./socket_open.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";
import { batchFrames } from "./batch_frames.ts";

/** Options of {@linkcode QueueSession.open}. */
export interface QueueSessionOptions {
  /** Time allowed for the handshake, ms. Default 15000. */
  timeoutMs?: number;
  /** Time allowed for an answer beyond a get's own wait, ms. Default 15000. */
  answerMs?: number;
  /**
   * How long a frame waits for others to share its batch, once the service
   * takes batches, ms; 0 sends at the end of the current turn. Default 0.
   */
  lingerMs?: number;
}

/**
 * Characters of one batch frame at most: with at most 3 bytes per character
 * in UTF-8, well within the service's frame limit (1 MiB).
 */
const BATCH_CHARS = 256 * 1024;

interface Call {
  resolve(frame: QueueServerFrame): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

interface PendingAck {
  id: string;
  resolve(): void;
  reject(error: Error): void;
}

/**
 * Gets, acknowledges, nacks and puts messages of one queue over one socket.
 *
 * Acknowledgements are batched: {@linkcode QueueSession.ack} sends at once
 * when no batch is on its way, and otherwise joins the next batch, sent as
 * one `acks` frame (one transaction on the queue's side) when the answer to
 * the current one arrives. So a lone ack waits for nothing, and under load
 * the acks of many tasks share a frame and an fsync.
 *
 * Frames go out in batches once the service said it takes them (its `hello`
 * frame): the frames of one turn of the event loop (a get, a task's final
 * report with its ack, acks) leave as one `batch` frame, which the queue
 * handles in one transaction (one fsync) and answers in one frame.
 *
 * Every method rejects with {@linkcode FabricRequestError}: status 0 when the
 * socket is closed or an answer did not come in time (the socket is then
 * closed: open a new session), 404 for an ack or nack of a message the queue
 * does not hold, 429 for a put on a full queue, 400 for anything else refused.
 */
export class QueueSession {
  #socket: WebSocket;
  #label: string;
  #answerMs: number;
  #lingerMs: number;
  #nextRef = 1;
  #calls = new Map<number, Call>();
  /** Refs of gets given up by their caller: messages still coming for them go back. */
  #abandoned = new Set<number>();
  #acks: PendingAck[] = [];
  #acksInFlight = false;
  #flushScheduled = false;
  #closedError: FabricRequestError | null = null;
  /** What the service said it can do (its `hello` frame); none until then. */
  #features = new Set<string>();
  /** Frames (JSON text) waiting for the end of this turn, when batching. */
  #outbox: string[] = [];
  #outboxTimer: ReturnType<typeof setTimeout> | undefined;
  /** Resolves with the close code and reason once the socket is closed. */
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(socket: WebSocket, label: string, answerMs: number, lingerMs: number) {
    this.#socket = socket;
    this.#label = label;
    this.#answerMs = answerMs;
    this.#lingerMs = lingerMs;
    socket.onmessage = (event) => this.#receive(event.data);
    this.closed = new Promise((resolve) => {
      socket.addEventListener("close", (event) => {
        this.#fail(`closed (${event.code}${event.reason ? `: ${event.reason}` : ""})`);
        resolve({ code: event.code, reason: event.reason });
      });
    });
  }

  /**
   * Opens a session on queue `name` of `target`, with a signed handshake;
   * resolves once the socket is open.
   * @throws {FabricRequestError} status 0 when the socket does not open (the
   * service is unreachable, refuses the signature, or is not a queue).
   */
  static async open(
    keys: FabricKeys,
    target: Target,
    name: string,
    options: QueueSessionOptions = {},
  ): Promise<QueueSession> {
    const label = `queue socket to "${target.id}" (${target.url}, queue "${name}")`;
    const { socket, nonce } = await signedQueueSocket(keys, target, name, {
      batch: true,
      proof: true,
    });
    const timeoutMs = options.timeoutMs ?? 15_000;
    const proven = await openedAndProven(socket, { keys, target, nonce, timeoutMs });
    if (typeof proven === "string") {
      throw new FabricRequestError(
        `Cannot open a ${label}: ${proven}; check that the service is a queue and the fabric keys`,
        0,
      );
    }
    const session = new QueueSession(
      socket,
      label,
      options.answerMs ?? 15_000,
      options.lingerMs ?? 0,
    );
    for (const data of proven.early) session.#receive(data);
    return session;
  }

  /** Whether the socket is open; a closed session stays closed. */
  get open(): boolean {
    return this.#closedError === null && this.#socket.readyState === WebSocket.OPEN;
  }

  /** Puts `payload` (any JSON value) on the queue; resolves with the message's ID. */
  async put(payload: unknown): Promise<string> {
    const frame = await this.#call({ op: "put", payload }, this.#answerMs);
    return (frame as { id: string }).id;
  }

  /**
   * Takes up to `max` messages, waiting up to `waitMs` (at most 30000) for
   * one. When `signal` aborts first the get rejects with its reason, and
   * messages the queue still hands to it are nacked, so they are ready again
   * at once instead of after their visibility timeout.
   */
  async get(options: QueueGetOptions = {}): Promise<QueueMessage[]> {
    options.signal?.throwIfAborted();
    const waitMs = options.waitMs ?? 0;
    const frame: QueueClientFrame = {
      op: "get",
      max: options.max ?? 1,
      wait: waitMs,
      ...(options.visibilityMs === undefined ? {} : { visibility: options.visibilityMs }),
    };
    const ref = this.#nextRef;
    const answer = this.#call(frame, waitMs + this.#answerMs);
    const signal = options.signal;
    if (!signal) return (await answer as { messages: QueueMessage[] }).messages;
    let onAbort: () => void = () => {};
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        this.#abandoned.add(ref);
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return (await Promise.race([answer, aborted]) as { messages: QueueMessage[] }).messages;
    } finally {
      signal.removeEventListener("abort", onAbort);
      // An answer after an abort is abandoned; its failure concerns no one.
      answer.catch(() => {});
    }
  }

  /** Acknowledges message `id`: it is deleted and never delivered again (batched, see above). */
  ack(id: string): Promise<void> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    return new Promise((resolve, reject) => {
      this.#acks.push({ id, resolve, reject });
      this.#scheduleFlush();
    });
  }

  /** Gives message `id` back: it is ready again now. */
  async nack(id: string): Promise<void> {
    await this.#call({ op: "nack", id }, this.#answerMs);
  }

  /**
   * Reports task `task`'s state to the queue's task history, on this socket
   * (a frame, not a signed call of its own).
   * @throws {FabricRequestError} 404 when the history holds no such task.
   */
  async report(task: string, report: TaskReport): Promise<void> {
    await this.#call({ op: "report", task, report }, this.#answerMs);
  }

  /**
   * Reports task `task`'s final state and then acknowledges its message
   * `messageId`: one `report` frame with `ack` where the service takes it
   * (the report and the ack in one transaction), else the report and, once
   * it is answered, the ack.
   * @returns false when the queue does not hold the message (already acknowledged).
   * @throws {FabricRequestError} 404 when the history holds no such task
   * (then nothing was acknowledged).
   */
  async finish(task: string, report: TaskReport, messageId: string): Promise<boolean> {
    if (!this.#features.has("report-ack")) {
      await this.report(task, report);
      return await this.ack(messageId).then(() => true, (error: FabricRequestError) => {
        if (error.status === 404) return false;
        throw error;
      });
    }
    const frame = await this.#call({ op: "report", task, report, ack: messageId }, this.#answerMs);
    return (frame as { acked?: boolean }).acked === true;
  }

  /** Closes the socket; unanswered calls reject with status 0. Idempotent. */
  async close(): Promise<void> {
    if (this.#socket.readyState < WebSocket.CLOSING) this.#socket.close(1000, "done");
    await this.closed;
  }

  #scheduleFlush(): void {
    if (this.#acksInFlight || this.#flushScheduled) return;
    this.#flushScheduled = true;
    // Acks made in the same turn of the event loop leave in one frame.
    queueMicrotask(() => {
      this.#flushScheduled = false;
      this.#flushAcks();
    });
  }

  #flushAcks(): void {
    if (this.#acksInFlight || this.#acks.length === 0) return;
    const batch = this.#acks.splice(0, QUEUE_LIMITS.maxBatch);
    this.#acksInFlight = true;
    this.#call({ op: "acks", ids: batch.map((a) => a.id) }, this.#answerMs).then(
      (frame) => {
        const unknown = new Set((frame as { unknown: string[] }).unknown);
        for (const ack of batch) {
          if (!unknown.has(ack.id)) ack.resolve();
          else {
            ack.reject(
              new FabricRequestError(
                `Message "${ack.id}" is not in the queue: it is unknown or already acknowledged`,
                404,
              ),
            );
          }
        }
      },
      (error: Error) => {
        for (const ack of batch) ack.reject(error);
      },
    ).finally(() => {
      this.#acksInFlight = false;
      if (this.#closedError) {
        for (const ack of this.#acks.splice(0)) ack.reject(this.#closedError);
      } else this.#flushAcks();
    });
  }

  #call(frame: QueueSingleFrame, answerMs: number): Promise<QueueServerFrame> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const ref = this.#nextRef++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#fail(`no answer within ${answerMs} ms`);
        this.#socket.close(1000, "no answer");
      }, answerMs);
      this.#calls.set(ref, { resolve, reject, timer });
      const text = JSON.stringify({ ...frame, ref });
      if (!this.#features.has("batch")) return this.#transmit(text);
      this.#outbox.push(text);
      this.#outboxTimer ??= setTimeout(() => this.#flushOutbox(), this.#lingerMs);
    });
  }

  /** Sends what this turn left in the outbox, in batches of at most 100 frames and 256 Ki characters. */
  #flushOutbox(): void {
    this.#outboxTimer = undefined;
    const frames = this.#outbox.splice(0);
    for (
      const text of batchFrames(frames, { maxFrames: QUEUE_LIMITS.maxBatch, maxChars: BATCH_CHARS })
    ) {
      if (this.#closedError) break;
      this.#transmit(text);
    }
  }

  #transmit(text: string): void {
    try {
      this.#socket.send(text);
    } catch (error) {
      this.#fail(`cannot send (${(error as Error).message})`);
    }
  }

  #receive(data: unknown): void {
    if (typeof data !== "string") return;
    let frame: QueueServerFrame;
    try {
      frame = JSON.parse(data) as QueueServerFrame;
    } catch {
      return;
    }
    if (frame.op === "batch") {
      for (const answer of frame.frames) this.#answer(answer);
    } else if (frame.op === "hello") {
      this.#features = new Set(frame.features);
    } else this.#answer(frame);
  }

  /** Settles the call that `frame` answers. */
  #answer(frame: QueueServerFrame): void {
    if (frame.op === "batch" || frame.op === "hello") return; // Not an answer (never nested).
    const ref = typeof frame.ref === "number" ? frame.ref : -1;
    const call = this.#calls.get(ref);
    if (!call) return;
    this.#calls.delete(ref);
    clearTimeout(call.timer);
    if (this.#abandoned.delete(ref) && frame.op === "messages") {
      for (const message of frame.messages) {
        this.nack(message.id).catch((error) =>
          log("queue").debug("Cannot give back message {id}: {error}", {
            id: message.id,
            error: String(error),
          })
        );
      }
    }
    if (frame.op !== "error") return call.resolve(frame);
    const status = frame.full ? 429 : frame.unknown ? 404 : 400;
    call.reject(new FabricRequestError(frame.message, status, { error: frame.message }));
  }

  /** Rejects every unanswered call: the socket is gone or no longer trusted. */
  #fail(why: string): void {
    this.#closedError ??= new FabricRequestError(`The ${this.#label} is ${why}`, 0);
    for (const [ref, call] of this.#calls) {
      clearTimeout(call.timer);
      call.reject(this.#closedError);
      this.#calls.delete(ref);
    }
    this.#abandoned.clear();
    this.#outbox = [];
    clearTimeout(this.#outboxTimer);
    this.#outboxTimer = undefined;
    if (!this.#acksInFlight) {
      for (const ack of this.#acks.splice(0)) ack.reject(this.#closedError);
    }
  }
}
