import assert from "node:assert/strict";
import { handleClientFrame } from "../../../src/services/pubsub/frames.ts";
import { Broker } from "../../../src/services/pubsub/mod.ts";
import { FakeSink } from "./_fake_sink.ts";

function fixture() {
  const broker = new Broker();
  const sink = new FakeSink();
  const subscriber = broker.subscribe(sink, []);
  const send = (frame: unknown) =>
    handleClientFrame(
      broker,
      subscriber,
      typeof frame === "string" ? frame : JSON.stringify(frame),
    );
  return { broker, sink, subscriber, send };
}

Deno.test("handleClientFrame() subscribes, publishes and unsubscribes for the socket's subscriber", () => {
  const { broker, sink, subscriber, send } = fixture();
  try {
    send({ op: "subscribe", pattern: "a.*" });
    assert.deepEqual(subscriber.patterns, ["a.*"]);
    send({ op: "publish", topic: "a.b", message: { hello: ["world"] } });
    send({ op: "unsubscribe", pattern: "a.*" });
    send({ op: "publish", topic: "a.b", message: 2 });
    assert.deepEqual(sink.frames, [
      { op: "message", topic: "a.b", seq: 1, message: { hello: ["world"] } },
    ]);
    assert.equal(broker.stats().published, 2);
  } finally {
    broker.close();
  }
});

Deno.test("handleClientFrame() answers a bad frame with an error frame and keeps the socket", () => {
  const { broker, sink, subscriber, send } = fixture();
  try {
    const cases: [unknown, RegExp][] = [
      ["{not json", /not JSON/],
      [{ op: "shout" }, /Invalid field "op"/],
      ['"just a string"', /Invalid field "\(frame\)"/],
      [{ op: "publish", topic: "a" }, /Invalid field "message"/],
      [{ op: "publish", topic: "a.*", message: 1 }, /Invalid topic "a\.\*"/],
      [{ op: "subscribe", pattern: "a.>.b" }, /Invalid pattern "a\.>\.b"/],
      [{ op: "subscribe", pattern: "a", extra: 1 }, /Invalid field/],
      [{ op: "unsubscribe", pattern: "z" }, /Not subscribed to "z"/],
      [{ op: "publish", topic: "a", message: "x".repeat(65_600) }, /more than 65536/],
      ["x".repeat(70_000), /Frame is too large/],
    ];
    for (const [frame, expected] of cases) {
      sink.texts = [];
      send(frame);
      assert.equal(sink.frames.length, 1, JSON.stringify(frame).slice(0, 80));
      const answer = sink.frames[0]!;
      assert.equal(answer.op, "error");
      assert.match(answer.op === "error" ? answer.message : "", expected);
    }
    sink.texts = [];
    handleClientFrame(broker, subscriber, new Uint8Array([1, 2]).buffer);
    assert.match(sink.texts[0] ?? "", /text frames/);
    assert.equal(subscriber.closed, false);
    assert.equal(broker.stats().published, 0);
  } finally {
    broker.close();
  }
});

Deno.test("handleClientFrame() acts on the frames of a batch in order, refusing each bad one alone", () => {
  const { broker, sink, subscriber, send } = fixture();
  try {
    send({
      op: "batch",
      frames: [
        { op: "subscribe", pattern: "t.>" },
        { op: "publish", topic: "t.a", message: 1 },
        { op: "publish", topic: "t.*", message: 2 },
        { op: "batch", frames: [{ op: "publish", topic: "t.b", message: 3 }] },
        { op: "publish", topic: "t.b", message: 4 },
      ],
    });
    assert.deepEqual(subscriber.patterns, ["t.>"]);
    assert.deepEqual(sink.frames.map((f) => f.op === "message" ? f.message : f.op), [
      1,
      "error",
      "error",
      4,
    ]);
    const errors = sink.frames.filter((f) => f.op === "error").map((f) =>
      f.op === "error" ? f.message : ""
    );
    assert.match(errors[0]!, /^Batch frame 2: Invalid topic "t\.\*"/);
    assert.match(errors[1]!, /^Batch frame 3: Invalid batch: .*no batch inside/);
    assert.equal(broker.stats().published, 2);
    for (const bad of [{ op: "batch", frames: [] }, { op: "batch", frames: Array(101).fill(1) }]) {
      sink.texts = [];
      send(bad);
      assert.equal(sink.frames.length, 1);
      assert.match(sink.frames[0]!.op === "error" ? sink.frames[0]!.message : "", /Invalid batch/);
    }
    assert.equal(broker.stats().published, 2);
  } finally {
    broker.close();
  }
});
