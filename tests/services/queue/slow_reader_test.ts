import assert from "node:assert/strict";
import { eventually } from "../../_eventually.ts";
import { signRequest } from "../../../src/crypto/mod.ts";
import { MAX_SOCKET_BUFFERED_BYTES, QueueSocket } from "../../../src/services/queue/_ws_session.ts";
import { SLOW_READER_CLOSE_CODE } from "../../../src/types/wire.ts";
import { QueueService } from "../../../src/services/queue/queue.ts";
import { QueueStore } from "../../../src/services/queue/queue_store.ts";
import type { QueueServerFrame } from "../../../src/types/queue_wire.ts";
import { QUEUE_ID, withQueueServer } from "./_app.ts";

/** A socket on queue "jobs" whose sink says how much waits in it (`buffered`). */
function slowSocket() {
  const queues = new QueueService(QueueStore.open(":memory:"));
  const sent: QueueServerFrame[] = [];
  const closes: { code: number; reason: string }[] = [];
  const sink = {
    buffered: 0,
    send: (frame: QueueServerFrame) => sent.push(frame),
    close: (code: number, reason: string) => closes.push({ code, reason }),
    get bufferedAmount() {
      return sink.buffered;
    },
  };
  const socket = new QueueSocket(queues, "jobs", sink, 1024 * 1024);
  return { queues, socket, sink, sent, closes };
}

Deno.test("QueueSocket.receive() closes with 4008 and takes nothing when too much waits unread", () => {
  const { queues, socket, sink, sent, closes } = slowSocket();
  for (let i = 0; i < 3; i++) queues.put("jobs", i);
  sink.buffered = MAX_SOCKET_BUFFERED_BYTES;
  socket.receive(JSON.stringify({ op: "get", max: 100, visibility: 0 }));
  assert.equal(sent.length, 1, "at the bound itself the get is answered");
  sink.buffered = MAX_SOCKET_BUFFERED_BYTES + 1;
  socket.receive(JSON.stringify({ op: "get", max: 100, visibility: 0, ref: "g" }));
  socket.receive(JSON.stringify({ op: "put", payload: "late" }));
  assert.equal(sent.length, 1, "nothing more is written");
  assert.equal(closes.length, 1);
  assert.equal(closes[0]?.code, SLOW_READER_CLOSE_CODE);
  assert.match(closes[0]!.reason, /^Client reads too slowly \(over 8388608 bytes unread\)/);
  assert.ok(new TextEncoder().encode(closes[0]!.reason).length <= 123, "fits a close frame");
  // The refused get took nothing: the next hand-out is each message's second.
  assert.deepEqual(queues.metrics().tally, { taken: 3, redelivered: 0, acked: 0 });
  assert.deepEqual(queues.take("jobs", { max: 100 }).map((m) => m.deliveries), [2, 2, 2]);
  assert.equal(queues.stats("jobs").ready + queues.stats("jobs").inflight, 3, "no put after it");
  queues.close();
});

Deno.test("QueueSocket gives a waited get's messages back and closes with 4008 when too much waits unread", async () => {
  const { queues, socket, sink, sent, closes } = slowSocket();
  socket.receive(JSON.stringify({ op: "get", max: 5, ref: "w" }));
  assert.equal(queues.waiting, 1);
  sink.buffered = MAX_SOCKET_BUFFERED_BYTES + 1;
  queues.put("jobs", "a");
  await eventually(() => closes.length === 1);
  assert.equal(closes[0]?.code, SLOW_READER_CLOSE_CODE);
  assert.deepEqual(sent, []);
  assert.deepEqual(queues.stats("jobs"), { name: "jobs", ready: 1, inflight: 0, capacity: 10_000 });
  queues.close();
});

// A WebSocket client on a bare TCP connection, so that it can stop reading.

/** A masked client text frame (RFC 6455 5.2). */
function clientFrame(text: string): Uint8Array {
  const data = new TextEncoder().encode(text);
  assert.ok(data.length < 65_536);
  const head = data.length < 126
    ? [0x81, 0x80 | data.length]
    : [0x81, 0x80 | 126, data.length >> 8, data.length & 0xff];
  const mask = [1, 2, 3, 4];
  const frame = new Uint8Array(head.length + 4 + data.length);
  frame.set([...head, ...mask]);
  data.forEach((byte, i) => frame[head.length + 4 + i] = byte ^ mask[i % 4]!);
  return frame;
}

