/**
 * Signed answers: every answer to a signed request is signed with the fabric
 * key and carries the request's nonce, so a client knows that a fabric member
 * answered this very request. Re-exported by `signing.ts`.
 *
 * @module
 */

import { IDENTITY_HEADER } from "./certificate.ts";
import { resolveKey, type TrustStore } from "./trust.ts";
import type { MacSession } from "./mac_sessions.ts";
import { assertBytes } from "./_bytes.ts";
import {
  ANSWER,
  assertNonce,
  assertVerifier,
  checkProfile,
  fail,
  type Failure,
  MAC_ALG,
  type Profile,
  signatureBase,
  signBase,
  STREAM,
  verifyBase,
} from "./_signature.ts";
import { parseSignature, serializeParams } from "./_signature_fields.ts";
import { digestField, digestMatches } from "./content_digest.ts";
import type { FabricKeys } from "./keys.ts";
import type { VerifyResult } from "./signing.ts";

/** An answer as sent or received. */
export interface ResponseParts {
  /** The HTTP status code. */
  status: number;
  headers: Headers;
  /** The exact body bytes, empty when there is none. */
  body: Uint8Array;
}

/** A streaming answer, whose body is not covered. */
export interface StreamResponseParts {
  status: number;
  /** Must hold `Content-Type`, which the signature covers. */
  headers: Headers;
}

/** Options of {@linkcode signResponse} and {@linkcode signStreamResponse}. */
export interface SignResponseOptions {
  /** The nonce of the request answered. */
  requestNonce: string;
  /** The MAC session the request came in, which signs the answer too. Default: the key. */
  session?: MacSession | undefined;
  /** The current time in milliseconds since the epoch. Default `Date.now()`. */
  now?: number;
}

/** Options of {@linkcode verifyResponse} and {@linkcode verifyStreamResponse}. */
export interface VerifyResponseOptions {
  /** Who may sign answers: the fabric root and the services chained to it. */
  trust?: TrustStore;
  /** The one trusted public key, when there is no `trust`. */
  publicKey?: CryptoKey;
  /** The one trusted key's fingerprint; `keyid` must equal it. */
  fingerprint?: string;
  /** The nonce of the request sent; the answer must carry it. */
  requestNonce: string;
  /** The MAC session the request was sent in: its answer must be signed in it too. */
  session?: MacSession | undefined;
}

/**
 * Signs an answer: covers `("@status" "content-digest")` with `created`,
 * `nonce` (the request's), `keyid`, `alg="ed25519"`, `tag="fabricd-answer"`.
 *
 * @param parts Status, body (bytes, or a string signed as its UTF-8 bytes) and optional headers to start from.
 * @param keys The fabric keys.
 * @param options The request's nonce and, for tests, the time.
 * @returns New headers: the input ones plus `Content-Digest`, `Signature-Input`, `Signature`.
 * @throws {TypeError} If the body or nonce is malformed.
 * @throws {RangeError} If the status is not an integer from 100 to 599 or `now` is not finite.
 */
export async function signResponse(
  parts: { status: number; headers?: Headers; body: Uint8Array | string },
  keys: FabricKeys,
  options: SignResponseOptions,
): Promise<Headers> {
  return await signResponseInPlace(
    { ...parts, headers: new Headers(parts.headers) },
    keys,
    options,
  );
}

/**
 * Signs an answer as {@linkcode signResponse} does, setting the fields on
 * `parts.headers` itself instead of a copy: for a server that builds the
 * answer from these headers next (a copy fewer per answer). The body may be
 * a string, signed as its UTF-8 bytes (what a `Response` made from it sends),
 * so that a server can answer with the text it read, never making the bytes.
 *
 * @returns `parts.headers`, now with `Content-Digest`, `Signature-Input` and `Signature`.
 * @throws {TypeError} If the body or nonce is malformed, or the headers are immutable.
 * @throws {RangeError} As {@linkcode signResponse}.
 */
export async function signResponseInPlace(
  parts: Omit<ResponseParts, "body"> & { body: Uint8Array | string },
  keys: FabricKeys,
  options: SignResponseOptions,
): Promise<Headers> {
  if (typeof parts.body !== "string") assertBytes(parts.body, "Answer body");
  const headers = parts.headers;
  headers.set("content-digest", await digestField(parts.body));
  return await signAnswer(ANSWER, { status: parts.status, headers, keys, options });
}

/**
 * Verifies a signed answer: the profile, that it carries the request's
 * nonce, its content digest, then the signature.
 *
 * @param parts The answer as received.
 * @param options The fabric key and the nonce of the request sent.
 * @returns `{ ok: true, nonce, expires: Infinity }` or `{ ok: false, reason }`;
 * malformed input never throws.
 * @throws {TypeError} If the options are wrong or the body is not a `Uint8Array`.
 */
export async function verifyResponse(
  parts: ResponseParts,
  options: VerifyResponseOptions,
): Promise<VerifyResult> {
  assertBytes(parts.body, "Answer body");
  return await verifyAnswer(ANSWER, parts, {
    options,
    check: async () => {
      const digest = parts.headers.get("content-digest");
      if (digest === null) return "Missing Content-Digest header: send the digest of the body";
      return (await digestMatches(digest, parts.body))
        ? undefined
        : "Content-Digest does not match the body";
    },
  });
}

