import assert from "node:assert/strict";
import {
  Broker,
  type BrokerOptions,
  MessageTooLargeError,
  TopicError,
} from "../../../src/services/pubsub/mod.ts";
import { BATCH_BYTES } from "../../../src/services/pubsub/_subscriber.ts";
import { eventually } from "../../_eventually.ts";
import { FakeSink, tick } from "./_fake_sink.ts";

/** A broker closed after `fn`, even when it throws (no timers left behind). */
async function withBroker(
  options: BrokerOptions,
  fn: (broker: Broker) => Promise<void> | void,
): Promise<void> {
  const broker = new Broker(options);
  try {
    await fn(broker);
  } finally {
    broker.close();
  }
}

Deno.test("Broker.publish() fans out to each matching subscriber once, with a seq per topic", async () => {
  await withBroker({}, async (broker) => {
    const [star, all, both, other] = [
      new FakeSink(),
      new FakeSink(),
      new FakeSink(),
      new FakeSink(),
    ];
    broker.subscribe(star, ["a.*"]);
    broker.subscribe(all, [">"]);
    broker.subscribe(both, ["a.x", "a.*"]);
    broker.subscribe(other, ["b.>"]);
    assert.deepEqual(broker.publish("a.x", 1), { delivered: 3, seq: 1 });
    assert.deepEqual(broker.publish("a.x", { n: 2 }), { delivered: 3, seq: 2 });
    assert.deepEqual(broker.publish("b.y.z", "three"), { delivered: 2, seq: 1 });
    assert.deepEqual(broker.publish("c", null), { delivered: 1, seq: 1 });
    assert.deepEqual(broker.publish("a.x.y", [4]), { delivered: 1, seq: 1 });
    await tick();
    assert.deepEqual(star.frames, [
      { op: "message", topic: "a.x", seq: 1, message: 1 },
      { op: "message", topic: "a.x", seq: 2, message: { n: 2 } },
    ]);
    assert.deepEqual(both.messages, [1, { n: 2 }]);
    assert.deepEqual(all.messages, [1, { n: 2 }, "three", null, [4]]);
    assert.deepEqual(other.frames, [{ op: "message", topic: "b.y.z", seq: 1, message: "three" }]);
    assert.deepEqual(broker.stats(), { subscribers: 4, topics: 4, published: 5, dropped: 0 });
  });
});

Deno.test("Broker.publish() writes to a ready sink at once and never waits for a blocked one", async () => {
  await withBroker({ retryMs: 1 }, async (broker) => {
    const ready = new FakeSink();
    const blocked = new FakeSink();
    blocked.bufferedAmount = Number.POSITIVE_INFINITY;
    broker.subscribe(ready, ["t"]);
    broker.subscribe(blocked, ["t"]);
    assert.equal(broker.publish("t", 1).delivered, 2);
    assert.deepEqual(ready.messages, [1], "a sink with room gets the frame within publish()");
    assert.equal(blocked.texts.length, 0);
    blocked.bufferedAmount = 0;
    await eventually(() => blocked.texts.length === 1);
    assert.deepEqual(blocked.messages, [1]);
  });
});

Deno.test("Broker drops the oldest messages of a full outbox and reports the count first", async () => {
  await withBroker({ buffer: 4, retryMs: 2 }, async (broker) => {
    const slow = new FakeSink();
    slow.bufferedAmount = Number.POSITIVE_INFINITY;
    const subscriber = broker.subscribe(slow, ["t"]);
    for (let i = 1; i <= 10; i++) assert.equal(broker.publish("t", i).delivered, 1);
    await tick(10);
    assert.equal(slow.texts.length, 0, "a blocked sink is not written to");
    assert.equal(subscriber.dropped, 6);
    assert.equal(subscriber.pending, 4);
    assert.equal(broker.stats().dropped, 6);
    slow.bufferedAmount = 0;
    await eventually(() => slow.texts.length === 5);
    assert.deepEqual(slow.frames, [
      { op: "dropped", count: 6 },
      ...[7, 8, 9, 10].map((n) => ({ op: "message", topic: "t", seq: n, message: n })),
    ]);
    broker.publish("t", 11);
    await tick();
    assert.deepEqual(slow.frames.at(-1), { op: "message", topic: "t", seq: 11, message: 11 });
    assert.equal(slow.frames.filter((f) => f.op === "dropped").length, 1, "no new notice");
  });
});

