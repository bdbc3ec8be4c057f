import assert from "node:assert/strict";
import { type PubsubEvent, PubsubSubscription } from "../../../src/services/pubsub/mod.ts";

/** Just enough of a WebSocket for a subscription to read from. */
class FakeSocket extends EventTarget {
  readyState: number = WebSocket.OPEN;
  onmessage: ((event: MessageEvent) => void) | null = null;

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
