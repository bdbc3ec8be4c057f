import assert from "node:assert/strict";
import { QueueFullError, QueueStore } from "../../../src/services/queue/queue_store.ts";

Deno.test("QueueStore keeps a count only for queues that hold messages", () => {
  const store = QueueStore.open(":memory:", { capacity: 2 });
  try {
    for (let i = 0; i < 1000; i++) {
      store.counts(`never-${i}`);
      store.get(`empty-${i}`, 1, 0);
    }
    assert.equal(store.countedQueues, 0);
    const a = store.put("jobs", "a");
    store.put("jobs", "b");
    assert.equal(store.countedQueues, 1);
    assert.throws(() => store.put("jobs", "c"), QueueFullError);
    assert.deepEqual(store.ackMany("jobs", [a, "999"]), [a]);
    assert.deepEqual(store.counts("jobs"), { ready: 1, inflight: 0 });
    assert.equal(store.countedQueues, 1);
    const [b] = store.get("jobs", 1, 60_000);
    assert.equal(store.ack("jobs", b!.id), true);
    assert.equal(store.countedQueues, 0, "an emptied queue's count is dropped");
    // Counted again from the file, still right: two fit, the third does not.
    store.put("jobs", "d");
    store.put("jobs", "e");
    assert.throws(() => store.put("jobs", "f"), QueueFullError);
    assert.deepEqual(store.counts("jobs"), { ready: 2, inflight: 0 });
  } finally {
    store.close();
  }
});

Deno.test("QueueStore counts right after a batch that is rolled back drops its counts", () => {
  const store = QueueStore.open(":memory:", { capacity: 2 });
  try {
    store.put("jobs", "a");
    assert.throws(() =>
      store.batch(() => {
        store.put("jobs", "b");
        store.put("other", "x");
        throw new Error("no commit");
      })
    );
    assert.equal(store.countedQueues, 0);
    assert.deepEqual(store.counts("other"), { ready: 0, inflight: 0 });
    store.put("jobs", "b");
    assert.equal(store.countedQueues, 1);
    assert.throws(() => store.put("jobs", "c"), QueueFullError);
    assert.deepEqual(store.counts("jobs"), { ready: 2, inflight: 0 });
  } finally {
    store.close();
  }
});
