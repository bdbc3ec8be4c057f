/**
 * Byte helpers shared by the crypto modules: strict base64url, UTF-8 and
 * copies that Web Crypto accepts.
 *
 * @module
 */

const BASE64URL = /^[A-Za-z0-9_-]*$/;

// The crypto modules use no `node:` module (no `Buffer` either): a service
// that imports none starts without Deno's Node layer, 4-7 MB of resident
// memory fewer (docs/performance.md "idle-memory").

/** Encodes bytes as unpadded base64url. */
export function toBase64Url(bytes: Uint8Array): string {
  return bytes.toBase64({ alphabet: "base64url", omitPadding: true });
}

/** Encodes bytes as standard padded base64, the alphabet of RFC 8941 byte sequences. */
export function toBase64(bytes: Uint8Array): string {
  return bytes.toBase64();
}

const BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Random bytes drawn ahead, 256 nonces' worth: one call into the system's generator per 256. */
const randomPool = new Uint8Array(4096);
let randomAt = randomPool.length;

/**
 * A fresh nonce: 16 random bytes (128 bits) from `crypto.getRandomValues`,
 * as 22 characters of unpadded base64url. The bytes are drawn 4096 at a time
 * and each is used once: a call into the generator per request cost more
 * than the rest of signing it in a MAC session.
 */
export function freshNonce(): string {
  if (randomAt + 16 > randomPool.length) {
    crypto.getRandomValues(randomPool);
    randomAt = 0;
  }
  const bytes = randomPool.subarray(randomAt, randomAt + 16);
  randomAt += 16;
  const nonce = toBase64Url(bytes);
  // A nonce is public once sent, but the pool need not keep it.
  bytes.fill(0);
  return nonce;
}

const BASE64_VALUES = new Int8Array(128).fill(-1);
for (
  const [value, char] of [...BASE64_ALPHABET].entries()
) {
  BASE64_VALUES[char.charCodeAt(0)] = value;
}

/**
 * Decodes standard padded base64 strictly (RFC 4648 section 4): a multiple
 * of four characters, `=` only as padding, no non-zero trailing bits, so that
 * one byte string has exactly one encoding. Returns `undefined` when `text`
 * is not such an encoding.
 */
export function fromBase64(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (text.length % 4 !== 0) return undefined;
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  const bytes = new Uint8Array((text.length / 4) * 3 - padding);
  let pending = 0;
  let bits = 0;
  let at = 0;
  for (let i = 0; i < text.length - padding; i++) {
    const code = text.charCodeAt(i);
    const value = code < 128 ? BASE64_VALUES[code]! : -1;
    if (value < 0) return undefined;
    pending = ((pending << 6) | value) & 0x3fff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[at++] = pending >> bits;
    }
  }
  return (pending & ((1 << bits) - 1)) === 0 ? bytes : undefined;
}

/**
 * Decodes unpadded base64url strictly: only the URL alphabet, no padding and
 * no non-zero trailing bits, so that one byte string has exactly one encoding.
 * Returns `undefined` when `text` is not such an encoding.
 */
export function fromBase64Url(text: unknown): Uint8Array<ArrayBuffer> | undefined {
  if (typeof text !== "string" || !BASE64URL.test(text) || text.length % 4 === 1) {
    return undefined;
  }
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = Uint8Array.fromBase64(text, { alphabet: "base64url", lastChunkHandling: "loose" });
  } catch {
    return undefined;
  }
  return toBase64Url(bytes) === text ? bytes : undefined;
}

/**
 * Whether two strings are equal, in time that depends on their lengths only
 * (not on where they differ), for values compared like MACs and digests.
 */
export function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/**
 * Whether two byte strings are equal, in time that depends on their lengths
 * only (not on where they differ), for MACs and digests.
 */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i]! ^ b[i]!;
  return difference === 0;
}

/** Copies bytes into a fresh `ArrayBuffer`, the shape Web Crypto wants. */
export function copyBytes(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy;
}

const encoder = new TextEncoder();

/** Encodes a string as UTF-8. */
export function utf8(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(text);
}

/** Where short ASCII texts are spelt as bytes (signature bases, small JSON bodies). */
const scratch = new Uint8Array(4096);

/**
 * The UTF-8 bytes of `text`: for ASCII up to 4096 characters a view of one
 * shared buffer, valid until the next call (no allocation: for hashing on the
 * spot), else a new array.
 */
export function utf8Scratch(text: string): Uint8Array {
  if (text.length > scratch.length) return encoder.encode(text);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) return encoder.encode(text);
    scratch[i] = code;
  }
  return scratch.subarray(0, text.length);
}

/** Checks that `value` is a `Uint8Array`, naming it in the error otherwise. */
export function assertBytes(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`${name} must be a Uint8Array, got ${describe(value)}`);
  }
}

/** Quotes a value for a message, cut short so that hostile input stays readable. */
export function quote(value: unknown): string {
  const text = typeof value === "string" ? value : String(value);
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text);
}

/** Names the type of a value for an error message. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? (value.constructor?.name ?? "an object") : typeof value;
}
