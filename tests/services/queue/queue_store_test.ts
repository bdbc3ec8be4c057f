import assert from "node:assert/strict";
import { join } from "node:path";
import { StateLostError } from "../../../src/types/errors.ts";
import {
  KeyConflictError,
  PUT_KEY_RETENTION_MS,
  QueueFullError,
  QueueStore,
} from "../../../src/services/queue/queue_store.ts";

/** A store in a temporary directory with a clock the test moves; removed after `fn`. */
async function withStore(
  fn: (store: QueueStore, clock: { now: number }, path: string) => void | Promise<void>,
  options: { capacity?: number } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fabricd-queue-" });
  const clock = { now: 1_000_000 };
  const path = join(dir, "queue-que-00000001.db");
  const store = QueueStore.open(path, { ...options, now: () => clock.now });
  try {
    await fn(store, clock, path);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("QueueStore.put() returns increasing IDs and get() hands them out oldest first", async () => {
  await withStore((store) => {
    const ids = [store.put("jobs", { n: 1 }), store.put("jobs", "two"), store.put("jobs", null)];
    assert.ok(Number(ids[0]) < Number(ids[1]) && Number(ids[1]) < Number(ids[2]));
    const got = store.get("jobs", 10, 1000);
    assert.deepEqual(got, [
      { id: ids[0], payload: { n: 1 }, deliveries: 1 },
      { id: ids[1], payload: "two", deliveries: 1 },
      { id: ids[2], payload: null, deliveries: 1 },
    ]);
  });
});

Deno.test("QueueStore.get() takes at most max messages and keeps queues apart", async () => {
  await withStore((store) => {
    for (let i = 0; i < 5; i++) store.put("a", i);
    store.put("b", "other");
    assert.deepEqual(store.get("a", 2, 1000).map((m) => m.payload), [0, 1]);
    assert.deepEqual(store.get("a", 2, 1000).map((m) => m.payload), [2, 3]);
    assert.deepEqual(store.get("b", 10, 1000).map((m) => m.payload), ["other"]);
    assert.deepEqual(store.counts("a"), { ready: 1, inflight: 4 });
  });
});

Deno.test("QueueStore.get() hands an unacked message out again when its visibility timeout passes", async () => {
  await withStore((store, clock) => {
    const first = store.put("jobs", "a");
    const second = store.put("jobs", "b");
    assert.equal(store.get("jobs", 1, 5000)[0]!.id, first);
    clock.now += 4999;
    assert.deepEqual(store.get("jobs", 10, 5000).map((m) => m.id), [second]);
    assert.deepEqual(store.get("jobs", 10, 5000), [], "both are in flight");
    assert.equal(store.nextVisibleAt("jobs"), 1_000_000 + 5000);
    clock.now += 1;
    const again = store.get("jobs", 10, 5000);
    assert.deepEqual(again, [{ id: first, payload: "a", deliveries: 2 }]);
  });
});

Deno.test("QueueStore.ack() deletes a message so it is never delivered again", async () => {
  await withStore((store, clock) => {
    const id = store.put("jobs", "a");
    store.get("jobs", 1, 10);
    assert.equal(store.ack("jobs", id), true);
    clock.now += 60_000;
    assert.deepEqual(store.get("jobs", 1, 10), []);
    assert.equal(store.ack("jobs", id), false, "a second ack finds nothing");
    assert.deepEqual(store.counts("jobs"), { ready: 0, inflight: 0 });
  });
});

Deno.test("QueueStore.ack() and nack() find nothing when the ID is of another queue or malformed", async () => {
  await withStore((store) => {
    const id = store.put("a", 1);
    assert.equal(store.ack("b", id), false);
    assert.equal(store.nack("b", id), false);
    assert.equal(store.ack("a", "x1"), false);
    assert.equal(store.ack("a", "99999999999999999999"), false);
    assert.deepEqual(store.counts("a"), { ready: 1, inflight: 0 });
  });
});

Deno.test("QueueStore.nack() makes an in-flight message ready at once, ahead of newer ones", async () => {
  await withStore((store) => {
    const first = store.put("jobs", "a");
    store.get("jobs", 1, 60_000);
    store.put("jobs", "b");
    assert.equal(store.nack("jobs", first), true);
    assert.deepEqual(store.counts("jobs"), { ready: 2, inflight: 0 });
    assert.deepEqual(store.get("jobs", 10, 1000).map((m) => [m.payload, m.deliveries]), [
      ["a", 2],
      ["b", 1],
    ]);
  });
});

Deno.test("QueueStore.put() throws QueueFullError when the queue holds capacity unacked messages", async () => {
  await withStore((store) => {
    const ids = [store.put("jobs", 1), store.put("jobs", 2), store.put("jobs", 3)];
    store.get("jobs", 1, 1000); // in flight still counts
    assert.throws(() => store.put("jobs", 4), (error: unknown) => {
      assert.ok(error instanceof QueueFullError);
      assert.equal(
        error.message,
        'Queue "jobs" is full (3 messages): retry later or raise capacity',
      );
      return true;
    });
    store.put("other", "fine"); // capacity is per queue
    store.ack("jobs", ids[0]!);
    store.put("jobs", 4);
    assert.deepEqual(store.counts("jobs"), { ready: 3, inflight: 0 });
  }, { capacity: 3 });
});

Deno.test("QueueStore.open() keeps every acknowledged put and in-flight state across a reopen", async () => {
  await withStore((store, clock, path) => {
    const ids = Array.from({ length: 5 }, (_, i) => store.put("jobs", { i }));
    store.get("jobs", 2, 10_000);
    store.ack("jobs", ids[0]!);
    store.close();
    const again = QueueStore.open(path, { now: () => clock.now, mustExist: true });
    try {
      assert.deepEqual(again.counts("jobs"), { ready: 3, inflight: 1 });
      const next = again.put("jobs", "after");
      assert.ok(Number(next) > Number(ids[4]), "IDs are never reused");
      clock.now += 10_000;
      assert.deepEqual(again.get("jobs", 10, 1000).map((m) => m.id), [...ids.slice(1), next]);
    } finally {
      again.close();
    }
  });
});

Deno.test("QueueStore.open() throws StateLostError when a restarted queue's file is missing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fabricd-queue-" });
  try {
    const path = join(dir, "queue-que-00000002.db");
    assert.throws(() => QueueStore.open(path, { mustExist: true }), StateLostError);
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound, "no empty store was made");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("QueueStore.open() throws RangeError when capacity is not a positive whole number", () => {
  assert.throws(() => QueueStore.open(":memory:", { capacity: 0 }), RangeError);
  assert.throws(() => QueueStore.open(":memory:", { capacity: 1.5 }), RangeError);
});

Deno.test("QueueStore methods throw a clear error when the store is closed", () => {
  const store = QueueStore.open(":memory:");
  store.close();
  store.close();
  assert.throws(() => store.put("jobs", 1), /closed/);
});

Deno.test("QueueStore.ackMany() deletes the held messages in one go and leaves out the rest", async () => {
  await withStore((store) => {
    const ids = [store.put("jobs", "a"), store.put("jobs", "b"), store.put("jobs", "c")];
    const other = store.put("other", "x");
    store.get("jobs", 10, 1000);
    const acked = store.ackMany("jobs", [ids[2]!, "999", ids[0]!, other, "x", ids[0]!]);
    assert.deepEqual(acked, [ids[2], ids[0]], "unknown, foreign, invalid and repeated IDs are not");
    assert.deepEqual(store.counts("jobs"), { ready: 0, inflight: 1 });
    assert.deepEqual(store.counts("other"), { ready: 1, inflight: 0 });
    assert.deepEqual(store.ackMany("jobs", []), []);
  });
});

Deno.test("QueueStore.ackMany() is durable: the acks are gone after the file is opened again", async () => {
  await withStore((store, _clock, path) => {
    const ids = [store.put("jobs", 1), store.put("jobs", 2), store.put("jobs", 3)];
    store.ackMany("jobs", ids.slice(0, 2));
    const reopened = QueueStore.open(path);
    try {
      assert.deepEqual(reopened.get("jobs", 10, 1000).map((m) => m.id), [ids[2]]);
    } finally {
      reopened.close();
    }
  });
});

Deno.test("QueueStore.putOnce() stores a repeated put once, across a reopen and after the ack", async () => {
  await withStore((store, clock, path) => {
    const first = store.putOnce("tasks", { id: "tsk-1" }, "tsk-1");
    assert.deepEqual(store.putOnce("tasks", { id: "tsk-1" }, "tsk-1"), {
      id: first.id,
      duplicate: true,
    });
    assert.equal(first.duplicate, false);
    assert.deepEqual(store.counts("tasks"), { ready: 1, inflight: 0 });
    assert.throws(() => store.putOnce("tasks", { id: "tsk-other" }, "tsk-1"), KeyConflictError);
    // The same key on another queue is another put.
    assert.equal(store.putOnce("other", { id: "tsk-1" }, "tsk-1").duplicate, false);
    store.close();
    const again = QueueStore.open(path, { now: () => clock.now });
    try {
      assert.deepEqual(again.putOnce("tasks", { id: "tsk-1" }, "tsk-1"), {
        id: first.id,
        duplicate: true,
      });
      assert.ok(again.ack("tasks", first.id));
      assert.equal(again.putOnce("tasks", { id: "tsk-1" }, "tsk-1").duplicate, true);
      assert.deepEqual(again.counts("tasks"), { ready: 0, inflight: 0 });
      clock.now += PUT_KEY_RETENTION_MS + 1;
      assert.equal(again.putOnce("tasks", { id: "tsk-1" }, "tsk-1").duplicate, false);
    } finally {
      again.close();
    }
  });
});

Deno.test("QueueStore.putOnce() answers a repeated put even when the queue is full, and stores nothing new", async () => {
  await withStore((store) => {
    const first = store.putOnce("tasks", "a", "k-a");
    assert.throws(() => store.putOnce("tasks", "b", "k-b"), QueueFullError);
    assert.deepEqual(store.putOnce("tasks", "a", "k-a"), { id: first.id, duplicate: true });
    // The refused put left no key behind: it is refused again, not a duplicate.
    assert.throws(() => store.putOnce("tasks", "b", "k-b"), QueueFullError);
  }, { capacity: 1 });
});
