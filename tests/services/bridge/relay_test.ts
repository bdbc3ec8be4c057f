import assert from "node:assert/strict";
import { Hono } from "hono";
import { relay } from "../../../src/services/bridge/relay.ts";

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

function startBridge(childUrl: string): Deno.HttpServer<Deno.NetAddr> {
  const app = new Hono();
  app.use(relay({
    selfId: "brg-11111111",
    child: (id) => Promise.resolve(id === "svc-11111111" ? childUrl : undefined),
    upstream: () => undefined,
  }));
  app.all("*", (c) => c.text("not relayed", 418));
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
}

function open(bridge: Deno.HttpServer<Deno.NetAddr>, headers: Record<string, string>): WebSocket {
  return new WebSocket(`ws://127.0.0.1:${bridge.addr.port}/v1/pubsub/ws?topics=a`, {
    headers: {
      "fabric-target": "svc-11111111",
      "fabric-route": "brg-11111111,svc-11111111",
      ...headers,
    },
  });
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
    const socket = open(bridge, {});
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
    const socket = open(bridge, { "x-refuse": "1" });
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
