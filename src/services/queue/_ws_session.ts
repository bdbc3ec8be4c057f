/**
 * One queue WebSocket: JSON frames in, JSON frames out, over
 * {@linkcode QueueService}; no socket here, so it is tested without a server.
 * @module
 */
import { _invalidField, type ClientFrame, clientFrameSchema } from "../../types/queue_schemas.ts";
import { type QueueService, UnknownMessageError } from "./queue.ts";
import { KeyConflictError, QueueFullError } from "./queue_store.ts";
import type { QueueServerFrame, TaskReport } from "../../types/queue_wire.ts";

/** WebSocket close code sent when the queue service stops ("going away"). */
export const CLOSE_GOING_AWAY = 1001;

/** Where a {@linkcode QueueSocket} sends to. */
export interface SocketSink {
  send(frame: QueueServerFrame): void;
  close(code: number, reason: string): void;
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

  /** A session on queue `name` that answers through `sink`. */
  constructor(service: QueueService, name: string, sink: SocketSink, maxFrameBytes: number) {
    this.#service = service;
    this.#name = name;
    this.#sink = sink;
    this.#maxFrameBytes = maxFrameBytes;
    this.#unsubscribe = service.onClose(() => {
      this.close();
      sink.close(CLOSE_GOING_AWAY, "Queue service is stopping: reconnect when it is back");
    });
  }

  /** Handles one frame as received from the socket. */
  receive(data: unknown): void {
    if (this.#closed) return;
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
        'Frame is not JSON: send {"op": "put" | "get" | "ack" | "acks" | "nack" | "report", ...}',
      );
    }
    const parsed = clientFrameSchema.safeParse(value);
    if (!parsed.success) {
      const ref = refOf(value);
      return this.#error(_invalidField(parsed.error, "frame field"), ref);
    }
    this.#handle(parsed.data);
  }

  /** Stops a waiting get; called when the socket closes. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending?.abort();
    this.#pending = null;
    this.#unsubscribe();
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
          const task = this.#service.history.report(this.#name, frame.task, report);
          if (!task) {
            return this.#error(
              `No task "${frame.task}" in the history of queue "${this.#name}"`,
              frame.ref,
              "unknown",
            );
          }
          return this.#send({ op: "report-ok", task: frame.task, state: task.state, ...ref });
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
    const pending = new AbortController();
    this.#pending = pending;
    const waitMs = wait ?? Infinity;
    this.#service.get(this.#name, { max, visibilityMs, waitMs, signal: pending.signal }).then(
      (messages) => {
        if (this.#pending === pending) this.#pending = null;
        if (this.#closed || pending.signal.aborted) {
          // Too late to deliver: the visibility timeout hands them out again.
          return;
        }
        this.#send({ op: "messages", messages, ...(ref === undefined ? {} : { ref }) });
      },
      (error: Error) => {
        if (this.#pending === pending) this.#pending = null;
        this.#error(error.message, ref);
      },
    );
  }

  #send(frame: QueueServerFrame): void {
    if (!this.#closed) this.#sink.send(frame);
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

function refOf(value: unknown): string | number | undefined {
  if (typeof value !== "object" || value === null || !("ref" in value)) return undefined;
  const ref = (value as { ref: unknown }).ref;
  return typeof ref === "string" && ref.length <= 64 || Number.isSafeInteger(ref)
    ? ref as string | number
    : undefined;
}
