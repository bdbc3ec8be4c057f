/**
 * The HTTP front (issue 14, item 5) over real sockets: slow clients are
 * dropped after the header and request deadlines, connections are bounded per
 * peer and in all, idle keep-alive connections close, and answers (long polls,
 * server-sent events, WebSockets) are never under a deadline. Deadlines here
 * are short; production uses 10 s and 30 s.
 */
import assert from "node:assert/strict";
import { eventually } from "../_eventually.ts";
import { createApp } from "../../src/api/app.ts";
import type { GuardedServer } from "../../src/api/guarded_server.ts";
import { closeQuietly, withServer } from "./_guarded.ts";
import { HttpFront } from "../../src/api/http_front.ts";
import type { ServiceHandlers } from "../../src/api/service_handlers.ts";
import {
  generateFabricKeys,
  ReplayCache,
  signRequest,
  verifyResponse,
} from "../../src/crypto/mod.ts";
import type { ServiceStatus } from "../../src/types/mod.ts";

const SERVICE = "spw-f0e1d2c3";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function connect(server: GuardedServer): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
}

/** Everything the server sends until it closes the connection, or "(open)" after `ms`. */
async function readUntilClosed(conn: Deno.Conn, ms: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(65536);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), ms));
  try {
    while (true) {
      const n = await Promise.race([conn.read(buffer).catch(() => null), late]);
      if (n === "late") return "(open)";
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
  } finally {
    clearTimeout(timer);
  }
  return chunks.map((c) => decoder.decode(c)).join("");
}

const echo: Deno.ServeHandler<Deno.NetAddr> = async (request, info) =>
  Response.json({
    path: new URL(request.url).pathname,
    peer: info.remoteAddr.hostname,
    port: info.remoteAddr.port,
    body: await request.text(),
  });

Deno.test("serveGuarded() passes requests on and gives the handler the client's address, whatever Fabric-Peer it sent", async () => {
  await withServer(echo, {}, async (server) => {
    const conn = await connect(server);
    try {
      await conn.write(encoder.encode(
        "POST /a HTTP/1.1\r\nHost: x\r\nFabric-Peer: 203.0.113.9:1\r\nfabric-peer: 203.0.113.9:2\r\n" +
          "Content-Length: 5\r\nConnection: close\r\n\r\nhello",
      ));
      const answer = await readUntilClosed(conn, 5000);
      const json = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
      assert.equal(json.peer, "127.0.0.1");
      assert.equal(json.port, conn.localAddr.port);
      assert.equal(json.body, "hello");
    } finally {
      closeQuietly(conn);
    }
  });
});

