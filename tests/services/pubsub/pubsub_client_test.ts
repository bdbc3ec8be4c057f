import assert from "node:assert/strict";
import { type PubsubEvent, PubsubSubscription } from "../../../src/services/pubsub/mod.ts";
import { BATCH_FRAME_BYTES } from "../../../src/client/pubsub_client.ts";

/** Just enough of a WebSocket for a subscription to read from. */
class FakeSocket extends EventTarget {
  readyState: number = WebSocket.OPEN;
  onmessage: ((event: MessageEvent) => void) | null = null;
  sent: string[] = [];

  send(text: string): void {
    this.sent.push(text);
  }

  receive(frame: unknown): void {
    this.onmessage?.(new MessageEvent("message", { data: JSON.stringify(frame) }));
  }

  close(code = 1000, reason = ""): void {
    this.readyState = WebSocket.CLOSED;
    this.dispatchEvent(new CloseEvent("close", { code, reason }));
  }
}

const message = (seq: number) => ({ op: "message", topic: "t", seq, message: seq });

Deno.test("PubsubSubscription hands the frames of a batch to onEvent one by one, in order", async () => {
  const socket = new FakeSocket();
  const events: PubsubEvent[] = [];
  const sub = new PubsubSubscription(socket as unknown as WebSocket, {
    onEvent: (event) => events.push(event),
  });
  socket.receive(message(1));
  socket.receive({ op: "batch", frames: [{ op: "dropped", count: 2 }, message(4), message(5)] });
  socket.receive(message(6));
  await sub.close();
  assert.deepEqual(events, [
    message(1),
    { op: "dropped", count: 2 },
    message(4),
    message(5),
    message(6),
  ]);
});

Deno.test("PubsubSubscription counts the frames of a batch one by one when its queue overflows", async () => {
  const socket = new FakeSocket();
  const sub = new PubsubSubscription(socket as unknown as WebSocket, { buffer: 2 });
  socket.receive({ op: "batch", frames: [1, 2, 3, 4, 5].map(message) });
  socket.close();
  const events: PubsubEvent[] = [];
  for await (const event of sub) events.push(event);
  assert.deepEqual(events, [{ op: "dropped", count: 3 }, message(4), message(5)]);
});

Deno.test("PubsubSubscription.publishAll() sends batch frames only to a service that said hello", async () => {
  const socket = new FakeSocket();
  const events: PubsubEvent[] = [];
  const sub = new PubsubSubscription(socket as unknown as WebSocket, {
    onEvent: (event) => events.push(event),
  });
  const messages = (n: number) => Array.from({ length: n }, (_, i) => ({ topic: "t", message: i }));
  // No hello (an older service): one frame per publish.
  sub.publishAll(messages(3));
  assert.deepEqual(socket.sent.map((text) => JSON.parse(text).op), [
    "publish",
    "publish",
    "publish",
  ]);
  socket.sent = [];
  assert.equal(sub.takesBatches, false);
  socket.receive({ op: "hello", features: ["batch"] });
  assert.equal(sub.takesBatches, true);
  assert.deepEqual(events, [], "the hello is not an event");
  // 250 publishes: batches of at most 100, in order.
  sub.publishAll(messages(250));
  const batches = socket.sent.map((text) => JSON.parse(text));
  assert.deepEqual(batches.map((b) => b.frames.length), [100, 100, 50]);
  assert.deepEqual(
    batches.flatMap((b) => b.frames.map((f: { message: number }) => f.message)),
    messages(250).map((m) => m.message),
  );
  // A publish larger than a batch's room goes alone, as a plain frame, in its place.
  socket.sent = [];
  const big = "x".repeat(BATCH_FRAME_BYTES);
  sub.publishAll([{ topic: "t", message: 1 }, { topic: "t", message: big }, {
    topic: "t",
    message: 2,
  }]);
  assert.deepEqual(socket.sent.map((text) => JSON.parse(text).op), [
    "publish",
    "publish",
    "publish",
  ]);
  assert.ok(socket.sent.every((text) => text.length <= BATCH_FRAME_BYTES + 100));
  await sub.close();
});
