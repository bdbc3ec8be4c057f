/**
 * SHA-256 and constant-time comparison for the modules outside `crypto/`,
 * without `node:crypto`: a service that loads no `node:` module starts
 * without Deno's Node layer (4-7 MB of resident memory; docs/performance.md
 * "idle-memory").
 * @module
 */
import { sameText, utf8 } from "./_bytes.ts";
import { sha256 } from "./_sha256.ts";

/** SHA-256 of `data` (a string as its UTF-8 bytes) in lowercase hex, in JavaScript: for short inputs. */
export function sha256Hex(data: string | Uint8Array): string {
  return sha256(typeof data === "string" ? utf8(data) : data).toHex();
}

/**
 * SHA-256 of a file in lowercase hex, streamed. Through node:crypto (native,
 * about five times faster than JavaScript on the 95 MB `deno`), which is
 * loaded on the first call: only image builds hash files.
 */
export async function sha256FileHex(path: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/**
 * Whether two secrets (tokens, passwords) are equal and not empty, in time
 * that depends on their lengths only, not on where they differ.
 */
export function sameSecret(a: string, b: string): boolean {
  return a.length > 0 && sameText(a, b);
}
