import assert from "node:assert/strict";
import { FabricRequestError } from "../../../src/client/fabric_client.ts";
import { generateFabricKeys, signRequest } from "../../../src/crypto/mod.ts";
import type { BatchFrame, PubsubEvent } from "../../../src/services/pubsub/mod.ts";
import { keys, SERVICE, withServer } from "./_served.ts";
import { eventually } from "../../_eventually.ts";
import { RawWebSocket } from "./_raw_ws.ts";

function summary(events: PubsubEvent[]): string[] {
  return events.map((e) =>
    e.op === "message" ? `${e.topic}#${e.seq}=${JSON.stringify(e.message)}` : `${e.op}`
  );
}

/** The server frames of a raw socket, one at a time, with batch frames unpacked. */
function framesOf(socket: RawWebSocket): { next(): Promise<PubsubEvent | null>; batches: number } {
  const queue: PubsubEvent[] = [];
  const frames = {
    batches: 0,
    next: async (): Promise<PubsubEvent | null> => {
      while (queue.length === 0) {
        const text = await socket.next();
        if (text === null) return null;
        const frame = JSON.parse(text) as PubsubEvent | BatchFrame;
        if (frame.op === "batch") {
          frames.batches++;
          queue.push(...frame.frames);
        } else queue.push(frame);
      }
      return queue.shift()!;
    },
  };
  return frames;
}

Deno.test("pub/sub over real sockets: HTTP and WebSocket publishes reach wildcard subscribers in order", async () => {
  await withServer({}, async (s) => {
    const star = await s.follow(["a.*"]);
    const all = await s.follow([">"]);
    await eventually(() => s.broker.stats().subscribers === 2);
    const client = s.client();
    assert.deepEqual(await client.publish("a.x", "one"), { delivered: 2, seq: 1 });
    all.sub.publish("a.x", { two: 2 });
    await eventually(() => star.events.length === 2 && all.events.length === 2);
    assert.deepEqual(await client.publish("b.y.z", 3), { delivered: 1, seq: 1 });
    assert.deepEqual(await client.publish("a.x", [4]), { delivered: 2, seq: 3 });
    await eventually(() => star.events.length === 3 && all.events.length === 4);
    assert.deepEqual(summary(star.events), ['a.x#1="one"', 'a.x#2={"two":2}', "a.x#3=[4]"]);
    assert.deepEqual(summary(all.events), [
      'a.x#1="one"',
      'a.x#2={"two":2}',
      "b.y.z#1=3",
      "a.x#3=[4]",
    ]);
    star.sub.subscribe("b.>");
    star.sub.unsubscribe("a.*");
    star.sub.subscribe("c.>.x");
    await eventually(() => star.events.length === 4);
    assert.deepEqual(star.events[3], {
      op: "error",
      message: "Invalid pattern \"c.>.x\": '>' may only be the last token",
    });
    await client.publish("a.x", 5);
    await client.publish("b.q", 6);
    await eventually(() => star.events.length === 5);
    assert.deepEqual(summary(star.events).slice(4), ["b.q#1=6"]);
    assert.deepEqual(await client.stats(), {
      subscribers: 2,
      topics: 3,
      published: 6,
      dropped: 0,
    });
  });
});

Deno.test("pub/sub over real sockets: ?hello=1 is greeted first, and a batch of publishes arrives in order", async () => {
  await withServer({}, async (s) => {
    const all = await s.follow([">"]);
    const greeted = await RawWebSocket.open(
      s.port,
      "/v1/pubsub/ws?topics=x&hello=1",
      keys,
      SERVICE,
    );
    const plain = await RawWebSocket.open(s.port, "/v1/pubsub/ws?topics=x", keys, SERVICE);
    try {
      assert.deepEqual(JSON.parse((await greeted.next())!), { op: "hello", features: ["batch"] });
      const publisher = await s.client().subscribe([]);
      await eventually(() => s.broker.stats().subscribers === 4 && publisher.takesBatches);
      publisher.publishAll(
        Array.from({ length: 150 }, (_, i) => ({ topic: `x.${i % 3}`, message: i })),
      );
      await eventually(() => all.events.length === 150, { what: "150 messages at the subscriber" });
      assert.deepEqual(
        all.events.map((e) => e.op === "message" ? e.message : e.op),
        Array.from({ length: 150 }, (_, i) => i),
      );
      // The socket without ?hello=1 gets no hello: its first frame is not one.
      await s.client().publish("x", "first");
      assert.equal(JSON.parse((await plain.next())!).op, "message");
      await publisher.close();
    } finally {
      greeted.close();
      plain.close();
    }
  });
});

