/**
 * Clients that do not read their answers (docs/protocol.md 2.10): a
 * connection whose client has not taken its answer for ANSWER_STALL_MS may be
 * closed to make room, and every loopback address counts as one peer. Before,
 * such connections could never be closed, and 1100 of them, from as many
 * loopback addresses, each pipelining requests it never read the answers of,
 * made every service DEAD.
 */
import assert from "node:assert/strict";
import { eventually } from "../_eventually.ts";
import { peerOf } from "../../src/api/http_front.ts";
import { closeQuietly, withServer } from "./_guarded.ts";
import { ANSWER_STALL_MS } from "../../src/api/_front_connection.ts";

const encoder = new TextEncoder();

Deno.test("HttpFront makes room by closing a connection whose client does not read its answer", async () => {
  const big = "x".repeat(4 * 1024 * 1024);
  await withServer(
    (request) => new URL(request.url).pathname === "/big" ? new Response(big) : new Response("ok"),
    { maxConnections: 4, maxConnectionsPerPeer: 4 },
    async (server) => {
      const port = server.addr.port;
      const stuck: Deno.TcpConn[] = [];
      try {
        for (let i = 0; i < 4; i++) {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port });
          await conn.write(encoder.encode("GET /big HTTP/1.1\r\nHost: x\r\n\r\n"));
          stuck.push(conn);
        }
        await new Promise((r) => setTimeout(r, ANSWER_STALL_MS + 300));
        const answer = await eventually(async () => {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port });
          try {
            await conn.write(
              encoder.encode("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            );
            const text = await new Response(conn.readable).text().catch(() => "");
            return text.startsWith("HTTP/1.1 200") ? text : undefined;
          } catch {
            closeQuietly(conn);
            return undefined;
          }
        }, { timeoutMs: 5000 });
        assert.match(answer, /ok$/);
      } finally {
        for (const conn of stuck) closeQuietly(conn);
      }
    },
  );
});

Deno.test("peerOf() counts every loopback address as one peer", () => {
  for (const address of ["127.0.0.1", "127.1.2.3", "127.255.255.254", "::1", "::ffff:127.0.0.9"]) {
    assert.equal(peerOf(address), "loopback", address);
  }
  assert.equal(peerOf("10.0.0.1"), "10.0.0.1");
  assert.equal(peerOf("::ffff:10.0.0.1"), "::ffff:10.0.0.1");
});

Deno.test("HttpFront makes room by closing the busiest connection when every one pipelines without pause", async () => {
  await withServer(
    async () => {
      await new Promise((r) => setTimeout(r, 20));
      return new Response("ok");
    },
    { maxConnections: 4, maxConnectionsPerPeer: 4 },
    async (server) => {
      const port = server.addr.port;
      const busy: Deno.TcpConn[] = [];
      const some = encoder.encode("GET /x HTTP/1.1\r\nHost: x\r\n\r\n".repeat(16));
      let feeding = true;
      try {
        for (let i = 0; i < 4; i++) {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port });
          busy.push(conn);
          // They read every answer, so none stalls, and never stop sending:
          // each is always busy, for as long as the test runs.
          conn.readable.pipeTo(new WritableStream()).catch(() => {});
          (async () => {
            while (feeding) {
              await conn.write(some);
              await new Promise((r) => setTimeout(r, 100));
            }
          })().catch(() => {});
        }
        // Until each has had its requests passed on, a newcomer may find none to close.
        const answer = await eventually(async () => {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port });
          try {
            await conn.write(
              encoder.encode("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            );
            const text = await new Response(conn.readable).text().catch(() => "");
            return text.startsWith("HTTP/1.1 200") ? text : undefined;
          } catch {
            closeQuietly(conn);
            return undefined;
          }
        }, { timeoutMs: 10_000 });
        assert.match(answer, /ok$/);
      } finally {
        feeding = false;
        for (const conn of busy) closeQuietly(conn);
      }
    },
  );
});
