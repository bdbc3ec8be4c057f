/**
 * The new service's side of the hand-over (docs/protocol.md 4.11): the warm
 * hand-over line read from standard input, as `takeWarmHandOver()` sees it.
 */
import assert from "node:assert/strict";
import {
  BootstrapError,
  bootstrapFromParent,
  takeWarmHandOver,
} from "../../src/bootstrap/child.ts";

const encoder = new TextEncoder();
const LINE = JSON.stringify({
  id: "spn-0badc0de",
  role: "spawner",
  password: "pw_0123456789",
  parent: "spn-00000001@http://127.0.0.1:7000",
  pin: "SHA256:abc",
});

/** A stream of `parts`, then its end; counts the chunks taken. */
function input(...parts: string[]): { stream: ReadableStream<Uint8Array>; pulled: () => number } {
  let pulled = 0;
  const chunks = parts.map((part) => encoder.encode(part));
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = chunks.shift();
      if (next === undefined) controller.close();
      else {
        pulled++;
        controller.enqueue(next);
      }
    },
  });
  return { stream, pulled: () => pulled };
}

/** The exit code `takeWarmHandOver()` throws with on `parts`. */
async function refusal(...parts: string[]): Promise<number> {
  try {
    await takeWarmHandOver({ input: input(...parts).stream });
  } catch (error) {
    assert.ok(error instanceof BootstrapError, String(error));
    return error.exitCode;
  }
  assert.fail("the hand-over was not refused");
}

Deno.test("takeWarmHandOver() takes one valid line, and returns null only at the end of input", async () => {
  const handOver = await takeWarmHandOver({ input: input(`${LINE}\n`).stream });
  assert.equal(handOver?.id, "spn-0badc0de");
  assert.deepEqual(handOver?.env.parent, { id: "spn-00000001", url: "http://127.0.0.1:7000" });
  assert.equal(await takeWarmHandOver({ input: input().stream }), null);
});

Deno.test("takeWarmHandOver() refuses an empty line with 78, not as the end of input", async () => {
  assert.equal(await refusal("\n"), 78);
  assert.equal(await refusal("  \r\n", `${LINE}\n`), 78);
});

Deno.test("takeWarmHandOver() refuses a line over 1 KiB with 78 and reads no further", async () => {
  assert.equal(await refusal(`${"x".repeat(2000)}\n`), 78);
  const padded = JSON.stringify({ ...JSON.parse(LINE), pin: "p".repeat(1024) });
  assert.equal(await refusal(`${padded}\n`), 78);
  const long = input(...Array.from({ length: 100 }, () => "y".repeat(100)));
  await assert.rejects(
    () => takeWarmHandOver({ input: long.stream }),
    (error) => error instanceof BootstrapError && error.exitCode === 78,
  );
  assert.ok(long.pulled() <= 12, `read ${long.pulled()} chunks of 100 bytes`);
});

Deno.test("takeWarmHandOver() takes a line of exactly 1 KiB", async () => {
  const value = JSON.parse(LINE);
  const pad = 1024 - encoder.encode(LINE).length;
  const line = JSON.stringify({ ...value, pin: value.pin + "p".repeat(pad) });
  assert.equal(encoder.encode(line).length, 1024);
  assert.equal((await takeWarmHandOver({ input: input(`${line}\n`).stream }))?.role, "spawner");
});

Deno.test("bootstrapFromParent() refuses a parent answer past 1 MiB with 77 and reads no further", async () => {
  let sent = 0;
  const chunk = new Uint8Array(64 * 1024);
  const squatter = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response(
        new ReadableStream({
          pull(controller) {
            sent += chunk.length;
            controller.enqueue(chunk);
          },
        }),
      ),
  );
  try {
    const error = await bootstrapFromParent({
      password: "x".repeat(32),
      parent: { id: "spw-00000001", url: `http://127.0.0.1:${squatter.addr.port}` },
      pin: "sha256:00",
    }, { serviceId: "spw-00000002", endpoint: "http://127.0.0.1:1", host: "h" }).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(error instanceof BootstrapError, String(error));
    assert.equal(error.exitCode, 77);
    assert.match(error.message, /answered more than 1048576 bytes/);
    assert.ok(sent < 64 * 1024 * 1024, `read on: ${sent} bytes`);
  } finally {
    await squatter.shutdown();
  }
});
