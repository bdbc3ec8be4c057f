import assert from "node:assert/strict";
import { recordingSocket } from "./_recording_socket.ts";
import { QueueService } from "../../../src/services/queue/queue.ts";
import { QueueStore } from "../../../src/services/queue/queue_store.ts";
import type { RunOptions } from "../../../src/services/queue/_sqlite_tx.ts";

/** A queue service whose next batch fails to commit: its work runs, then everything is rolled back. */
class FailingCommit extends QueueService {
  fail = false;
  override batch<T>(work: () => T, options: RunOptions = {}): T {
    if (!this.fail) return super.batch(work, options);
    this.fail = false;
    return super.batch(() => {
      work();
      throw new Error("disk I/O error");
    }, options);
  }
}

Deno.test("QueueSocket.receive() leaves no waiting get behind when a batch's commit fails", async () => {
  const queues = new FailingCommit(QueueStore.open(":memory:"));
  const { socket, sent } = recordingSocket(queues);
  try {
    queues.fail = true;
    socket.receive(JSON.stringify({
      op: "batch",
      frames: [{ op: "acks", ids: ["9"], ref: "a" }, { op: "get", ref: "g" }],
    }));
    const { frames } = sent[0] as { frames: { op: string; ref: string; message: string }[] };
    assert.deepEqual(frames.map((f) => [f.op, f.ref]), [["error", "a"], ["error", "g"]]);
    assert.match(frames[1]!.message, /^Batch not stored: disk I\/O error/);
    assert.equal(queues.waiting, 0, "the get answered with the error does not wait on");
    queues.put("jobs", "later");
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(sent.length, 1, "the get is not answered a second time");
    assert.deepEqual(queues.stats("jobs"), {
      name: "jobs",
      ready: 1,
      inflight: 0,
      capacity: 10_000,
    });
    // The socket takes a new get, which is answered once.
    socket.receive(JSON.stringify({ op: "get", ref: "g2" }));
    assert.deepEqual(sent.slice(1).map((f) => [f.op, (f as { ref?: string }).ref]), [[
      "messages",
      "g2",
    ]]);
  } finally {
    queues.close();
  }
});
