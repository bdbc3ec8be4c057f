/**
 * The Slurm launcher's TCP relay carries bytes both ways and at most
 * `maxConnections` connections at once: one more is closed at once.
 */
import assert from "node:assert/strict";
import { startTcpRelay } from "../../src/launchers/_tcp_relay.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads once from `conn`: its bytes as text, or "(closed)" at its end. */
async function readOnce(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(1024);
  const n = await conn.read(buffer).catch(() => null);
  return n === null ? "(closed)" : decoder.decode(buffer.subarray(0, n));
}

Deno.test("startTcpRelay() echoes through, and closes a connection over maxConnections at once", async () => {
  const echo = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served: Deno.Conn[] = [];
  void (async () => {
    for await (const conn of echo) {
      served.push(conn);
      conn.readable.pipeTo(conn.writable).catch(() => {});
    }
  })().catch(() => {});
  const relay = startTcpRelay({
    bind: "127.0.0.1",
    target: { host: "127.0.0.1", port: (echo.addr as Deno.NetAddr).port },
    maxConnections: 2,
  });
  const clients: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: relay.port });
      clients.push(conn);
      await conn.write(encoder.encode(`hello ${i}`));
      assert.equal(await readOnce(conn), `hello ${i}`);
    }
    const third = await Deno.connect({ hostname: "127.0.0.1", port: relay.port });
    clients.push(third);
    await third.write(encoder.encode("one too many")).catch(() => 0);
    assert.equal(await readOnce(third), "(closed)");
    clients[0]!.close();
    clients.shift();
    // A carried connection that ended makes room again.
    let answer = "(closed)";
    for (let tries = 0; tries < 50 && answer === "(closed)"; tries++) {
      const again = await Deno.connect({ hostname: "127.0.0.1", port: relay.port });
      clients.push(again);
      await again.write(encoder.encode("room")).catch(() => 0);
      answer = await readOnce(again);
      if (answer === "(closed)") await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(answer, "room");
  } finally {
    for (const conn of clients) {
      try {
        conn.close();
      } catch {
        // Closed by the relay.
      }
    }
    relay.close();
    echo.close();
    for (const conn of served) {
      try {
        conn.close();
      } catch {
        // Closed with the relay.
      }
    }
  }
});
