/**
 * Middleware that makes every management request signed (DESIGN.md "Signed
 * management requests"): it verifies the RFC 9421 signature of the request and
 * signs the answer, binding it to the request's nonce.
 * @module
 */
import type { MacSession, MacSessions } from "../crypto/mac_sessions.ts";
import { trustOf } from "../crypto/trust.ts";
import type { Signer } from "../crypto/certificate.ts";
import type { MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { sleep } from "../config/retry.ts";
import { addressedUrl } from "./guarded_server.ts";
import { SOCKET_PROOF_VARIABLE } from "./websocket.ts";
import { SOCKET_PROOF_QUERY } from "../types/wire.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import type { ReplayCache } from "../crypto/replay_cache.ts";
import {
  signResponse,
  signResponseInPlace,
  type SignResponseOptions,
  signStreamResponse,
  verifyRequest,
} from "../crypto/signing.ts";

/** Options of {@linkcode signatures}. */
export interface SignatureOptions {
  /** This service's ID; requests must name it in `Fabric-Target`. */
  serviceId: string;
  /** The fabric keys, or null while the service has not bootstrapped yet. */
  keys: () => FabricKeys | null;
  /** Nonces seen within their validity window. */
  replayCache: ReplayCache;
  /** Paths that are not signed (the bootstrap proof and the liveness probe). */
  unsigned: readonly string[];
  /**
   * How long a signed request waits for the keys while the service bootstraps,
   * ms. The spawner's configure call can overtake the child's own handling of
   * the bootstrap answer. Default 2000.
   */
  keysWaitMs?: number;
  /**
   * Requests created before this time (seconds since the epoch) are refused:
   * the service's start less the clock skew (docs/protocol.md 2.9). Default: no bound.
   */
  notBeforeSeconds?: number;
  /** Called with the reason of every refused request (metrics). Default: nothing. */
  onRefused?: (reason: string) => void;
  /** The MAC sessions this service serves (docs/protocol.md 2.13). Default: none. */
  sessions?: MacSessions;
}

/** Context variables set by {@linkcode signatures}. */
export interface SignatureVariables {
  /** The verified request's nonce. */
  nonce: string;
  /** Who signed the verified request: the operator or a service (docs/protocol.md 2.11). */
  signer: Signer;
  /** The MAC session the request came in, if any. */
  session: MacSession | undefined;
  /** A WebSocket handshake's signed proof headers, when it asked (`?proof=1`). */
  [SOCKET_PROOF_VARIABLE]?: Record<string, string>;
}

/**
 * Builds the signature middleware.
 * @throws {TypeError} when `serviceId` is empty.
 */
export function signatures(
  options: SignatureOptions,
): MiddlewareHandler<{ Variables: SignatureVariables }> {
  if (!options.serviceId) throw new TypeError("Signature middleware needs the service ID");
  const unsigned = new Set(options.unsigned);
  return async (c, next) => {
    if (unsigned.has(c.req.path)) return await next();
    const keys = options.keys() ?? await keysWithin(options.keys, options.keysWaitMs ?? 2000);
    if (!keys) {
      throw new HTTPException(503, {
        message: "Service is not bootstrapped yet: retry in a moment",
      });
    }
    // A request without a body (every GET) has nothing to read.
    // Read only once the signature verified (docs/protocol.md 2.7): a client
    // with no key cannot make the service hold its body.
    const body = c.req.raw.body === null
      ? EMPTY
      : async () => new Uint8Array(await c.req.arrayBuffer());
    const verdict = await verifyRequest(
      { method: c.req.method, url: addressedUrl(c.req.url), headers: c.req.raw.headers, body },
      {
        trust: trustOf(keys),
        ...(options.sessions ? { sessions: options.sessions } : {}),
        serviceId: options.serviceId,
        replayCache: options.replayCache,
        ...(options.notBeforeSeconds === undefined
          ? {}
          : { notBeforeSeconds: options.notBeforeSeconds }),
      },
    );
    if (!verdict.ok) {
      options.onRefused?.(verdict.reason);
      throw new HTTPException(401, { message: verdict.reason });
    }
    c.set("nonce", verdict.nonce);
    c.set("signer", verdict.signer);
    c.set("session", verdict.session);
    await next();
    const answer = c.res;
    // A WebSocket upgrade (101) must reach Deno untouched; the handshake request
    // itself was verified above. Asked for, its signature goes in the first frame.
    if (answer.status === 101) {
      if (c.req.query(SOCKET_PROOF_QUERY) === "1") {
        const signing = { requestNonce: verdict.nonce, session: verdict.session };
        const headers = await signResponse({ status: 101, body: EMPTY }, keys, signing);
        c.set(SOCKET_PROOF_VARIABLE, Object.fromEntries(headers));
      }
      return;
    }
    const type = answer.headers.get("content-type");
    if (type?.startsWith("text/event-stream")) {
      const headers = await signStreamResponse(
        { status: answer.status, headers: answer.headers },
        keys,
        { requestNonce: verdict.nonce, session: verdict.session },
      );
      replaceAnswer(c, new Response(answer.body, { status: answer.status, headers }));
      return;
    }
    const signing = { requestNonce: verdict.nonce, session: verdict.session };
    const json = type?.startsWith("application/json") === true;
    replaceAnswer(c, await signedAnswer(answer, { keys, options: signing, json }));
  };
}

/**
 * The answer with its body read once and signed. A JSON body (UTF-8, RFC
 * 8259) is read and sent as text: the same bytes, and a `Response` made from
 * a string costs Deno.serve less than one made from bytes (no buffer of the
 * body is allocated in JavaScript). Bytes that are not UTF-8 in a JSON answer
 * would go out with each bad sequence replaced by U+FFFD, signed as sent.
 */
async function signedAnswer(
  answer: Response,
  signing: { keys: FabricKeys; options: SignResponseOptions; json: boolean },
): Promise<Response> {
  const { keys, options } = signing;
  const { status } = answer;
  const body = signing.json ? await answer.text() : new Uint8Array(await answer.arrayBuffer());
  let headers: Headers;
  try {
    // The handler's answer is not sent: its own headers are signed, not a copy.
    headers = await signResponseInPlace({ status, headers: answer.headers, body }, keys, options);
  } catch (error) {
    // Headers of a fetched answer are immutable: sign a copy.
    if (!(error instanceof TypeError)) throw error;
    headers = await signResponse({ status, headers: answer.headers, body }, keys, options);
  }
  return new Response(status === 204 ? null : body, { status, headers });
}

const EMPTY = new Uint8Array();

/**
 * Puts the signed answer in place of the handler's. Hono wraps a response
 * set over another once more and copies the old one's headers onto it; the
 * signed one holds them all already, so the old one is cleared first.
 */
function replaceAnswer(c: { res: Response | undefined }, answer: Response): void {
  c.res = undefined;
  c.res = answer;
}

async function keysWithin(
  keys: () => FabricKeys | null,
  waitMs: number,
): Promise<FabricKeys | null> {
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    await sleep(5);
    const held = keys();
    if (held) return held;
  }
  return null;
}