Deno.test("Broker reports each run of drops once, before the next delivered message", async () => {
  await withBroker({ buffer: 2, retryMs: 1 }, async (broker) => {
    const sink = new FakeSink();
    sink.bufferedAmount = Number.POSITIVE_INFINITY;
    broker.subscribe(sink, ["t"]);
    for (let i = 1; i <= 5; i++) broker.publish("t", i);
    sink.bufferedAmount = 0;
    await eventually(() => sink.texts.length === 3);
    sink.bufferedAmount = Number.POSITIVE_INFINITY;
    for (let i = 6; i <= 9; i++) broker.publish("t", i);
    sink.bufferedAmount = 0;
    await eventually(() => sink.texts.length === 6);
    assert.deepEqual(
      sink.frames.map((f) =>
        f.op === "message" ? f.message : `dropped ${f.op === "dropped" && f.count}`
      ),
      [
        "dropped 3",
        4,
        5,
        "dropped 2",
        8,
        9,
      ],
    );
  });
});

Deno.test("Broker keeps delivering to a fast subscriber while another one is stalled", async () => {
  await withBroker({ buffer: 8, retryMs: 2 }, (broker) => {
    const stalled = new FakeSink();
    stalled.bufferedAmount = Number.POSITIVE_INFINITY;
    const fast = new FakeSink();
    const slowOne = broker.subscribe(stalled, ["jobs.>"]);
    broker.subscribe(fast, ["jobs.*"]);
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 10; i++) broker.publish("jobs.x", round * 10 + i);
      // The fast subscriber already has everything published so far.
      assert.equal(fast.messages.length, (round + 1) * 10);
    }
    assert.deepEqual(fast.messages, Array.from({ length: 100 }, (_, i) => i));
    assert.equal(stalled.texts.length, 0);
    assert.equal(slowOne.pending, 8);
    assert.equal(slowOne.dropped, 92);
  });
});

Deno.test("Broker stops writing to a sink above the high-water mark and resumes as it drains", async () => {
  await withBroker({ highWaterBytes: 1000, retryMs: 1 }, async (broker) => {
    const sink = new FakeSink();
    const send = sink.send.bind(sink);
    let peak = 0;
    sink.send = (text) => {
      send(text);
      sink.bufferedAmount += text.length;
      peak = Math.max(peak, sink.bufferedAmount);
    };
    broker.subscribe(sink, ["t"]);
    const payload = "x".repeat(300);
    for (let i = 0; i < 20; i++) broker.publish("t", payload);
    await tick(5);
    const before = sink.texts.length;
    assert.ok(before < 20 && before >= 3, `sent ${before} frames before the sink drained`);
    const drainer = setInterval(
      () => (sink.bufferedAmount = Math.max(0, sink.bufferedAmount - 500)),
      1,
    );
    try {
      await eventually(() => sink.texts.length === 20);
    } finally {
      clearInterval(drainer);
    }
    assert.ok(peak < 1000 + 400, `bufferedAmount peaked at ${peak}`);
  });
});

Deno.test("Broker sends a batching subscriber what one turn published as one batch frame", async () => {
  await withBroker({}, async (broker) => {
    const batched = new FakeSink();
    const plain = new FakeSink();
    const subscriber = broker.subscribe(batched, ["t.*"], { batch: true });
    broker.subscribe(plain, ["t.*"]);
    for (let i = 1; i <= 3; i++) broker.publish("t.a", i);
    assert.equal(plain.texts.length, 3, "a subscriber without batches gets each frame at once");
    assert.equal(batched.texts.length, 0, "a batch goes out at the end of the turn");
    await tick();
    assert.equal(batched.texts.length, 1);
    assert.deepEqual(JSON.parse(batched.texts[0]!), {
      op: "batch",
      frames: [1, 2, 3].map((n) => ({ op: "message", topic: "t.a", seq: n, message: n })),
    });
    broker.publish("t.b", "alone");
    await tick();
    assert.deepEqual(
      JSON.parse(batched.texts[1]!),
      { op: "message", topic: "t.b", seq: 1, message: "alone" },
      "a batch of one is a plain frame",
    );
    assert.equal(subscriber.sent, 4);
  });
});

