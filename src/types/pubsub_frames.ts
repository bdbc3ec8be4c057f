/**
 * The WebSocket frames of `GET /v1/pubsub/ws`, both ways, and the broker's
 * answers. Every frame is one JSON text frame; a subscriber that asked for
 * batches (`?batch=1`) may also get several server frames in one batch frame.
 * @module
 */
import * as z from "zod";

/** A frame the server sends. */
export type ServerFrame =
  | { op: "message"; topic: string; seq: number; message: unknown }
  | { op: "dropped"; count: number }
  | { op: "error"; message: string };

/**
 * Several server frames in one, in the order they were queued; sent only to a
 * subscriber that asked for batches at the handshake (`?batch=1`).
 */
export interface BatchFrame {
  op: "batch";
  frames: ServerFrame[];
}

/** A frame a client sends. */
export type ClientFrame = z.infer<typeof clientFrameSchema>;

/** Client frames, validated before they are acted on. */
export const clientFrameSchema = z.discriminatedUnion("op", [
  z.strictObject({ op: z.literal("publish"), topic: z.string(), message: z.json() }),
  z.strictObject({ op: z.literal("subscribe"), pattern: z.string() }),
  z.strictObject({ op: z.literal("unsubscribe"), pattern: z.string() }),
]);

/** Frames one client `batch` frame may hold. */
export const MAX_BATCH_FRAMES = 100;

/**
 * Several client frames in one, acted on in order as if sent one by one; a
 * service accepts it from a client it greeted with `hello` (`?hello=1`).
 * The frames are checked one by one against {@linkcode clientFrameSchema}.
 */
export const clientBatchSchema = z.strictObject({
  op: z.literal("batch"),
  frames: z.array(z.unknown()).min(1).max(MAX_BATCH_FRAMES),
});

/** What a service that accepts client batches sends first to a client that asked (`?hello=1`). */
export interface HelloFrame {
  op: "hello";
  features: string[];
}

/** The answer to a publish. */
export interface PublishResult {
  /** Subscribers whose outbox took the message. */
  delivered: number;
  /** The message's sequence number in its topic, from 1. */
  seq: number;
}

/** Counters of a broker. */
export interface BrokerStats {
  /** Connected subscribers. */
  subscribers: number;
  /** Distinct topics published to since the broker started. */
  topics: number;
  /** Messages published since the broker started. */
  published: number;
  /** Messages dropped from slow subscribers' outboxes since the broker started. */
  dropped: number;
}
