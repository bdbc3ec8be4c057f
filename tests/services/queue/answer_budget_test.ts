import assert from "node:assert/strict";
import { recordingSocket } from "./_recording_socket.ts";
import { MAX_ANSWER_CHARS } from "../../../src/services/queue/answer_budget.ts";
import { QueueService } from "../../../src/services/queue/queue.ts";
import { QueueStore } from "../../../src/services/queue/queue_store.ts";
import type { QueueMessage, QueueServerFrame } from "../../../src/types/queue_wire.ts";
import { queueApp } from "./_app.ts";

/** A payload whose JSON text is `chars` characters long. */
function payloadOf(chars: number): string {
  return "x".repeat(chars - 2);
}

Deno.test("QueueStore.get() stops adding messages past MAX_ANSWER_CHARS and leaves the rest untouched", () => {
  const store = QueueStore.open(":memory:");
  try {
    const quarter = MAX_ANSWER_CHARS / 4;
    for (let i = 0; i < 6; i++) store.put("jobs", payloadOf(quarter));
    const first = store.get("jobs", 100, 0);
    assert.equal(first.length, 4, "four quarters fill the answer exactly");
    const second = store.get("jobs", 100, 60_000);
    assert.deepEqual(second.map((m) => m.deliveries), [2, 2, 2, 2]);
    const third = store.get("jobs", 100, 60_000);
    assert.deepEqual(third.map((m) => m.deliveries), [1, 1], "left untouched before");
    assert.deepEqual(store.counts("jobs"), { ready: 0, inflight: 6 });
    assert.deepEqual(store.tally, { taken: 10, redelivered: 4, acked: 0 });
  } finally {
    store.close();
  }
});

Deno.test("QueueStore.get() hands out a message larger than MAX_ANSWER_CHARS alone", () => {
  const store = QueueStore.open(":memory:");
  try {
    store.put("jobs", payloadOf(MAX_ANSWER_CHARS + 1));
    store.put("jobs", "small");
    const [big, ...rest] = store.get("jobs", 100, 60_000);
    assert.equal((big?.payload as string).length, MAX_ANSWER_CHARS - 1);
    assert.deepEqual(rest, []);
    assert.deepEqual(store.get("jobs", 100, 60_000).map((m) => m.payload), ["small"]);
  } finally {
    store.close();
  }
});

Deno.test("GET /v1/queue/NAME/messages answers at most MAX_ANSWER_CHARS of payload", async () => {
  const q = await queueApp();
  try {
    for (let i = 0; i < 10; i++) q.queues.put("jobs", payloadOf(MAX_ANSWER_CHARS / 2 - 100));
    const answer = await q.request("GET", "/v1/queue/jobs/messages?max=100&visibility=0");
    assert.equal(answer.status, 200);
    assert.equal((answer.json.messages as QueueMessage[]).length, 2);
    assert.deepEqual(q.queues.stats("jobs"), {
      name: "jobs",
      ready: 10,
      inflight: 0,
      capacity: 10_000,
    });
    assert.equal(q.queues.metrics().tally.taken, 2);
  } finally {
    q.close();
  }
});

Deno.test("QueueSocket.receive() bounds a get's answer, and the gets of one batch share the bound", () => {
  const queues = new QueueService(QueueStore.open(":memory:"));
  const { socket, sent } = recordingSocket(queues);
  try {
    for (let i = 0; i < 6; i++) queues.put("jobs", payloadOf(MAX_ANSWER_CHARS / 2));
    socket.receive(JSON.stringify({ op: "get", max: 100, visibility: 0, ref: "one" }));
    assert.equal((sent[0] as { messages: unknown[] }).messages.length, 2);
    sent.length = 0;
    socket.receive(JSON.stringify({
      op: "batch",
      frames: [
        { op: "get", max: 1, visibility: 60_000, ref: 1 },
        { op: "get", max: 100, visibility: 60_000, ref: 2 },
        { op: "get", max: 100, visibility: 60_000, ref: 3 },
      ],
    }));
    const { frames } = sent[0] as { frames: QueueServerFrame[] };
    assert.deepEqual(
      frames.map((
        f,
      ) => [f.op, (f as { ref?: number }).ref, (f as { messages?: [] }).messages?.length]),
      [
        ["messages", 1, 1],
        ["messages", 2, 1],
        ["error", 3, undefined],
      ],
    );
    assert.match((frames[2] as { message: string }).message, /batch's answer is full/);
    assert.deepEqual(queues.stats("jobs"), {
      name: "jobs",
      ready: 4,
      inflight: 2,
      capacity: 10_000,
    });
  } finally {
    queues.close();
  }
});
