/**
 * The parts of fabricd's RFC 9421 profile that requests, answers and stream
 * answers share: profiles, the signature base, checking the parsed
 * `Signature-Input` and `Signature` fields (`_signature_fields.ts` writes and
 * parses them), Ed25519 and HMAC over the base.
 *
 * @module
 */

import type { BareItem } from "structured-headers";
import { KeyObject, sign as nodeSign, verify as nodeVerify } from "node:crypto";
import { hmacSha256Base64 } from "./_hmac.ts";
import { describe, quote, sameText, toBase64, utf8 } from "./_bytes.ts";

/** The label of fabricd's signature in `Signature-Input` and `Signature`. */
export const LABEL = "sig1";
/** The algorithm of signatures by a key (the root's or a certified service's). */
export const ALG = "ed25519";
/** The algorithm of signatures in a MAC session (`mac_sessions.ts`). */
export const MAC_ALG = "hmac-sha256";
/** A nonce: 16 to 128 base64url characters (fabricd makes 22: 128 random bits). */
export const NONCE = /^[A-Za-z0-9_-]{16,128}$/;

/** What one kind of signed message covers and declares. */
export interface Profile {
  /** "request", "answer" or "stream answer", for messages. */
  noun: string;
  components: readonly string[];
  tag: string;
  /** Whether `expires` is a parameter. */
  expires: boolean;
}

/** Signed requests (DESIGN.md "Signed management requests"). */
export const REQUEST: Profile = {
  noun: "request",
  components: ["@method", "@path", "@query", "content-digest", "fabric-target"],
  tag: "fabricd",
  expires: true,
};

/**
 * Signed requests that carry a `Content-Type` (every request with a body):
 * the type is covered too, so that nobody on the path can make a signed body
 * be read as something else.
 */
export const REQUEST_TYPED: Profile = {
  noun: "request",
  components: [...REQUEST.components, "content-type"],
  tag: "fabricd",
  expires: true,
};

/** Answers to signed requests, bound to the request by its nonce. */
export const ANSWER: Profile = {
  noun: "answer",
  components: ["@status", "content-digest"],
  tag: "fabricd-answer",
  expires: false,
};

/** Streaming answers (SSE), whose body cannot be digested up front. */
export const STREAM: Profile = {
  noun: "stream answer",
  components: ["@status", "content-type"],
  tag: "fabricd-stream",
  expires: false,
};

/** A refusal with a reason for a human. */
export interface Failure {
  ok: false;
  reason: string;
}

/** The signature parameters of the profile. */
export interface SignatureParams {
  created: number;
  expires?: number;
  nonce: string;
  keyid: string;
  /** Default {@linkcode ALG}; {@linkcode MAC_ALG} in a MAC session. */
  alg?: string;
}

/** A parsed `sig1` signature. */
export interface ParsedSignature {
  components: string[];
  params: Map<string, BareItem>;
  /** The `@signature-params` value: the inner list re-serialized. */
  paramsValue: string;
  signature: Uint8Array<ArrayBuffer>;
}

/** Builds the signature base of RFC 9421 §2.5 from component values in order. */
export function signatureBase(
  profile: Profile,
  parts: { values: readonly string[]; paramsValue: string },
): string {
  const { values, paramsValue } = parts;
  const lines = profile.components.map((name, index) => `"${name}": ${values[index] ?? ""}`);
  lines.push(`"@signature-params": ${paramsValue}`);
  return lines.join("\n");
}

// Ed25519 through node:crypto is about three times cheaper than Web Crypto
// here; the KeyObject of each CryptoKey is made once.
const keyObjects = new WeakMap<CryptoKey, KeyObject>();

function keyObject(key: CryptoKey): KeyObject {
  let object = keyObjects.get(key);
  if (!object) {
    object = KeyObject.from(key);
    keyObjects.set(key, object);
  }
  return object;
}

/** Signs a signature base and returns the two header values to set. */
export function signBase(
  privateKey: CryptoKey | Uint8Array,
  parts: { base: string; paramsValue: string },
): Promise<{ input: string; signature: string }> {
  const { base, paramsValue } = parts;
  const signature = privateKey instanceof Uint8Array
    ? hmacSha256Base64(privateKey, base)
    : toBase64(nodeSign(null, utf8(base), keyObject(privateKey)));
  return Promise.resolve({
    input: `${LABEL}=${paramsValue}`,
    signature: `${LABEL}=:${signature}:`,
  });
}

/** Verifies Ed25519 over a signature base; `false` on any failure. */
export function verifyBase(
  publicKey: CryptoKey | Uint8Array,
  parts: { base: string; signature: Uint8Array<ArrayBuffer> },
): Promise<boolean> {
  const { base, signature } = parts;
  if (publicKey instanceof Uint8Array) {
    // Base64 spells each byte string one way: equal texts are equal MACs.
    return Promise.resolve(sameText(hmacSha256Base64(publicKey, base), toBase64(signature)));
  }
  try {
    return Promise.resolve(nodeVerify(null, utf8(base), keyObject(publicKey), signature));
  } catch {
    return Promise.resolve(false);
  }
}

