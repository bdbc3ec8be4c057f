/**
 * The parts of fabricd's RFC 9421 profile that requests, answers and stream
 * answers share: profiles, the signature base, checking the parsed
 * `Signature-Input` and `Signature` fields (`_signature_fields.ts` writes and
 * parses them), Ed25519 and HMAC over the base.
 *
 * @module
 */

import type { BareItem } from "structured-headers";
import { hmacSha256Base64, hmacSha256Matches } from "./_hmac.ts";
import { describe, quote, toBase64, utf8 } from "./_bytes.ts";

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
  const names = profile.components;
  let base = "";
  for (let index = 0; index < names.length; index++) {
    base += `"${names[index]}": ${values[index] ?? ""}\n`;
  }
  return `${base}"@signature-params": ${paramsValue}`;
}

/**
 * Signs a signature base (Ed25519 with a key, HMAC-SHA256 with a session's
 * secret) and returns the two header values to set. An HMAC is computed on
 * the spot (`_hmac.ts`); Ed25519 goes through Web Crypto, not node:crypto,
 * whose Node layer would cost every service 4-7 MB of memory
 * (docs/performance.md "idle-memory").
 */
export async function signBase(
  privateKey: CryptoKey | Uint8Array,
  parts: { base: string; paramsValue: string },
): Promise<{ input: string; signature: string }> {
  const { base, paramsValue } = parts;
  const signature = privateKey instanceof Uint8Array
    ? hmacSha256Base64(privateKey, { message: base, stable: stableLength(base, paramsValue) })
    : toBase64(new Uint8Array(await crypto.subtle.sign("Ed25519", privateKey, utf8(base))));
  return { input: `${LABEL}=${paramsValue}`, signature: `${LABEL}=:${signature}:` };
}

/**
 * How much of a signature base the next ones likely share: the covered
 * components' lines and the parameters up to the first one (`created`),
 * which vary little between requests of one kind (a hint for the HMAC).
 */
function stableLength(base: string, paramsValue: string): number {
  return base.length - paramsValue.length + paramsValue.indexOf(";") + 1;
}

/** Verifies a signature over a signature base (Ed25519 or HMAC-SHA256); `false` on any failure. */
export async function verifyBase(
  publicKey: CryptoKey | Uint8Array,
  base: string,
  parsed: { paramsValue: string; signature: Uint8Array<ArrayBuffer> },
): Promise<boolean> {
  const { paramsValue, signature } = parsed;
  if (publicKey instanceof Uint8Array) {
    const stable = stableLength(base, paramsValue);
    return hmacSha256Matches(publicKey, { message: base, stable, mac: signature });
  }
  try {
    return await crypto.subtle.verify("Ed25519", publicKey, signature, utf8(base));
  } catch {
    return false;
  }
}

const PARAMETERS: ReadonlySet<string> = new Set(["created", "nonce", "keyid", "alg", "tag"]);
const PARAMETERS_WITH_EXPIRES: ReadonlySet<string> = new Set([...PARAMETERS, "expires"]);
const MAC_KEYID = /^mac:[A-Za-z0-9_-]{22}$/;

/** Checks a parsed signature against the profile, in the documented order. */
export function checkProfile(
  parsed: ParsedSignature,
  profile: Profile,
  fingerprint: string | undefined,
): SignatureParams | Failure {
  const { params } = parsed;
  const allowed = profile.expires ? PARAMETERS_WITH_EXPIRES : PARAMETERS;
  for (const name of params.keys()) {
    if (!allowed.has(name)) {
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
    if (typeof keyid !== "string" || !MAC_KEYID.test(keyid)) {
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

/**
 * Checks a request signature's times: `created` not in the future, a
 * lifetime within bounds, not expired, not before `notBefore` (all in
 * seconds but `now`, in ms). A refusal, or undefined when they pass.
 */
export function checkTimes(
  times: { created: number; expires: number },
  clock: { now: number; skew: number; maxLifetime: number; notBefore: number },
): Failure | undefined {
  const { created, expires } = times;
  const { skew, maxLifetime, notBefore } = clock;
  const nowSeconds = clock.now / 1000;
  if (created > nowSeconds + skew) {
    return fail(
      `Signature created ${Math.ceil(created - nowSeconds)} s in the future: check the clocks`,
    );
  }
  if (expires <= created) return fail("Signature expires before it was created");
  if (expires - created > maxLifetime) {
    return fail(
      `Signature lifetime ${
        expires - created
      } s exceeds ${maxLifetime} s: sign with a shorter expiry`,
    );
  }
  if (nowSeconds > expires + skew) return fail("Signature expired");
  if (created < notBefore) {
    return fail(
      "Signature created before this service started: sign the request again (replays across a restart are refused)",
    );
  }
  return undefined;
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

/**
 * The values of a request's covered components, in the order of the request
 * profiles, from its method, URL and three fields as sent (`null`: absent).
 */
export function requestValues(
  method: string,
  parts: { url: URL; digest: string | null; target: string | null; type: string | null },
): string[] {
  const { url, digest, target, type } = parts;
  const values = [
    method.toUpperCase(),
    url.pathname,
    `?${url.search.slice(1)}`,
    digest?.trim() ?? "",
    target?.trim() ?? "",
  ];
  if (type !== null) values.push(type.trim());
  return values;
}

const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const PLAIN_VALUE = /^[\t\x20-\x7e]*$/;

/**
 * What `new Headers(init).get("content-type")?.trim() ?? null` gives, without
 * making the `Headers` when `init` is absent or pairs of plain ASCII fields
 * (as fabricd's clients pass them); any other `init` is read through
 * `Headers`, which throws its `TypeError` for invalid names or values.
 */
export function contentTypeOf(init: HeadersInit | undefined): string | null {
  if (init === undefined) return null;
  if (!Array.isArray(init)) return new Headers(init).get("content-type")?.trim() ?? null;
  const types: string[] = [];
  for (const pair of init) {
    const [name, value] = pair;
    if (
      pair.length !== 2 || typeof name !== "string" || typeof value !== "string" ||
      !FIELD_NAME.test(name) || !PLAIN_VALUE.test(value)
    ) {
      return new Headers(init).get("content-type")?.trim() ?? null;
    }
    if (name.length === 12 && name.toLowerCase() === "content-type") types.push(value.trim());
  }
  return types.length === 0 ? null : types.join(", ").trim();
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
