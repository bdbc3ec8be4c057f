/**
 * What the broker does with a client frame of `GET /v1/pubsub/ws` (the frames
 * themselves are in `types/pubsub_frames.ts`).
 * @module
 */
import {
  clientBatchSchema,
  clientFrameSchema,
  MAX_BATCH_FRAMES,
  type ServerFrame,
} from "../../types/pubsub_frames.ts";
import { type Broker, type Subscriber, utf8Length } from "./broker.ts";
import { issueText } from "../../types/issue_text.ts";

/** Room for the frame around the largest message, in bytes. */
const FRAME_OVERHEAD = 1024;

/** The text of an error frame. */
export function errorFrame(message: string): string {
  return JSON.stringify({ op: "error", message } satisfies ServerFrame);
}

/**
 * Acts on one frame from a subscriber's socket: publish, subscribe or
 * unsubscribe, or a `batch` of those, each acted on in order. Anything wrong
 * is answered with an error frame to that subscriber only (one per refused
 * frame of a batch); the connection stays open.
 */
export function handleClientFrame(broker: Broker, subscriber: Subscriber, data: unknown): void {
  const parsed = parse(broker, data);
  if (!parsed.ok) return subscriber.notice(errorFrame(parsed.problem));
  const batch = clientBatchSchema.safeParse(parsed.value);
  if (!batch.success) {
    const problem = apply(broker, subscriber, parsed.value);
    if (problem) subscriber.notice(errorFrame(problem));
    return;
  }
  batch.data.frames.forEach((frame, i) => {
    const problem = apply(broker, subscriber, frame);
    if (problem) subscriber.notice(errorFrame(`Batch frame ${i}: ${problem}`));
  });
}

/** The JSON value of a text frame, or why it is refused. */
function parse(
  broker: Broker,
  data: unknown,
): { ok: true; value: unknown } | { ok: false; problem: string } {
  if (typeof data !== "string") {
    return { ok: false, problem: "Send text frames of JSON, not binary frames" };
  }
  const limit = broker.maxMessageBytes + FRAME_OVERHEAD;
  if (utf8Exceeds(data, limit)) {
    const max = broker.maxMessageBytes;
    return {
      ok: false,
      problem: `Frame is too large: a frame may be at most ${limit} bytes (UTF-8), ` +
        `a message at most ${max} bytes serialized`,
    };
  }
  try {
    return { ok: true, value: JSON.parse(data) };
  } catch {
    const ops = '"publish"|"subscribe"|"unsubscribe"|"batch"';
    return { ok: false, problem: `Frame is not JSON: send {"op":${ops}, ...}` };
  }
}

/**
 * Whether `text` takes more than `limit` bytes in UTF-8, the size the client
 * sent: only a text between `limit / 3` and `limit` units long is counted,
 * and only until it is over.
 */
function utf8Exceeds(text: string, limit: number): boolean {
  if (text.length > limit) return true;
  if (text.length * 3 <= limit) return false;
  return utf8Length(text, limit) > limit;
}

function apply(broker: Broker, subscriber: Subscriber, parsed: unknown): string | null {
  const result = clientFrameSchema.safeParse(parsed);
  if (!result.success) {
    if (isBatch(parsed)) {
      return `Invalid batch: give "frames", 1 to ${MAX_BATCH_FRAMES} frames, no batch inside`;
    }
    const issue = result.error.issues[0];
    const field = issue?.path.map(String).join(".") || "(frame)";
    return `Invalid field "${field}": ${issue ? issueText(issue, parsed) : "invalid value"}`;
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

function isBatch(value: unknown): boolean {
  return typeof value === "object" && value !== null && (value as { op?: unknown }).op === "batch";
}
