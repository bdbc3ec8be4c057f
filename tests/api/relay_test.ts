import assert from "node:assert/strict";
import { Hono } from "hono";
import { generateFabricKeys, signRequest, verifyResponse } from "../../src/crypto/mod.ts";
import { nextHopUrl, type RelayMetrics } from "../../src/api/relay.ts";
import { bridgeRelay } from "./_bridge.ts";

const keys = await generateFabricKeys();

/** A next hop that echoes WebSocket frames and says which target it was asked for. */
function startEchoService(): {
  url: string;
  closed: Promise<void>;
  server: Deno.HttpServer<Deno.NetAddr>;
} {
  const { promise: closed, resolve } = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    if (request.headers.get("upgrade") !== "websocket") return new Response("no", { status: 426 });
    if (request.headers.get("x-refuse")) return new Response("refused", { status: 401 });
    const target = request.headers.get("fabric-target");
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => socket.send(`target:${target}`);
    socket.onmessage = (event) => socket.send(`echo:${event.data}`);
    socket.onclose = () => resolve();
    return response;
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, closed, server };
}

function startBridge(
  childUrl: string,
  maxBodyBytes = 1024,
  metrics?: RelayMetrics,
): Deno.HttpServer<Deno.NetAddr> {
  const app = new Hono();
  app.use(bridgeRelay(keys, childUrl, maxBodyBytes, metrics));
  app.onError((error, c) => c.json({ error: error.message }, (error as { status?: 401 }).status));
  app.all("*", (c) => c.text("not relayed", 418));
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
}

async function open(
  bridge: Deno.HttpServer<Deno.NetAddr>,
  headers: Record<string, string>,
): Promise<WebSocket> {
  const url = `http://127.0.0.1:${bridge.addr.port}/v1/pubsub/ws?topics=a`;
  const signed = await signRequest({ method: "GET", url, body: new Uint8Array() }, keys, {
    target: "svc-11111111",
  });
  signed.headers.set("fabric-route", "brg-11111111,svc-11111111");
  for (const [name, value] of Object.entries(headers)) signed.headers.set(name, value);
  return new WebSocket(url.replace("http:", "ws:"), { headers: signed.headers });
}

function nextMessage(socket: WebSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    socket.addEventListener("message", (event) => resolve(String(event.data)), { once: true });
    socket.addEventListener("error", () => reject(new Error("socket failed")), { once: true });
  });
}

Deno.test("relay() joins a client's WebSocket to the next hop's, frames both ways, and closes both", async () => {
  const service = startEchoService();
  const bridge = startBridge(service.url);
  try {
    const socket = await open(bridge, {});
    assert.equal(await nextMessage(socket), "target:svc-11111111", "signed headers reach the hop");
    const echo = nextMessage(socket);
    socket.send("hello");
    assert.equal(await echo, "echo:hello");
    socket.close();
    await service.closed;
  } finally {
    await bridge.shutdown();
    await service.server.shutdown();
  }
});

Deno.test("relay() refuses the client's WebSocket when the next hop refuses its own", async () => {
  const service = startEchoService();
  const bridge = startBridge(service.url);
  try {
    const socket = await open(bridge, { "x-refuse": "1" });
    const outcome = await new Promise<string>((resolve) => {
      socket.onopen = () => resolve("open");
      socket.onerror = () => resolve("error");
    });
    assert.equal(outcome, "error");
  } finally {
    await bridge.shutdown();
    await service.server.shutdown();
  }
});

/** An HTTP service that records what reached it. */
function startRecorder(): {
  url: string;
  hits: { url: string; body: string; hops: string | null }[];
  server: Deno.HttpServer<Deno.NetAddr>;
} {
  const hits: { url: string; body: string; hops: string | null }[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const body = await request.text().catch(() => "(body failed)");
      hits.push({ url: request.url, body, hops: request.headers.get("fabric-hops") });
      return new Response("hop answered", { status: 200 });
    },
  );
  return { url: `http://127.0.0.1:${server.addr.port}`, hits, server };
}

