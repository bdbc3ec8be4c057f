/**
 * fabricd's profile of RFC 9421 HTTP Message Signatures: every management
 * request is signed with the fabric key and every answer is signed back,
 * bound to the request by its nonce (DESIGN.md "Signed management requests").
 *
 * Requests cover `("@method" "@path" "@query" "content-digest"
 * "fabric-target")`, plus `"content-type"` when they carry one (every request
 * with a body must), with `created`, `expires`, `nonce`, `keyid`,
 * `alg="ed25519"` and `tag="fabricd"`, under the label `sig1`. Both
 * `Signature-Input` and `Signature` must be in canonical structured-field
 * form, as {@linkcode signRequest} writes them.
 *
 * @module
 */

import { type MacSession, type MacSessions, sessionKey } from "./mac_sessions.ts";
import { IDENTITY_HEADER, type Signer } from "./certificate.ts";
import { resolveKey, type TrustStore } from "./trust.ts";
import { assertBytes, freshNonce, quote } from "./_bytes.ts";
import {
  absoluteUrl,
  assertNonce,
  assertVerifier,
  checkProfile,
  checkTimes,
  contentTypeOf,
  fail,
  type Failure,
  MAC_ALG,
  type ParsedSignature,
  type Profile,
  REQUEST,
  REQUEST_TYPED,
  requestValues,
  signatureBase,
  signBase,
  verifyBase,
} from "./_signature.ts";
import { parseSignature, serializeParams } from "./_signature_fields.ts";
import { digestField, digestMatches } from "./content_digest.ts";
import type { FabricKeys } from "./keys.ts";
import { ReplayCache } from "./replay_cache.ts";

export {
  type ResponseParts,
  signResponse,
  signResponseInPlace,
  type SignResponseOptions,
  signStreamResponse,
  type StreamResponseParts,
  verifyResponse,
  type VerifyResponseOptions,
  verifyStreamResponse,
} from "./_answer_signing.ts";

/** The parts of a request that the signature covers or needs. */
export interface RequestParts {
  method: string;
  /** The absolute request URL. */
  url: string | URL;
  headers: Headers;
  /** The exact body bytes, empty when there is none. */
  body: Uint8Array;
}

/** Options of {@linkcode signRequest}. */
export interface SignRequestOptions {
  /** ID of the service the request is meant for; sent as `Fabric-Target`. */
  target: string;
  /** Lifetime of the signature in seconds. Default 30. */
  expiresInSeconds?: number;
  /** The current time in milliseconds since the epoch. Default `Date.now()`. */
  now?: number;
  /** The nonce to use, 16 to 128 base64url characters. Default: 128 random bits. */
  nonce?: string;
  /** Sign with this MAC session instead of the key (docs/protocol.md 2.13). Default: the key. */
  session?: MacSession | undefined;
}

/** The result of {@linkcode signRequest}. */
export interface SignedRequest {
  /** The input headers plus `fields` (completed when first read). */
  readonly headers: Headers;
  /** The fields signing set, as pairs to send after the input headers (holding none of them). */
  fields: [string, string][];
  /** The nonce signed, which the answer's signature must carry. */
  nonce: string;
}

/**
 * The outcome of a verification. `expires` is the signature's `expires` in
 * seconds since the epoch; answers carry none and give `Infinity`.
 */
export type VerifyResult =
  | { ok: true; nonce: string; expires: number; signer: Signer; session?: MacSession }
  | Failure;

