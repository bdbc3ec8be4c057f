/**
 * What the broker does with a client frame of `GET /v1/pubsub/ws` (the frames
 * themselves are in `types/pubsub_frames.ts`).
 * @module
 */
import { clientFrameSchema, type ServerFrame } from "../../types/pubsub_frames.ts";
import type { Broker, Subscriber } from "./broker.ts";

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
