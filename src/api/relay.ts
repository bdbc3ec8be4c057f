/**
 * Relaying for bridges: a signed request whose `Fabric-Target` is another
 * service is verified here first (a bridge is no open proxy), then passed on
 * unchanged (signatures are end to end), down the spawn tree along its
 * `Fabric-Route`, or up towards the registry or the parent. The next hop's
 * URL comes from the route and the registry only; the request's path is
 * appended to it as a path. Bodies are limited and streamed, never buffered.
 * Answers, streams included, come back unchanged; a WebSocket is relayed as
 * two sockets joined frame by frame. `/v1/bootstrap` and `/v1/health` are
 * never relayed: a child bootstraps with the parent that waits for it, over
 * the launcher's own forwards.
 * @module
 */
import { trustOf } from "../crypto/trust.ts";
import type { Context, MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { FabricKeys } from "../crypto/keys.ts";
import type { ReplayCache } from "../crypto/replay_cache.ts";
import { signResponse, verifyRequestHead } from "../crypto/signing.ts";
import { StreamedDigest } from "../crypto/content_digest.ts";
import { relayWebSocket } from "./_relay_websocket.ts";
import { bodyTooLarge } from "./body_limit.ts";
import { WEBSOCKET_VERSION } from "./websocket.ts";
import { addressedUrl } from "./guarded_server.ts";

/** Where a bridge can send things. */
export interface RelayTable {
  /** This bridge's service ID. */
  selfId: string;
  /** A child's URL as this bridge reaches it, or undefined. */
  child(id: string): Promise<string | undefined>;
  /** Where a request for `target` goes when it is not below this bridge. */
  upstream(target: string): string | undefined;
}

/** Options of {@linkcode relay}. */
export interface RelayOptions {
  /** Where to send what. */
  table: RelayTable;
  /** The fabric keys, or null while the bridge has not bootstrapped. */
  keys: () => FabricKeys | null;
  /**
   * The relay's own nonce cache, apart from the service's: a relayed request
   * is remembered here (a replay through this bridge stops here) and stays
   * usable once at its target.
   */
  replayCache: ReplayCache;
  /** Largest body relayed, bytes (413 above it). */
  maxBodyBytes: number;
  /** Counters of relayed traffic. Default: none. */
  metrics?: RelayMetrics;
}

/** What a relay counts (the service's metrics, issue 13). */
export interface RelayMetrics {
  /** A request or WebSocket handshake was relayed. */
  relayed(kind: "http" | "websocket"): void;
  /** Body bytes passed on: `up` to the next hop, `down` back to the client. */
  bytes(direction: "up" | "down", count: number): void;
  /** A relayed WebSocket opened (+1) or closed (-1). */
  socket(delta: 1 | -1): void;
  /** The relay refused a request for its signature (401), for `reason` (docs/protocol.md 2.7). */
  refused(reason: string): void;
}

/**
 * The context variable {@linkcode relay} sets when the answer is the next
 * hop's, passed on unchanged: its status (a target's 401 included) is the
 * target's to log, not this service's ({@linkcode isRelayedAnswer}).
 */
const RELAYED_ANSWER = "fabricRelayedAnswer";

/** Whether the answer in `c` came from the next hop through {@linkcode relay}. */
export function isRelayedAnswer(c: Context): boolean {
  return c.get(RELAYED_ANSWER) === true;
}

/** Most bridges a request may cross (a guard against routing loops). */
export const MAX_HOPS = 16;

/** Paths a bridge answers itself whatever their target. */
const LOCAL_PATHS = new Set(["/v1/health", "/v1/bootstrap"]);

/** Headers that belong to one connection and are not passed on. */
const HOP_BY_HOP = [
  "host",
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "content-length",
];

/**
 * The URL of the next hop for a request: the hop's origin (from the route or
 * the registry, never from the request) with the request's path appended as
 * a path and its query. A path such as `//HOST:PORT/x` or `/\HOST/x` stays
 * a path on the hop.
 *
 * @param hop The next hop's base URL (`http(s)://host:port`, maybe with a path prefix).
 * @param request The request's `pathname` (starting with `/`) and `search`.
 * @returns The URL to send to.
 * @throws {TypeError} When `hop` is not an http(s) URL or the path does not start with `/`.
 */
export function nextHopUrl(hop: string, request: { pathname: string; search: string }): URL {
  const base = new URL(hop);
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    throw new TypeError(`Next hop "${hop}" is not an http(s) URL`);
  }
  if (!request.pathname.startsWith("/")) {
    throw new TypeError(`Request path "${request.pathname}" must start with "/"`);
  }
  const url = new URL(base.origin);
  url.pathname = base.pathname.replace(/\/+$/, "") + request.pathname;
  url.search = request.search;
  return url;
}

/**
 * Middleware that verifies and relays requests not meant for this service.
 * @throws {TypeError} when `table.selfId` is empty or `maxBodyBytes` is not positive.
 */
export function relay(options: RelayOptions): MiddlewareHandler {
  const { table } = options;
  if (!table.selfId) throw new TypeError("Relay needs the bridge's service ID");
  if (!(options.maxBodyBytes > 0)) throw new TypeError("Relay needs a positive body limit");
  return async (c, next) => {
    const target = c.req.header("fabric-target")?.trim();
    if (!target || target === table.selfId || LOCAL_PATHS.has(c.req.path)) return await next();
    const keys = options.keys();
    if (!keys) {
      throw new HTTPException(503, {
        message: "Service is not bootstrapped yet: retry in a moment",
      });
    }
    const verdict = await verifyRequestHead(
      { method: c.req.method, url: addressedUrl(c.req.url), headers: c.req.raw.headers },
      {
        trust: trustOf(keys),
        serviceId: target,
        replayCache: options.replayCache,
      },
    );
    if (!verdict.ok) {
      options.metrics?.refused(verdict.reason);
      throw new HTTPException(401, { message: verdict.reason });
    }
    try {
      const answer = await forward(c, { ...options, target });
      c.set(RELAYED_ANSWER, true);
      return answer;
    } catch (error) {
      const status = error instanceof HTTPException ? error.status : 502;
      const message = error instanceof Error ? error.message : String(error);
      // A body that does not match its digest is refused for its signature too.
      if (status === 401) options.metrics?.refused(message);
      return await signedError(status, message, keys, verdict.nonce);
    }
  };
}