/** Options of {@linkcode verifyRequest}. */
export interface VerifyRequestOptions {
  /**
   * Who may sign: the fabric root and every service whose `Fabric-Identity`
   * chains to it (docs/protocol.md 2.11). Give this, or one trusted key
   * (`publicKey` and `fingerprint`, whose signer is the operator).
   */
  trust?: TrustStore;
  /** The MAC sessions this service serves; a session's requests are refused without. */
  sessions?: MacSessions;
  /** The one trusted public key, when there is no `trust`. */
  publicKey?: CryptoKey;
  /** The one trusted key's fingerprint; `keyid` must equal it. */
  fingerprint?: string;
  /** The verifying service's ID; `Fabric-Target` must equal it. */
  serviceId: string;
  /** Remembers the nonces of accepted requests. */
  replayCache: ReplayCache;
  /** The current time in milliseconds since the epoch. Default `Date.now()`. */
  now?: number;
  /**
   * Clock difference tolerated between signer and verifier, in seconds:
   * `created` may lie this far in the future and `expires` this far in the
   * past. Default 5.
   */
  clockSkewSeconds?: number;
  /** Longest signature lifetime (`expires - created`) accepted, in seconds. Default 60. */
  maxLifetimeSeconds?: number;
  /**
   * Requests created before this time (seconds since the epoch) are refused:
   * a restarted service gives its own start less the clock skew, so that no
   * request its previous incarnation accepted can be replayed to it (the
   * replay cache does not survive the process). Default: no bound.
   */
  notBeforeSeconds?: number;
}

/** The head of a request: what a relay sees before it streams the body on. */
export type RequestHead = Omit<RequestParts, "body">;

/** Longest signature lifetime a verifier accepts by default, in seconds. */
export const MAX_LIFETIME_SECONDS = 60;
/** Clock difference tolerated by default between signer and verifier, in seconds. */
export const CLOCK_SKEW_SECONDS = 5;

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const TARGET = /^[\x21-\x7e]+$/;

/**
 * Signs a request for one target service. Always sets `Content-Digest`
 * (the digest of the empty body when there is none).
 *
 * @param parts Method, absolute URL, body and optional headers to start from.
 * @param keys The fabric keys.
 * @param options The target service, lifetime, and for tests the time and nonce.
 * @returns New headers to send, and the nonce the answer must carry.
 * @throws {TypeError} If the method, URL, body, target or nonce is malformed.
 * @throws {RangeError} If `expiresInSeconds` is not a positive integer or `now` is not finite.
 */
export function signRequest(
  parts: Omit<RequestParts, "headers"> & { headers?: HeadersInit },
  keys: FabricKeys,
  options: SignRequestOptions,
): Promise<SignedRequest> {
  return signNow(parts, keys, options);
}

async function signNow(
  parts: Omit<RequestParts, "headers"> & { headers?: HeadersInit },
  keys: FabricKeys,
  options: SignRequestOptions,
): Promise<SignedRequest> {
  if (typeof parts.method !== "string" || !TOKEN.test(parts.method)) {
    throw new TypeError(`Request method must be an HTTP token, got ${quote(parts.method)}`);
  }
  const url = absoluteUrl(parts.url);
  if (url === undefined) {
    throw new TypeError(`Request URL must be absolute, got ${quote(parts.url)}`);
  }
  assertBytes(parts.body, "Request body");
  const { target, expiresInSeconds = 30, now = Date.now() } = options;
  if (typeof target !== "string" || !TARGET.test(target)) {
    throw new TypeError(
      `Target service ID must be visible ASCII without spaces, got ${quote(target)}`,
    );
  }
  if (!Number.isSafeInteger(expiresInSeconds) || expiresInSeconds < 1) {
    throw new RangeError(
      `expiresInSeconds must be a positive integer, got ${String(expiresInSeconds)}`,
    );
  }
  if (!Number.isFinite(now)) throw new RangeError(`now must be finite, got ${String(now)}`);
  const nonce = options.nonce ?? freshNonce();
  assertNonce(nonce, "Nonce");

  const type = contentTypeOf(parts.headers);
  if (parts.body.length > 0 && type === null) {
    throw new TypeError("A request with a body must have a Content-Type: set it before signing");
  }
  const session = options.session;
  const digest = await digestField(parts.body);
  const fields: [string, string][] = [["content-digest", digest], ["fabric-target", target]];
  if (keys.identity && !session) fields.push([IDENTITY_HEADER, keys.identity]);
  const profile = type === null ? REQUEST : REQUEST_TYPED;
  const created = Math.floor(now / 1000);
  const paramsValue = serializeParams(profile, {
    created,
    expires: created + expiresInSeconds,
    nonce,
    keyid: session?.keyid ?? keys.fingerprint,
    ...(session ? { alg: MAC_ALG } : {}),
  });
  const values = requestValues(parts.method, { url, digest, target, type });
  const base = signatureBase(profile, { values, paramsValue });
  const signed = await signBase(session?.secret ?? keys.privateKey, { base, paramsValue });
  fields.push(["signature-input", signed.input], ["signature", signed.signature]);
  // A Headers object checks each value set character by character: it is
  // made once a caller reads `headers`, never for `fields`.
  let headers: Headers | undefined;
  return {
    get headers(): Headers {
      if (headers === undefined) {
        headers = new Headers(parts.headers);
        for (const [name, value] of fields) headers.set(name, value);
      }
      return headers;
    },
    fields,
    nonce,
  };
}

