import assert from "node:assert/strict";
import { eventually } from "../../_eventually.ts";
import { type QueueApp, queueApp } from "./_app.ts";

async function withApp(
  fn: (q: QueueApp) => Promise<void>,
  options: { capacity?: number; maxWaiters?: number; running?: boolean } = {},
): Promise<void> {
  const q = await queueApp(options);
  try {
    await fn(q);
  } finally {
    q.close();
  }
}

Deno.test("queueRoutes() POST messages answers 201 with the ID, signed", async () => {
  await withApp(async ({ request }) => {
    const put = await request("POST", "/v1/queue/jobs/messages", { payload: { task: 7 } });
    assert.equal(put.status, 201);
    assert.match(String(put.json.id), /^[1-9][0-9]*$/);
    assert.ok(put.verified, "the answer is signed by the fabric");
    const nullPut = await request("POST", "/v1/queue/jobs/messages", { payload: null });
    assert.equal(nullPut.status, 201, "null is a JSON value too");
  });
});

Deno.test("queueRoutes() GET messages hands out puts in order with their deliveries", async () => {
  await withApp(async ({ request }) => {
    const ids: string[] = [];
    for (const payload of ["a", { b: [1, 2] }, 3]) {
      ids.push(String((await request("POST", "/v1/queue/jobs/messages", { payload })).json.id));
    }
    const one = await request("GET", "/v1/queue/jobs/messages");
    assert.equal(one.status, 200);
    assert.deepEqual(one.json, { messages: [{ id: ids[0], payload: "a", deliveries: 1 }] });
    const rest = await request("GET", "/v1/queue/jobs/messages?max=10&visibility=60000");
    assert.deepEqual(rest.json.messages, [
      { id: ids[1], payload: { b: [1, 2] }, deliveries: 1 },
      { id: ids[2], payload: 3, deliveries: 1 },
    ]);
    const none = await request("GET", "/v1/queue/jobs/messages?max=10");
    assert.deepEqual(none.json, { messages: [] });
    const stats = await request("GET", "/v1/queue/jobs");
    assert.deepEqual(stats.json, { name: "jobs", ready: 0, inflight: 3, capacity: 10_000 });
  });
});

Deno.test("queueRoutes() ack answers 200 once, then 404; nack makes a message ready again", async () => {
  await withApp(async ({ request }) => {
    const a = String((await request("POST", "/v1/queue/jobs/messages", { payload: "a" })).json.id);
    const b = String((await request("POST", "/v1/queue/jobs/messages", { payload: "b" })).json.id);
    await request("GET", "/v1/queue/jobs/messages?max=2");
    const ack = await request("POST", `/v1/queue/jobs/messages/${a}/ack`);
    assert.equal(ack.status, 200);
    assert.deepEqual(ack.json, { acked: true });
    const again = await request("POST", `/v1/queue/jobs/messages/${a}/ack`);
    assert.equal(again.status, 404);
    assert.match(String(again.json.error), /unknown or already acknowledged/);
    assert.ok(again.verified);
    const unknown = await request("POST", "/v1/queue/jobs/messages/424242/nack");
    assert.equal(unknown.status, 404);
    const wrongQueue = await request("POST", `/v1/queue/other/messages/${b}/ack`);
    assert.equal(wrongQueue.status, 404);
    const nack = await request("POST", `/v1/queue/jobs/messages/${b}/nack`);
    assert.equal(nack.status, 200);
    assert.deepEqual(nack.json, { nacked: true });
    const redelivered = await request("GET", "/v1/queue/jobs/messages");
    assert.deepEqual(redelivered.json.messages, [{ id: b, payload: "b", deliveries: 2 }]);
  });
});

Deno.test("queueRoutes() POST acks acknowledges a batch and lists the IDs it does not hold", async () => {
  await withApp(async ({ request }) => {
    const ids: string[] = [];
    for (const payload of ["a", "b"]) {
      ids.push(String((await request("POST", "/v1/queue/jobs/messages", { payload })).json.id));
    }
    await request("GET", "/v1/queue/jobs/messages?max=2");
    const acks = await request("POST", "/v1/queue/jobs/acks", { ids: [...ids, "424242"] });
    assert.equal(acks.status, 200);
    assert.ok(acks.verified);
    assert.deepEqual(acks.json, { acked: ids, unknown: ["424242"] });
    const stats = await request("GET", "/v1/queue/jobs");
    assert.deepEqual(stats.json, { name: "jobs", ready: 0, inflight: 0, capacity: 10_000 });
    const none = await request("POST", "/v1/queue/jobs/acks", { ids: [] });
    assert.equal(none.status, 400);
    assert.match(String(none.json.error), /"ids"/);
    const many = await request("POST", "/v1/queue/jobs/acks", {
      ids: Array.from({ length: 101 }, (_, i) => String(i + 1)),
    });
    assert.equal(many.status, 400);
  });
});