Deno.test("Broker puts the drop notice first in a batch and splits batches at BATCH_BYTES", async () => {
  await withBroker({ buffer: 8, retryMs: 1 }, async (broker) => {
    const sink = new FakeSink();
    sink.bufferedAmount = Number.POSITIVE_INFINITY;
    broker.subscribe(sink, ["t"], { batch: true });
    const payload = "x".repeat(Math.floor(BATCH_BYTES / 3.5));
    for (let i = 1; i <= 10; i++) broker.publish("t", { i, payload });
    await tick(5);
    assert.equal(sink.texts.length, 0, "a blocked sink gets no batch either");
    sink.bufferedAmount = 0;
    await eventually(() => sink.frames.length === 9);
    // Eight messages of over a quarter of BATCH_BYTES: two batches of four.
    assert.equal(sink.texts.length, 2);
    assert.deepEqual(sink.frames[0], { op: "dropped", count: 2 });
    assert.deepEqual(sink.messages.map((m) => (m as { i: number }).i), [3, 4, 5, 6, 7, 8, 9, 10]);
  });
});

Deno.test("Broker sends a batch at once when the outbox of a batching subscriber would drop", async () => {
  await withBroker({ buffer: 16 }, async (broker) => {
    const sink = new FakeSink();
    const subscriber = broker.subscribe(sink, ["t"], { batch: true });
    // A burst of more than `buffer` messages in one turn, to a sink with room.
    for (let i = 1; i <= 100; i++) broker.publish("t", i);
    assert.equal(sink.texts.length, 6, "a full outbox goes out as a batch within publish()");
    await tick();
    assert.equal(sink.texts.length, 7);
    assert.deepEqual(sink.messages, Array.from({ length: 100 }, (_, i) => i + 1));
    assert.equal(subscriber.dropped, 0);
  });
});

Deno.test("Subscriber.close() cancels a batch that is waiting for the end of the turn", async () => {
  await withBroker({}, async (broker) => {
    const sink = new FakeSink();
    const subscriber = broker.subscribe(sink, ["t"], { batch: true });
    broker.publish("t", 1);
    subscriber.close();
    await tick();
    assert.equal(sink.texts.length, 0);
  });
});

Deno.test("Broker.close() sends a waiting batch ahead of the close, where the sink has room", () => {
  const broker = new Broker();
  const ready = new FakeSink();
  const blocked = new FakeSink();
  blocked.bufferedAmount = Number.POSITIVE_INFINITY;
  broker.subscribe(ready, ["t"], { batch: true });
  broker.subscribe(blocked, ["t"], { batch: true });
  broker.publish("t", 1);
  broker.publish("t", 2);
  assert.equal(ready.texts.length, 0, "the batch waits for the end of the turn");
  broker.close();
  assert.deepEqual(ready.messages, [1, 2]);
  assert.deepEqual(ready.closedWith?.code, 1001);
  assert.deepEqual(blocked.texts, [], "a backed-up sink is not written to");
  assert.deepEqual(blocked.closedWith?.code, 1001);
});

Deno.test("Subscriber.unsubscribe() stops new deliveries but keeps what is queued", async () => {
  await withBroker({}, async (broker) => {
    const sink = new FakeSink();
    const subscriber = broker.subscribe(sink, ["a.*", "b"]);
    broker.publish("a.1", 1);
    assert.equal(subscriber.unsubscribe("a.*"), true);
    assert.equal(subscriber.unsubscribe("a.*"), false);
    assert.deepEqual(subscriber.patterns, ["b"]);
    assert.equal(broker.publish("a.2", 2).delivered, 0);
    broker.publish("b", 3);
    subscriber.subscribe("a.>");
    broker.publish("a.3.x", 4);
    await tick();
    assert.deepEqual(sink.messages, [1, 3, 4]);
  });
});