/**
 * A request as a service receives it: its body given whole, or as a
 * function that reads it, which {@linkcode verifyRequest} calls only once
 * the signature verified (a request nobody signed is refused unread).
 */
export interface ReceivedRequest extends RequestHead {
  body: Uint8Array | (() => Promise<Uint8Array>);
}

/**
 * Verifies a signed request. Checks run in this order: the signature fields
 * parse; the profile (parameters, alg, tag, keyid, covered components); the
 * time (created not in the future, lifetime, not expired, not before
 * `notBeforeSeconds`); the target; `Content-Digest` present; the key and the
 * signature (which covers the digest); then the body against the digest and
 * the content type, the body read only now; and last the nonce, so that only
 * a fully valid request consumes it and a forged one cannot burn nonces.
 *
 * @param parts The request as received; its body, or how to read it.
 * @param options The fabric key, this service's ID, the replay cache and clock settings.
 * @returns `{ ok: true, nonce, expires }`, or `{ ok: false, reason }`; malformed
 * input never throws.
 * @throws {TypeError} If the options are wrong (not a public Ed25519 key, no
 * fingerprint or service ID, no replay cache), or the body is not a `Uint8Array`.
 * @throws {RangeError} If a time option is not a finite number in range.
 */
export async function verifyRequest(
  parts: ReceivedRequest,
  options: VerifyRequestOptions,
): Promise<VerifyResult> {
  if (typeof parts.body !== "function") assertBytes(parts.body, "Request body");
  return await verify(parts, options);
}

/**
 * Verifies the head of a signed request whose body has not arrived yet, as a
 * relay does before it streams the body on: every check of
 * {@linkcode verifyRequest} except that the body matches `Content-Digest`
 * (the signature covers the digest; the relay checks the body against it
 * while it streams, and the target checks it again). The nonce is recorded
 * in `options.replayCache`, which for a relay is its own, so the target's
 * cache still accepts the request once.
 *
 * @param head Method, URL and headers as received.
 * @param options As for {@linkcode verifyRequest}; `serviceId` is the target
 * the relay is asked to reach.
 * @returns As {@linkcode verifyRequest}.
 * @throws {TypeError} If the options are wrong.
 * @throws {RangeError} If a time option is not a finite number in range.
 */
export async function verifyRequestHead(
  head: RequestHead,
  options: VerifyRequestOptions,
): Promise<VerifyResult> {
  return await verify({ ...head, body: null }, options);
}

