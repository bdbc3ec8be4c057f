/**
 * `upgradeWebSocket` for Hono routes on Deno, over `Deno.upgradeWebSocket`.
 *
 * Hono's own (`hono/deno`) comes from an index that also exports its static
 * file server, and that module imports `node:path`: in the bundled image the
 * import stays (esbuild keeps the imports of external modules), so the queue
 * and the pub/sub loaded Deno's Node layer for it (docs/performance.md
 * "idle-memory"). This one is built on Hono's WebSocket helper (`hono/ws`)
 * alone, and behaves the same: the first offered subprotocol is accepted, and
 * a request without `Upgrade: websocket` falls through to the next handler.
 * The rest of the handshake is checked first ({@linkcode handshakeRefusal}):
 * a malformed one is answered 400 (426 for a version other than 13), never
 * 500.
 * @module
 */
import { HTTPException } from "hono/http-exception";
import { defineWebSocketHelper, WSContext } from "hono/ws";
import type { SocketProofFrame } from "../types/wire.ts";

/**
 * The context variable the signature middleware leaves a handshake's signed
 * proof in (`?proof=1`); sent as the socket's first frame.
 */
export const SOCKET_PROOF_VARIABLE = "socketProof";

/** The one WebSocket version there is (RFC 6455), sent back with a 426 for any other. */
export const WEBSOCKET_VERSION = "13";

/** A `Sec-WebSocket-Key`: the base64 of 16 bytes. */
const KEY = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/**
 * What is wrong with the WebSocket handshake `headers` carry besides
 * `Upgrade: websocket`, as an HTTPException to throw: 400 naming the header
 * and what to send, or 426 for a `Sec-WebSocket-Version` other than 13
 * (answer it with `Sec-WebSocket-Version: 13`); null when it is well formed.
 */
export function handshakeRefusal(headers: Headers): HTTPException | null {
  const bad = (status: 400 | 426, message: string) =>
    new HTTPException(status, { message: `Invalid WebSocket handshake: ${message}` });
  const connection = (headers.get("connection") ?? "").split(",");
  if (!connection.some((token) => token.trim().toLowerCase() === "upgrade")) {
    return bad(400, 'the "Connection" header must contain "Upgrade": send "Connection: Upgrade"');
  }
  const key = headers.get("sec-websocket-key")?.trim();
  if (!key || !KEY.test(key)) {
    return bad(
      400,
      'the "Sec-WebSocket-Key" header must be the base64 of 16 random bytes: send one',
    );
  }
  const version = headers.get("sec-websocket-version")?.trim();
  if (version === undefined) {
    return bad(400, `the "Sec-WebSocket-Version" header is missing: send ${WEBSOCKET_VERSION}`);
  }
  if (version !== WEBSOCKET_VERSION) {
    return bad(
      426,
      `"Sec-WebSocket-Version" ${JSON.stringify(version.slice(0, 20))} is not supported: ` +
        `send ${WEBSOCKET_VERSION}`,
    );
  }
  return null;
}

/**
 * `Deno.upgradeWebSocket(request)`, a failure of which (a handshake it
 * refuses) is the client's: a 400 with its message.
 */
export function upgradeOrRefuse(
  request: Request,
  options: Deno.UpgradeWebSocketOptions = {},
): Deno.WebSocketUpgrade {
  try {
    return Deno.upgradeWebSocket(request, options);
  } catch (error) {
    throw new HTTPException(400, {
      message: `Invalid WebSocket handshake: ${error instanceof Error ? error.message : error}`,
    });
  }
}

/** Upgrades a GET to a WebSocket and hands its events to the handlers the route returns. */
export const upgradeWebSocket = defineWebSocketHelper<WebSocket>((c, events) => {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") return Promise.resolve(undefined);
  const refusal = handshakeRefusal(c.req.raw.headers);
  if (refusal) {
    if (refusal.status === 426) c.header("Sec-WebSocket-Version", WEBSOCKET_VERSION);
    throw refusal;
  }
  const protocol = c.req.header("sec-websocket-protocol")?.split(",")[0]?.trim();
  const { response, socket } = upgradeOrRefuse(c.req.raw, protocol ? { protocol } : {});
  const context = new WSContext<WebSocket>({
    raw: socket,
    url: socket.url ? new URL(socket.url) : null,
    get protocol() {
      return socket.protocol;
    },
    get readyState() {
      return socket.readyState as 0 | 1 | 2 | 3;
    },
    send: (data) => socket.send(data),
    close: (code, reason) => socket.close(code, reason),
  });
  socket.onopen = (event) => {
    // Set by the signature middleware before the 101 left, so before this.
    const proof = c.get(SOCKET_PROOF_VARIABLE) as Record<string, string> | undefined;
    if (proof) {
      socket.send(JSON.stringify({ op: "proof", headers: proof } satisfies SocketProofFrame));
    }
    events.onOpen?.(event, context);
  };
  socket.onmessage = (event) => events.onMessage?.(event, context);
  socket.onclose = (event) => events.onClose?.(event, context);
  socket.onerror = (event) => events.onError?.(event, context);
  return Promise.resolve(response);
});