/** Sends raw HTTP/1.1 with the given request target, for targets fetch() would normalise. */
async function rawRequest(port: number, target: string, headers: Headers): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const lines = [`GET ${target} HTTP/1.1`, `host: 127.0.0.1:${port}`, "connection: close"];
  for (const [name, value] of headers) lines.push(`${name}: ${value}`);
  await conn.write(new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));
  const answer = await new Response(conn.readable).text();
  return answer;
}

async function signedFor(
  url: string,
  options: { method?: string; body?: string; target?: string } = {},
): Promise<{ headers: Headers; nonce: string; body: Uint8Array<ArrayBuffer> }> {
  const body = new TextEncoder().encode(options.body ?? "");
  const headers = new Headers(body.length > 0 ? { "content-type": "application/json" } : {});
  const signed = await signRequest({ method: options.method ?? "GET", url, headers, body }, keys, {
    target: options.target ?? "svc-11111111",
  });
  signed.headers.set("fabric-route", "brg-11111111,svc-11111111");
  return { ...signed, body };
}

Deno.test("nextHopUrl() keeps the hop's host whatever the request path looks like", () => {
  const hop = "http://127.0.0.1:4000";
  for (
    const pathname of [
      "//198.51.100.7:80/x",
      "/\\198.51.100.7:80/x",
      "//user@evil/x",
      "/..//evil/x",
    ]
  ) {
    const url = nextHopUrl(hop, { pathname, search: "?a=1" });
    assert.equal(url.host, "127.0.0.1:4000", pathname);
    assert.equal(url.search, "?a=1");
    assert.ok(url.pathname.startsWith("/"));
  }
  assert.equal(
    nextHopUrl("http://h:1/base/", { pathname: "/v1/status", search: "" }).href,
    "http://h:1/base/v1/status",
  );
  assert.throws(() => nextHopUrl("file:///etc", { pathname: "/x", search: "" }), TypeError);
  assert.throws(() => nextHopUrl(hop, { pathname: "x", search: "" }), TypeError);
});

Deno.test("relay() refuses an unsigned request with 401 and sends nothing anywhere, whatever its request target", async () => {
  const child = startRecorder();
  const victim = startRecorder();
  const refusals: string[] = [];
  const metrics: RelayMetrics = {
    relayed: () => {},
    bytes: () => {},
    socket: () => {},
    refused: (reason) => refusals.push(reason),
  };
  const bridge = startBridge(child.url, 1024, metrics);
  try {
    const victimHost = new URL(victim.url).host;
    for (const target of [`//${victimHost}/x`, `/\\${victimHost}/x`, "/v1/status"]) {
      const answer = await rawRequest(
        bridge.addr.port,
        target,
        new Headers({
          "fabric-target": "svc-11111111",
          "fabric-route": "brg-11111111,svc-11111111",
        }),
      );
      assert.match(answer, /^HTTP\/1.1 401/, target);
    }
    assert.equal(victim.hits.length, 0);
    assert.equal(child.hits.length, 0);
    assert.equal(refusals.length, 3, "each refusal counted with the signature failures");
  } finally {
    await bridge.shutdown();
    await child.server.shutdown();
    await victim.server.shutdown();
  }
});

Deno.test("relay() sends a signed request with a //HOST:PORT target to the route's hop, not to HOST:PORT", async () => {
  const child = startRecorder();
  const victim = startRecorder();
  const bridge = startBridge(child.url);
  try {
    const victimHost = new URL(victim.url).host;
    const base = `http://127.0.0.1:${bridge.addr.port}`;
    const signed = await signedFor(`${base}//${victimHost}/x`);
    const answer = await rawRequest(bridge.addr.port, `//${victimHost}/x`, signed.headers);
    assert.match(answer, /^HTTP\/1.1 200/);
    assert.equal(victim.hits.length, 0);
    assert.equal(child.hits.length, 1);
    assert.equal(new URL(child.hits[0]!.url).pathname, `//${victimHost}/x`);
    assert.equal(child.hits[0]!.hops, "1");
  } finally {
    await bridge.shutdown();
    await child.server.shutdown();
    await victim.server.shutdown();
  }
});

