import assert from "node:assert/strict";
import { handleClientFrame } from "../../../src/services/pubsub/frames.ts";
import { Broker } from "../../../src/services/pubsub/mod.ts";
import { FakeSink } from "./_fake_sink.ts";

/** The client frame limit: the largest message (64 KiB) and 1 KiB for its frame. */
const LIMIT = 65 * 1024;

const bytesOf = (text: string): number => new TextEncoder().encode(text).byteLength;

/** A broker, a subscriber to `t` that sends, and a second one that only listens. */
function fixture() {
  const broker = new Broker();
  const sink = new FakeSink();
  const subscriber = broker.subscribe(sink, []);
  const listener = new FakeSink();
  broker.subscribe(listener, ["t"]);
  const send = (text: string): string[] => {
    sink.texts = [];
    handleClientFrame(broker, subscriber, text);
    return sink.frames.flatMap((f) => f.op === "error" ? [f.message] : []);
  };
  return { broker, listener, send };
}

function batchOf(message: string, count: number): string {
  const frame = { op: "publish", topic: "t", message };
  return JSON.stringify({ op: "batch", frames: Array.from({ length: count }, () => frame) });
}

Deno.test("handleClientFrame() refuses a frame over 65 KiB of UTF-8 that is under it in UTF-16 units", () => {
  const { broker, listener, send } = fixture();
  try {
    // Four messages of 30,000 bytes each: every one fits, the frame does not.
    const text = batchOf("€".repeat(10_000), 4);
    assert.ok(text.length < LIMIT && bytesOf(text) > LIMIT);
    assert.deepEqual(send(text), [
      "Frame is too large: a frame may be at most 66560 bytes (UTF-8), " +
      "a message at most 65536 bytes serialized",
    ]);
    assert.equal(broker.stats().published, 0);
    assert.deepEqual(listener.messages, []);
  } finally {
    broker.close();
  }
});

Deno.test("handleClientFrame() takes a frame of up to 65 KiB of UTF-8, counted exactly", () => {
  const { broker, listener, send } = fixture();
  try {
    const twoByTwo = batchOf("é".repeat(16_000), 2);
    assert.ok(bytesOf(twoByTwo) <= LIMIT && twoByTwo.length * 3 > LIMIT);
    assert.deepEqual(send(twoByTwo), []);
    // 16,000 pairs: 64,000 bytes, though 3 bytes a unit would make it 96,000.
    const pairs = JSON.stringify({ op: "publish", topic: "t", message: "😀".repeat(16_000) });
    assert.ok(bytesOf(pairs) <= LIMIT);
    assert.deepEqual(send(pairs), []);
    const exact = JSON.stringify({ op: "publish", topic: "t", message: "é" }).padEnd(LIMIT - 1);
    assert.equal(bytesOf(exact), LIMIT);
    assert.deepEqual(send(exact), []);
    assert.match(send(exact + " ")[0] ?? "", /Frame is too large/);
    assert.equal(broker.stats().published, 4);
    assert.equal(listener.messages.length, 4);
  } finally {
    broker.close();
  }
});
