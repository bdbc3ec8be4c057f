/**
 * RFC 9530 `Content-Digest` with SHA-256, which every signed request and
 * answer of fabricd carries, also for an empty body.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import { parseDictionary } from "structured-headers";
import { assertBytes, sameText, toBase64 } from "./_bytes.ts";

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

/** SHA-256 through node:crypto: about 15 times cheaper than Web Crypto per call here. */
function sha256(body: Uint8Array): Uint8Array {
  return createHash("sha256").update(body).digest();
}

/** The canonical field of a body; the empty body's (most requests') is computed once. */
function digestField(body: Uint8Array): string {
  return body.length === 0 ? EMPTY_FIELD : `sha-256=:${toBase64(sha256(body))}:`;
}

const EMPTY_FIELD = `sha-256=:${toBase64(sha256(new Uint8Array()))}:`;

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
  if (typeof header !== "string") return Promise.resolve(false);
  // The field as fabricd writes it equals the body's own field (compared in
  // constant time, as the digests would be); any other spelling (more
  // members, another order) is parsed.
  const actual = body.length === 0 ? undefined : sha256(body);
  const field = actual === undefined ? EMPTY_FIELD : `sha-256=:${toBase64(actual)}:`;
  if (sameText(header, field)) return Promise.resolve(true);
  let claimed: Uint8Array;
  try {
    const member = parseDictionary(header).get("sha-256");
    if (member === undefined || !(member[0] instanceof ArrayBuffer)) return Promise.resolve(false);
    claimed = new Uint8Array(member[0]);
  } catch {
    return Promise.resolve(false);
  }
  const expected = actual ?? sha256(body);
  return Promise.resolve(claimed.length === expected.length && timingSafeEqual(claimed, expected));
}
