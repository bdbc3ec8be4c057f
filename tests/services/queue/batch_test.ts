import assert from "node:assert/strict";
import { join } from "node:path";
import { QueueSocket } from "../../../src/services/queue/_ws_session.ts";
import { QueueService } from "../../../src/services/queue/queue.ts";
import { QueueFullError, QueueStore } from "../../../src/services/queue/queue_store.ts";
import type { QueueServerFrame, TaskReport } from "../../../src/types/queue_wire.ts";

const DONE: TaskReport = { state: "DONE", agent: "agt-1", at: 1_000_500, exitCode: 0 };

function task(id: string): { id: string; executable: string } {
  return { id, executable: "/bin/true" };
}

/** A socket on queue "jobs" of an in-memory service that asked for batches. */
function batchSocket(capacity = 100) {
  const queues = new QueueService(QueueStore.open(":memory:", { capacity }));
  const sent: QueueServerFrame[] = [];
  const socket = new QueueSocket(
    queues,
    "jobs",
    {
      send: (frame) => sent.push(frame),
      close: () => {},
      bufferedAmount: 0,
    },
    1024 * 1024,
    { batch: true },
  );
  return { queues, socket, sent };
}

Deno.test("QueueSocket greets a socket that asked for batches with its features, others not", () => {
  const { queues, sent } = batchSocket();
  assert.deepEqual(sent, [{ op: "hello", features: ["batch", "report-ack"] }]);
  const plain: QueueServerFrame[] = [];
  new QueueSocket(queues, "jobs", {
    send: (f) => plain.push(f),
    close: () => {},
    bufferedAmount: 0,
  }, 1024);
  assert.deepEqual(plain, []);
  queues.close();
});

Deno.test("QueueSocket.receive() answers a batch in one frame, in order, each error on its own", () => {
  const { queues, socket, sent } = batchSocket(2);
  sent.length = 0;
  socket.receive(JSON.stringify({
    op: "batch",
    frames: [
      { op: "put", payload: task("t1"), ref: 1 },
      { op: "put", payload: task("t2"), ref: 2 },
      { op: "put", payload: task("t3"), ref: 3 },
      { op: "ack", id: "x", ref: 4 },
      { op: "get", max: 5, wait: 1000, ref: 5 },
    ],
  }));
  assert.equal(sent.length, 1);
  const batch = sent[0] as { op: string; frames: QueueServerFrame[] };
  assert.equal(batch.op, "batch");
  assert.deepEqual(batch.frames.map((f) => [f.op, "ref" in f ? f.ref : null]), [
    ["put-ok", 1],
    ["put-ok", 2],
    ["error", 3],
    ["error", 4],
    ["messages", 5],
  ]);
  assert.equal((batch.frames[2] as { full?: boolean }).full, true);
  const got = batch.frames[4] as { messages: { payload: unknown }[] };
  assert.deepEqual(got.messages.map((m) => m.payload), [task("t1"), task("t2")]);
  assert.equal(queues.history.find("jobs", "t3"), null, "the refused put left nothing");
  queues.close();
});

Deno.test("QueueSocket.receive() refuses a batch inside a batch and an empty batch", () => {
  const { queues, socket, sent } = batchSocket();
  sent.length = 0;
  socket.receive(JSON.stringify({ op: "batch", frames: [] }));
  assert.match((sent[0] as { message: string }).message, /"frames": must hold at least one/);
  socket.receive(JSON.stringify({
    op: "batch",
    frames: [{ op: "batch", frames: [{ op: "put", payload: 1 }], ref: 9 }],
  }));
  assert.equal(sent[1]?.op, "error");
  assert.equal((sent[1] as { ref?: number }).ref, 9);
  assert.equal(queues.stats("jobs").ready, 0);
  queues.close();
});

Deno.test("QueueSocket.receive() report with ack records the outcome, then deletes the message", async () => {
  const { queues, socket, sent } = batchSocket();
  const id = queues.put("jobs", task("t1"));
  await queues.get("jobs");
  sent.length = 0;
  socket.receive(JSON.stringify({ op: "report", task: "t1", report: DONE, ack: id, ref: 1 }));
  assert.deepEqual(sent[0], { op: "report-ok", task: "t1", state: "DONE", acked: true, ref: 1 });
  assert.equal(
    queues.history.find("jobs", "t1")?.state,
    "DONE",
    "not ENDED: the report came first",
  );
  assert.deepEqual(queues.stats("jobs"), { name: "jobs", ready: 0, inflight: 0, capacity: 100 });
  socket.receive(JSON.stringify({ op: "report", task: "t1", report: DONE, ack: id, ref: 2 }));
  assert.deepEqual(sent[1], { op: "report-ok", task: "t1", state: "DONE", acked: false, ref: 2 });
  const other = queues.put("jobs", { not: "a task" });
  socket.receive(JSON.stringify({ op: "report", task: "t9", report: DONE, ack: other, ref: 3 }));
  assert.equal((sent[2] as { unknown?: boolean }).unknown, true);
  assert.equal(queues.stats("jobs").ready, 1, "no history row: nothing acknowledged");
  queues.close();
});

