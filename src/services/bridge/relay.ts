/**
 * Relaying for bridges: a signed request whose `Fabric-Target` is another
 * service is passed on unchanged (signatures are end to end), down the spawn
 * tree along its `Fabric-Route`, or up towards the registry or the parent.
 * Answers, streams included, come back unchanged; a WebSocket is relayed as
 * two sockets joined frame by frame.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";

/** Where a bridge can send things. */
export interface RelayTable {
  /** This bridge's service ID. */
  selfId: string;
  /** A child's URL as this bridge reaches it, or undefined. */
  child(id: string): Promise<string | undefined>;
  /** Where a request for `target` goes when it is not below this bridge. */
  upstream(target: string): string | undefined;
}

/** Most bridges a request may cross (a guard against routing loops). */
export const MAX_HOPS = 16;

/**
 * Middleware that relays requests not meant for this service.
 * @throws {TypeError} when `table.selfId` is empty.
 */
export function relay(table: RelayTable): MiddlewareHandler {
  if (!table.selfId) throw new TypeError("Relay needs the bridge's service ID");
  return async (c, next) => {
    const target = c.req.header("fabric-target");
    if (!target || target === table.selfId || c.req.path === "/v1/health") return await next();
    const hops = Number(c.req.header("fabric-hops") ?? "0");
    if (!Number.isInteger(hops) || hops >= MAX_HOPS) {
      throw new HTTPException(508, {
        message: `Request crossed ${MAX_HOPS} bridges: routing loop`,
      });
    }
    const route = (c.req.header("fabric-route") ?? "").split(",").map((s) => s.trim()).filter(
      Boolean,
    );
    const at = route.indexOf(table.selfId);
    let hop: string | undefined;
    if (at >= 0 && at + 1 < route.length) {
      const childId = route[at + 1]!;
      hop = await table.child(childId);
      if (!hop) {
        throw new HTTPException(502, {
          message: `Bridge "${table.selfId}" has no child "${childId}" on the route to "${target}"`,
        });
      }
    } else {
      hop = table.upstream(target);
      if (!hop) {
        throw new HTTPException(502, {
          message: `Bridge "${table.selfId}" has no way to "${target}": give a Fabric-Route`,
        });
      }
    }
    const url = new URL(c.req.path + new URL(c.req.url).search, hop);
    const headers = new Headers(c.req.raw.headers);
    headers.delete("host");
    headers.set("fabric-hops", String(hops + 1));
    if (c.req.header("upgrade")?.toLowerCase() === "websocket") {
      return await relayWebSocket(c.req.raw, url, headers, `Bridge "${table.selfId}"`);
    }
    const hasBody = !["GET", "HEAD"].includes(c.req.method);
    let answer: Response;
    try {
      answer = await fetch(url, {
        method: c.req.method,
        headers,
        ...(hasBody ? { body: await c.req.arrayBuffer() } : {}),
        // No request signal: Deno aborts it once the answer starts, which would
        // cut relayed streams; a client that leaves cancels the body instead.
        redirect: "manual",
      });
    } catch (error) {
      throw new HTTPException(502, {
        message: `Bridge "${table.selfId}" cannot reach the next hop for "${target}": ${
          error instanceof Error ? error.message : error
        }`,
      });
    }
    return new Response(answer.body, { status: answer.status, headers: answer.headers });
  };
}

/** Frames from the next hop kept while the client's socket opens; more are dropped. */
const MAX_EARLY_FRAMES = 1024;

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
 * frames both ways; either side closing closes the other.
 * @throws {HTTPException} 502 when the next hop refuses or cannot be reached.
 */
async function relayWebSocket(
  request: Request,
  url: URL,
  headers: Headers,
  who: string,
): Promise<Response> {
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
  const { socket: inbound, response } = Deno.upgradeWebSocket(request);
  inbound.binaryType = "arraybuffer";
  const early: (string | ArrayBuffer)[] = [];
  let ended: { code: number; reason: string } | null = null;
  outbound.onmessage = (event) => {
    if (inbound.readyState === WebSocket.OPEN) inbound.send(event.data);
    else if (early.length < MAX_EARLY_FRAMES) early.push(event.data);
  };
  // A client that left during the handshake never opens its socket, which
  // then fires nothing: the socket to the next hop must not outlive it.
  const abandoned = setTimeout(() => {
    if (inbound.readyState !== WebSocket.OPEN) outbound.close(1000, "client never arrived");
  }, 10_000);
  inbound.onopen = () => {
    clearTimeout(abandoned);
    for (const data of early.splice(0)) inbound.send(data);
    // The next hop may have closed before the client's socket was open.
    if (ended) inbound.close(ended.code, ended.reason);
  };
  inbound.onmessage = (event) => {
    if (outbound.readyState === WebSocket.OPEN) outbound.send(event.data);
  };
  const closeBoth = (code: number, reason: string) => {
    const safe = code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000;
    ended ??= { code: safe, reason: reason.slice(0, 120) };
    clearTimeout(abandoned);
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
