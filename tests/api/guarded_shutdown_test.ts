/**
 * A guarded server shut down while a stream is open (a watcher's server-sent
 * events) cuts the stream after its grace and ends cleanly. It used to abort
 * Deno's server once its shutdown had begun, which Deno 2.9 answers with an
 * uncaught BadResource: the registry exited 1 at every `stop --all` while
 * `fabricd ui` watched it, and `up` started it again.
 */
import assert from "node:assert/strict";
import { serveGuarded } from "../../src/api/guarded_server.ts";

Deno.test("serveGuarded() shuts down with an endless stream open: cut after the grace, no uncaught error", async () => {
  let beats: ReturnType<typeof setInterval> | undefined;
  const server = await serveGuarded(() => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(": hello\n\n"));
        beats = setInterval(() => {
          try {
            controller.enqueue(new TextEncoder().encode(": keep-alive\n\n"));
          } catch {
            clearInterval(beats);
          }
        }, 50);
      },
      cancel() {
        clearInterval(beats);
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  }, { hostname: "127.0.0.1", port: 0, graceMs: 200 });
  const answer = await fetch(`http://127.0.0.1:${server.addr.port}/watch`);
  const reader = answer.body!.getReader();
  assert.match(new TextDecoder().decode((await reader.read()).value), /hello/);
  const began = performance.now();
  await server.shutdown();
  const took = performance.now() - began;
  // The stream is cut: reading ends (or fails) instead of waiting forever.
  for (;;) {
    const next = await reader.read().catch(() => ({ done: true }));
    if (next.done) break;
  }
  clearInterval(beats);
  assert.ok(took < 10_000, `shutdown took ${took} ms`);
  // An uncaught error from the server's abort would surface once the event loop turns.
  await new Promise((r) => setTimeout(r, 100));
});
