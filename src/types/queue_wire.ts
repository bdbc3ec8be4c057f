/**
 * The queue's wire format: what `/v1/queue/...` takes and answers, and its
 * limits. Shared by the server and {@linkcode QueueClient}, so a client does
 * not load the store (docs/services.md "## queue").
 * @module
 */

/** A queue name: 1-64 characters of letters, digits, '.', '_' and '-', starting alphanumeric. */
export const QUEUE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/;

/** An idempotency key of a put: 1-128 letters, digits, '.', '_', ':' and '-'. */
export const PUT_KEY = /^[A-Za-z0-9._:-]{1,128}$/;

/** A message ID as the queue hands it out: a positive decimal integer below 2^53. */
export const MESSAGE_ID = /^[1-9][0-9]{0,14}$/;

/** Limits of the queue API. */
export const QUEUE_LIMITS = {
  /** Unacknowledged messages one queue holds unless the `capacity` option says otherwise. */
  defaultCapacity: 10_000,
  /** Messages one get may take, and one batch of acknowledgements may name. */
  maxBatch: 100,
  /** Longest long-poll of an HTTP get, ms. */
  maxWaitMs: 30_000,
  /** Visibility timeout of a get that names none, ms. */
  defaultVisibilityMs: 30_000,
  /** Longest visibility timeout, ms (12 hours). */
  maxVisibilityMs: 43_200_000,
  /** Consumers that may wait at once on one queue service unless `maxWaiters` says otherwise. */
  defaultMaxWaiters: 1_000,
} as const;

/** A message handed out by a get. */
export interface QueueMessage {
  /** The message's ID; acknowledge it with this. */
  id: string;
  /** The JSON value that was put. */
  payload: unknown;
  /** How often it has been handed out, this time included (1 on first delivery). */
  deliveries: number;
}

/** How full one queue is. */
export interface QueueStats {
  name: string;
  /** Messages a get would hand out now. */
  ready: number;
  /** Messages handed out and neither acknowledged nor visible again yet. */
  inflight: number;
  /** Unacknowledged messages the queue holds at most. */
  capacity: number;
}

/** What a batch of acknowledgements answers (`POST .../acks`, the `acks` frame). */
export interface AckManyResult {
  /** The IDs acknowledged now, in the order given. */
  acked: string[];
  /** The IDs the queue does not hold (unknown or already acknowledged). */
  unknown: string[];
}

/** A frame a WebSocket client sends; `ref` is echoed in the answer. */
export type QueueClientFrame =
  | { op: "put"; payload: unknown; key?: string; ref?: string | number }
  | { op: "get"; max?: number; visibility?: number; wait?: number; ref?: string | number }
  | { op: "ack"; id: string; ref?: string | number }
  | { op: "acks"; ids: string[]; ref?: string | number }
  | { op: "nack"; id: string; ref?: string | number };

/** A frame the server sends on a queue WebSocket. */
export type QueueServerFrame =
  | { op: "put-ok"; id: string; duplicate?: true; ref?: string | number }
  | { op: "messages"; messages: QueueMessage[]; ref?: string | number }
  | { op: "ack-ok"; id: string; ref?: string | number }
  | { op: "acks-ok"; acked: string[]; unknown: string[]; ref?: string | number }
  | { op: "nack-ok"; id: string; ref?: string | number }
  | {
    op: "error";
    message: string;
    /** The put was refused because the queue is full. */
    full?: boolean;
    /** The ack or nack named a message the queue does not hold. */
    unknown?: boolean;
    /** The put's idempotency key was used for a different payload. */
    conflict?: boolean;
    ref?: string | number;
  };
