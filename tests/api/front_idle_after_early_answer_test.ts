/**
 * The idle timer of a connection whose request was answered before its body
 * was all in (docs/protocol.md 2.10): before, the answer's end found the body
 * still arriving and set no idle timer, and the body's end set none either,
 * so such a connection stayed open for good once its body was sent.
 */
import assert from "node:assert/strict";
import { closeQuietly, withServer } from "./_guarded.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads until `conn` holds a whole answer head (the answers here have no body). */
async function readHead(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(65536);
  let text = "";
  while (!text.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += decoder.decode(buffer.subarray(0, n));
  }
  return text;
}

/** True once the server closes `conn`, false if it is still open after `ms`. */
async function closedWithin(conn: Deno.Conn, ms: number): Promise<boolean> {
  const buffer = new Uint8Array(1024);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), ms));
  try {
    while (true) {
      const n = await Promise.race([conn.read(buffer).catch(() => null), late]);
      if (n === "late") return false;
      if (n === null) return true;
    }
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("HttpFront closes after idleTimeoutMs a connection whose request was answered before its body was in", async () => {
  // Answers before the body is in, as a refusal before verification does, and holds
  // the body unread: the server behind never closes its side, only the front can.
  const refuse = (request: Request) => {
    request.body?.getReader();
    return new Response(null, { status: 401 });
  };
  await withServer(refuse, { idleTimeoutMs: 200 }, async (server) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    try {
      await conn.write(
        encoder.encode("POST /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"),
      );
      assert.match(await readHead(conn), /^HTTP\/1\.1 401 /);
      await conn.write(encoder.encode("0123456789"));
      // Closed after 200 ms; the bound only keeps a broken front from hanging the test.
      assert.equal(await closedWithin(conn, 15_000), true, "the connection was never closed");
      assert.equal(server.front.stats().idleClosed, 1);
    } finally {
      closeQuietly(conn);
    }
  });
});
