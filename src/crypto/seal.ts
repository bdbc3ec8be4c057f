/**
 * Sealing the key bundle for a new service (DESIGN.md "Bootstrap", step 4):
 * X25519 between two ephemeral keys, HKDF-SHA256 salted with the password
 * key, AES-256-GCM. An eavesdropper lacks the password key and a man in the
 * middle lacks the ephemeral private key, so neither can open the bundle.
 *
 * @module
 */

import { assertBytes, copyBytes, fromBase64Url, toBase64Url, utf8 } from "./_bytes.ts";

/** An ephemeral X25519 key pair of the new service. */
export interface EphemeralKey {
  /** Not extractable; used once to open the bundle. */
  privateKey: CryptoKey;
  /** Base64url of the raw 32-byte public key, sent in the bootstrap request. */
  publicKey: string;
}

/** A sealed bundle as it crosses the wire; every field is base64url. */
export interface SealedBundle {
  /** The sealer's ephemeral X25519 public key (32 bytes). */
  publicKey: string;
  /** The AES-GCM nonce (12 bytes). */
  iv: string;
  /** The AES-GCM ciphertext with its 16-byte tag. */
  ciphertext: string;
}

/** Options of {@linkcode sealBundle}. */
export interface SealBundleOptions {
  /** The new service's ephemeral public key (base64url, 32 bytes). */
  peerPublicKey: string;
  /** The 32-byte password key; the HKDF salt. */
  passwordKey: Uint8Array;
  /** HKDF info and AES-GCM additional data: `"fabricd-bundle-v1\n" + serviceId`. */
  info: string;
}

/** Options of {@linkcode openBundle}. */
export interface OpenBundleOptions {
  /** The private half of the new service's {@linkcode EphemeralKey}. */
  privateKey: CryptoKey;
  /** The 32-byte password key, derived from `FABRIC_OTP`. */
  passwordKey: Uint8Array;
  /** The same info the sealer used. */
  info: string;
}

/** A bundle could not be opened: wrong password, wrong key, wrong info or tampered data. */
export class SealError extends Error {
  /**
   * Creates the error.
   *
   * @param message What went wrong and what to do.
   * @param options The underlying error.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SealError";
  }
}

const X25519 = { name: "X25519" } as const;
const KEY_LENGTH = 32;
const IV_LENGTH = 12;
const TAG_LENGTH = 16;

/**
 * Generates an ephemeral X25519 key pair for one bootstrap.
 *
 * @returns The non-extractable private key and the base64url public key.
 * @throws {DOMException} Only if the runtime lacks X25519, which Deno has.
 */
export async function generateEphemeralKey(): Promise<EphemeralKey> {
  const pair = await crypto.subtle.generateKey(X25519, false, ["deriveBits"]) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicKey: toBase64Url(raw) };
}

/**
 * Seals a bundle for the holder of `peerPublicKey`'s private key who also
 * knows the password, with a fresh ephemeral key of its own.
 *
 * @param plaintext The bundle's bytes.
 * @param options The peer's public key, the password key and the info.
 * @returns The sealed bundle.
 * @throws {TypeError} If the peer key is not base64url of 32 bytes or a weak
 * X25519 point, the password key is not 32 bytes, or `info` is not a string.
 */
export async function sealBundle(
  plaintext: Uint8Array,
  options: SealBundleOptions,
): Promise<SealedBundle> {
  assertBytes(plaintext, "Bundle");
  assertKeyInputs(options.passwordKey, options.info, TypeError);
  const peerRaw = fromBase64Url(options.peerPublicKey);
  if (peerRaw?.length !== KEY_LENGTH) {
    throw new TypeError("Peer public key must be base64url of a raw 32-byte X25519 key");
  }
  const ephemeral = await crypto.subtle.generateKey(X25519, false, ["deriveBits"]) as CryptoKeyPair;
  let aesKey: CryptoKey;
  try {
    const peer = await crypto.subtle.importKey("raw", peerRaw, X25519, true, []);
    aesKey = await deriveAesKey(peer, { privateKey: ephemeral.privateKey, ...options });
  } catch (cause) {
    throw new TypeError(
      "Peer public key is not a usable X25519 key: the peer must send a fresh one",
      {
        cause,
      },
    );
  }
  const iv = crypto.getRandomValues(new Uint8Array(IV_LENGTH));
  const ciphertext = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: utf8(options.info) },
    aesKey,
    copyBytes(plaintext),
  );
  return {
    publicKey: toBase64Url(
      new Uint8Array(await crypto.subtle.exportKey("raw", ephemeral.publicKey)),
    ),
    iv: toBase64Url(iv),
    ciphertext: toBase64Url(new Uint8Array(ciphertext)),
  };
}

