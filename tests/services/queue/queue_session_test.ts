import assert from "node:assert/strict";
import { FabricRequestError } from "../../../src/client/fabric_client.ts";
import { type FabricKeys, generateFabricKeys, signResponse } from "../../../src/crypto/mod.ts";
import { QueueSession, type QueueSessionOptions } from "../../../src/client/queue_session.ts";
import type { QueueClientFrame } from "../../../src/types/queue_wire.ts";
import { QUEUE_ID, withQueueServer } from "./_app.ts";

/**
 * A queue server that answers nothing by itself: the test reads the frames
 * the session sent and answers them when it wants, to see what waits for what.
 */
class FakeQueue {
  #frames: (QueueClientFrame & { ref: number })[] = [];
  #waiting: (() => void)[] = [];
  #socket: WebSocket | null = null;
  readonly server: Deno.HttpServer<Deno.NetAddr>;

  /**
   * `proof`: how it proves who accepted a socket: signed with `keys` for the
   * handshake's nonce, as a queue does; "none" (a process that took the
   * queue's port); or "replayed", a proof made for another nonce.
   */
  constructor(keys: FabricKeys, proof: "signed" | "none" | "replayed" = "signed") {
    this.server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (req) => {
        const nonce = /nonce="([^"]+)"/.exec(req.headers.get("signature-input") ?? "")?.[1] ?? "";
        const requestNonce = proof === "replayed" ? "AAAAAAAAAAAAAAAAAAAAAA" : nonce;
        const signed = await signResponse({ status: 101, body: new Uint8Array() }, keys, {
          requestNonce,
        });
        const { socket, response } = Deno.upgradeWebSocket(req);
        this.#socket = socket;
        socket.onopen = () => {
          if (proof === "none") return;
          socket.send(JSON.stringify({ op: "proof", headers: Object.fromEntries(signed) }));
        };
        socket.onmessage = (event) => {
          this.#frames.push(JSON.parse(event.data));
          for (const wake of this.#waiting.splice(0)) wake();
        };
        return response;
      },
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.server.addr.port}`;
  }

  /** The next frame the session sent, waiting for it. */
  async next(): Promise<QueueClientFrame & { ref: number }> {
    while (this.#frames.length === 0) await new Promise<void>((r) => this.#waiting.push(r));
    return this.#frames.shift()!;
  }

  /** Frames sent and not read yet. */
  get unread(): number {
    return this.#frames.length;
  }

  answer(frame: Record<string, unknown>): void {
    this.#socket!.send(JSON.stringify(frame));
  }

  hangUp(): void {
    this.#socket!.close(1011, "gone");
  }

  async close(): Promise<void> {
    if (this.#socket && this.#socket.readyState < WebSocket.CLOSING) this.#socket.close();
    await this.server.shutdown();
  }
}

async function withFake(
  fn: (fake: FakeQueue, session: QueueSession) => Promise<void>,
  options: QueueSessionOptions = {},
) {
  const keys = await generateFabricKeys();
  const fake = new FakeQueue(keys);
  const session = await QueueSession.open(keys, { id: QUEUE_ID, url: fake.url }, "jobs", options);
  try {
    await fn(fake, session);
  } finally {
    await session.close();
    await fake.close();
  }
}

/** A fixed wait, for checks that nothing happens: gives the session time to (wrongly) send. */
const turn = () => new Promise((resolve) => setTimeout(resolve, 20));

Deno.test("QueueSession puts, gets, acks and nacks over one socket of a real queue", async () => {
  await withQueueServer(async ({ keys, queues }, url) => {
    const session = await QueueSession.open(keys, { id: QUEUE_ID, url }, "jobs");
    try {
      const ids = [await session.put({ n: 1 }), await session.put({ n: 2 })];
      const got = await session.get({ max: 5, waitMs: 1000, visibilityMs: 60_000 });
      assert.deepEqual(got, [
        { id: ids[0], payload: { n: 1 }, deliveries: 1 },
        { id: ids[1], payload: { n: 2 }, deliveries: 1 },
      ]);
      await Promise.all([session.ack(ids[0]!), session.nack(ids[1]!)]);
      assert.deepEqual(queues.stats("jobs"), {
        name: "jobs",
        ready: 1,
        inflight: 0,
        capacity: 10_000,
      });
      const gone = await session.ack(ids[0]!).catch((e) => e);
      assert.ok(gone instanceof FabricRequestError);
      assert.equal(gone.status, 404);
      const nacked = await session.nack("424242").catch((e) => e);
      assert.equal(nacked.status, 404);
      assert.deepEqual(await session.get({ waitMs: 20 }), [
        { id: ids[1], payload: { n: 2 }, deliveries: 2 },
      ]);
      assert.deepEqual(await session.get({ waitMs: 20 }), [], "the wait ran out");
    } finally {
      await session.close();
    }
  });
});

Deno.test("QueueSession.put() rejects with 429 when the queue is full", async () => {
  await withQueueServer(async ({ keys }, url) => {
    const session = await QueueSession.open(keys, { id: QUEUE_ID, url }, "jobs");
    try {
      await session.put(1);
      const full = await session.put(2).catch((e) => e);
      assert.ok(full instanceof FabricRequestError);
      assert.equal(full.status, 429);
      assert.match(full.message, /is full/);
    } finally {
      await session.close();
    }
  }, { capacity: 1 });
});

Deno.test("QueueSession.open() rejects with status 0 when the handshake is refused", async () => {
  await withQueueServer(async (_q, url) => {
    const stranger = await generateFabricKeys();
    const refused = await QueueSession.open(stranger, { id: QUEUE_ID, url }, "jobs").catch((e) =>
      e
    );
    assert.ok(refused instanceof FabricRequestError);
    assert.equal(refused.status, 0);
    assert.match(refused.message, /Cannot open a queue socket to "que-00000001"/);
  });
});

Deno.test("QueueSession.ack() sends acks made together in one frame and the rest once it is answered", async () => {
  await withFake(async (fake, session) => {
    const first = [session.ack("1"), session.ack("2")];
    const batch = await fake.next();
    assert.deepEqual({ ...batch, ref: 0 }, { op: "acks", ids: ["1", "2"], ref: 0 });
    const later = [session.ack("3"), session.ack("4"), session.ack("5")];
    await turn();
    assert.equal(fake.unread, 0, "nothing more is sent while a batch is on its way");
    fake.answer({ op: "acks-ok", acked: ["1"], unknown: ["2"], ref: batch.ref });
    await first[0];
    const unknown = await first[1]!.catch((e) => e);
    assert.equal(unknown.status, 404);
    const next = await fake.next();
    assert.deepEqual(next.op === "acks" && next.ids, ["3", "4", "5"]);
    fake.answer({ op: "acks-ok", acked: ["3", "4", "5"], unknown: [], ref: next.ref });
    await Promise.all(later);
  });
});

Deno.test("QueueSession.get() given up by its signal nacks the messages still handed to it", async () => {
  await withFake(async (fake, session) => {
    const stop = new AbortController();
    const got = session.get({ max: 2, waitMs: 20_000, signal: stop.signal });
    const get = await fake.next();
    assert.deepEqual({ ...get, ref: 0 }, { op: "get", max: 2, wait: 20_000, ref: 0 });
    stop.abort(new Error("stopping"));
    await assert.rejects(got, /stopping/);
    fake.answer({
      op: "messages",
      messages: [{ id: "7", payload: 1, deliveries: 1 }, { id: "8", payload: 2, deliveries: 1 }],
      ref: get.ref,
    });
    const nacks = [await fake.next(), await fake.next()];
    assert.deepEqual(nacks.map((f) => f.op === "nack" && f.id), ["7", "8"]);
  });
});

Deno.test("QueueSession rejects every unanswered call with status 0 when the socket breaks", async () => {
  await withFake(async (fake, session) => {
    const got = session.get({ waitMs: 20_000 });
    const acked = session.ack("1");
    await fake.next();
    await fake.next();
    const queued = session.ack("2");
    fake.hangUp();
    for (const call of [got, acked, queued]) {
      const error = await (call as Promise<unknown>).catch((e) => e);
      assert.ok(error instanceof FabricRequestError);
      assert.equal(error.status, 0);
      assert.match(error.message, /is closed \(1011: gone\)/);
    }
    assert.equal(session.open, false);
    assert.equal((await session.nack("3").catch((e) => e)).status, 0);
  });
});

Deno.test("QueueSession closes the socket when an answer does not come in time", async () => {
  const keys = await generateFabricKeys();
  const fake = new FakeQueue(keys);
  const session = await QueueSession.open(keys, { id: QUEUE_ID, url: fake.url }, "jobs", {
    answerMs: 50,
  });
  try {
    const late = await session.nack("1").catch((e) => e);
    assert.equal(late.status, 0);
    assert.match(late.message, /no answer within 50 ms/);
    await session.closed;
  } finally {
    await session.close();
    await fake.close();
  }
});

const FINAL = { state: "DONE", agent: "agt-1", at: 1_000, exitCode: 0 } as const;

Deno.test("QueueSession sends the frames of one turn as one batch once the queue said hello", async () => {
  await withFake(async (fake, session) => {
    const plain = session.put(1);
    assert.equal((await fake.next()).op, "put", "no hello yet: frames go one by one");
    fake.answer({ op: "put-ok", id: "1", ref: 1 });
    await plain;
    fake.answer({ op: "hello", features: ["batch", "report-ack"] });
    await turn();
    const calls = [session.put(2), session.get({ waitMs: 0 }), session.ack("1")];
    const batch = await fake.next();
    assert.equal(batch.op, "batch");
    const frames = batch.op === "batch" ? batch.frames : [];
    assert.deepEqual(frames.map((f) => f.op), ["put", "get", "acks"]);
    const refs = frames.map((f) => f.ref);
    fake.answer({
      op: "batch",
      frames: [
        { op: "put-ok", id: "2", ref: refs[0] },
        { op: "messages", messages: [], ref: refs[1] },
        { op: "acks-ok", acked: ["1"], unknown: [], ref: refs[2] },
      ],
    });
    assert.deepEqual(await Promise.all(calls), ["2", [], undefined]);
  });
});

Deno.test("QueueSession with lingerMs sends frames of turns within that time as one batch", async () => {
  await withFake(async (fake, session) => {
    fake.answer({ op: "hello", features: ["batch", "report-ack"] });
    await turn();
    const first = session.put(1);
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(fake.unread, 0, "the first frame still waits for others");
    const second = session.put(2);
    const batch = await fake.next();
    const frames = batch.op === "batch" ? batch.frames : [];
    assert.deepEqual(frames.map((f) => f.op), ["put", "put"]);
    fake.answer({
      op: "batch",
      frames: frames.map((f, i) => ({ op: "put-ok", id: String(i + 1), ref: f.ref })),
    });
    assert.deepEqual(await Promise.all([first, second]), ["1", "2"]);
  }, { lingerMs: 200 });
});

Deno.test("QueueSession.finish() sends one report with its ack where the queue takes it, else the report then the ack", async () => {
  await withFake(async (fake, session) => {
    const oneByOne = session.finish("t1", FINAL, "7");
    const report = await fake.next();
    assert.deepEqual({ ...report, ref: 0 }, { op: "report", task: "t1", report: FINAL, ref: 0 });
    await turn();
    assert.equal(fake.unread, 0, "the ack waits for the report's answer");
    fake.answer({ op: "report-ok", task: "t1", state: "DONE", ref: report.ref });
    const ack = await fake.next();
    assert.deepEqual(ack.op === "acks" && ack.ids, ["7"]);
    fake.answer({ op: "acks-ok", acked: [], unknown: ["7"], ref: ack.ref });
    assert.equal(await oneByOne, false, "the queue did not hold the message");
    fake.answer({ op: "hello", features: ["batch", "report-ack"] });
    await turn();
    const together = session.finish("t2", FINAL, "8");
    const frame = await fake.next();
    assert.deepEqual({ ...frame, ref: 0 }, {
      op: "report",
      task: "t2",
      report: FINAL,
      ack: "8",
      ref: 0,
    });
    fake.answer({ op: "report-ok", task: "t2", state: "DONE", acked: true, ref: frame.ref });
    assert.equal(await together, true);
  });
});

Deno.test("QueueSession.finish() over a real queue records the outcome and acknowledges in one batch", async () => {
  await withQueueServer(async ({ keys, queues }, url) => {
    const session = await QueueSession.open(keys, { id: QUEUE_ID, url }, "jobs");
    let batches = 0;
    const batch = queues.batch.bind(queues);
    queues.batch = (work, options) => {
      batches++;
      return batch(work, options);
    };
    try {
      const ids = await Promise.all([
        session.put({ id: "t1", executable: "/bin/true" }),
        session.put({ id: "t2", executable: "/bin/true" }),
      ]);
      assert.ok(batches <= 1, "both puts in at most one batch (none before the hello)");
      const got = await session.get({ max: 2, waitMs: 1000 });
      assert.equal(got.length, 2);
      const before = batches;
      const [acked, next] = await Promise.all([
        session.finish("t1", FINAL, ids[0]!),
        session.get({ max: 1, waitMs: 0 }),
      ]);
      assert.equal(acked, true);
      assert.deepEqual(next, []);
      assert.equal(batches, before + 1, "the report, its ack and the get were one batch");
      assert.equal(queues.history.find("jobs", "t1")?.state, "DONE");
      assert.deepEqual(queues.stats("jobs"), {
        name: "jobs",
        ready: 0,
        inflight: 1,
        capacity: 10_000,
      });
      const unknown = await session.finish("t9", FINAL, ids[1]!).catch((e) => e);
      assert.equal(unknown.status, 404);
      assert.equal(queues.stats("jobs").inflight, 1, "no such task: nothing acknowledged");
    } finally {
      await session.close();
    }
  });
});

Deno.test("QueueSession.open() refuses a socket that does not prove it is the queue's, and sends nothing", async () => {
  const keys = await generateFabricKeys();
  for (const proof of ["none", "replayed"] as const) {
    const fake = new FakeQueue(keys, proof);
    try {
      const refused = await QueueSession.open(keys, { id: QUEUE_ID, url: fake.url }, "jobs", {
        timeoutMs: 1000,
      }).then(() => null, (error) => error);
      assert.ok(refused instanceof FabricRequestError, `${proof}: ${refused}`);
      assert.equal(refused.status, 0);
      assert.match(
        refused.message,
        proof === "none" ? /no proof of the service/ : /not signed by this fabric/,
      );
      await turn();
      assert.equal(fake.unread, 0, `${proof}: no frame goes to a socket nobody proved`);
    } finally {
      await fake.close();
    }
  }
});
