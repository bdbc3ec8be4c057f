/**
 * Answers are read up to a bound (docs/protocol.md 3.1): a process that took
 * the port of a dead service answers with a body that never ends, and before,
 * the client read it whole (a call until its time limit, a stream's refusal
 * with no limit at all), growing to gigabytes.
 */
import assert from "node:assert/strict";
import { eventually } from "../_eventually.ts";
import { FabricClient, FabricRequestError } from "../../src/client/fabric_client.ts";
import { generateFabricKeys } from "../../src/crypto/keys.ts";

const keys = await generateFabricKeys();
/** The bounds of docs/protocol.md 3.1, spelled out: the test pins them. */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;
const MAX_ERROR_ANSWER_BYTES = 64 * 1024;
const CHUNK = new Uint8Array(64 * 1024).fill(120);

/** What an endless answer sent: bytes, and whether its reader cancelled it. */
interface Flood {
  sent: number;
  cancelled: boolean;
}

/**
 * Serves unsigned answers (`status`, `type`) whose body never ends (64 KiB
 * every 5 ms, so that a client that reads on does not fill the host), or, with
 * `stall`, never comes, while `run` runs.
 */
async function withSquatter(
  answer: { status: number; type: string; stall?: boolean },
  run: (url: string, flood: Flood) => Promise<void>,
): Promise<void> {
  const flood: Flood = { sent: 0, cancelled: false };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    // A stalled body waits for its cancel, which ends the wait.
    const cancelled = Promise.withResolvers<void>();
    const body = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        if (answer.stall) return await cancelled.promise;
        await new Promise((resolve) => setTimeout(resolve, 5));
        if (flood.cancelled) return;
        flood.sent += CHUNK.length;
        controller.enqueue(CHUNK);
      },
      cancel: () => {
        flood.cancelled = true;
        cancelled.resolve();
      },
    }, { highWaterMark: 0 });
    return new Response(body, { status: answer.status, headers: { "content-type": answer.type } });
  });
  try {
    await run(`http://127.0.0.1:${server.addr.port}`, flood);
  } finally {
    await server.shutdown();
  }
}

/** Settles `promise`, or gives up after `ms` (the client kept reading). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | "still reading"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"still reading">((r) => timer = setTimeout(r, ms, "still reading"));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("FabricClient.call() refuses an endless answer as 502 once it passes maxAnswerBytes, and reads no further", async () => {
  await withSquatter({ status: 200, type: "application/json" }, async (url, flood) => {
    const client = new FabricClient(keys, { maxAnswerBytes: 1024 * 1024 });
    const call = client.call({ id: "reg-00000001", url }, { method: "GET", path: "/v1/status" });
    const error = await within(call.then(() => undefined, (error: unknown) => error), 10_000);
    assert.ok(error instanceof FabricRequestError, String(error));
    assert.equal(error.status, 502);
    assert.equal(
      error.message,
      'Answer of "reg-00000001" (200) is larger than 1048576 bytes: refused, not from this fabric?',
    );
    await eventually(() => flood.cancelled, { what: "the answer cancelled" });
    assert.ok(flood.sent < 4 * 1024 * 1024, `${flood.sent} bytes sent`);
  });
});

Deno.test("FabricClient.call() refuses an answer whose Content-Length passes the default bound before reading it", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await listener.accept();
    await conn.read(new Uint8Array(64 * 1024));
    const head = `HTTP/1.1 404 Not Found\r\nContent-Length: ${MAX_ANSWER_BYTES + 1}\r\n\r\n`;
    await conn.write(new TextEncoder().encode(head));
    // Nothing of the body comes: only the declared length can tell.
    await conn.read(new Uint8Array(1)).catch(() => null);
    conn.close();
  })();
  try {
    const client = new FabricClient(keys, { timeoutMs: 10_000 });
    const error = await client.call(
      { id: "svc-00000001", url: `http://127.0.0.1:${listener.addr.port}` },
      { method: "GET", path: "/v1/status" },
    ).then(() => undefined, (error: unknown) => error);
    assert.ok(error instanceof FabricRequestError, String(error));
    assert.equal(error.status, 404, "classed as an unsigned answer: its own status");
    assert.match(error.message, /\(404\) is larger than 16777216 bytes: refused/);
  } finally {
    listener.close();
    await served;
  }
});

for (const stall of [false, true]) {
  Deno.test(`FabricClient.stream() refuses an unsigned answer reading at most 64 KiB of it${stall ? ", within its time limit when the body does not come" : ""}`, async () => {
    await withSquatter({ status: 200, type: "text/plain", stall }, async (url, flood) => {
      const client = new FabricClient(keys, { timeoutMs: 500 });
      const gone = new AbortController();
      const follow = client.stream({ id: "reg-00000001", url }, "/v1/registry/watch", () => {
        throw new Error("no event can come from an unsigned answer");
      }, gone.signal);
      try {
        const error = await within(follow.then(() => undefined, (error: unknown) => error), 10_000);
        assert.ok(error instanceof FabricRequestError, String(error));
        assert.equal(error.status, 502);
        assert.match(error.message, /HTTP 200 \(not signed by this fabric: /);
        await eventually(() => flood.cancelled, { what: "the answer cancelled" });
        assert.ok(flood.sent <= MAX_ERROR_ANSWER_BYTES + 4 * CHUNK.length, `${flood.sent} sent`);
      } finally {
        gone.abort();
        await follow.catch(() => {});
      }
    });
  });
}

Deno.test("FabricClient.stream() with POST refuses an answer that is not a stream once it passes 64 KiB", async () => {
  await withSquatter({ status: 200, type: "application/json" }, async (url, flood) => {
    const client = new FabricClient(keys, { timeoutMs: 5000 });
    const gone = new AbortController();
    const follow = client.stream({ id: "spw-00000001", url }, "/v1/spawn", () => {}, gone.signal, {
      method: "POST",
      body: { role: "agent" },
    });
    try {
      const error = await within(follow.then(() => undefined, (error: unknown) => error), 10_000);
      assert.ok(error instanceof FabricRequestError, String(error));
      assert.equal(error.status, 502);
      assert.match(error.message, /\(200\) is larger than 65536 bytes: refused/);
      await eventually(() => flood.cancelled, { what: "the answer cancelled" });
    } finally {
      gone.abort();
      await follow.catch(() => {});
    }
  });
});

Deno.test("FabricClient.stream() gives up on a listener that never answers after the client's time limit", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })().catch(() => {});
  const gone = new AbortController();
  try {
    const client = new FabricClient(keys, { timeoutMs: 500 });
    const url = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
    const follow = client.stream(
      { id: "reg-00000001", url },
      "/v1/registry/watch",
      () => {},
      gone.signal,
    );
    const error = await within(follow.then(() => undefined, (error: unknown) => error), 10_000);
    assert.ok(error instanceof FabricRequestError, String(error));
    assert.equal(error.status, 0);
    assert.match(error.message, /no answer within 500 ms/);
  } finally {
    gone.abort();
    listener.close();
    for (const conn of held) conn.close();
    await accepting;
  }
});
