import assert from "node:assert/strict";
import { FabricClient, FabricRequestError } from "../../src/client/fabric_client.ts";
import { generateFabricKeys } from "../../src/crypto/keys.ts";

const keys = await generateFabricKeys();

/** A server that answers nothing, or only headers, until the client gives up. */
async function withStallingServer(
  stall: "answer" | "body",
  run: (url: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const gaveUp = new Promise<void>((resolve) =>
      request.signal.addEventListener("abort", () => resolve())
    );
    if (stall === "answer") return gaveUp.then(() => new Response(null, { status: 503 }));
    const body = new ReadableStream<Uint8Array>({
      start: (controller) =>
        void gaveUp.then(() => {
          try {
            controller.close();
          } catch {
            // The server cancelled the stream already.
          }
        }),
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  });
  try {
    await run(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

for (const stall of ["answer", "body"] as const) {
  Deno.test(`FabricClient.call() gives up after its time limit when the ${stall} does not come`, async () => {
    await withStallingServer(stall, async (url) => {
      const client = new FabricClient(keys, { timeoutMs: 50 });
      const error = await client.call({ id: "svc-1", url }, { method: "GET", path: "/v1/status" })
        .then(() => undefined, (error: unknown) => error);
      if (stall === "answer") {
        assert.ok(error instanceof FabricRequestError);
        assert.equal(error.status, 0);
        assert.match(error.message, /no answer within 50 ms/);
      } else {
        assert.ok(error instanceof DOMException, String(error));
        assert.equal(error.name, "TimeoutError");
      }
    });
  });
}