Deno.test("QueueService.batch() serves a waiting get only once the batch is done", async () => {
  const queues = new QueueService(QueueStore.open(":memory:"));
  const waiting = queues.get("jobs", { waitMs: 5000 });
  let served = false;
  waiting.then(() => served = true);
  queues.batch(() => {
    queues.put("jobs", "a");
    assert.equal(queues.stats("jobs").ready, 1, "not handed out inside the batch");
  });
  const messages = await waiting;
  assert.ok(served);
  assert.deepEqual(messages.map((m) => m.payload), ["a"]);
  queues.close();
});

Deno.test("QueueStore.batch() keeps the calls that worked when one throws, and none when the work throws", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fabricd-queue-batch-" });
  const path = join(dir, "queue.db");
  try {
    const store = QueueStore.open(path, { capacity: 2 });
    store.batch(() => {
      store.put("jobs", 1);
      store.put("jobs", 2);
      assert.throws(() => store.put("jobs", 3), QueueFullError);
    });
    assert.throws(() =>
      store.batch(() => {
        store.ack("jobs", "1");
        throw new Error("boom");
      }), /boom/);
    assert.deepEqual(store.counts("jobs"), { ready: 2, inflight: 0 }, "the ack was rolled back");
    assert.throws(() => store.put("jobs", 4), QueueFullError, "the count came back with it");
    store.ack("jobs", "1");
    store.put("jobs", 4);
    store.close();
    const reopened = QueueStore.open(path, { capacity: 2 });
    assert.deepEqual(reopened.counts("jobs"), { ready: 2, inflight: 0 });
    assert.throws(() => reopened.put("jobs", 5), QueueFullError);
    reopened.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("QueueStore.put() counts the queue once and keeps the count through acks and cancels", () => {
  const store = QueueStore.open(":memory:", { capacity: 3 });
  store.put("jobs", task("t1"));
  store.put("jobs", task("t2"));
  store.put("jobs", task("t3"));
  assert.throws(() => store.put("jobs", 4), QueueFullError);
  assert.equal(store.cancelTask("jobs", "t1").outcome, "canceled");
  store.put("jobs", task("t4"));
  const [taken] = store.get("jobs", 1, 1000);
  assert.equal(store.ackMany("jobs", [taken!.id, taken!.id, "999"]).length, 1);
  store.put("jobs", task("t5"));
  assert.throws(() => store.put("jobs", 6), QueueFullError);
  assert.deepEqual(store.counts("jobs"), { ready: 3, inflight: 0 });
  store.close();
});

Deno.test("QueueSocket.receive() takes a ref on a batch and repeats it on the batch's one answer, even with one answer or none", () => {
  const { queues, socket, sent } = batchSocket();
  sent.length = 0;
  socket.receive(JSON.stringify({
    op: "batch",
    ref: 9,
    frames: [{ op: "put", payload: 1, ref: 1 }, { op: "put", payload: 2 }],
  }));
  assert.deepEqual(sent, [{
    op: "batch",
    frames: [{ op: "put-ok", id: "1", ref: 1 }, { op: "put-ok", id: "2" }],
    ref: 9,
  }]);
  socket.receive(JSON.stringify({ op: "batch", ref: "one", frames: [{ op: "ack", id: "1" }] }));
  assert.deepEqual(sent[1], { op: "batch", frames: [{ op: "ack-ok", id: "1" }], ref: "one" });
  socket.receive(JSON.stringify({ op: "batch", ref: 10, frames: [{ op: "get", max: 5, ref: 2 }] }));
  assert.deepEqual(sent[2], {
    op: "batch",
    frames: [{ op: "messages", messages: [{ id: "2", payload: 2, deliveries: 1 }], ref: 2 }],
    ref: 10,
  });
  // A get that waits is answered later on its own: the batch's answer holds nothing now.
  socket.receive(JSON.stringify({ op: "batch", ref: 11, frames: [{ op: "get", ref: 3 }] }));
  assert.deepEqual(sent[3], { op: "batch", frames: [], ref: 11 });
  assert.equal(sent.length, 4);
  socket.close();
  queues.close();
});

Deno.test("QueueSocket.receive() says batches cannot nest, and repeats the ref of a batch it refuses", () => {
  const { queues, socket, sent } = batchSocket();
  sent.length = 0;
  socket.receive(JSON.stringify({
    op: "batch",
    frames: [{ op: "batch", frames: [{ op: "put", payload: 1 }], ref: 4 }, {
      op: "put",
      payload: 2,
    }],
  }));
  const [answer] = sent as {
    op: string;
    frames: { op: string; message?: string; ref?: number }[];
  }[];
  assert.equal(answer?.op, "batch");
  assert.equal(answer.frames[0]?.ref, 4);
  assert.match(answer.frames[0]?.message ?? "", /batches cannot nest/);
  assert.doesNotMatch(answer.frames[0]?.message ?? "", /Expected/);
  assert.equal(answer.frames[1]?.op, "put-ok", "the other frames stay");
  socket.receive(JSON.stringify({ op: "batch", ref: 7, frames: [] }));
  assert.equal(sent[1]?.op, "error");
  assert.equal((sent[1] as { ref?: number }).ref, 7);
  queues.close();
});
