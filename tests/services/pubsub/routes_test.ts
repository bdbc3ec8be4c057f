import assert from "node:assert/strict";
import { Broker } from "../../../src/services/pubsub/mod.ts";
import { signedRequest } from "../../api/_signed.ts";
import { FakeSink } from "./_fake_sink.ts";
import { keys, pubsubApp, SERVICE } from "./_served.ts";

function fixture(running = true) {
  const broker = new Broker();
  const app = pubsubApp(() => running ? broker : null);
  const send = (method: string, path: string, body?: unknown) =>
    signedRequest(app, keys, {
      method,
      path,
      target: SERVICE,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  return { app, broker, send };
}

Deno.test("POST /v1/pubsub/publish delivers to subscribers and answers delivered and seq, signed", async () => {
  const { broker, send } = fixture();
  try {
    const sink = new FakeSink();
    broker.subscribe(sink, ["tasks.*.done"]);
    const first = await send("POST", "/v1/pubsub/publish", {
      topic: "tasks.agt-1.done",
      message: { exit: 0 },
    });
    assert.equal(first.status, 200);
    assert.ok(first.answerVerified);
    assert.deepEqual(first.json, { delivered: 1, seq: 1 });
    const second = await send("POST", "/v1/pubsub/publish", {
      topic: "tasks.agt-1.done",
      message: null,
    });
    assert.deepEqual(second.json, { delivered: 1, seq: 2 });
    assert.deepEqual(sink.messages, [{ exit: 0 }, null]);
  } finally {
    broker.close();
  }
});

Deno.test("POST /v1/pubsub/publish answers 400 naming the field for a bad topic or body", async () => {
  const { broker, send } = fixture();
  try {
    const cases: [unknown, RegExp][] = [
      [{ topic: "a.*", message: 1 }, /Invalid field "topic"/],
      [{ topic: "a..b", message: 1 }, /Invalid field "topic"/],
      // A missing field is called required, with what it must be: not the validator's "Invalid input".
      [{ topic: "a" }, /^Invalid field "message": required: give any JSON value$/],
      [{ message: 1 }, /^Invalid field "topic": required: give a string$/],
      [{ topic: "a", message: 1, extra: true }, /Invalid field/],
    ];
    for (const [body, expected] of cases) {
      const answer = await send("POST", "/v1/pubsub/publish", body);
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.match(String(answer.json.error), expected);
    }
    assert.equal(broker.stats().published, 0);
  } finally {
    broker.close();
  }
});

Deno.test("POST /v1/pubsub/publish answers 413 for a message over 64 KiB serialized", async () => {
  const { broker, send } = fixture();
  try {
    const answer = await send("POST", "/v1/pubsub/publish", {
      topic: "big",
      message: { blob: "x".repeat(64 * 1024) },
    });
    assert.equal(answer.status, 413);
    assert.ok(answer.answerVerified);
    assert.match(String(answer.json.error), /more than 65536: send a smaller message/);
    assert.equal(broker.stats().published, 0);
  } finally {
    broker.close();
  }
});

Deno.test("GET /v1/pubsub answers the broker's counters", async () => {
  const { broker, send } = fixture();
  try {
    broker.subscribe(new FakeSink(), [">"]);
    broker.publish("a", 1);
    broker.publish("b", 2);
    const answer = await send("GET", "/v1/pubsub");
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json, { subscribers: 1, topics: 2, published: 2, dropped: 0 });
  } finally {
    broker.close();
  }
});

Deno.test("GET /v1/pubsub/ws answers 400 for a bad pattern or batch value and 426 without an upgrade", async () => {
  const { broker, send } = fixture();
  try {
    const bad = await send("GET", "/v1/pubsub/ws?topics=a.*,b.%3E.c");
    assert.equal(bad.status, 400);
    assert.match(String(bad.json.error), /Invalid query "topics": Invalid pattern "b\.>\.c"/);
    const batch = await send("GET", "/v1/pubsub/ws?topics=a.*&batch=yes");
    assert.equal(batch.status, 400);
    assert.match(String(batch.json.error), /Invalid query "batch": give 1 or 0, got "yes"/);
    const plain = await send("GET", "/v1/pubsub/ws?topics=a.*");
    assert.equal(plain.status, 426);
    assert.match(String(plain.json.error), /WebSocket handshake/);
    assert.equal(broker.stats().subscribers, 0);
  } finally {
    broker.close();
  }
});

Deno.test("pubsub routes refuse unsigned requests with 401 and publish nothing", async () => {
  const { app, broker } = fixture();
  try {
    const answer = await app.request("/v1/pubsub/publish", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ topic: "a", message: 1 }),
    });
    assert.equal(answer.status, 401);
    const ws = await app.request("/v1/pubsub/ws", {
      headers: { upgrade: "websocket", connection: "Upgrade" },
    });
    assert.equal(ws.status, 401);
    assert.equal(broker.stats().published, 0);
  } finally {
    broker.close();
  }
});

Deno.test("pubsub routes answer 503 while the role is not running", async () => {
  const { broker, send } = fixture(false);
  try {
    const answer = await send("POST", "/v1/pubsub/publish", { topic: "a", message: 1 });
    assert.equal(answer.status, 503);
    assert.match(String(answer.json.error), /retry in a moment/);
    assert.equal((await send("GET", "/v1/pubsub/ws")).status, 503);
  } finally {
    broker.close();
  }
});
