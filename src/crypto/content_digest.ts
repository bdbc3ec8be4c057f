/**
 * RFC 9530 `Content-Digest` with SHA-256, which every signed request and
 * answer of fabricd carries, also for an empty body.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import { parseDictionary } from "structured-headers";
import { assertBytes, base64Of, sameText, utf8Scratch } from "./_bytes.ts";
import { sha256 } from "./_sha256.ts";

/**
 * Computes the `Content-Digest` field value of a body.
 *
 * @param body The exact bytes sent, possibly empty.
 * @returns `sha-256=:BASE64:` (a structured-field dictionary).
 * @throws {TypeError} If `body` is not a `Uint8Array`.
 */
export function contentDigest(body: Uint8Array): Promise<string> {
  assertBytes(body, "Body");
  return Promise.resolve(digestField(body));
}

/**
 * The canonical `Content-Digest` field of a body, synchronously: what
 * {@linkcode contentDigest} resolves to, for the signing code, which need not
 * wait a turn of the event loop for it. A string is digested as its UTF-8
 * bytes, which is what a `Response` made from it sends. The empty body's
 * (most requests') is computed once.
 */
export function digestField(body: Uint8Array | string): string {
  if (body.length === 0) return EMPTY_FIELD;
  // A small body is hashed in JavaScript (`_sha256.ts`): node:crypto's hash
  // object, ops and digest copy cost more than hashing a few blocks. A
  // larger one goes to node:crypto (native, straight to base64), about 15
  // times cheaper than Web Crypto per call here.
  if (body.length <= SMALL_BODY) {
    const bytes = typeof body === "string" ? utf8Scratch(body) : body;
    if (bytes.length <= SMALL_BODY) return `sha-256=:${base64Of(sha256(bytes))}:`;
  }
  return `sha-256=:${createHash("sha256").update(body).digest("base64")}:`;
}

/** Bodies up to this many bytes are hashed in JavaScript. */
const SMALL_BODY = 512;
const EMPTY_FIELD = `sha-256=:${createHash("sha256").digest("base64")}:`;

/**
 * Checks a `Content-Digest` field value against a body. The value is parsed
 * as a structured-field dictionary that must hold a `sha-256` byte sequence;
 * other algorithms in it are ignored.
 *
 * @param header The field value, or `null` when the header is missing.
 * @param body The bytes received.
 * @returns `true` if the SHA-256 digest matches; `false` if it does not, is
 * missing, or the value cannot be parsed.
 * @throws {TypeError} If `body` is not a `Uint8Array`.
 */
export function verifyContentDigest(
  header: string | null,
  body: Uint8Array,
): Promise<boolean> {
  assertBytes(body, "Body");
  return Promise.resolve(digestMatches(header, body));
}

/** {@linkcode verifyContentDigest}, synchronously, for the verifying code. */
export function digestMatches(header: string | null, body: Uint8Array): boolean {
  if (typeof header !== "string") return false;
  // The field as fabricd writes it equals the body's own field (compared in
  // constant time, as the digests would be); any other spelling (more
  // members, another order) is parsed.
  if (sameText(header, digestField(body))) return true;
  let claimed: Uint8Array;
  try {
    const member = parseDictionary(header).get("sha-256");
    if (member === undefined || !(member[0] instanceof ArrayBuffer)) return false;
    claimed = new Uint8Array(member[0]);
  } catch {
    return false;
  }
  const expected = createHash("sha256").update(body).digest();
  return claimed.length === expected.length && timingSafeEqual(claimed, expected);
}