Deno.test("serveGuarded() passes chunked bodies and pipelined requests in order", async () => {
  await withServer(echo, {}, async (server) => {
    const conn = await connect(server);
    try {
      await conn.write(encoder.encode(
        "POST /one HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
          "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n" +
          "GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      ));
      const answer = await readUntilClosed(conn, 5000);
      assert.match(answer, /"path":"\/one".*"body":"abcde"/s);
      assert.match(answer, /"path":"\/two"/);
      assert.ok(answer.indexOf("/one") < answer.indexOf("/two"));
    } finally {
      closeQuietly(conn);
    }
  });
});

Deno.test("serveGuarded() answers a signed request while 1000 half-open connections are held, and closes them after the header deadline", async () => {
  const keys = await generateFabricKeys();
  const status = { id: SERVICE } as ServiceStatus;
  const app = createApp({
    serviceId: SERVICE,
    keys: () => keys,
    replayCache: new ReplayCache(),
    handlers: { status: () => status } as ServiceHandlers,
  });
  await withServer(app.fetch, {
    headersTimeoutMs: 1000,
    maxConnectionsPerPeer: 2000,
    maxConnections: 2000,
  }, async (server) => {
    const slow: Deno.TcpConn[] = [];
    try {
      for (let i = 0; i < 1000; i++) {
        const conn = await connect(server);
        slow.push(conn);
        await conn.write(encoder.encode("GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: "));
      }
      assert.equal(server.front.stats().open, 1000);
      const url = `http://127.0.0.1:${server.addr.port}/v1/status`;
      const signed = await signRequest({ method: "GET", url, body: new Uint8Array() }, keys, {
        target: SERVICE,
      });
      const answer = await fetch(url, { headers: signed.headers });
      const body = new Uint8Array(await answer.arrayBuffer());
      assert.equal(answer.status, 200);
      const verdict = await verifyResponse(
        { status: answer.status, headers: answer.headers, body },
        { publicKey: keys.publicKey, fingerprint: keys.fingerprint, requestNonce: signed.nonce },
      );
      assert.ok(verdict.ok, "the answer is signed by the service");
      const ends = await Promise.all(slow.map((conn) => readUntilClosed(conn, 10_000)));
      assert.equal(ends.filter((end) => end === "(open)").length, 0, "every slow one closed");
      assert.ok(ends.every((end) => end.startsWith("HTTP/1.1 408 ")), "each was told 408");
      assert.equal(server.front.stats().timedOut, 1000);
    } finally {
      slow.forEach(closeQuietly);
    }
  });
});

Deno.test("HttpFront makes room at maxConnectionsPerPeer by closing the peer's oldest waiting connection", async () => {
  await withServer(echo, { maxConnectionsPerPeer: 8, headersTimeoutMs: 20_000 }, async (server) => {
    const held = await Promise.all(Array.from({ length: 8 }, () => connect(server)));
    const extra = await connect(server);
    try {
      await extra.write(encoder.encode("GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
      assert.match(await readUntilClosed(extra, 5000), /^HTTP\/1\.1 200 OK/, "the ninth is served");
      assert.equal(await readUntilClosed(held[0]!, 5000), "", "the oldest waiting one was closed");
      assert.equal(server.front.stats().evicted, 1);
      assert.equal(server.front.stats().refused, 0);
    } finally {
      held.forEach(closeQuietly);
      closeQuietly(extra);
    }
  });
});

Deno.test("HttpFront makes room by closing the connection whose request body has been arriving the longest", async () => {
  const reading: Deno.ServeHandler<Deno.NetAddr> = async (request) => {
    await request.arrayBuffer();
    return new Response("read");
  };
  await withServer(reading, { maxConnections: 4, requestTimeoutMs: 20_000 }, async (server) => {
    const trickling = await Promise.all(Array.from({ length: 4 }, () => connect(server)));
    for (const conn of trickling) {
      await conn.write(
        encoder.encode("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{"),
      );
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await eventually(() => server.front.stats().open === 4);
    const extra = await connect(server);
    try {
      await extra.write(encoder.encode("GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
      assert.match(await readUntilClosed(extra, 5000), /^HTTP\/1\.1 200 OK/, "the fifth is served");
      assert.equal(await readUntilClosed(trickling[0]!, 5000), "", "the earliest body was cut off");
      assert.equal(server.front.stats().evicted, 1);
      assert.equal(server.front.stats().refused, 0);
    } finally {
      trickling.forEach(closeQuietly);
      closeQuietly(extra);
    }
  });
});

Deno.test("HttpFront closes a new connection at once when every connection at the limit is being served", async () => {
  let release = (): void => {};
  const released = new Promise<void>((resolve) => release = resolve);
  let answering = 0;
  const slowAnswer: Deno.ServeHandler<Deno.NetAddr> = async () => {
    answering++;
    await released;
    return new Response("late");
  };
  await withServer(slowAnswer, { maxConnections: 4, headersTimeoutMs: 20_000 }, async (server) => {
    const busy = await Promise.all(Array.from({ length: 4 }, () => connect(server)));
    for (const conn of busy) {
      await conn.write(encoder.encode("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    // Every one has its request passed on (its answer outstanding) before the fifth arrives.
    await eventually(() => server.front.stats().open === 4 && answering === 4);
    const extra = await connect(server);
    try {
      assert.equal(await readUntilClosed(extra, 5000), "", "the fifth is closed without an answer");
      assert.equal(server.front.stats().refused, 1);
      assert.equal(server.front.stats().evicted, 0);
    } finally {
      release();
      busy.forEach(closeQuietly);
      closeQuietly(extra);
    }
  });
});

Deno.test("serveGuarded() with its default limits answers a client while one peer holds 1000 half-open connections", async () => {
  await withServer(echo, {}, async (server) => {
    const slow: Deno.TcpConn[] = [];
    try {
      for (let i = 0; i < 1000; i++) {
        const conn = await connect(server);
        slow.push(conn);
        await conn.write(encoder.encode("GET /x HTTP/1.1\r\nHost: x\r\nX-Slow: "));
      }
      const answer = await fetch(`http://127.0.0.1:${server.addr.port}/ok`);
      assert.equal(answer.status, 200);
      await answer.body?.cancel();
      const stats = server.front.stats();
      assert.ok(stats.open <= server.front.limits.maxConnectionsPerPeer + 1, `${stats.open} open`);
      assert.ok(
        stats.evicted >= 1000 - server.front.limits.maxConnectionsPerPeer,
        `${stats.evicted}`,
      );
    } finally {
      slow.forEach(closeQuietly);
    }
  });
});

/** The front's 408 for a request not received in time (docs/protocol.md 2.10), byte for byte. */
const TIMED_OUT_ANSWER = "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n" +
  "content-type: application/json\r\ncontent-length: 60\r\n\r\n" +
  '{"error":"Request was not received in time: send it faster"}';

Deno.test("HttpFront answers 408 and closes when a request body is slower than the request deadline", async () => {
  let handlerSawBody = false;
  let handlerFailed = false;
  const handler: Deno.ServeHandler<Deno.NetAddr> = async (request) => {
    try {
      await request.text();
      handlerSawBody = true;
    } catch {
      // The front cut the connection: the body never completes.
      handlerFailed = true;
    }
    return new Response("late");
  };
  await withServer(handler, { headersTimeoutMs: 300, requestTimeoutMs: 800 }, async (server) => {
    const conn = await connect(server);
    try {
      await conn.write(
        encoder.encode("POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345"),
      );
      assert.equal(await readUntilClosed(conn, 10_000), TIMED_OUT_ANSWER);
      assert.equal(handlerSawBody, false);
      await eventually(() => handlerFailed, { what: "the server's read of the body to fail" });
      assert.equal(server.front.stats().timedOut, 1);
    } finally {
      closeQuietly(conn);
    }
  });
});

Deno.test("HttpFront answers 408 to a slow chunked body after an earlier answer on the connection was sent whole", async () => {
  const handler: Deno.ServeHandler<Deno.NetAddr> = async (request) => {
    const path = new URL(request.url).pathname;
    // The second body never completes: the front cuts the server off.
    const body = await request.text().catch(() => "(cut)");
    return Response.json({ path, body });
  };
  await withServer(handler, { headersTimeoutMs: 300, requestTimeoutMs: 800 }, async (server) => {
    const conn = await connect(server);
    try {
      await conn.write(encoder.encode(
        "GET /first HTTP/1.1\r\nHost: x\r\n\r\n" +
          "POST /second HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
      ));
      const answer = await readUntilClosed(conn, 10_000);
      assert.match(answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*"path":"\/first"/);
      assert.ok(answer.endsWith(`}${TIMED_OUT_ANSWER}`), answer);
      assert.doesNotMatch(answer, /\/second/);
      assert.equal(server.front.stats().timedOut, 1);
    } finally {
      closeQuietly(conn);
    }
  });
});

/** An answer that sends `first`, then nothing more until `released`. */
function unfinishedAnswer(first: string, released: Promise<void>): Response {
  let sent = false;
  return new Response(
    new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent) {
          await released;
          controller.close();
          return;
        }
        sent = true;
        controller.enqueue(encoder.encode(first));
      },
    }),
  );
}

Deno.test("HttpFront just closes at the request deadline while an earlier answer on the connection is still being sent", async () => {
  let release = (): void => {};
  const released = new Promise<void>((resolve) => release = resolve);
  const handler: Deno.ServeHandler<Deno.NetAddr> = (request) =>
    new URL(request.url).pathname === "/stream"
      ? unfinishedAnswer("part one;", released)
      : new Response("other");
  await withServer(handler, { headersTimeoutMs: 300, requestTimeoutMs: 800 }, async (server) => {
    const conn = await connect(server);
    try {
      await conn.write(encoder.encode(
        "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n" +
          "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345",
      ));
      const answer = await readUntilClosed(conn, 10_000);
      assert.match(answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*part one;/);
      assert.doesNotMatch(answer, /408/, "no 408 inside the unfinished answer");
      assert.equal(server.front.stats().timedOut, 1);
    } finally {
      release();
      closeQuietly(conn);
    }
  });
});

Deno.test("HttpFront just closes at the request deadline when the server already answered the slow request", async () => {
  let release = (): void => {};
  const released = new Promise<void>((resolve) => release = resolve);
  // Answers before the body is in: whole (/whole), or started and unfinished (/started).
  const handler: Deno.ServeHandler<Deno.NetAddr> = (request) =>
    new URL(request.url).pathname === "/whole"
      ? new Response("early")
      : unfinishedAnswer("begun;", released);
  await withServer(handler, { headersTimeoutMs: 300, requestTimeoutMs: 800 }, async (server) => {
    const [whole, started] = await Promise.all([connect(server), connect(server)]);
    try {
      for (const [conn, path] of [[whole, "/whole"], [started, "/started"]] as const) {
        await conn.write(encoder.encode(
          `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345`,
        ));
      }
      const [first, second] = await Promise.all([
        readUntilClosed(whole, 10_000),
        readUntilClosed(started, 10_000),
      ]);
      assert.match(
        first,
        /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nearly$/,
        "one answer, no 408 after it",
      );
      assert.match(second, /^HTTP\/1\.1 200 OK\r\n[\s\S]*begun;/);
      assert.doesNotMatch(second, /408/, "no 408 inside the unfinished answer");
    } finally {
      release();
      closeQuietly(whole);
      closeQuietly(started);
    }
  });
});

Deno.test("HttpFront closes an idle keep-alive connection after idleTimeoutMs", async () => {
  await withServer(echo, { idleTimeoutMs: 300 }, async (server) => {
    const conn = await connect(server);
    try {
      await conn.write(encoder.encode("GET /d HTTP/1.1\r\nHost: x\r\n\r\n"));
      const answer = await readUntilClosed(conn, 10_000);
      assert.match(answer, /^HTTP\/1\.1 200 OK/);
      assert.match(answer, /"path":"\/d"/);
      assert.equal(server.front.stats().idleClosed, 1);
    } finally {
      closeQuietly(conn);
    }
  });
});

Deno.test("HttpFront puts no deadline on answers: long polls, event streams and WebSockets outlive every deadline", async () => {
  const handler: Deno.ServeHandler<Deno.NetAddr> = async (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/ws") {
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.onmessage = (event) => socket.send(`echo ${event.data}`);
      return response;
    }
    if (path === "/events") {
      let n = 0;
      const stream = new ReadableStream<Uint8Array>({
        async pull(controller) {
          // An event every 200 ms: the stream outlives every deadline.
          await new Promise((resolve) => setTimeout(resolve, 200));
          controller.enqueue(encoder.encode(`data: ${n++}\n\n`));
          if (n === 6) controller.close();
        },
      });
      return new Response(stream, { headers: { "content-type": "text/event-stream" } });
    }
    // A long poll: it answers after every deadline has passed.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    return new Response("polled");
  };
  const limits = { headersTimeoutMs: 200, requestTimeoutMs: 300, idleTimeoutMs: 300 };
  await withServer(handler, limits, async (server) => {
    const base = `http://127.0.0.1:${server.addr.port}`;
    assert.equal(await (await fetch(`${base}/poll`)).text(), "polled");
    const events = await (await fetch(`${base}/events`)).text();
    assert.equal(events.match(/^data: /gm)?.length, 6);
    const socket = new WebSocket(`ws://127.0.0.1:${server.addr.port}/ws`);
    try {
      await new Promise((resolve, reject) => {
        socket.onopen = resolve;
        socket.onerror = reject;
      });
      // The socket stays open past every deadline: that is what is tested.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const echoed = new Promise((resolve) => socket.onmessage = (event) => resolve(event.data));
      socket.send("hi");
      assert.equal(await echoed, "echo hi");
      assert.equal(server.front.stats().timedOut, 0);
    } finally {
      const closed = new Promise((resolve) => socket.onclose = resolve);
      socket.close();
      await closed;
    }
  });
});

Deno.test("HttpFront refuses ambiguous or oversized request heads with 400 or 431 before the server sees them", async () => {
  let calls = 0;
  const handler: Deno.ServeHandler<Deno.NetAddr> = () => {
    calls++;
    return new Response("ok");
  };
  await withServer(handler, { maxHeadBytes: 1024 }, async (server) => {
    const cases: [string, string][] = [
      [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "400",
      ],
      ["POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "400"],
      ["POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", "400"],
      ["GET / HTTP/1.1\nHost: x\r\n\r\n", "400"],
      ["GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", "400"],
      [`GET / HTTP/1.1\r\nHost: x\r\nX-Long: ${"a".repeat(2000)}\r\n\r\n`, "431"],
      // Paths the signature (normalized) and the router (as sent) would read apart.
      ...[
        "/v1/stop/../status",
        "/v1/./status",
        "/v1//status",
        "/v1/%2e%2e/status",
        "/v1%2fstatus",
        "/v1\\status",
        "*",
        "http://x/v1/status",
      ].map((path): [string, string] => [`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`, "400"]),
    ];
    for (const [head, status] of cases) {
      const conn = await connect(server);
      try {
        await conn.write(encoder.encode(head));
        const answer = await readUntilClosed(conn, 5000);
        assert.ok(answer.startsWith(`HTTP/1.1 ${status} `), `${JSON.stringify(head)}: ${answer}`);
      } finally {
        closeQuietly(conn);
      }
    }
    assert.equal(calls, 0);
    // A query may hold anything; a normal path with one is passed on.
    const conn = await connect(server);
    try {
      await conn.write(
        encoder.encode(
          "GET /v1/status?x=../..//%2e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
      );
      assert.ok((await readUntilClosed(conn, 5000)).startsWith("HTTP/1.1 200 "));
    } finally {
      closeQuietly(conn);
    }
    assert.equal(calls, 1);
  });
});

Deno.test("HttpFront.listen() throws RangeError for a limit that is not a positive integer", () => {
  assert.throws(
    () =>
      HttpFront.listen({ hostname: "127.0.0.1", port: 0, backendPath: "/x", maxConnections: 0 }),
    RangeError,
  );
});

Deno.test("serveGuarded() tells the server a client hung up: a long poll's request signal aborts", async () => {
  let waiting = 0;
  let abandoned: () => void = () => {};
  const gone = new Promise<void>((resolve) => abandoned = resolve);
  const handler: Deno.ServeHandler<Deno.NetAddr> = (request) => {
    waiting++;
    // A long poll: answers when its client leaves, or after 10 s.
    return new Promise<Response>((resolve) => {
      const timer = setTimeout(() => resolve(new Response("late")), 10_000);
      request.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        waiting--;
        abandoned();
        resolve(new Response("gone"));
      });
    });
  };
  await withServer(handler, {}, async (server) => {
    const conn = await connect(server);
    await conn.write(encoder.encode("GET /poll HTTP/1.1\r\nHost: x\r\n\r\n"));
    const deadline = Date.now() + 5000;
    while (waiting === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(waiting, 1, "the poll reached the server");
    closeQuietly(conn);
    const left = await Promise.race([gone.then(() => "aborted"), delay(3000, "still waiting")]);
    assert.equal(left, "aborted");
    assert.equal(waiting, 0);
  });
});

function delay<T>(ms: number, value: T): Promise<T> {
  return new Promise((resolve) => setTimeout(() => resolve(value), ms));
}
