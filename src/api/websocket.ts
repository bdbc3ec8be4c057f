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
 * @module
 */
import { defineWebSocketHelper, WSContext } from "hono/ws";

/** Upgrades a GET to a WebSocket and hands its events to the handlers the route returns. */
export const upgradeWebSocket = defineWebSocketHelper<WebSocket>((c, events) => {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") return Promise.resolve(undefined);
  const protocol = c.req.header("sec-websocket-protocol")?.split(",")[0]?.trim();
  const { response, socket } = Deno.upgradeWebSocket(c.req.raw, protocol ? { protocol } : {});
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
  socket.onopen = (event) => events.onOpen?.(event, context);
  socket.onmessage = (event) => events.onMessage?.(event, context);
  socket.onclose = (event) => events.onClose?.(event, context);
  socket.onerror = (event) => events.onError?.(event, context);
  return Promise.resolve(response);
});
