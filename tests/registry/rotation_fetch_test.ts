/**
 * `fetchRotation()` (docs/protocol.md 2.14) against a local server: it takes
 * the statement, and stops reading an answer as soon as it passes 64 KiB.
 */
import assert from "node:assert/strict";
import { generateFabricKeys } from "../../src/crypto/keys.ts";
import { fetchRotation } from "../../src/registry/rotation_fetch.ts";

const keys = await generateFabricKeys();
const encoder = new TextEncoder();

async function withServer(
  handler: Deno.ServeHandler<Deno.NetAddr>,
  body: (url: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  try {
    await body(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

Deno.test("fetchRotation() returns the registry's statement, or null when it holds none", async () => {
  let statement: string | null = "fr1.abc";
  await withServer(() => Response.json({ statement }), async (url) => {
    assert.equal(await fetchRotation(keys, [{ id: "reg-00000001", url }]), "fr1.abc");
    statement = null;
    assert.equal(await fetchRotation(keys, [{ id: "reg-00000001", url }]), null);
  });
});

Deno.test("fetchRotation() stops reading an endless answer once it passes 64 KiB and cancels it", async () => {
  let sent = 0;
  let cancelled: () => void = () => {};
  const wasCancelled = new Promise<void>((resolve) => cancelled = resolve);
  const handler = () =>
    new Response(
      new ReadableStream<Uint8Array>({
        pull(controller) {
          const chunk = encoder.encode(" ".repeat(16 * 1024));
          sent += chunk.length;
          controller.enqueue(chunk);
        },
        cancel() {
          cancelled();
        },
      }),
      { headers: { "content-type": "application/json" } },
    );
  await withServer(handler, async (url) => {
    const started = performance.now();
    await assert.rejects(
      () => fetchRotation(keys, [{ id: "reg-00000001", url }]),
      (error) => error instanceof Error && error.message === 'Registry "reg-00000001" answered 200',
    );
    // Well before the 5 s answer timeout: the cap, not the clock, ended the read.
    assert.ok(performance.now() - started < 4000, `took ${performance.now() - started} ms`);
    await wasCancelled;
    // What the sockets between buffer (about 2 MiB here) is sent, not more.
    assert.ok(sent < 16 * 1024 * 1024, `${sent} bytes sent`);
  });
});

Deno.test("fetchRotation() refuses an answer of 64 KiB and one byte, and takes one of exactly 64 KiB", async () => {
  const json = (size: number) => {
    const head = '{"statement":"fr1.x"}';
    return head + " ".repeat(size - head.length);
  };
  let size = 64 * 1024 + 1;
  await withServer(() => new Response(json(size)), async (url) => {
    await assert.rejects(
      () => fetchRotation(keys, [{ id: "reg-00000001", url }]),
      /^Error: Registry "reg-00000001" answered 200$/,
    );
    size = 64 * 1024;
    assert.equal(await fetchRotation(keys, [{ id: "reg-00000001", url }]), "fr1.x");
  });
});