/**
 * Signs a streaming answer (server-sent events), whose body cannot be
 * digested up front: covers `("@status" "content-type")` with the same
 * parameters as {@linkcode signResponse} and `tag="fabricd-stream"`.
 *
 * @param parts Status and headers, which must hold `Content-Type`.
 * @param keys The fabric keys.
 * @param options The request's nonce and, for tests, the time.
 * @returns New headers: the input ones plus `Signature-Input` and `Signature`.
 * @throws {TypeError} If `Content-Type` is missing or the nonce is malformed.
 * @throws {RangeError} If the status is not an integer from 100 to 599 or `now` is not finite.
 */
export async function signStreamResponse(
  parts: StreamResponseParts,
  keys: FabricKeys,
  options: SignResponseOptions,
): Promise<Headers> {
  const headers = new Headers(parts.headers);
  if (!headers.has("content-type")) {
    throw new TypeError("Set Content-Type before signing a stream answer");
  }
  return await signAnswer(STREAM, { status: parts.status, headers, keys, options });
}

/**
 * Verifies a signed streaming answer: the profile, the request's nonce, then
 * the signature over status and `Content-Type`.
 *
 * @param parts The answer's status and headers as received.
 * @param options The fabric key and the nonce of the request sent.
 * @returns `{ ok: true, nonce, expires: Infinity }` or `{ ok: false, reason }`;
 * malformed input never throws.
 * @throws {TypeError} If the options are wrong.
 */
export async function verifyStreamResponse(
  parts: StreamResponseParts,
  options: VerifyResponseOptions,
): Promise<VerifyResult> {
  return await verifyAnswer(STREAM, parts, {
    options,
    check: () =>
      parts.headers.has("content-type")
        ? undefined
        : "Missing Content-Type header: the stream answer must declare it",
  });
}

async function signAnswer(
  profile: Profile,
  input: { status: number; headers: Headers; keys: FabricKeys; options: SignResponseOptions },
): Promise<Headers> {
  const { status, headers, keys, options } = input;
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    throw new RangeError(`Status must be an integer from 100 to 599, got ${String(status)}`);
  }
  const { requestNonce, now = Date.now() } = options;
  assertNonce(requestNonce, "requestNonce");
  if (!Number.isFinite(now)) throw new RangeError(`now must be finite, got ${String(now)}`);
  const session = options.session;
  const paramsValue = serializeParams(profile, {
    created: Math.floor(now / 1000),
    nonce: requestNonce,
    keyid: session?.keyid ?? keys.fingerprint,
    ...(session ? { alg: MAC_ALG } : {}),
  });
  if (keys.identity && !session) headers.set(IDENTITY_HEADER, keys.identity);
  const base = signatureBase(profile, {
    values: answerValues(profile, status, headers),
    paramsValue,
  });
  const signed = await signBase(session?.secret ?? keys.privateKey, { base, paramsValue });
  headers.set("signature-input", signed.input);
  headers.set("signature", signed.signature);
  return headers;
}

/** The checks of an answer, in the documented order. */
async function verifyAnswer(
  profile: Profile,
  parts: { status: number; headers: Headers },
  steps: {
    options: VerifyResponseOptions;
    check: () => string | undefined | Promise<string | undefined>;
  },
): Promise<VerifyResult> {
  const { options } = steps;
  if (!options.trust) assertVerifier(options.publicKey, options.fingerprint);
  assertNonce(options.requestNonce, "requestNonce");
  const parsed = parseSignature(parts.headers, profile);
  if ("ok" in parsed) return parsed;
  const params = checkProfile(parsed, profile, options.trust ? undefined : options.fingerprint);
  if ("ok" in params) return params;
  if (params.nonce !== options.requestNonce) {
    return fail("Answer is for another request: its nonce differs from the request's");
  }
  const problem = await steps.check();
  if (problem !== undefined) return fail(problem);
  const base = signatureBase(profile, {
    values: answerValues(profile, parts.status, parts.headers),
    paramsValue: parsed.paramsValue,
  });
  const key = params.alg === MAC_ALG
    ? sessionAnswerKey(options.session, params.keyid)
    : await resolveKey(options, params.keyid, parts.headers);
  if (!key.ok) return key;
  if (!(await verifyBase(key.publicKey, base, parsed))) return fail("Signature does not verify");
  return { ok: true, nonce: params.nonce, expires: Number.POSITIVE_INFINITY, signer: key.signer };
}

function answerValues(profile: Profile, status: number, headers: Headers): string[] {
  return [String(status), headers.get(profile.components[1] ?? "")?.trim() ?? ""];
}

/** The session key an answer signed in `keyid` must verify with: the session the request went in. */
function sessionAnswerKey(
  session: MacSession | undefined,
  keyid: string,
): { ok: true; publicKey: Uint8Array; signer: MacSession["peer"] } | Failure {
  if (!session || session.keyid !== keyid) {
    return fail("Answer is signed in a session the request was not sent in");
  }
  return { ok: true, publicKey: session.secret, signer: session.peer };
}
