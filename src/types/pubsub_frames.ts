/**
 * The WebSocket frames of `GET /v1/pubsub/ws`, both ways, and what the server
 * does with a client frame. Every frame is one JSON text frame; a subscriber
 * that asked for batches (`?batch=1`) may also get several server frames in
 * one batch frame.
 * @module
 */
import { z } from "zod";
import type { Broker, Subscriber } from "../services/pubsub/broker.ts";

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

/** Room for the frame around the largest message, in bytes. */
const FRAME_OVERHEAD = 1024;

/** The text of an error frame. */
export function errorFrame(message: string): string {
  return JSON.stringify({ op: "error", message } satisfies ServerFrame);
}

/**
 * Acts on one frame from a subscriber's socket: publish, subscribe or
 * unsubscribe. Anything wrong is answered with an error frame to that
 * subscriber only; the connection stays open.
 */
export function handleClientFrame(broker: Broker, subscriber: Subscriber, data: unknown): void {
  const problem = apply(broker, subscriber, data);
  if (problem) subscriber.notice(errorFrame(problem));
}

function apply(broker: Broker, subscriber: Subscriber, data: unknown): string | null {
  if (typeof data !== "string") return "Send text frames of JSON, not binary frames";
  if (data.length > broker.maxMessageBytes + FRAME_OVERHEAD) {
    return `Frame is too large: messages may be at most ${broker.maxMessageBytes} bytes serialized`;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return 'Frame is not JSON: send {"op":"publish"|"subscribe"|"unsubscribe", ...}';
  }
  const result = clientFrameSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue?.path.map(String).join(".") || "(frame)";
    return `Invalid field "${field}": ${issue?.message ?? "invalid value"}`;
  }
  const frame = result.data;
  try {
    if (frame.op === "publish") broker.publish(frame.topic, frame.message);
    else if (frame.op === "subscribe") subscriber.subscribe(frame.pattern);
    else if (!subscriber.unsubscribe(frame.pattern)) {
      return `Not subscribed to "${frame.pattern}": nothing to unsubscribe`;
    }
  } catch (error) {
    // Topic, size and limit errors, or a stopping broker: the client is told,
    // and an event handler never throws.
    return error instanceof Error ? error.message : String(error);
  }
  return null;
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
