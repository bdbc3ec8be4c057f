import assert from "node:assert/strict";
import { eventually } from "../../_eventually.ts";
import { FabricClient } from "../../../src/client/fabric_client.ts";
import { generateFabricKeys } from "../../../src/crypto/mod.ts";
import { openQueueSocket, QueueClient } from "../../../src/client/queue_client.ts";
import type { QueueServerFrame } from "../../../src/types/queue_wire.ts";
import { QUEUE_ID, withQueueServer as withServer } from "./_app.ts";

/** The frames of one socket, read in order. */
class Frames {
  #frames: QueueServerFrame[] = [];
  #waiting: ((frame: QueueServerFrame) => void)[] = [];
  readonly socket: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<CloseEvent>;

  constructor(socket: WebSocket) {
    this.socket = socket;
    this.opened = new Promise((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = (e) => reject(new Error(`WebSocket failed: ${(e as ErrorEvent).message}`));
    });
    this.closed = new Promise((resolve) => socket.addEventListener("close", resolve));
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data) as QueueServerFrame;
      const waiter = this.#waiting.shift();
      if (waiter) waiter(frame);
      else this.#frames.push(frame);
    };
  }

  send(frame: unknown): void {
    this.socket.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  next(): Promise<QueueServerFrame> {
    const frame = this.#frames.shift();
    if (frame) return Promise.resolve(frame);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  async close(): Promise<void> {
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.close();
    await this.closed;
  }
}

Deno.test("openQueueSocket() sends the signed handshake and puts, gets and acks over frames", async () => {
  await withServer(async ({ keys, queues }, url) => {
    const ws = new Frames(await openQueueSocket(keys, { id: QUEUE_ID, url }, "jobs"));
    try {
      await ws.opened;
      ws.send({ op: "put", payload: { n: 1 }, ref: "p1" });
      const put = await ws.next();
      assert.equal(put.op, "put-ok");
      assert.equal(put.ref, "p1");
      const id = (put as { id: string }).id;
      ws.send({ op: "get", max: 5, visibility: 60_000 });
      assert.deepEqual(await ws.next(), {
        op: "messages",
        messages: [{ id, payload: { n: 1 }, deliveries: 1 }],
      });
      ws.send({ op: "ack", id, ref: 9 });
      assert.deepEqual(await ws.next(), { op: "ack-ok", id, ref: 9 });
      ws.send({ op: "ack", id });
      const again = await ws.next();
      assert.equal(again.op, "error");
      assert.match((again as { message: string }).message, /already acknowledged/);
      assert.deepEqual(queues.stats("jobs"), {
        name: "jobs",
        ready: 0,
        inflight: 0,
        capacity: 10_000,
      });
    } finally {
      await ws.close();
    }
  });
});

Deno.test("openQueueSocket() get is answered when a message is put over HTTP later", async () => {
  await withServer(async ({ keys, queues }, url) => {
    const ws = new Frames(await openQueueSocket(keys, { id: QUEUE_ID, url }, "jobs"));
    try {
      await ws.opened;
      ws.send({ op: "get", ref: "g" });
      await eventually(() => queues.waiting > 0);
      ws.send({ op: "get" });
      const busy = await ws.next();
      assert.equal(busy.op, "error", "one waiting get per socket");
      const client = new QueueClient(new FabricClient(keys), { id: QUEUE_ID, url });
      const id = await client.put("jobs", "late");
      assert.deepEqual(await ws.next(), {
        op: "messages",
        messages: [{ id, payload: "late", deliveries: 1 }],
        ref: "g",
      });
      ws.send({ op: "nack", id });
      assert.deepEqual(await ws.next(), { op: "nack-ok", id });
      ws.send({ op: "get", wait: 20 });
      const [message] = (await ws.next() as { messages: { deliveries: number }[] }).messages;
      assert.equal(message?.deliveries, 2);
      ws.send({ op: "get", wait: 20 });
      assert.deepEqual(await ws.next(), { op: "messages", messages: [] }, "wait ran out");
    } finally {
      await ws.close();
    }
    // The socket's waiting get, if any, left with it.
    await eventually(() => queues.waiting === 0);
  });
});

Deno.test("openQueueSocket() frames that are invalid or over capacity get an error frame", async () => {
  await withServer(async ({ keys }, url) => {
    const ws = new Frames(await openQueueSocket(keys, { id: QUEUE_ID, url }, "small"));
    try {
      await ws.opened;
      ws.send("{nope");
      assert.match((await ws.next() as { message: string }).message, /not JSON/);
      ws.send({ op: "get", max: 500, ref: "r" });
      const bad = await ws.next() as { message: string; ref: string };
      assert.match(bad.message, /Invalid frame field "max"/);
      assert.equal(bad.ref, "r");
      ws.send({ op: "fly" });
      assert.match((await ws.next() as { message: string }).message, /"op"/);
      ws.send({ op: "put" });
      assert.match((await ws.next() as { message: string }).message, /"payload"/);
      ws.socket.send(new Uint8Array([1, 2]));
      assert.match((await ws.next() as { message: string }).message, /text frames/);
      ws.send({ op: "put", payload: 1 });
      assert.equal((await ws.next()).op, "put-ok");
      ws.send({ op: "put", payload: 2 });
      const full = await ws.next() as { op: string; message: string; full: boolean };
      assert.equal(full.op, "error");
      assert.equal(full.full, true);
      assert.match(full.message, /is full \(1 messages\)/);
    } finally {
      await ws.close();
    }
  }, { capacity: 1 });
});

Deno.test("openQueueSocket() is refused when the handshake is unsigned or signed by another fabric", async () => {
  await withServer(async ({ queues }, url) => {
    const plain = new Frames(new WebSocket(`${url.replace("http", "ws")}/v1/queue/jobs/ws`));
    await assert.rejects(plain.opened, /WebSocket failed/);
    await plain.closed;
    const stranger = await generateFabricKeys();
    const forged = new Frames(await openQueueSocket(stranger, { id: QUEUE_ID, url }, "jobs"));
    await assert.rejects(forged.opened, /WebSocket failed/);
    await forged.closed;
    assert.equal(queues.stats("jobs").ready, 0);
  });
});

Deno.test("openQueueSocket() sockets are closed with 1001 when the queue service stops", async () => {
  await withServer(async ({ keys, queues }, url) => {
    const ws = new Frames(await openQueueSocket(keys, { id: QUEUE_ID, url }, "jobs"));
    await ws.opened;
    ws.send({ op: "get" });
    await eventually(() => queues.waiting > 0);
    queues.close();
    const closed = await ws.closed;
    assert.equal(closed.code, 1001);
    assert.match(closed.reason, /stopping/);
  });
});
