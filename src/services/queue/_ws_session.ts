/**
 * One queue WebSocket: JSON frames in, JSON frames out, over
 * {@linkcode QueueService}; no socket here, so it is tested without a server.
 * @module
 */
import {
  _invalidField,
  batchFrameSchema,
  type ClientFrame,
  clientFrameSchema,
} from "../../types/queue_schemas.ts";
import { SLOW_READER_CLOSE_CODE } from "../../types/wire.ts";
import { type QueueService, UnknownMessageError } from "./queue.ts";
import { KeyConflictError, QueueFullError } from "./queue_store.ts";
import { type AnswerBudget, MAX_ANSWER_CHARS } from "./answer_budget.ts";
import {
  QUEUE_SOCKET_FEATURES,
  type QueueMessage,
  type QueueServerFrame,
  type TaskReport,
} from "../../types/queue_wire.ts";

/** WebSocket close code sent when the queue service stops ("going away"). */
export const CLOSE_GOING_AWAY = 1001;

/**
 * Bytes that may wait in a socket for its client (its `bufferedAmount`)
 * before the socket is closed with {@linkcode SLOW_READER_CLOSE_CODE}: checked
 * before each frame is handled, so a frame of a client that does not read
 * (a get above all) takes nothing and is not answered. At most one answer
 * more than this waits (one get's, {@linkcode MAX_ANSWER_CHARS} of payload).
 */
export const MAX_SOCKET_BUFFERED_BYTES = 8 * 1024 * 1024;

/** Where a {@linkcode QueueSocket} sends to. */
export interface SocketSink {
  send(frame: QueueServerFrame): void;
  close(code: number, reason: string): void;
  /** Bytes sent and not yet written to the network (WebSocket `bufferedAmount`). */
  readonly bufferedAmount: number;
}

/** Options of {@linkcode QueueSocket}. */
export interface QueueSocketOptions {
  /**
   * The client asked for batches (`?batch=1`): the socket greets it with a
   * `hello` frame listing {@linkcode QUEUE_SOCKET_FEATURES}. Default false.
   */
  batch?: boolean;
}

/** The frames of one WebSocket on queue `name`; at most one get waits at a time. */
export class QueueSocket {
  #service: QueueService;
  #name: string;
  #sink: SocketSink;
  #maxFrameBytes: number;
  #pending: AbortController | null = null;
  #unsubscribe: () => void;
  #closed = false;
  /** While a batch is handled: its answers, sent together once it is committed. */
  #answers: QueueServerFrame[] | null = null;
  /** While a batch is handled: what its answer may still hold, shared by its gets. */
  #budget: AnswerBudget | null = null;