Deno.test("pub/sub over real sockets: the WebSocket handshake must be signed by the fabric", async () => {
  await withServer({}, async (s) => {
    const strangers = await generateFabricKeys();
    await assert.rejects(() => s.client(strangers).subscribe(["a"]), (error: unknown) => {
      assert.ok(error instanceof FabricRequestError);
      assert.equal(error.status, 401);
      return true;
    });
    const unsigned = new WebSocket(`ws://127.0.0.1:${s.port}/v1/pubsub/ws?topics=a`);
    const outcome = await new Promise<string>((resolve) => {
      unsigned.onopen = () => resolve("open");
      unsigned.onerror = () => resolve("refused");
    });
    assert.equal(outcome, "refused");
    await new Promise((resolve) => {
      if (unsigned.readyState === WebSocket.CLOSED) resolve(null);
      else unsigned.onclose = resolve;
    });
    // A handshake cannot be replayed: its nonce is spent.
    const url = new URL(`http://127.0.0.1:${s.port}/v1/pubsub/ws?topics=a`);
    const signed = await signRequest({ method: "GET", url, body: new Uint8Array() }, keys, {
      target: SERVICE,
    });
    const first = new WebSocket(`ws://127.0.0.1:${s.port}/v1/pubsub/ws?topics=a`, {
      headers: signed.headers,
    });
    await new Promise((resolve) => (first.onopen = resolve));
    const second = new WebSocket(`ws://127.0.0.1:${s.port}/v1/pubsub/ws?topics=a`, {
      headers: signed.headers,
    });
    const replay = await new Promise<string>((resolve) => {
      second.onopen = () => resolve("open");
      second.onerror = () => resolve("refused");
    });
    assert.equal(replay, "refused");
    first.close();
    await new Promise((resolve) => (first.onclose = resolve));
    if (second.readyState !== WebSocket.CLOSED) {
      await new Promise((resolve) => (second.onclose = resolve));
    }
    await eventually(() => s.broker.stats().subscribers === 0);
  });
});

for (const batched of [false, true]) {
  Deno.test(
    `pub/sub over real sockets: a subscriber that stops reading gets drop notices, a fast one gets all${
      batched ? " (batch frames)" : ""
    }`,
    async () => {
      const total = 2400;
      const BATCH = 50;
      const payload = "p".repeat(16 * 1024);
      await withServer({ buffer: 128, highWaterBytes: 64 * 1024 }, async (s) => {
        const path = `/v1/pubsub/ws?topics=load.*${batched ? "&batch=1" : ""}`;
        const slow = await RawWebSocket.open(s.port, path, keys, SERVICE);
        try {
          const fast = await s.follow(["load.>"]);
          const publisher = await s.follow([]);
          await eventually(() => s.broker.stats().subscribers === 3);
          // Server and readers share this process's one thread, so publish in
          // batches smaller than the outbox, which the fast reader drains between
          // batches; the slow one reads nothing.
          for (let batch = 0; batch < total / BATCH; batch++) {
            for (let i = 0; i < BATCH; i++) {
              publisher.sub.publish("load.x", { n: batch * BATCH + i, payload });
            }
            await eventually(() => fast.events.length === (batch + 1) * BATCH, {
              timeoutMs: 10_000,
            });
          }
          const seqs = fast.events.map((e) => e.op === "message" ? e.seq : -1);
          assert.deepEqual(seqs, Array.from({ length: total }, (_, i) => i + 1));
          const dropped = s.broker.stats().dropped;
          assert.ok(dropped > 0, "the slow subscriber's outbox overflowed");
          // Now read the slow socket: each notice accounts for exactly the gap that follows.
          let seen = 0;
          let lost = 0;
          let last = 0;
          let notices = 0;
          const frames = framesOf(slow);
          while (seen + lost < total) {
            const frame = await frames.next();
            assert.ok(frame !== null, `socket ended after ${seen} messages and ${lost} drops`);
            if (frame.op === "dropped") {
              notices++;
              lost += frame.count;
              const next = await frames.next();
              assert.ok(next !== null, "the socket does not end right after a notice");
              assert.equal(next.op, "message", "a notice comes right before a message");
              assert.equal(next.op === "message" && next.seq, last + frame.count + 1);
              last += frame.count + 1;
              seen++;
            } else if (frame.op === "message") {
              assert.equal(frame.seq, last + 1, "no silent gap");
              last = frame.seq;
              seen++;
            }
          }
          assert.ok(notices >= 1);
          assert.equal(lost, dropped);
          assert.equal(last, total);
          assert.equal(frames.batches > 0, batched, "batch frames come only when asked for");
        } finally {
          slow.close();
        }
      });
    },
  );
}

Deno.test("PubsubSubscription keeps its newest events when the application does not read, and ends on 1001", async () => {
  await withServer({}, async (s) => {
    const client = s.client();
    await assert.rejects(() => client.subscribe(["a.>.b"]), /Invalid pattern "a\.>\.b"/);
    const sub = await client.subscribe(["t"], { buffer: 3 });
    await eventually(() => s.broker.stats().subscribers === 1);
    for (let i = 1; i <= 10; i++) await client.publish("t", i);
    await eventually(() => s.broker.stats().published === 10);
    // The close frame follows the messages on the same connection: once the
    // socket is closed, every message has arrived, and only the newest 3 are kept.
    s.broker.close();
    assert.equal((await sub.closed).code, 1001);
    const events: PubsubEvent[] = [];
    for await (const event of sub) events.push(event);
    assert.deepEqual(summary(events), ["dropped", "t#8=8", "t#9=9", "t#10=10"]);
    assert.deepEqual(events[0], { op: "dropped", count: 7 });
  });
});