async function forward(
  c: Context,
  options: RelayOptions & { target: string },
): Promise<Response> {
  const { table, target } = options;
  const hopsHeader = c.req.header("fabric-hops") ?? "0";
  if (!/^\d{1,4}$/.test(hopsHeader.trim())) {
    throw new HTTPException(400, {
      message: `Fabric-Hops must be a non-negative integer, got "${hopsHeader.slice(0, 40)}"`,
    });
  }
  const hops = Number(hopsHeader.trim());
  if (hops >= MAX_HOPS) {
    throw new HTTPException(508, { message: `Request crossed ${MAX_HOPS} bridges: routing loop` });
  }
  const hop = await nextHop(table, c.req.header("fabric-route") ?? "", target);
  const incoming = addressedUrl(c.req.url);
  const url = nextHopUrl(hop, incoming);
  const headers = new Headers(c.req.raw.headers);
  for (const name of HOP_BY_HOP) headers.delete(name);
  headers.set("fabric-hops", String(hops + 1));
  const metrics = options.metrics;
  if (c.req.header("upgrade")?.toLowerCase() === "websocket") {
    metrics?.relayed("websocket");
    return await relayWebSocket(c.req.raw, url, headers, `Service "${table.selfId}"`, metrics);
  }
  metrics?.relayed("http");
  const sent = Number(c.req.header("content-length") ?? "0");
  if (metrics && Number.isSafeInteger(sent) && sent > 0) metrics.bytes("up", sent);
  headers.delete("upgrade");
  const body = c.req.raw.body === null ? null : limitedBody(c.req.raw, options.maxBodyBytes);
  let answer: Response;
  try {
    answer = await fetch(url, {
      method: c.req.method,
      headers,
      ...(body ? { body: body.stream } : {}),
      // No request signal: Deno aborts it once the answer starts, which would
      // cut relayed streams; a client that leaves cancels the body instead.
      redirect: "manual",
    });
  } catch (error) {
    const refused = body?.refusal();
    if (refused) throw refused;
    throw new HTTPException(502, {
      message: `Service "${table.selfId}" cannot reach the next hop for "${target}": ${
        error instanceof Error ? error.message : error
      }`,
    });
  }
  const relayed = metrics && answer.body ? counted(answer.body, metrics) : answer.body;
  return new Response(relayed, { status: answer.status, headers: answer.headers });
}

/** `body` passed through, its bytes counted as they go down. */
function counted(body: ReadableStream<Uint8Array>, metrics: RelayMetrics): ReadableStream {
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        metrics.bytes("down", chunk.byteLength);
        controller.enqueue(chunk);
      },
    }),
  );
}

async function nextHop(table: RelayTable, routeHeader: string, target: string): Promise<string> {
  const route = routeHeader.split(",").map((s) => s.trim()).filter(Boolean);
  const at = route.indexOf(table.selfId);
  if (at >= 0 && at + 1 < route.length) {
    const childId = route[at + 1]!;
    const hop = await table.child(childId);
    if (!hop) {
      throw new HTTPException(502, {
        message: `Service "${table.selfId}" has no child "${childId}" on the route to "${target}"`,
      });
    }
    return hop;
  }
  const hop = table.upstream(target);
  if (!hop) {
    throw new HTTPException(502, {
      message: `Service "${table.selfId}" has no way to "${target}": give a Fabric-Route`,
    });
  }
  return hop;
}

/**
 * The request body as a stream that counts its bytes against the limit and
 * checks them against the signed `Content-Digest` as they pass: an oversized
 * or altered body errors the stream, which aborts the request to the next
 * hop before it is complete.
 */
function limitedBody(
  request: Request,
  maxBytes: number,
): { stream: ReadableStream<Uint8Array>; refusal(): HTTPException | undefined } {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) throw bodyTooLarge(maxBytes);
  const digest = new StreamedDigest(request.headers.get("content-digest"));
  let size = 0;
  let refusal: HTTPException | undefined;
  const check = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      size += chunk.length;
      if (size > maxBytes) {
        refusal = bodyTooLarge(maxBytes);
        controller.error(refusal);
        return;
      }
      digest.update(chunk);
      controller.enqueue(chunk);
    },
    flush(controller) {
      if (!digest.matches()) {
        refusal = new HTTPException(401, { message: "Content-Digest does not match the body" });
        controller.error(refusal);
      }
    },
  });
  return { stream: request.body!.pipeThrough(check), refusal: () => refusal };
}

/** The bridge's own error answer to a verified request, signed with its nonce. */
async function signedError(
  status: number,
  message: string,
  keys: FabricKeys,
  nonce: string,
): Promise<Response> {
  const body = new TextEncoder().encode(JSON.stringify({ error: message }));
  const plain = new Headers({ "content-type": "application/json" });
  // A 426 says which WebSocket version to use (RFC 6455).
  if (status === 426) plain.set("sec-websocket-version", WEBSOCKET_VERSION);
  const headers = await signResponse(
    { status, headers: plain, body },
    keys,
    { requestNonce: nonce },
  );
  return new Response(body, { status, headers });
}