/** The checks of a request, in the documented order. */
async function verify(
  parts: RequestHead & { body: Uint8Array | (() => Promise<Uint8Array>) | null },
  options: VerifyRequestOptions,
): Promise<VerifyResult> {
  const { now, skew, maxLifetime, notBefore } = checkVerifyOptions(options);
  const typed = parts.headers.has("content-type");
  const profile = typed ? REQUEST_TYPED : REQUEST;
  const parsed = parseSignature(parts.headers, profile);
  if ("ok" in parsed) return parsed;
  const params = checkProfile(parsed, profile, options.trust ? undefined : options.fingerprint);
  if ("ok" in params) return params;
  const { created, nonce } = params;
  const expires = params.expires ?? created;

  const untimely = checkTimes({ created, expires }, { now, skew, maxLifetime, notBefore });
  if (untimely) return untimely;

  const target = parts.headers.get("fabric-target")?.trim();
  if (target === undefined) {
    return fail("Missing Fabric-Target header: name the service the request is for");
  }
  if (target !== options.serviceId) {
    return fail(`Request is for service ${quote(target)}, this is ${quote(options.serviceId)}`);
  }
  const digest = parts.headers.get("content-digest");
  if (digest === null) return fail("Missing Content-Digest header: send the digest of the body");
  const body = parts.body;
  // After the signature, before the nonce: a body is read only for a signed request.
  const bodyCheck = body === null ? null : async (): Promise<VerifyResult | null> => {
    const bytes = typeof body === "function" ? await body() : body;
    if (!(await digestMatches(digest, bytes))) {
      return fail("Content-Digest does not match the body");
    }
    if (bytes.length > 0 && !typed) {
      return fail("A request with a body must send and sign its Content-Type");
    }
    return null;
  };
  const checked = { parsed, profile, options, nonce, expires, created, skew, now, bodyCheck };
  const resolved = params.alg === MAC_ALG
    ? sessionKey(options.sessions, options.trust, params.keyid)
    // Refused at once, never kept waiting on a rotation lookup (docs/protocol.md 2.14).
    : await resolveKey({ ...options, wait: false }, params.keyid, parts.headers);
  return resolved.ok ? await checkSignature(parts, { ...checked, key: resolved }) : resolved;
}

async function checkSignature(
  parts: RequestHead,
  checked: {
    parsed: ParsedSignature;
    profile: Profile;
    options: VerifyRequestOptions;
    key: { publicKey: CryptoKey | Uint8Array; signer: Signer; session?: MacSession };
    nonce: string;
    expires: number;
    created: number;
    skew: number;
    now: number;
    bodyCheck: (() => Promise<VerifyResult | null>) | null;
  },
): Promise<VerifyResult> {
  const { parsed, profile, options, key, nonce, expires, created, skew, now } = checked;
  const url = absoluteUrl(parts.url);
  if (url === undefined || typeof parts.method !== "string") {
    return fail("Request method or URL is malformed");
  }
  const base = signatureBase(profile, {
    values: requestValues(parts.method, {
      url,
      digest: parts.headers.get("content-digest"),
      target: parts.headers.get("fabric-target"),
      type: parts.headers.get("content-type"),
    }),
    paramsValue: parsed.paramsValue,
  });
  if (!(await verifyBase(key.publicKey, base, parsed))) return fail("Signature does not verify");
  const bodyRefused = await checked.bodyCheck?.();
  if (bodyRefused) return bodyRefused;
  const window = { created: created * 1000, expiresAt: (expires + skew) * 1000 };
  if (!options.replayCache.remember(nonce, window, now)) {
    return fail("Nonce already used (replay)");
  }
  return key.session
    ? { ok: true, nonce, expires, signer: key.signer, session: key.session }
    : { ok: true, nonce, expires, signer: key.signer };
}

function checkVerifyOptions(
  options: VerifyRequestOptions,
): { now: number; skew: number; maxLifetime: number; notBefore: number } {
  if (!options.trust) assertVerifier(options.publicKey, options.fingerprint);
  if (typeof options.serviceId !== "string" || options.serviceId === "") {
    throw new TypeError("serviceId must be the verifying service's ID");
  }
  if (!(options.replayCache instanceof ReplayCache)) {
    throw new TypeError("replayCache must be a ReplayCache shared by the service's requests");
  }
  const {
    now = Date.now(),
    clockSkewSeconds: skew = CLOCK_SKEW_SECONDS,
    maxLifetimeSeconds: maxLifetime = MAX_LIFETIME_SECONDS,
    notBeforeSeconds: notBefore = Number.NEGATIVE_INFINITY,
  } = options;
  if (!Number.isFinite(now)) throw new RangeError(`now must be finite, got ${String(now)}`);
  if (!Number.isFinite(skew) || skew < 0) {
    throw new RangeError(`clockSkewSeconds must be zero or more, got ${String(skew)}`);
  }
  if (!Number.isFinite(maxLifetime) || maxLifetime <= 0) {
    throw new RangeError(`maxLifetimeSeconds must be positive, got ${String(maxLifetime)}`);
  }
  if (Number.isNaN(notBefore)) throw new RangeError("notBeforeSeconds must be a number");
  return { now, skew, maxLifetime, notBefore };
}
