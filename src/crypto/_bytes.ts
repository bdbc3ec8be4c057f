/**
 * Byte helpers shared by the crypto modules: strict base64url, UTF-8 and
 * copies that Web Crypto accepts.
 *
 * @module
 */

import { Buffer } from "node:buffer";

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** Encodes bytes as unpadded base64url. */
export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url");
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
  const bytes = copyBytes(Buffer.from(text, "base64url"));
  return toBase64Url(bytes) === text ? bytes : undefined;
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