Deno.test("queueRoutes() answers 400 naming the field when the input is invalid", async () => {
  await withApp(async ({ request, queues }) => {
    const cases: [string, string, unknown, RegExp][] = [
      ["POST", "/v1/queue/bad%20name/messages", { payload: 1 }, /"name"/],
      ["POST", "/v1/queue/.hidden/messages", { payload: 1 }, /"name"/],
      ["POST", `/v1/queue/${"x".repeat(65)}/messages`, { payload: 1 }, /"name"/],
      ["POST", "/v1/queue/jobs/messages", {}, /"payload"/],
      ["POST", "/v1/queue/jobs/messages", { payload: 1, extra: 2 }, /Invalid field/],
      ["POST", "/v1/queue/jobs/messages", "{not json", /./],
      ["GET", "/v1/queue/jobs/messages?max=0", undefined, /"max"/],
      ["GET", "/v1/queue/jobs/messages?max=101", undefined, /"max"/],
      ["GET", "/v1/queue/jobs/messages?max=two", undefined, /"max".*whole number/],
      ["GET", "/v1/queue/jobs/messages?wait=30001", undefined, /"wait"/],
      ["GET", "/v1/queue/jobs/messages?visibility=-5", undefined, /"visibility"/],
      ["GET", "/v1/queue/jobs/messages?waitMs=5", undefined, /"waitMs".*not a known field/],
      ["POST", "/v1/queue/jobs/messages/abc/ack", undefined, /"id"/],
      ["POST", "/v1/queue/jobs/messages/0/nack", undefined, /"id"/],
      ["GET", "/v1/queue/bad!/ws", undefined, /"name"/],
    ];
    for (const [method, path, body, error] of cases) {
      const answer = await request(method, path, body);
      assert.equal(answer.status, 400, `${method} ${path} ${JSON.stringify(body)}`);
      assert.match(String(answer.json.error), error, `${method} ${path}`);
    }
    assert.equal(queues.stats("jobs").ready, 0, "nothing invalid was stored");
  });
});

Deno.test("queueRoutes() answers 429 with Retry-After when the queue is full", async () => {
  await withApp(async ({ request }) => {
    for (let i = 0; i < 2; i++) {
      assert.equal((await request("POST", "/v1/queue/q/messages", { payload: i })).status, 201);
    }
    const full = await request("POST", "/v1/queue/q/messages", { payload: 2 });
    assert.equal(full.status, 429);
    assert.equal(full.json.error, 'Queue "q" is full (2 messages): retry later or raise capacity');
    assert.equal(full.headers.get("retry-after"), "1");
    assert.ok(full.verified);
    const [first] = (await request("GET", "/v1/queue/q/messages")).json.messages as {
      id: string;
    }[];
    await request("POST", `/v1/queue/q/messages/${first!.id}/ack`);
    assert.equal((await request("POST", "/v1/queue/q/messages", { payload: 2 })).status, 201);
  }, { capacity: 2 });
});

Deno.test("queueRoutes() GET messages with wait answers as soon as a message is put", async () => {
  await withApp(async ({ request, queues }) => {
    const started = performance.now();
    const waiting = request("GET", "/v1/queue/jobs/messages?wait=20000");
    await eventually(() => queues.waiting > 0);
    const put = await request("POST", "/v1/queue/jobs/messages", { payload: "wake" });
    const got = await waiting;
    assert.equal(got.status, 200);
    assert.deepEqual(got.json.messages, [{ id: put.json.id, payload: "wake", deliveries: 1 }]);
    assert.ok(performance.now() - started < 10_000, "woken by the put");
    const timedOut = await request("GET", "/v1/queue/jobs/messages?wait=20");
    assert.deepEqual(timedOut.json, { messages: [] });
  });
});

Deno.test("queueRoutes() answers 503 with Retry-After when too many gets wait", async () => {
  await withApp(async ({ request, queues }) => {
    const waiting = request("GET", "/v1/queue/a/messages?wait=20000");
    await eventually(() => queues.waiting > 0);
    const refused = await request("GET", "/v1/queue/b/messages?wait=1000");
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get("retry-after"), "1");
    assert.match(String(refused.json.error), /Too many consumers are waiting/);
    await request("POST", "/v1/queue/a/messages", { payload: 1 });
    assert.equal((await waiting).status, 200);
  }, { maxWaiters: 1 });
});

Deno.test("queueRoutes() answers 503 while the queue role is not started", async () => {
  await withApp(async ({ request }) => {
    const answer = await request("GET", "/v1/queue/jobs");
    assert.equal(answer.status, 503);
    assert.match(String(answer.json.error), /retry in a moment/);
  }, { running: false });
});

Deno.test("queueRoutes() answers 426 to a plain GET of the WebSocket route", async () => {
  await withApp(async ({ request }) => {
    const answer = await request("GET", "/v1/queue/jobs/ws");
    assert.equal(answer.status, 426);
    assert.match(String(answer.json.error), /Upgrade: websocket/);
  });
});

Deno.test("queueRoutes() refuses unsigned requests with 401 and stores nothing", async () => {
  await withApp(async ({ app, queues }) => {
    const answer = await app.request("/v1/queue/jobs/messages", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ payload: 1 }),
    });
    assert.equal(answer.status, 401);
    assert.equal(queues.stats("jobs").ready, 0);
  });
});

Deno.test("queueRoutes() POST messages with a key stores a repeated put once and says so", async () => {
  await withApp(async ({ request, queues }) => {
    const body = { payload: { id: "tsk-1" }, key: "tsk-1" };
    const first = await request("POST", "/v1/queue/tasks/messages", body);
    assert.equal(first.status, 201);
    assert.deepEqual(Object.keys(first.json), ["id"]);
    const again = await request("POST", "/v1/queue/tasks/messages", body);
    assert.equal(again.status, 200);
    assert.deepEqual(again.json, { id: first.json.id, duplicate: true });
    assert.equal(queues.stats("tasks").ready, 1);
    const other = await request("POST", "/v1/queue/tasks/messages", {
      payload: { id: "tsk-2" },
      key: "tsk-1",
    });
    assert.equal(other.status, 409);
    assert.match(String(other.json.error), /Idempotency key "tsk-1" .* different payload/);
    const bad = await request("POST", "/v1/queue/tasks/messages", { payload: 1, key: "a b" });
    assert.equal(bad.status, 400);
    assert.match(String(bad.json.error), /"key"/);
    assert.equal(queues.stats("tasks").ready, 1, "refused puts stored nothing");
  });
});
