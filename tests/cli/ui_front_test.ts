/**
 * `fabricd ui` is served behind the services' connection front
 * (docs/protocol.md 2.10): loopback is not a trust boundary, so a slow
 * partial head is cut by the head deadline with the front's 408, one peer's
 * half-open connections are bounded, and the page's event stream is never
 * under a deadline.
 */
import assert from "node:assert/strict";
import { stoppedFabric } from "./_stopped_fabric.ts";
import { serveUi } from "../../src/cli/ui.ts";
import type { FabricClient } from "../../src/client/fabric_client.ts";
import { generateFabricKeys } from "../../src/crypto/mod.ts";
import { createUiServer } from "../../src/ui/ui_server.ts";
import { fakeRegistry } from "../_fake_registry.ts";
import { FABRICD, withTempDir } from "../e2e/_fabric.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const LOGIN = "a".repeat(43);
const BEARER = "b".repeat(43);

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Closed by the server already.
  }
}

/** A read that timed out, still pending: the next read of the connection takes its bytes. */
const pending = new WeakMap<Deno.Conn, Promise<string>>();

/** The next bytes `conn` reads as text, "(closed)" at its end, or "(open)" after `ms`. */
async function readFor(conn: Deno.Conn, ms: number): Promise<string> {
  const buffer = new Uint8Array(65536);
  const read = pending.get(conn) ?? conn.read(buffer).then(
    (n) => n === null ? "(closed)" : decoder.decode(buffer.subarray(0, n)),
    () => "(closed)",
  );
  pending.delete(conn);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), ms));
  try {
    const text = await Promise.race([read, late]);
    if (text !== "late") return text;
    pending.set(conn, read);
    return "(open)";
  } finally {
    clearTimeout(timer);
  }
}

/** Everything `conn` reads until the server closes it, within `ms`. */
async function readAll(conn: Deno.Conn, ms: number): Promise<string> {
  let text = "";
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    const part = await readFor(conn, deadline - performance.now());
    if (part === "(closed)") return text;
    if (part === "(open)") break;
    text += part;
  }
  return text + "(open)";
}

Deno.test("serveUi() cuts a slow partial head with the front's 408, serves the page, and leaves its event stream open past every deadline", async () => {
  const ui = createUiServer({
    keys: await generateFabricKeys(),
    client: {} as FabricClient,
    registry: fakeRegistry().client,
    dir: "/nonexistent",
    bearer: BEARER,
    loginToken: LOGIN,
    sampleMs: 60_000,
  });
  const limits = { headersTimeoutMs: 300, requestTimeoutMs: 400, idleTimeoutMs: 400 };
  const server = await serveUi("127.0.0.1", 0, ui.app.fetch, limits);
  const base = `http://127.0.0.1:${server.addr.port}`;
  const slow = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  let events: Deno.TcpConn | undefined;
  let drip: ReturnType<typeof setInterval> | undefined;
  try {
    // A partial head and a byte every 100 ms: the head deadline still runs out.
    await slow.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "));
    drip = setInterval(() => slow.write(encoder.encode("a")).catch(() => {}), 100);
    const started = performance.now();
    const answer = await readAll(slow, 3000).finally(() => clearInterval(drip));
    assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/, answer);
    assert.match(answer, /"error":"Request was not received in time: send it faster"}$/);
    assert.ok(performance.now() - started < 2000, "cut by the 300 ms head deadline");

    const login = await fetch(`${base}/login?token=${LOGIN}`, { redirect: "manual" });
    await login.body?.cancel();
    assert.equal(login.status, 303);
    const cookie = login.headers.get("set-cookie")!.split(";")[0]!;
    const page = await fetch(`${base}/`, { headers: { cookie } });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);

    // The head deadline of a connection's first request runs from its accept.
    events = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await events.write(
      encoder.encode(`GET /api/events HTTP/1.1\r\nHost: x\r\nCookie: ${cookie}\r\n\r\n`),
    );
    let stream = "";
    while (!stream.includes(": since") && !stream.endsWith(")")) {
      stream += await readFor(events, 2000);
    }
    assert.match(stream, /^HTTP\/1\.1 200 OK\r\n.*text\/event-stream/is);
    assert.equal(await readFor(events, 1000), "(open)", "the stream outlives every deadline");
    ui.close();
    const rest = await readAll(events, 2000);
    assert.match(rest, /0\r\n\r\n$/, `the stream ends when the UI closes: ${rest}`);
  } finally {
    ui.close();
    clearInterval(drip);
    closeQuietly(slow);
    if (events) closeQuietly(events);
    await server.shutdown();
    // The registry follower pauses a second after its stream ends, then sees it was stopped.
    await new Promise((resolve) => setTimeout(resolve, 1100));
  }
});

Deno.test("fabricd ui answers through the connection front: its 400s, a bound on one peer's half-open connections, SIGINT still stops it", async () => {
  await withTempDir(async (dir) => {
    const child = new Deno.Command(FABRICD[0]!, {
      args: [...FABRICD.slice(1), "ui", "--fabric", await stoppedFabric(dir)],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const held: Deno.TcpConn[] = [];
    const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    try {
      let printed = "";
      while (!/login\?token=\S+\n/.test(printed)) {
        const { value, done } = await stdout.read();
        assert.ok(!done, `fabricd ui ended early: ${printed}`);
        printed += value;
      }
      const [, base, token] = /open (http:\/\/127\.0\.0\.1:\d+)\/login\?token=(\S+)/.exec(printed)!;
      const port = Number(new URL(base!).port);
      const connect = () => Deno.connect({ hostname: "127.0.0.1", port });

      // The front refuses what two parsers could read differently, with its own JSON.
      const odd = await connect();
      held.push(odd);
      await odd.write(encoder.encode("GET /a/../metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
      const refused = await readAll(odd, 5000);
      assert.match(refused, /^HTTP\/1\.1 400 Bad Request\r\n/, refused);
      assert.match(refused, /"error":"Request path must be in normal form/, refused);

      // One peer's half-open connections are bounded (256): the oldest makes room.
      for (let i = 0; i < 257; i++) {
        const conn = await connect();
        held.push(conn);
        await conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "));
      }
      assert.equal(await readFor(held[1]!, 5000), "(closed)", "the oldest was closed");
      const login = await fetch(`${base}/login?token=${token}`, { redirect: "manual" });
      await login.body?.cancel();
      assert.equal(login.status, 303, "a client that sends at once is served");

      child.kill("SIGINT");
      assert.equal((await child.status).code, 0);
    } finally {
      for (const conn of held) closeQuietly(conn);
      await stdout.cancel().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch {
        // Ended already.
      }
      await child.status;
    }
  });
});
