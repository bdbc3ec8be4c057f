/**
 * The signed HTTP client every fabric member and command uses: it signs each
 * request with the fabric key, names its target service, and accepts only
 * answers signed by the fabric for that very request.
 * @module
 */
import type { Signer } from "../crypto/certificate.ts";
import type { MacSession } from "../crypto/mac_sessions.ts";
import { ClientSessions } from "./sessions.ts";
import { Deadlines } from "./deadlines.ts";
import { trustOf } from "../crypto/trust.ts";
import { FabricError } from "../types/errors.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import { signRequest, verifyResponse, verifyStreamResponse } from "../crypto/signing.ts";
import { type CappedBody, readCapped } from "../base/read_capped.ts";
import { readEvents } from "./_sse_events.ts";

/**
 * Largest answer a call reads by default, bytes: above any bounded answer (a queue get's 12 MiB
 * of UTF-8 at most); listings that grow with the fabric raise it (`RegistryClient`).
 */
export const MAX_ANSWER_BYTES = 16 * 1024 * 1024;
/** Largest answer read of a refused stream (an error, or not a stream), bytes: a line of JSON. */
export const MAX_ERROR_ANSWER_BYTES = 64 * 1024;

/**
 * A service to talk to: its ID (the signature's target) and the URL to send to,
 * which is the first bridge on its route when it is behind bridges.
 */
export interface Target {
  id: string;
  url: string;
  /** Service IDs from the root down to the target, sent as `Fabric-Route` for bridges. */
  route?: string[];
}

/** An answer that is not 2xx; `status` 0 means the service could not be reached. */
export class FabricRequestError extends FabricError {
  /** HTTP status, or 0 when there was no answer. */
  readonly status: number;
  /** The answer's JSON body, when there was one. */
  readonly body: Record<string, unknown>;
  /** Builds the error. */
  constructor(
    message: string,
    status: number,
    body: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    // Relayed on as 503 when the other service did not answer, else 502.
    super(message, { status: status === 0 ? 503 : 502 }, options);
    this.status = status;
    this.body = body;
  }
}

/** Options of {@linkcode FabricClient}. */
export interface FabricClientOptions {
  /** Time allowed for one request, ms. Default 15000. */
  timeoutMs?: number;
  /**
   * Sign calls to services reached directly in MAC sessions after one
   * Ed25519 handshake each (docs/protocol.md 2.13). Default false.
   */
  sessions?: boolean;
  /**
   * Largest answer read, bytes; a longer one is refused as not from this
   * fabric, and read no further. Default {@linkcode MAX_ANSWER_BYTES}.
   */
  maxAnswerBytes?: number;
}

/** Options of one call. */
export interface CallOptions {
  /** Overrides the client's timeout for this call, ms. */
  timeoutMs?: number;
  /** Overrides the client's `maxAnswerBytes` for this call. */
  maxAnswerBytes?: number;
  /** Cancels the call. */
  signal?: AbortSignal;
}

/** Options of {@linkcode FabricClient.stream}. */
export interface StreamOptions {
  /** `POST` sends `body` as JSON (`POST /v1/spawn`, docs/protocol.md 5.2). Default `GET`. */
  method?: "GET" | "POST";
  /** The request body, with `POST`. */
  body?: unknown;
}

/** Signed requests to fabric services, verified answers. */
export class FabricClient {
  #keys: FabricKeys;
  #timeoutMs: number;
  #maxAnswerBytes: number;
  #sessions: ClientSessions | null;
  #deadlines = new Deadlines();

  /** A client signing with `keys`. */
  constructor(keys: FabricKeys, options: FabricClientOptions = {}) {
    this.#keys = keys;
    this.#timeoutMs = options.timeoutMs ?? 15_000;
    this.#maxAnswerBytes = options.maxAnswerBytes ?? MAX_ANSWER_BYTES;
    this.#sessions = options.sessions ? new ClientSessions(keys) : null;
  }

  /**
   * Sends a signed request and returns the verified JSON answer.
   *
   * @throws {FabricRequestError} on a non-2xx answer (with its status and error
   * message), an unsigned, forged or oversized answer (its status if 400 or
   * more, else 502) or no answer (status 0).
   */
  async call<T>(
    target: Target,
    request: { method: string; path: string; body?: unknown },
    options: CallOptions = {},
  ): Promise<T> {
    // Sessions only end to end: a bridge on the way could not verify a MAC.
    const direct = !target.route || target.route.length === 0;
    // The first call to a service is signed with the key while its session opens.
    const session = this.#sessions && direct
      ? this.#sessions.ready(target, (x25519) => this.#handshake(target, x25519))
      : undefined;
    try {
      return (await this.#call<T>(target, request, options, session)).json;
    } catch (error) {
      const forgotten = error instanceof FabricRequestError && error.status === 401 &&
        /session/i.test(error.message);
      if (!session || !forgotten) throw error;
      this.#sessions!.drop(target);
      return (await this.#call<T>(target, request, options, undefined)).json;
    }
  }

  #handshake(
    target: Target,
    x25519: string,
  ): Promise<{ answer: { x25519: string; keyid: string; expires: number }; signer: Signer }> {
    return this.#call<{ x25519: string; keyid: string; expires: number }>(
      target,
      { method: "POST", path: "/v1/session", body: { x25519 } },
      {},
      undefined,
    ).then(({ json, signer }) => ({ answer: json, signer }));
  }