/** Checks a parsed signature against the profile, in the documented order. */
export function checkProfile(
  parsed: ParsedSignature,
  profile: Profile,
  fingerprint: string | undefined,
): SignatureParams | Failure {
  const { params } = parsed;
  const allowed = [
    "created",
    "nonce",
    "keyid",
    "alg",
    "tag",
    ...(profile.expires ? ["expires"] : []),
  ];
  for (const name of params.keys()) {
    if (!allowed.includes(name)) {
      return fail(`Unexpected signature parameter ${quote(name)}: sign with fabricd`);
    }
  }
  const alg = params.get("alg");
  if (alg !== ALG && alg !== MAC_ALG) {
    return fail(
      `Signature algorithm ${
        quoteItem(alg)
      } is not supported: sign with alg="${ALG}" or "${MAC_ALG}"`,
    );
  }
  if (parsed.signature.length !== (alg === ALG ? 64 : 32)) {
    return fail(`Signature "${LABEL}" has the wrong length for alg="${alg}"`);
  }
  const tag = params.get("tag");
  if (tag !== profile.tag) {
    return fail(
      `Signature tag ${
        quoteItem(tag)
      } is not "${profile.tag}": this is not a signed fabricd ${profile.noun}`,
    );
  }
  const keyid = params.get("keyid");
  // With one trusted key the keyid must be it; with a trust store it must look
  // like a fingerprint here and is resolved (to the root or a chain) later.
  if (alg === MAC_ALG) {
    if (typeof keyid !== "string" || !/^mac:[A-Za-z0-9_-]{22}$/.test(keyid)) {
      return fail(
        `Session ${quoteItem(keyid)} is malformed: a MAC session keyid is mac: + 22 characters`,
      );
    }
  } else if (
    typeof keyid !== "string" ||
    (fingerprint !== undefined ? keyid !== fingerprint : !isFingerprint(keyid))
  ) {
    return fail(`Unknown key ${quoteItem(keyid)}: not this fabric's key`);
  }
  const expected = profile.components;
  if (
    parsed.components.length !== expected.length ||
    parsed.components.some((name, index) => name !== expected[index])
  ) {
    return fail(componentsMessage(profile));
  }
  const created = params.get("created");
  if (typeof created !== "number" || !Number.isInteger(created)) {
    return fail('Signature parameter "created" must be an integer (seconds since the epoch)');
  }
  const expires = params.get("expires");
  if (profile.expires && (typeof expires !== "number" || !Number.isInteger(expires))) {
    return fail('Signature parameter "expires" must be an integer (seconds since the epoch)');
  }
  const nonce = params.get("nonce");
  if (typeof nonce !== "string" || !NONCE.test(nonce)) {
    return fail("Signature nonce must be a string of 16 to 128 base64url characters");
  }
  return typeof expires === "number"
    ? { created, expires, nonce, keyid, alg }
    : { created, nonce, keyid, alg };
}

function isFingerprint(keyid: BareItem | undefined): keyid is string {
  return typeof keyid === "string" && /^sha256:[0-9a-f]{64}$/.test(keyid);
}

/** Checks the caller's key options; wrong ones are bugs, not bad input. */
export function assertVerifier(publicKey: unknown, fingerprint: unknown): void {
  if (
    !(publicKey instanceof CryptoKey) || publicKey.type !== "public" ||
    publicKey.algorithm.name !== "Ed25519"
  ) {
    throw new TypeError(
      `publicKey must be an Ed25519 public CryptoKey, got ${describe(publicKey)}`,
    );
  }
  if (typeof fingerprint !== "string" || fingerprint === "") {
    throw new TypeError("fingerprint must be the fabric fingerprint (sha256:...)");
  }
}

/** Checks a nonce given by the caller. */
export function assertNonce(nonce: unknown, name: string): asserts nonce is string {
  if (typeof nonce !== "string" || !NONCE.test(nonce)) {
    throw new TypeError(`${name} must be 16 to 128 base64url characters, got ${quote(nonce)}`);
  }
}

/** A refusal. */
export function fail(reason: string): Failure {
  return { ok: false, reason };
}

/** The refusal of covered components other than the profile's. */
export function componentsMessage(profile: Profile): string {
  return `Covered components must be (${
    profile.components.map((name) => `"${name}"`).join(" ")
  }) for a fabricd ${profile.noun}`;
}

function quoteItem(value: BareItem | undefined): string {
  return value === undefined ? "(none)" : quote(value);
}

/** The values of a request's covered components, in the order of the request profiles. */
export function requestValues(method: string, parts: { url: URL; headers: Headers }): string[] {
  const { url, headers } = parts;
  const values = [
    method.toUpperCase(),
    url.pathname,
    `?${url.search.slice(1)}`,
    headers.get("content-digest")?.trim() ?? "",
    headers.get("fabric-target")?.trim() ?? "",
  ];
  const type = headers.get("content-type");
  if (type !== null) values.push(type.trim());
  return values;
}

/** The request URL as a `URL`, or undefined when it is not absolute. */
export function absoluteUrl(url: unknown): URL | undefined {
  if (url instanceof URL) return url;
  if (typeof url !== "string") return undefined;
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}
