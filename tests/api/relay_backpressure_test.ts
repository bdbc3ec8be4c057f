/**
 * A relayed WebSocket whose reader stops reading (docs/protocol.md 5.5): the
 * bridge keeps at most {@linkcode MAX_RELAY_BUFFERED_BYTES} waiting for it,
 * then closes both sockets, in either direction.
 * @module
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { generateFabricKeys, signRequest } from "../../src/crypto/mod.ts";
import { bridgeRelay } from "./_bridge.ts";
import { MAX_RELAY_BUFFERED_BYTES } from "../../src/api/_relay_websocket.ts";
import { SLOW_READER_CLOSE_CODE } from "../../src/types/wire.ts";

const keys = await generateFabricKeys();
const FRAME = new Uint8Array(64 * 1024);
/** Most a writer sends: well past the kernel's socket buffers and the bound. */
const MAX_SENT = 48 * 1024 * 1024;

function startBridge(hopUrl: string): Deno.HttpServer<Deno.NetAddr> {
  const app = new Hono();
  app.use(bridgeRelay(keys, hopUrl));
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
}

async function signedHeaders(port: number): Promise<Headers> {
  const url = `http://127.0.0.1:${port}/v1/pubsub/ws?topics=a`;
  const signed = await signRequest({ method: "GET", url, body: new Uint8Array() }, keys, {
    target: "svc-11111111",
  });
  signed.headers.set("fabric-route", "brg-11111111,svc-11111111");
  return signed.headers;
}

/** Sends frames on `socket` as fast as it takes them until it closes or `MAX_SENT` is out. */
async function flood(socket: WebSocket): Promise<number> {
  let sent = 0;
  while (socket.readyState === WebSocket.OPEN && sent < MAX_SENT) {
    if (socket.bufferedAmount < 256 * 1024) {
      socket.send(FRAME);
      sent += FRAME.byteLength;
    } else {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
  return sent;
}

/** Reads from `conn` until the end of an HTTP head, then never again. */
async function readHead(conn: Deno.Conn): Promise<string> {
  let head = "";
  const buffer = new Uint8Array(1);
  while (!head.endsWith("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) break;
    head += String.fromCharCode(buffer[0]!);
  }
  return head;
}

function closedWithin(socket: WebSocket, ms: number): Promise<CloseEvent | "timeout"> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve("timeout"), ms);
    socket.addEventListener("close", (event) => {
      clearTimeout(timer);
      resolve(event);
    });
  });
}

Deno.test("relay() closes both sockets when the client stops reading and 1 MiB waits for it", async () => {
  let hopSocket: WebSocket | undefined;
  const { promise: floodDone, resolve: doneFlooding } = Promise.withResolvers<number>();
  const { promise: hopClosed, resolve: hopClose } = Promise.withResolvers<
    CloseEvent | "timeout"
  >();
  const hop = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    hopSocket = socket;
    socket.onopen = () => {
      closedWithin(socket, 20_000).then(hopClose);
      flood(socket).then(doneFlooding);
    };
    return response;
  });
  const bridge = startBridge(`http://127.0.0.1:${hop.addr.port}`);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: bridge.addr.port });
  try {
    const lines = [
      "GET /v1/pubsub/ws?topics=a HTTP/1.1",
      `host: 127.0.0.1:${bridge.addr.port}`,
      "upgrade: websocket",
      "connection: Upgrade",
      "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version: 13",
    ];
    for (const [name, value] of await signedHeaders(bridge.addr.port)) {
      lines.push(`${name}: ${value}`);
    }
    await conn.write(new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));
    assert.match(await readHead(conn), /^HTTP\/1\.1 101/);
    // The client reads nothing more: the bridge must give up, not buffer.
    const closed = await hopClosed;
    assert.notEqual(closed, "timeout", "the bridge closed the next hop's socket");
    assert.equal((closed as CloseEvent).code, SLOW_READER_CLOSE_CODE);
    assert.match((closed as CloseEvent).reason, /client read too slowly/);
    const sent = await floodDone;
    assert.ok(sent < MAX_SENT, `the next hop stopped at ${sent} bytes`);
    assert.ok(sent > MAX_RELAY_BUFFERED_BYTES);
  } finally {
    conn.close();
    hopSocket?.close();
    await bridge.shutdown();
    await hop.shutdown();
  }
});

/** A WebSocket server that answers the handshake and then never reads. */
function startDeafHop(): { url: string; listener: Deno.Listener; conns: Deno.Conn[] } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      const head = await readHead(conn);
      const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? "";
      const hash = await crypto.subtle.digest(
        "SHA-1",
        new TextEncoder().encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
      );
      const accept = btoa(String.fromCharCode(...new Uint8Array(hash)));
      await conn.write(new TextEncoder().encode(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n" +
          `sec-websocket-accept: ${accept}\r\n\r\n`,
      ));
    }
  })().catch(() => {});
  const port = (listener.addr as Deno.NetAddr).port;
  return { url: `http://127.0.0.1:${port}`, listener, conns };
}

Deno.test("relay() closes both sockets when the next hop stops reading and 1 MiB waits for it", async () => {
  const hop = startDeafHop();
  const bridge = startBridge(hop.url);
  const url = `ws://127.0.0.1:${bridge.addr.port}/v1/pubsub/ws?topics=a`;
  const socket = new WebSocket(url, { headers: await signedHeaders(bridge.addr.port) });
  try {
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error("relayed socket did not open"));
    });
    const closed = closedWithin(socket, 20_000);
    const sent = await flood(socket);
    const event = await closed;
    assert.notEqual(event, "timeout", "the bridge closed the client's socket");
    // A client still writing when the close frame comes may see the close as
    // abnormal (Deno's server drops it): what counts is that it ends, bounded.
    assert.ok(
      [SLOW_READER_CLOSE_CODE, 0, 1006].includes((event as CloseEvent).code),
      `closed with ${(event as CloseEvent).code}`,
    );
    assert.ok(sent < MAX_SENT, `the client stopped at ${sent} bytes`);
  } finally {
    if (socket.readyState < WebSocket.CLOSING) socket.close();
    for (const conn of hop.conns) conn.close();
    hop.listener.close();
    await bridge.shutdown();
  }
});