/**
 * Opens a bundle sealed for this ephemeral key.
 *
 * @param sealed The bundle as received.
 * @param options The ephemeral private key, the password key and the info.
 * @returns The bundle's bytes.
 * @throws {SealError} On any failure: malformed fields, wrong key, password
 * or info, tampered data ("Cannot open the key bundle: ...").
 */
export async function openBundle(
  sealed: SealedBundle,
  options: OpenBundleOptions,
): Promise<Uint8Array> {
  assertKeyInputs(options.passwordKey, options.info, SealError);
  if (typeof sealed !== "object" || sealed === null) {
    throw new SealError(
      "Cannot open the key bundle: it is not an object with publicKey, iv, ciphertext",
    );
  }
  const peerRaw = fromBase64Url(sealed.publicKey);
  const iv = fromBase64Url(sealed.iv);
  const ciphertext = fromBase64Url(sealed.ciphertext);
  if (peerRaw?.length !== KEY_LENGTH) {
    throw new SealError("Cannot open the key bundle: publicKey is not base64url of 32 bytes");
  }
  if (iv?.length !== IV_LENGTH) {
    throw new SealError("Cannot open the key bundle: iv is not base64url of 12 bytes");
  }
  if (ciphertext === undefined || ciphertext.length < TAG_LENGTH) {
    throw new SealError(
      "Cannot open the key bundle: ciphertext is not base64url of 16 bytes or more",
    );
  }
  let aesKey: CryptoKey;
  try {
    const peer = await crypto.subtle.importKey("raw", peerRaw, X25519, true, []);
    aesKey = await deriveAesKey(peer, options);
  } catch (cause) {
    throw new SealError(
      "Cannot open the key bundle: the keys do not agree (is privateKey this bootstrap's X25519 key?)",
      { cause },
    );
  }
  try {
    const plaintext = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv, additionalData: utf8(options.info) },
      aesKey,
      ciphertext,
    );
    return new Uint8Array(plaintext);
  } catch (cause) {
    throw new SealError(
      "Cannot open the key bundle: wrong password, wrong key or tampered data; check FABRIC_OTP and spawn again",
      { cause },
    );
  }
}

/**
 * Checks a peer's X25519 public key before anything is spent on it (the parent
 * checks before it consumes a one-time password): base64url of 32 bytes, and
 * not a low-order point.
 *
 * @returns null when usable, else what is wrong.
 */
export async function peerKeyProblem(peerPublicKey: string): Promise<string | null> {
  const raw = fromBase64Url(peerPublicKey);
  if (raw?.length !== KEY_LENGTH) return "public key must be base64url of a raw 32-byte X25519 key";
  try {
    const peer = await crypto.subtle.importKey("raw", raw, X25519, true, []);
    const probe = await crypto.subtle.generateKey(X25519, false, ["deriveBits"]) as CryptoKeyPair;
    const shared = new Uint8Array(
      await crypto.subtle.deriveBits({ name: "X25519", public: peer }, probe.privateKey, 256),
    );
    return shared.every((byte) => byte === 0) ? "public key is a low-order X25519 point" : null;
  } catch {
    return "public key is not a usable X25519 key";
  }
}

async function deriveAesKey(
  peer: CryptoKey,
  own: { privateKey: CryptoKey; passwordKey: Uint8Array; info: string },
): Promise<CryptoKey> {
  const shared = new Uint8Array(
    await crypto.subtle.deriveBits({ name: "X25519", public: peer }, own.privateKey, 256),
  );
  // A low-order peer point gives an all-zero secret, which anyone can compute.
  if (shared.every((byte) => byte === 0)) throw new RangeError("X25519 shared secret is zero");
  const ikm = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
  return await crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: copyBytes(own.passwordKey), info: utf8(own.info) },
    ikm,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

function assertKeyInputs(
  passwordKey: unknown,
  info: unknown,
  ErrorClass: typeof TypeError | typeof SealError,
): void {
  const problem = !(passwordKey instanceof Uint8Array) || passwordKey.length !== KEY_LENGTH
    ? "password key must be 32 bytes: derive it with derivePasswordKey()"
    : typeof info !== "string"
    ? 'info must be a string ("fabricd-bundle-v1\\n" + serviceId)'
    : undefined;
  if (problem === undefined) return;
  throw ErrorClass === SealError
    ? new SealError(`Cannot open the key bundle: ${problem}`)
    : new TypeError(problem.charAt(0).toUpperCase() + problem.slice(1));
}
