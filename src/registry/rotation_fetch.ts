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
import { readCapped } from "../base/read_capped.ts";

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
      const read = answer.ok ? await readCapped(answer, MAX_ANSWER_BYTES) : null;
      if (!read?.whole) {
        // A refusal's body is not wanted; an over-cap one was cancelled already.
        if (!answer.bodyUsed) await answer.body?.cancel().catch(() => {});
        throw new Error(`Registry "${registry.id}" answered ${answer.status}`);
      }
      const text = new TextDecoder().decode(read.bytes);
      const statement = (JSON.parse(text) as { statement?: unknown }).statement;
      return typeof statement === "string" ? statement : null;
    } catch (error) {
      last = error;
    }
  }
  throw last;
}