Deno.test("relay() answers its own errors signed when the request verified: bad Fabric-Hops, no child, loop", async () => {
  const child = startRecorder();
  const bridge = startBridge(child.url);
  try {
    const base = `http://127.0.0.1:${bridge.addr.port}`;
    const cases: [Record<string, string>, number, RegExp][] = [
      [{ "fabric-hops": "-1" }, 400, /Fabric-Hops must be a non-negative integer/],
      [{ "fabric-hops": "1.5" }, 400, /Fabric-Hops/],
      [{ "fabric-hops": "16" }, 508, /routing loop/],
      [{ "fabric-route": "brg-11111111,svc-22222222" }, 502, /has no child \\"svc-22222222\\"/],
    ];
    for (const [extra, status, message] of cases) {
      const signed = await signedFor(`${base}/v1/status`);
      for (const [name, value] of Object.entries(extra)) signed.headers.set(name, value);
      const answer = await fetch(`${base}/v1/status`, { headers: signed.headers });
      const bytes = new Uint8Array(await answer.arrayBuffer());
      assert.equal(answer.status, status, JSON.stringify(extra));
      assert.match(new TextDecoder().decode(bytes), message);
      const verdict = await verifyResponse(
        { status: answer.status, headers: answer.headers, body: bytes },
        { publicKey: keys.publicKey, fingerprint: keys.fingerprint, requestNonce: signed.nonce },
      );
      assert.ok(verdict.ok, JSON.stringify(extra));
    }
    assert.equal(child.hits.length, 0);
  } finally {
    await bridge.shutdown();
    await child.server.shutdown();
  }
});

Deno.test("relay() streams a body within the limit and refuses an oversized or altered one before the hop acts", async () => {
  const child = startRecorder();
  const bridge = startBridge(child.url, 64);
  try {
    const url = `http://127.0.0.1:${bridge.addr.port}/v1/spawn`;
    const ok = await signedFor(url, { method: "POST", body: '{"role":"agent"}' });
    const relayed = await fetch(url, { method: "POST", headers: ok.headers, body: ok.body });
    assert.equal(relayed.status, 200);
    await relayed.body?.cancel();
    assert.deepEqual(child.hits.map((h) => h.body), ['{"role":"agent"}']);

    const big = await signedFor(url, {
      method: "POST",
      body: JSON.stringify({ x: "y".repeat(100) }),
    });
    const tooBig = await fetch(url, { method: "POST", headers: big.headers, body: big.body });
    assert.equal(tooBig.status, 413);
    await tooBig.body?.cancel();

    // The same length, another body: the hop never gets a complete request.
    const altered = await signedFor(url, { method: "POST", body: '{"role":"queue"}' });
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"role":"agent"}'));
        controller.close();
      },
    });
    const refused = await fetch(url, { method: "POST", headers: altered.headers, body: stream });
    assert.equal(refused.status, 401);
    await refused.body?.cancel();
    assert.equal(child.hits.filter((h) => h.body === '{"role":"agent"}').length, 1);
  } finally {
    await bridge.shutdown();
    await child.server.shutdown();
  }
});

Deno.test("relay() never relays /v1/bootstrap, whatever Fabric-Target says", async () => {
  const child = startRecorder();
  const bridge = startBridge(child.url);
  try {
    const answer = await fetch(`http://127.0.0.1:${bridge.addr.port}/v1/bootstrap`, {
      method: "POST",
      headers: { "fabric-target": "svc-11111111", "fabric-route": "brg-11111111,svc-11111111" },
      body: "{}",
    });
    assert.equal(answer.status, 418);
    await answer.body?.cancel();
    assert.equal(child.hits.length, 0);
  } finally {
    await bridge.shutdown();
    await child.server.shutdown();
  }
});
