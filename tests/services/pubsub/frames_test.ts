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
