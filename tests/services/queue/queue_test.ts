import assert from "node:assert/strict";
import { eventually } from "../../_eventually.ts";
import {
  QueueService,
  TooManyWaitersError,
  UnknownMessageError,
} from "../../../src/services/queue/queue.ts";
import { QueueStore } from "../../../src/services/queue/queue_store.ts";

/** A service on an in-memory store, closed after `fn`. */
async function withQueues(
  fn: (queues: QueueService) => Promise<void> | void,
  options: { capacity?: number; maxWaiters?: number } = {},
): Promise<void> {
  const store = QueueStore.open(
    ":memory:",
    options.capacity ? { capacity: options.capacity } : {},
  );
  const queues = new QueueService(
    store,
    options.maxWaiters ? { maxWaiters: options.maxWaiters } : {},
  );
  try {
    await fn(queues);
  } finally {
    queues.close();
  }
}

Deno.test("QueueService.get() answers at once with ready messages", async () => {
  await withQueues(async (queues) => {
    const id = queues.put("jobs", { task: 1 });
    const got = await queues.get("jobs", { waitMs: 10_000 });
    assert.deepEqual(got, [{ id, payload: { task: 1 }, deliveries: 1 }]);
  });
});

Deno.test("QueueService.get() with wait resolves as soon as a message is put", async () => {
  await withQueues(async (queues) => {
    const started = performance.now();
    const waiting = queues.get("jobs", { waitMs: 10_000 });
    await eventually(() => queues.waiting === 1);
    const id = queues.put("jobs", "hello");
    const got = await waiting;
    assert.deepEqual(got.map((m) => m.id), [id]);
    assert.ok(performance.now() - started < 5_000, "woken by the put, not by the timeout");
    assert.equal(queues.waiting, 0);
    assert.deepEqual(queues.stats("jobs"), {
      name: "jobs",
      ready: 0,
      inflight: 1,
      capacity: 10_000,
    });
  });
});

Deno.test("QueueService.get() answers [] when the wait ends without a message", async () => {
  await withQueues(async (queues) => {
    assert.deepEqual(await queues.get("jobs", { waitMs: 30 }), []);
    assert.equal(queues.waiting, 0);
    assert.deepEqual(await queues.get("jobs"), [], "no wait: answers at once");
  });
});

Deno.test("QueueService.get() serves waiting gets first come, first served, one put each", async () => {
  await withQueues(async (queues) => {
    const first = queues.get("jobs", { waitMs: 10_000 });
    const second = queues.get("jobs", { waitMs: 10_000 });
    const other = queues.get("other", { waitMs: 50 });
    const a = queues.put("jobs", "a");
    assert.deepEqual((await first).map((m) => m.id), [a]);
    assert.equal(queues.waiting, 2, "the second get still waits, the put was taken");
    const b = queues.put("jobs", "b");
    assert.deepEqual((await second).map((m) => m.id), [b]);
    assert.deepEqual(await other, [], "a put on one queue does not wake another");
  });
});

Deno.test("QueueService.get() wakes a waiting get when an in-flight message becomes visible again", async () => {
  await withQueues(async (queues) => {
    const id = queues.put("jobs", "retry me");
    await queues.get("jobs", { visibilityMs: 60 });
    const started = performance.now();
    const again = await queues.get("jobs", { waitMs: 5_000 });
    assert.deepEqual(again.map((m) => [m.id, m.deliveries]), [[id, 2]]);
    assert.ok(performance.now() - started < 2_000, "woken at the visibility deadline");
  });
});

Deno.test("QueueService.nack() wakes a waiting get with the released message", async () => {
  await withQueues(async (queues) => {
    const id = queues.put("jobs", "x");
    await queues.get("jobs", { visibilityMs: 60_000 });
    const waiting = queues.get("jobs", { waitMs: 10_000 });
    queues.nack("jobs", id);
    assert.deepEqual((await waiting).map((m) => [m.id, m.deliveries]), [[id, 2]]);
  });
});

Deno.test("QueueService.get() stops waiting and answers [] when its signal aborts", async () => {
  await withQueues(async (queues) => {
    const controller = new AbortController();
    const waiting = queues.get("jobs", { waitMs: 10_000, signal: controller.signal });
    controller.abort();
    assert.deepEqual(await waiting, []);
    assert.equal(queues.waiting, 0);
    queues.put("jobs", "later");
    assert.deepEqual(queues.stats("jobs").ready, 1, "an aborted get takes nothing");
  });
});

Deno.test("QueueService.get() throws TooManyWaitersError when maxWaiters gets already wait", async () => {
  await withQueues(async (queues) => {
    const waits = [queues.get("a", { waitMs: 10_000 }), queues.get("b", { waitMs: 10_000 })];
    await assert.rejects(queues.get("c", { waitMs: 10_000 }), TooManyWaitersError);
    assert.equal((await queues.get("c")).length, 0, "a get that does not wait is still served");
    queues.put("a", 1);
    queues.put("b", 2);
    await Promise.all(waits);
  }, { maxWaiters: 2 });
});

Deno.test("QueueService.close() answers every waiting get with no messages", async () => {
  const queues = new QueueService(QueueStore.open(":memory:"));
  let closed = 0;
  queues.onClose(() => closed++);
  const waiting = queues.get("jobs", { waitMs: Infinity });
  queues.close();
  queues.close();
  assert.deepEqual(await waiting, []);
  assert.equal(closed, 1);
  assert.equal(queues.closed, true);
});

Deno.test("QueueService.ack() throws UnknownMessageError when the message is already acked", async () => {
  await withQueues((queues) => {
    const id = queues.put("jobs", 1);
    queues.ack("jobs", id);
    assert.throws(() => queues.ack("jobs", id), UnknownMessageError);
    assert.throws(() => queues.nack("jobs", id), /unknown or already acknowledged/);
  });
});

Deno.test("QueueService methods refuse invalid names and ranges", async () => {
  await withQueues(async (queues) => {
    assert.throws(() => queues.put("bad name", 1), TypeError);
    assert.throws(() => queues.put("-x", 1), TypeError);
    assert.throws(() => queues.put("x".repeat(65), 1), TypeError);
    queues.put("a.b_c-9", 1);
    await assert.rejects(queues.get("jobs", { max: 0 }), RangeError);
    await assert.rejects(queues.get("jobs", { max: 101 }), RangeError);
    await assert.rejects(queues.get("jobs", { visibilityMs: -1 }), RangeError);
    await assert.rejects(queues.get("jobs", { waitMs: -1 }), RangeError);
    const store = QueueStore.open(":memory:");
    assert.throws(() => new QueueService(store, { maxWaiters: 0 }), RangeError);
    store.close();
  });
});

Deno.test("QueueService.ackMany() acknowledges a batch and names the IDs it does not hold", async () => {
  await withQueues(async (queues) => {
    const ids = [queues.put("jobs", 1), queues.put("jobs", 2), queues.put("jobs", 3)];
    await queues.get("jobs", { max: 3 });
    queues.ack("jobs", ids[1]!);
    assert.deepEqual(queues.ackMany("jobs", ids), { acked: [ids[0], ids[2]], unknown: [ids[1]] });
    assert.deepEqual(queues.stats("jobs"), {
      name: "jobs",
      ready: 0,
      inflight: 0,
      capacity: 10_000,
    });
    assert.throws(() => queues.ackMany("bad name", ids), TypeError);
  });
});