  async #call<T>(
    target: Target,
    request: { method: string; path: string; body?: unknown },
    options: CallOptions,
    session: MacSession | undefined,
  ): Promise<{ json: T; signer: Signer }> {
    const url = new URL(request.path, target.url);
    const body = request.body === undefined
      ? new Uint8Array()
      : encoder.encode(JSON.stringify(request.body));
    const headers = routeHeaders(target, "application/json");
    if (request.body !== undefined) headers.push(["content-type", "application/json"]);
    const signed = await signRequest(
      { method: request.method, url, headers, body },
      this.#keys,
      { target: target.id, session },
    );
    // The input pairs plus the signed fields: cheaper for fetch to take in
    // than the Headers object signRequest built.
    const { answer, bytes } = await this.#exchange(
      url,
      {
        method: request.method,
        headers: [...headers, ...signed.fields],
        ...(body.length > 0 ? { body } : {}),
      },
      target,
      options,
    );
    const verdict = await verifyResponse(
      { status: answer.status, headers: answer.headers, body: bytes },
      {
        trust: trustOf(this.#keys),
        requestNonce: signed.nonce,
        session,
      },
    );
    const json = parseJson(bytes);
    if (!verdict.ok) {
      const said = typeof json.error === "string" ? `: ${json.error}` : "";
      throw new FabricRequestError(
        `Answer of "${target.id}" (${answer.status}) is not signed by this fabric (${verdict.reason})${said}`,
        answer.status >= 400 ? answer.status : 502,
        json,
      );
    }
    if (!answer.ok) {
      const message = typeof json.error === "string" ? json.error : `HTTP ${answer.status}`;
      throw new FabricRequestError(message, answer.status, json);
    }
    // Only the target answers a call (bridges on its route answer only errors).
    const by = verdict.signer;
    if (by.kind === "service" && by.id !== target.id) {
      throw new FabricRequestError(
        `Answer of "${target.id}" is signed by another service, "${by.id}": refused`,
        502,
        json,
      );
    }
    return { json: json as T, signer: verdict.signer };
  }

  /**
   * Opens a signed server-sent-event stream and calls `onEvent` for each event
   * until `signal` aborts or the stream ends. With `options.method` `POST`, a
   * signed answer that is not a stream (an error before the stream began) is
   * verified and thrown as {@linkcode call} would.
   *
   * @throws {FabricRequestError} when the stream cannot be opened or is not signed.
   */
  async stream(
    target: Target,
    path: string,
    onEvent: (event: { id: string; event: string; data: string }) => void,
    signal: AbortSignal,
    options: StreamOptions = {},
  ): Promise<void> {
    const url = new URL(path, target.url);
    const method = options.method ?? "GET";
    const headers = routeHeaders(target, "text/event-stream");
    const body = method === "POST"
      ? encoder.encode(JSON.stringify(options.body ?? {}))
      : new Uint8Array();
    if (method === "POST") headers.push(["content-type", "application/json"]);
    const signed = await signRequest({ method, url, headers, body }, this.#keys, {
      target: target.id,
    });
    // No deadline for the stream, but for its head: a squatter may never answer.
    const headMs = this.#limitMs;
    const head = this.#deadlines.start(headMs);
    const answer = await this.#fetch(
      url,
      { method, headers: [...headers, ...signed.fields], ...(body.length > 0 ? { body } : {}) },
      target,
      { signals: [signal, head.signal], timeoutMs: headMs },
    ).finally(() => this.#deadlines.release(head));
    if (method === "POST" && !answer.headers.get("content-type")?.startsWith("text/event-stream")) {
      await this.#refuseAnswer(answer, target, signed.nonce);
    }
    const verdict = await verifyStreamResponse({ status: answer.status, headers: answer.headers }, {
      trust: trustOf(this.#keys),
      requestNonce: signed.nonce,
    });
    if (!answer.ok || !verdict.ok || !answer.body) {
      // Only the start of a refusal is read, and only for a while: no stream follows.
      const start = await this.#errorBody(answer);
      const text = start ? decoder.decode(start.bytes) + (start.whole ? "" : " ...") : "";
      const unsigned = verdict.ok ? "" : ` (not signed by this fabric: ${verdict.reason})`;
      throw new FabricRequestError(
        `Cannot follow "${path}" on "${target.id}": HTTP ${answer.status}${unsigned} ${text}`
          .trim(),
        answer.ok ? 502 : answer.status,
      );
    }
    await readEvents(answer.body, onEvent);
  }

  /** The client's time limit, else 15 s: what a stream's head and its refusal get. */
  get #limitMs(): number {
    return this.#timeoutMs > 0 && Number.isFinite(this.#timeoutMs) ? this.#timeoutMs : 15_000;
  }

  /**
   * At most {@linkcode MAX_ERROR_ANSWER_BYTES} of a body that is not a stream,
   * read within the client's time limit (15 s when it has none): a stream's
   * request has no deadline of its own. Null when it did not come in time.
   */
  async #errorBody(answer: Response): Promise<CappedBody | null> {
    const deadline = this.#deadlines.start(this.#limitMs);
    try {
      return await readCapped(answer, MAX_ERROR_ANSWER_BYTES, deadline.signal);
    } catch {
      return null;
    } finally {
      this.#deadlines.release(deadline);
    }
  }

  /** Throws a signed answer that is not a stream as the error it says, verified as in `#call`. */
  async #refuseAnswer(answer: Response, target: Target, nonce: string): Promise<never> {
    const body = await this.#errorBody(answer);
    if (!body?.whole) {
      const why = body ? `is larger than ${MAX_ERROR_ANSWER_BYTES} bytes` : "did not come in time";
      throw refused(target, answer.status, why);
    }
    const bytes = body.bytes;
    const verdict = await verifyResponse(
      { status: answer.status, headers: answer.headers, body: bytes },
      { trust: trustOf(this.#keys), requestNonce: nonce },
    );
    const json = parseJson(bytes);
    const said = typeof json.error === "string" ? json.error : `HTTP ${answer.status}`;
    const status = answer.status >= 400 ? answer.status : 502;
    if (!verdict.ok) {
      throw new FabricRequestError(
        `Answer of "${target.id}" (${answer.status}) is not signed by this fabric (${verdict.reason}): ${said}`,
        status,
        json,
      );
    }
    throw new FabricRequestError(
      answer.ok ? `Answer of "${target.id}" is not a stream` : said,
      status,
      json,
    );
  }

  /**
   * Sends a request and reads its whole answer within the call's time limit.
   * The deadline covers the body too and is released once the body is in,
   * so no timer or signal outlives the call (a busy client would otherwise
   * hold a timeout's worth of them); the client's calls share one timer.
   * The body is read up to the call's `maxAnswerBytes`, and refused past it.
   */
  async #exchange(
    url: URL,
    init: RequestInit,
    target: Target,
    options: CallOptions,
  ): Promise<{ answer: Response; bytes: Uint8Array }> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const deadline = timeoutMs > 0 && Number.isFinite(timeoutMs)
      ? this.#deadlines.start(timeoutMs)
      : undefined;
    try {
      const answer = await this.#fetch(url, init, target, {
        signals: [options.signal, deadline?.signal],
        timeoutMs,
      });
      const maxBytes = options.maxAnswerBytes ?? this.#maxAnswerBytes;
      const { bytes, whole } = await readCapped(answer, maxBytes);
      if (!whole) throw refused(target, answer.status, `is larger than ${maxBytes} bytes`);
      return { answer, bytes };
    } finally {
      if (deadline) this.#deadlines.release(deadline);
    }
  }

  async #fetch(
    url: URL,
    init: RequestInit,
    target: Target,
    limits: { signals: (AbortSignal | undefined)[]; timeoutMs: number },
  ): Promise<Response> {
    const signals = limits.signals.filter((s): s is AbortSignal => s !== undefined);
    const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
    try {
      return await fetch(url, signal ? { ...init, signal } : init);
    } catch (cause) {
      const why = cause instanceof DOMException && cause.name === "TimeoutError"
        ? `no answer within ${limits.timeoutMs} ms`
        : cause instanceof Error
        ? cause.message
        : String(cause);
      throw new FabricRequestError(
        `Cannot reach service "${target.id}" at ${target.url}: ${why}`,
        0,
        {},
        { cause },
      );
    }
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An answer refused unverified (too large, too slow), classed as one that does not verify. */
function refused(target: Target, status: number, why: string): FabricRequestError {
  return new FabricRequestError(
    `Answer of "${target.id}" (${status}) ${why}: refused, not from this fabric?`,
    status >= 400 ? status : 502,
  );
}

function routeHeaders(target: Target, accept: string): [string, string][] {
  const headers: [string, string][] = [["accept", accept]];
  if (target.route && target.route.length > 0) {
    headers.push(["fabric-route", target.route.join(",")]);
  }
  return headers;
}

function parseJson(bytes: Uint8Array): Record<string, unknown> {
  if (bytes.length === 0) return {};
  try {
    const value: unknown = JSON.parse(decoder.decode(bytes));
    return typeof value === "object" && value !== null ? value as Record<string, unknown> : {};
  } catch {
    return {};
  }
}
