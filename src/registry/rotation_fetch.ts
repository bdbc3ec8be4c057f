/**
 * Fetching the fabric's newest root rotation statement from the registry
 * (`GET /v1/registry/rotation`, docs/protocol.md 2.14) for a service that met
 * a root it does not know yet. The request is signed as usual; the answer's
 * signature is not checked, since it may be made with the very root the
 * service is about to learn: the statement carries its own signatures, which
 * the trust store checks against the root it holds.
 * @module
 */
import type { FabricKeys } from "../crypto/keys.ts";
import { signRequest } from "../crypto/signing.ts";
import type { RegistryEndpoint } from "../types/mod.ts";

/** Most bytes of an answer read. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * The statement the first registry of `registries` that answers holds, or
 * null when none holds one.
 * @throws {Error} when no registry answers.
 */
export async function fetchRotation(
  keys: FabricKeys,
  registries: readonly RegistryEndpoint[],
): Promise<string | null> {
  let last: unknown = new Error("No registry to ask for the rotation statement");
  for (const registry of registries) {
    try {
      const url = new URL("/v1/registry/rotation", registry.url);
      const signed = await signRequest({ method: "GET", url, body: new Uint8Array() }, keys, {
        target: registry.id,
      });
      const answer = await fetch(url, {
        headers: signed.headers,
        signal: AbortSignal.timeout(5000),
      });
      const text = answer.ok ? await readCapped(answer, MAX_ANSWER_BYTES) : null;
      if (text === null) {
        // A refusal's body is not wanted; an over-cap one was cancelled already.
        if (!answer.bodyUsed) await answer.body?.cancel().catch(() => {});
        throw new Error(`Registry "${registry.id}" answered ${answer.status}`);
      }
      const statement = (JSON.parse(text) as { statement?: unknown }).statement;
      return typeof statement === "string" ? statement : null;
    } catch (error) {
      last = error;
    }
  }
  throw last;
}

/**
 * The answer's body as text, read a chunk at a time; null as soon as it
 * passes `maxBytes` (the rest is never read: the body is cancelled).
 */
async function readCapped(answer: Response, maxBytes: number): Promise<string | null> {
  if (!answer.body) return "";
  const reader = answer.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) return null;
      chunks.push(value);
    }
  } finally {
    // Stops the transfer when the cap cut it short; a body already ended is fine.
    await reader.cancel().catch(() => {});
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}
