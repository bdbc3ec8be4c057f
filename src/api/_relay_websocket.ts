/**
 * The WebSocket half of a bridge's relay (`relay.ts`): a handshake the relay
 * verified is joined to one opened to the next hop, frame by frame, with at
 * most {@linkcode MAX_RELAY_BUFFERED_BYTES} waiting for a side that does not
 * read. Deno's WebSocket cannot stop reading, so past that bound both sockets
 * close ({@linkcode SLOW_READER_CLOSE_CODE}) rather than the bridge holding
 * what one side sends faster than the other takes it.
 * @module
 */
import { HTTPException } from "hono/http-exception";
import { clearTimeout, setTimeout } from "../base/timers.ts";
import { SLOW_READER_CLOSE_CODE } from "../types/wire.ts";
import type { RelayMetrics } from "./relay.ts";
import { handshakeRefusal, upgradeOrRefuse } from "./websocket.ts";

/** Frames from the next hop kept while the client's socket opens; more close both sockets. */
const MAX_EARLY_FRAMES = 1024;

/**
 * Most bytes a relayed WebSocket leaves waiting for a side that does not
 * read: the socket written to (its `bufferedAmount`), or the frames kept
 * while the client's socket opens. Past it, frames are not passed on: both
 * sockets close with {@linkcode SLOW_READER_CLOSE_CODE}. Deno's WebSocket
 * cannot stop reading, so closing is the only bounded way (the pub/sub's own
 * slow-consumer limit is the same 1 MiB, docs/services.md).
 */
export const MAX_RELAY_BUFFERED_BYTES = 1024 * 1024;

/** Bytes a frame takes (a string counted by its length). */
function frameBytes(data: string | ArrayBuffer): number {
  return typeof data === "string" ? data.length : data.byteLength;
}

/** Headers of one WebSocket handshake that the next hop's own handshake makes anew. */
const HANDSHAKE_HEADERS = [
  "connection",
  "upgrade",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-extensions",
  "sec-websocket-accept",
  "content-length",
];

/**
 * Relays a WebSocket: opens one to the next hop with the same signed headers
 * (the signature covers method, path, query and target, not the handshake's
 * own headers), and only once that is open accepts the client's, then passes
 * frames both ways; either side closing closes the other. A malformed
 * handshake is refused before anything is opened.
 * @throws {HTTPException} 400 (426 for a version other than 13) for a malformed
 * handshake (`handshakeRefusal`); 502 when the next hop refuses or cannot be reached.
 */
export async function relayWebSocket(
  request: Request,
  url: URL,
  headers: Headers,
  who: string,
  metrics?: RelayMetrics,
): Promise<Response> {
  const refusal = handshakeRefusal(request.headers);
  if (refusal) throw refusal;
  for (const name of HANDSHAKE_HEADERS) headers.delete(name);
  const wsUrl = new URL(url);
  wsUrl.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const outbound = new WebSocket(wsUrl, { headers });
  outbound.binaryType = "arraybuffer";
  const opened = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 15_000);
    outbound.onopen = () => {
      clearTimeout(timer);
      resolve(true);
    };
    outbound.onerror = () => {
      clearTimeout(timer);
      resolve(false);
    };
  });
  if (!opened) {
    outbound.close();
    throw new HTTPException(502, {
      message: `${who} cannot open the WebSocket to the next hop (${url.host}${url.pathname}): ` +
        "check the target's signature and path with a plain signed request",
    });
  }
  let upgrade: Deno.WebSocketUpgrade;
  try {
    upgrade = upgradeOrRefuse(request);
  } catch (error) {
    outbound.close();
    throw error;
  }
  const { socket: inbound, response } = upgrade;
  inbound.binaryType = "arraybuffer";
  const early: (string | ArrayBuffer)[] = [];
  let earlyBytes = 0;
  let ended: { code: number; reason: string } | null = null;
  const tooSlow = (side: string) =>
    closeBoth(
      SLOW_READER_CLOSE_CODE,
      `${who}: ${side} read too slowly (over ${MAX_RELAY_BUFFERED_BYTES} bytes waiting): reconnect`,
    );
  /** Sends `data` on `to` unless more than the bound waits there already. */
  const pass = (to: WebSocket, data: string | ArrayBuffer, side: string) => {
    if (to.readyState !== WebSocket.OPEN) return;
    if (to.bufferedAmount > MAX_RELAY_BUFFERED_BYTES) tooSlow(side);
    else to.send(data);
  };
  outbound.onmessage = (event) => {
    if (inbound.readyState === WebSocket.OPEN) return pass(inbound, event.data, "client");
    if (ended) return;
    earlyBytes += frameBytes(event.data);
    if (early.length >= MAX_EARLY_FRAMES || earlyBytes > MAX_RELAY_BUFFERED_BYTES) {
      early.length = 0;
      return tooSlow("client");
    }
    early.push(event.data);
  };
  // A client that left during the handshake never opens its socket, which
  // then fires nothing: the socket to the next hop must not outlive it.
  const abandoned = setTimeout(() => {
    if (inbound.readyState !== WebSocket.OPEN) outbound.close(1000, "client never arrived");
  }, 10_000);
  let counting = false;
  inbound.onopen = () => {
    clearTimeout(abandoned);
    counting = true;
    metrics?.socket(1);
    for (const data of early.splice(0)) inbound.send(data);
    // The next hop may have closed before the client's socket was open.
    if (ended) inbound.close(ended.code, ended.reason);
  };
  inbound.onmessage = (event) => pass(outbound, event.data, "next hop");
  const closeBoth = (code: number, reason: string) => {
    const safe = code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000;
    ended ??= { code: safe, reason: reason.slice(0, 120) };
    clearTimeout(abandoned);
    if (counting) {
      counting = false;
      metrics?.socket(-1);
    }
    for (const socket of [inbound, outbound]) {
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
        try {
          socket.close(safe, reason.slice(0, 120));
        } catch {
          // Already closing.
        }
      }
    }
  };
  outbound.onclose = (event) => closeBoth(event.code, event.reason);
  inbound.onclose = (event) => closeBoth(event.code, event.reason);
  outbound.onerror = () => closeBoth(1011, "next hop failed");
  inbound.onerror = () => closeBoth(1011, "client failed");
  return response;
}