  /** A session on queue `name` that answers through `sink`. */
  constructor(
    service: QueueService,
    name: string,
    sink: SocketSink,
    maxFrameBytes: number,
    options: QueueSocketOptions = {},
  ) {
    this.#service = service;
    this.#name = name;
    this.#sink = sink;
    this.#maxFrameBytes = maxFrameBytes;
    this.#unsubscribe = service.onClose(() => {
      this.close();
      sink.close(CLOSE_GOING_AWAY, "Queue service is stopping: reconnect when it is back");
    });
    if (options.batch) sink.send({ op: "hello", features: [...QUEUE_SOCKET_FEATURES] });
  }

  /** Handles one frame as received from the socket. */
  receive(data: unknown): void {
    if (this.#closed) return;
    if (this.#sink.bufferedAmount > MAX_SOCKET_BUFFERED_BYTES) return this.#tooSlow();
    if (typeof data !== "string") return this.#error("Send JSON text frames, not binary ones");
    // UTF-8 takes at most 3 bytes per UTF-16 unit: encode only frames that may be too large.
    const large = data.length * 3 > this.#maxFrameBytes &&
      new TextEncoder().encode(data).byteLength > this.#maxFrameBytes;
    if (large) {
      return this.#error(`Frame is larger than ${this.#maxFrameBytes} bytes: send less`);
    }
    let value: unknown;
    try {
      value = JSON.parse(data);
    } catch {
      return this.#error(
        'Frame is not JSON: send {"op": "put" | "get" | "ack" | "acks" | "nack" | "report" | "batch", ...}',
      );
    }
    if ((value as { op?: unknown } | null)?.op === "batch") {
      const batch = batchFrameSchema.safeParse(value);
      if (!batch.success) {
        return this.#error(_invalidField(batch.error, "frame field", value), refOf(value));
      }
      return this.#batch(batch.data.frames, batch.data.ref);
    }
    this.#handleParsed(value, clientFrameSchema.safeParse(value));
  }

  /** Stops a waiting get; called when the socket closes. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending?.abort();
    this.#pending = null;
    this.#unsubscribe();
  }

  /** Handles frame `value` as parsed, or answers why it is invalid. */
  #handleParsed(value: unknown, parsed: ReturnType<typeof clientFrameSchema.safeParse>): void {
    if (parsed.success) return this.#handle(parsed.data);
    const nested = (value as { op?: unknown } | null)?.op === "batch";
    this.#error(
      nested
        ? 'Invalid frame "batch" in a batch: batches cannot nest, put its frames in the outer batch'
        : _invalidField(parsed.error, "frame field", value),
      refOf(value),
    );
  }

  /**
   * Handles `frames` in order in one transaction (synced unless they are
   * only reports) and sends their answers that are ready as one `batch`
   * frame, which carries the batch's `ref` (then even with one answer or
   * none); when the commit fails, each frame is answered with its error.
   */
  #batch(frames: readonly unknown[], ref: string | number | undefined): void {
    const answers: QueueServerFrame[] = [];
    this.#answers = answers;
    this.#budget = { chars: MAX_ANSWER_CHARS };
    const waiting = this.#pending;
    try {
      const parsed = frames.map((value) => clientFrameSchema.safeParse(value));
      const durable = parsed.some((p) => p.success && !isPlainReport(p.data));
      this.#service.batch(() => {
        frames.forEach((value, i) => this.#handleParsed(value, parsed[i]!));
      }, { durable });
    } catch (error) {
      answers.length = 0;
      // A get of the batch that went on to wait is answered with the error
      // below: it must not wait on and be answered a second time.
      if (this.#pending !== waiting) {
        this.#pending?.abort();
        this.#pending = null;
      }
      for (const value of frames) {
        this.#error(`Batch not stored: ${(error as Error).message}`, refOf(value));
      }
    } finally {
      this.#answers = null;
      this.#budget = null;
    }
    if (ref !== undefined) this.#send({ op: "batch", frames: answers, ref });
    else if (answers.length === 1) this.#send(answers[0]!);
    else if (answers.length > 1) this.#send({ op: "batch", frames: answers });
  }

  #handle(frame: ClientFrame): void {
    const ref = frame.ref === undefined ? {} : { ref: frame.ref };
    try {
      switch (frame.op) {
        case "put": {
          if (frame.key === undefined) {
            return this.#send({
              op: "put-ok",
              id: this.#service.put(this.#name, frame.payload),
              ...ref,
            });
          }
          const put = this.#service.putOnce(this.#name, frame.payload, frame.key);
          return this.#send({
            op: "put-ok",
            id: put.id,
            ...(put.duplicate ? { duplicate: true as const } : {}),
            ...ref,
          });
        }
        case "ack":
          this.#service.ack(this.#name, frame.id);
          return this.#send({ op: "ack-ok", id: frame.id, ...ref });
        case "acks":
          return this.#send({
            op: "acks-ok",
            ...this.#service.ackMany(this.#name, frame.ids),
            ...ref,
          });
        case "nack":
          this.#service.nack(this.#name, frame.id);
          return this.#send({ op: "nack-ok", id: frame.id, ...ref });
        case "get":
          return this.#get(frame.max, frame.visibility, frame.wait, frame.ref);
        case "report": {
          // Validated by the schema; the same cast as the HTTP route's.
          const report = frame.report as TaskReport;
          const done = frame.ack === undefined
            ? { task: this.#service.history.report(this.#name, frame.task, report) }
            : this.#service.finish(this.#name, frame.task, report, frame.ack);
          if (!done?.task) {
            return this.#error(
              `No task "${frame.task}" in the history of queue "${this.#name}"`,
              frame.ref,
              "unknown",
            );
          }
          const acked = "acked" in done ? { acked: done.acked } : {};
          return this.#send({
            op: "report-ok",
            task: frame.task,
            state: done.task.state,
            ...acked,
            ...ref,
          });
        }
      }
    } catch (error) {
      const flag = error instanceof QueueFullError
        ? "full"
        : error instanceof UnknownMessageError
        ? "unknown"
        : error instanceof KeyConflictError
        ? "conflict"
        : undefined;
      this.#error((error as Error).message, frame.ref, flag);
    }
  }

  #get(max: number, visibilityMs: number, wait: number | undefined, ref?: string | number): void {
    if (this.#pending) {
      return this.#error("A get is already waiting on this socket: wait for its messages", ref);
    }
    const waitMs = wait ?? Infinity;
    const reply = ref === undefined ? {} : { ref };
    const budget = this.#budget;
    if (budget && budget.chars <= 0) {
      return this.#error(
        `The batch's answer is full (${MAX_ANSWER_CHARS} characters of messages): ` +
          "send this get again in a later frame",
        ref,
      );
    }
    // Ready messages are answered in this turn (in a batch: in its answer, after its commit).
    const take = budget ? { max, visibilityMs, budget } : { max, visibilityMs };
    const ready = this.#service.take(this.#name, take);
    if (ready.length > 0 || waitMs === 0) {
      return this.#send({ op: "messages", messages: ready, ...reply });
    }
    const pending = new AbortController();
    this.#pending = pending;
    this.#service.get(this.#name, { max, visibilityMs, waitMs, signal: pending.signal }).then(
      (messages) => {
        if (this.#pending === pending) this.#pending = null;
        if (this.#closed || pending.signal.aborted) return this.#giveBack(messages);
        if (this.#sink.bufferedAmount > MAX_SOCKET_BUFFERED_BYTES) {
          this.#giveBack(messages);
          return this.#tooSlow();
        }
        this.#send({ op: "messages", messages, ...(ref === undefined ? {} : { ref }) });
      },
      (error: Error) => {
        if (this.#pending === pending) this.#pending = null;
        this.#error(error.message, ref);
      },
    );
  }

  /**
   * Makes `messages`, taken for a get that is not answered, ready again now
   * (their `deliveries` stay counted); if that fails their visibility
   * timeout hands them out again.
   */
  #giveBack(messages: readonly QueueMessage[]): void {
    if (messages.length === 0 || this.#service.closed) return;
    try {
      this.#service.batch(() => {
        for (const { id } of messages) {
          try {
            this.#service.nack(this.#name, id);
          } catch (error) {
            if (!(error instanceof UnknownMessageError)) throw error;
          }
        }
      }, { durable: false });
    } catch {
      // Not given back at once: the visibility timeout does it.
    }
  }

  /** Closes the socket of a client that does not read its answers, rather than writing more. */
  #tooSlow(): void {
    this.close();
    this.#sink.close(
      SLOW_READER_CLOSE_CODE,
      `Client reads too slowly (over ${MAX_SOCKET_BUFFERED_BYTES} bytes unread): read, then reconnect`,
    );
  }

  #send(frame: QueueServerFrame): void {
    if (this.#answers) this.#answers.push(frame);
    else if (!this.#closed) this.#sink.send(frame);
  }

  #error(
    message: string,
    ref?: string | number,
    flag?: "full" | "unknown" | "conflict",
  ): void {
    this.#send({
      op: "error",
      message,
      ...(flag ? { [flag]: true } : {}),
      ...(ref === undefined ? {} : { ref }),
    });
  }
}

/** A report without an ack: its transaction need not be synced by itself. */
function isPlainReport(frame: ClientFrame): boolean {
  return frame.op === "report" && frame.ack === undefined;
}

function refOf(value: unknown): string | number | undefined {
  if (typeof value !== "object" || value === null || !("ref" in value)) return undefined;
  const ref = (value as { ref: unknown }).ref;
  return typeof ref === "string" && ref.length <= 64 || Number.isSafeInteger(ref)
    ? ref as string | number
    : undefined;
}