Deno.test("Subscriber.close() leaves the broker and gets nothing more", async () => {
  await withBroker({}, async (broker) => {
    const gone = new FakeSink();
    const stays = new FakeSink();
    const subscriber = broker.subscribe(gone, ["t"]);
    broker.subscribe(stays, ["t"]);
    subscriber.close();
    subscriber.close();
    assert.deepEqual(broker.publish("t", 1), { delivered: 1, seq: 1 });
    await tick();
    assert.equal(gone.texts.length, 0);
    assert.equal(gone.closedWith, null, "the sink is its owner's to close");
    assert.equal(broker.stats().subscribers, 1);
  });
});

Deno.test("Broker drops a subscriber whose sink throws and keeps serving the others", async () => {
  await withBroker({}, async (broker) => {
    const dead = new FakeSink();
    dead.refuse = true;
    const alive = new FakeSink();
    const subscriber = broker.subscribe(dead, ["t"]);
    broker.subscribe(alive, ["t"]);
    broker.publish("t", 1);
    await tick();
    assert.equal(subscriber.closed, true);
    broker.publish("t", 2);
    await tick();
    assert.deepEqual(alive.messages, [1, 2]);
    assert.equal(broker.stats().subscribers, 1);
  });
});

Deno.test("Broker.subscribe() refuses an invalid pattern or too many and subscribes nothing", async () => {
  await withBroker({ maxPatterns: 2 }, (broker) => {
    assert.throws(() => broker.subscribe(new FakeSink(), ["a", "b.>.c"]), TopicError);
    assert.throws(() => broker.subscribe(new FakeSink(), ["a", "b", "c"]), /at most 2 patterns/);
    assert.equal(broker.stats().subscribers, 0);
    assert.equal(broker.publish("a", 1).delivered, 0);
  });
});

Deno.test("Broker.publish() refuses a bad topic, a non-JSON value and a message over 64 KiB", async () => {
  await withBroker({}, (broker) => {
    assert.throws(() => broker.publish("a.*", 1), TopicError);
    assert.throws(() => broker.publish("a", undefined), /not JSON/);
    assert.throws(() => broker.publish("a", 1n), /not JSON/);
    // "é" is two bytes in UTF-8: 32767 of them plus the quotes make 65536 bytes.
    assert.equal(broker.publish("a", "é".repeat(32767)).seq, 1);
    assert.throws(() => broker.publish("a", "é".repeat(32768)), (error: unknown) => {
      assert.ok(error instanceof MessageTooLargeError);
      assert.match(error.message, /65538 bytes serialized, more than 65536/);
      return true;
    });
    assert.equal(broker.stats().published, 1, "refused messages are not counted");
  });
});

Deno.test("Broker.close() closes every sink with 1001 and refuses further use", () => {
  const broker = new Broker({ retryMs: 1 });
  const sink = new FakeSink();
  sink.bufferedAmount = Number.POSITIVE_INFINITY;
  broker.subscribe(sink, ["t"]);
  broker.publish("t", 1);
  broker.close();
  broker.close();
  assert.equal(sink.closedWith?.code, 1001);
  assert.deepEqual(broker.stats().subscribers, 0);
  assert.throws(() => broker.publish("t", 2), /stopped/);
  assert.throws(() => broker.subscribe(new FakeSink()), /stopped/);
});

Deno.test("new Broker() refuses limits that are not positive whole numbers", () => {
  assert.throws(() => new Broker({ buffer: 0 }), /Invalid buffer 0/);
  assert.throws(() => new Broker({ highWaterBytes: 1.5 }), /Invalid highWaterBytes/);
  assert.throws(() => new Broker({ bufferBytes: 1000 }), /at least maxMessageBytes/);
});
