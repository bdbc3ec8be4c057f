import assert from "node:assert/strict";
import { eventually } from "../../_eventually.ts";
import { QueueSocket } from "../../../src/services/queue/_ws_session.ts";
import { QueueService } from "../../../src/services/queue/queue.ts";
import { QueueStore } from "../../../src/services/queue/queue_store.ts";
import type { QueueServerFrame } from "../../../src/types/queue_wire.ts";

function session(maxFrameBytes = 1024) {
  const queues = new QueueService(QueueStore.open(":memory:"));
  const sent: QueueServerFrame[] = [];
  const closes: number[] = [];
  const socket = new QueueSocket(queues, "jobs", {
    send: (frame) => sent.push(frame),
    close: (code) => closes.push(code),
    bufferedAmount: 0,
  }, maxFrameBytes);
  return { queues, socket, sent, closes };
}

Deno.test("QueueSocket.receive() refuses a frame larger than the limit in bytes", () => {
  const { queues, socket, sent } = session(64);
  socket.receive(JSON.stringify({ op: "put", payload: "é".repeat(25) })); // 50 UTF-16 units, 75 bytes
  assert.equal(sent[0]?.op, "error");
  assert.match((sent[0] as { message: string }).message, /larger than 64 bytes/);
  assert.equal(queues.stats("jobs").ready, 0);
  queues.close();
});

Deno.test("QueueSocket.receive() echoes ref on answers and on invalid frames", () => {
  const { queues, socket, sent } = session();
  socket.receive(JSON.stringify({ op: "put", payload: 1, ref: 7 }));
  socket.receive(JSON.stringify({ op: "ack", id: "nope", ref: "r2" }));
  assert.equal(sent[0]?.op, "put-ok");
  assert.equal(sent[0]?.ref, 7);
  assert.equal(sent[1]?.op, "error");
  assert.equal(sent[1]?.ref, "r2");
  assert.match((sent[1] as { message: string }).message, /Invalid frame field "id"/);
  queues.close();
});

Deno.test("QueueSocket.close() ends its waiting get, which takes nothing and sends nothing", async () => {
  const { queues, socket, sent } = session();
  socket.receive(JSON.stringify({ op: "get" }));
  assert.equal(queues.waiting, 1);
  socket.close();
  socket.close();
  await eventually(() => queues.waiting === 0);
  queues.put("jobs", "x");
  assert.equal(queues.stats("jobs").ready, 1);
  assert.deepEqual(sent, []);
  queues.close();
});

Deno.test("QueueSocket closes its socket with 1001 when the service closes", () => {
  const { queues, closes } = session();
  queues.close();
  assert.deepEqual(closes, [1001]);
});

Deno.test("QueueSocket.receive() acks a batch with one acks frame and flags an unknown ack", async () => {
  const { queues, socket, sent } = session();
  const ids = [queues.put("jobs", "a"), queues.put("jobs", "b")];
  await queues.get("jobs", { max: 2 });
  socket.receive(JSON.stringify({ op: "acks", ids: [...ids, "77"], ref: 1 }));
  assert.deepEqual(sent[0], { op: "acks-ok", acked: ids, unknown: ["77"], ref: 1 });
  socket.receive(JSON.stringify({ op: "ack", id: ids[0], ref: 2 }));
  assert.equal(sent[1]?.op, "error");
  assert.equal((sent[1] as { unknown?: boolean }).unknown, true);
  socket.receive(JSON.stringify({ op: "acks", ids: [], ref: 3 }));
  assert.match((sent[2] as { message: string }).message, /"ids": must name at least one/);
  assert.equal(queues.stats("jobs").inflight, 0);
  queues.close();
});
