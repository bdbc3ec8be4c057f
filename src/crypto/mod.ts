/**
 * The crypto layer of fabricd: fabric keys and their key file, RFC 9421
 * request and answer signatures with RFC 9530 content digests and a replay
 * cache, one-time passwords for bootstrap, and the sealed key bundle.
 *
 * @example Sign a management request and verify it on the target service
 * ```ts
 * import { generateFabricKeys, ReplayCache, signRequest, verifyRequest } from "./src/crypto/mod.ts";
 *
 * const keys = await generateFabricKeys();
 * const body = new TextEncoder().encode('{"role":"agent"}');
 * const url = "http://127.0.0.1:7700/v1/spawn";
 * const { headers } = await signRequest({ method: "POST", url, body }, keys, { target: "svc-1" });
 *
 * const result = await verifyRequest({ method: "POST", url, headers, body }, {
 *   publicKey: keys.publicKey,
 *   fingerprint: keys.fingerprint,
 *   serviceId: "svc-1",
 *   replayCache: new ReplayCache(),
 * });
 * if (!result.ok) throw new Error(result.reason);
 * ```
 *
 * @example Hand the fabric keys to a new service
 * ```ts
 * import {
 *   bootstrapTranscript, derivePasswordKey, generateEphemeralKey, OneTimePasswords, openBundle,
 *   passwordHandle, proveBootstrap, sealBundle,
 * } from "./src/crypto/mod.ts";
 *
 * const passwords = new OneTimePasswords();
 * const password = passwords.issue("svc-1"); // to the child on its standard input
 *
 * // child
 * const ephemeral = await generateEphemeralKey();
 * const input = { serviceId: "svc-1", publicKey: ephemeral.publicKey, endpoint: "http://parent" };
 * const proof = proveBootstrap(derivePasswordKey(password), bootstrapTranscript(input));
 *
 * // parent
 * const claim = { handle: passwordHandle(password), serviceId: "svc-1" };
 * const outcome = passwords.consume({ ...claim, transcript: bootstrapTranscript(input) }, proof);
 * if (!outcome.ok) throw new Error(outcome.message);
 * const info = "fabricd-bundle-v1\nsvc-1";
 * const sealed = await sealBundle(new TextEncoder().encode("{}"), {
 *   peerPublicKey: ephemeral.publicKey, passwordKey: outcome.passwordKey, info,
 * });
 *
 * // child
 * const bundle = await openBundle(sealed, {
 *   privateKey: ephemeral.privateKey, passwordKey: derivePasswordKey(password), info,
 * });
 * ```
 *
 * @module
 */

export { contentDigest, verifyContentDigest } from "./content_digest.ts";
export {
  type FabricKeys,
  fingerprintOf,
  generateFabricKeys,
  importFabricKeys,
  KeyFileError,
  readKeyFile,
  writeKeyFile,
  type WriteKeyFileOptions,
} from "./keys.ts";
export {
  bootstrapTranscript,
  type BootstrapTranscriptInput,
  derivePasswordKey,
  type IssueOptions,
  OneTimePasswords,
  type OneTimePasswordsOptions,
  passwordHandle,
  type ProofOutcome,
  proveBootstrap,
  REFUSED_MESSAGE,
} from "./one_time_password.ts";
export { NonceJournal, type NonceJournalOptions } from "./nonce_journal.ts";
export {
  type NonceSink,
  type NonceWindow,
  ReplayCache,
  type ReplayCacheOptions,
} from "./replay_cache.ts";
export {
  type EphemeralKey,
  generateEphemeralKey,
  openBundle,
  type OpenBundleOptions,
  peerKeyProblem,
  sealBundle,
  type SealBundleOptions,
  type SealedBundle,
  SealError,
} from "./seal.ts";
export {
  CLOCK_SKEW_SECONDS,
  MAX_LIFETIME_SECONDS,
  type RequestHead,
  type RequestParts,
  type ResponseParts,
  type SignedRequest,
  signRequest,
  type SignRequestOptions,
  signResponse,
  type SignResponseOptions,
  signStreamResponse,
  type StreamResponseParts,
  verifyRequest,
  verifyRequestHead,
  type VerifyRequestOptions,
  verifyResponse,
  type VerifyResponseOptions,
  type VerifyResult,
  verifyStreamResponse,
} from "./signing.ts";