/**
 * Reads server frames until the close frame or the end of the connection
 * (Deno drops a server socket that receives more frames after its close
 * frame was queued, and that frame with it): the text frames, the close code
 * (null without a close frame).
 */
async function readToEnd(conn: Deno.Conn, start: Uint8Array) {
  let buffer = start;
  const texts: string[] = [];
  const need = async (n: number): Promise<boolean> => {
    while (buffer.length < n) {
      const chunk = new Uint8Array(1 << 20);
      let read: number | null;
      try {
        read = await conn.read(chunk);
      } catch (error) {
        if (error instanceof Deno.errors.ConnectionReset) return false;
        throw error;
      }
      if (read === null) return false;
      const joined = new Uint8Array(buffer.length + read);
      joined.set(buffer);
      joined.set(chunk.subarray(0, read), buffer.length);
      buffer = joined;
    }
    return true;
  };
  while (await need(2)) {
    let length = buffer[1]! & 0x7f;
    let at = 2;
    if (length === 126) {
      if (!await need(4)) break;
      length = (buffer[2]! << 8) | buffer[3]!;
      at = 4;
    } else if (length === 127) {
      if (!await need(10)) break;
      length = Number(new DataView(buffer.buffer, buffer.byteOffset + 2, 8).getBigUint64(0));
      at = 10;
    }
    if (!await need(at + length)) break;
    const opcode = buffer[0]! & 0x0f;
    const payload = buffer.slice(at, at + length);
    buffer = buffer.slice(at + length);
    if (opcode === 1) texts.push(new TextDecoder().decode(payload));
    if (opcode === 8) return { texts, code: (payload[0]! << 8) | payload[1]! };
  }
  return { texts, code: null };
}

Deno.test("queue socket of a client that sends gets and never reads is closed before it takes them all", async () => {
  await withQueueServer(async ({ keys, queues }, base) => {
    const payload = "x".repeat(30_000);
    for (let i = 0; i < 100; i++) queues.put("jobs", payload);
    const url = new URL("/v1/queue/jobs/ws", base);
    const signed = await signRequest({ method: "GET", url, body: new Uint8Array() }, keys, {
      target: QUEUE_ID,
    });
    const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
    try {
      const head = [
        `GET ${url.pathname} HTTP/1.1`,
        `Host: ${url.host}`,
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        ...[...signed.headers].map(([name, value]) => `${name}: ${value}`),
      ].join("\r\n") + "\r\n\r\n";
      await conn.write(new TextEncoder().encode(head));
      let answer = new Uint8Array();
      while (!new TextDecoder().decode(answer).includes("\r\n\r\n")) {
        const chunk = new Uint8Array(4096);
        const read = await conn.read(chunk);
        assert.notEqual(read, null, "handshake answered");
        answer = new Uint8Array([...answer, ...chunk.subarray(0, read!)]);
      }
      const text = new TextDecoder().decode(answer);
      assert.match(text, /^HTTP\/1.1 101/);
      const rest = answer.slice(
        new TextEncoder().encode(text.split("\r\n\r\n")[0] + "\r\n\r\n").length,
      );
      // Each get would hand the same 100 messages (3 MB) out again: 150 MB unread in all.
      const gets = 50;
      const get = clientFrame(JSON.stringify({ op: "get", max: 100, visibility: 0 }));
      for (let i = 0; i < gets; i++) await conn.write(get);
      await eventually(() => queues.metrics().tally.taken > 0);
      let last = -1;
      for (let round = 0; round < 50 && queues.metrics().tally.taken !== last; round++) {
        last = queues.metrics().tally.taken;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      assert.ok(last < gets * 100, `the server stopped taking (${last} of ${gets * 100})`);
      const { texts, code } = await readToEnd(conn, rest);
      assert.ok(code === null || code === SLOW_READER_CLOSE_CODE, `closed with ${code}`);
      const delivered = texts.map((t) => JSON.parse(t) as { messages?: unknown[] })
        .reduce((n, frame) => n + (frame.messages?.length ?? 0), 0);
      assert.ok(delivered <= last, "nothing was sent twice");
    } finally {
      conn.close();
    }
  });
});
