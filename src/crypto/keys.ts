/**
 * Fabric keys: the Ed25519 key pair whose public key fingerprint is a
 * fabric's identity, and the 0600 key file that holds it.
 *
 * @module
 */

import { copyBytes, describe, fromBase64Url, quote, toBase64Url } from "./_bytes.ts";
import { type Rotation, verifyRotation } from "./rotation.ts";
import { readSmallFile, SmallFileError } from "../base/small_file.ts";

/** A fabric's Ed25519 key pair with its fingerprint and private JWK. */
export interface FabricKeys {
  /** Signs requests and answers; not extractable, `jwk` carries the material. */
  privateKey: CryptoKey;
  /** Verifies signatures of fabric members. */
  publicKey: CryptoKey;
  /** `"sha256:"` + 64 lowercase hex of SHA-256 over the raw 32-byte public key. */
  fingerprint: string;
  /** The private JWK: exactly `kty` ("OKP"), `crv` ("Ed25519"), `d` and `x`. */
  jwk: JsonWebKey;
  /**
   * A service's certificate chain from the fabric root (docs/protocol.md
   * 2.11), sent as `Fabric-Identity` with what it signs. Absent for the
   * operator, whose key is the root.
   */
  identity?: string;
  /** The fabric root a service's chain starts from. Default: these keys (the operator). */
  root?: { publicKey: CryptoKey; fingerprint: string };
  /** When a service's chain expires, seconds since the epoch. Default: never (the operator). */
  expires?: number;
  /** The trust store shared by the holder's verifications. Default: one made from `root`. */
  trust?: import("./trust.ts").TrustStore;
  /** The key file these keys were read from (root services re-read it when the root rotates). */
  file?: string;
  /**
   * The rotation that made these keys the root, from the key file's
   * `.rotation` companion (docs/security.md "Key rotation"): the old root is
   * trusted beside them until its grace ends. Default: none.
   */
  rotation?: Rotation;
}

/** Options of {@linkcode writeKeyFile}. */
export interface WriteKeyFileOptions {
  /** Replace an existing file. Default `false`. */
  force?: boolean;
}

/**
 * A key file could not be read or does not hold a fabric key. `path` names
 * the file so that the operator knows which one to fix.
 */
export class KeyFileError extends Error {
  /** The key file concerned. */
  readonly path: string;

  /**
   * Creates the error.
   *
   * @param message What went wrong and what to do.
   * @param options The file's path and the underlying error.
   */
  constructor(message: string, options: { path: string; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.name = "KeyFileError";
    this.path = options.path;
  }
}

const ED25519 = "Ed25519";
const KEY_LENGTH = 32;
/** The most a key file (or its `.rotation` companion) may hold; a key file holds about 150 bytes. */
export const MAX_KEY_FILE_BYTES = 64 * 1024;

/**
 * Generates fresh fabric keys, as `fabricd init` does once per fabric.
 *
 * @returns The new key pair, its fingerprint and its private JWK.
 * @throws {DOMException} Only if the runtime lacks Ed25519, which Deno has.
 */
export async function generateFabricKeys(): Promise<FabricKeys> {
  const pair = await crypto.subtle.generateKey(ED25519, true, ["sign", "verify"]) as CryptoKeyPair;
  const exported = await crypto.subtle.exportKey("jwk", pair.privateKey);
  return await importFabricKeys(exported);
}

/**
 * Imports fabric keys from a private Ed25519 JWK, checking that its public
 * part `x` belongs to its private part `d`.
 *
 * @param jwk A private JWK with `kty` "OKP", `crv` "Ed25519", `d` and `x`.
 * @returns The keys; `jwk` is a clean copy with only the four members.
 * @throws {TypeError} If the JWK is not such a key or `x` does not match `d`.
 */
export async function importFabricKeys(jwk: JsonWebKey): Promise<FabricKeys> {
  if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk)) {
    throw new TypeError(`Fabric key must be a JWK object, got ${describe(jwk)}`);
  }
  if (jwk.kty !== "OKP" || jwk.crv !== ED25519) {
    throw new TypeError(
      `Fabric key must be an Ed25519 JWK (kty "OKP", crv "Ed25519"), got kty ${
        quote(jwk.kty)
      } crv ${quote(jwk.crv)}: use a key made by fabricd init`,
    );
  }
  const d = fromBase64Url(jwk.d);
  const x = fromBase64Url(jwk.x);
  if (d?.length !== KEY_LENGTH) {
    throw new TypeError(
      'Fabric key JWK needs its private part "d" as 32 bytes of base64url: use a key made by fabricd init',
    );
  }
  if (x?.length !== KEY_LENGTH) {
    throw new TypeError(
      'Fabric key JWK needs its public part "x" as 32 bytes of base64url: use a key made by fabricd init',
    );
  }
  const clean: JsonWebKey = { kty: "OKP", crv: ED25519, d: jwk.d as string, x: jwk.x as string };
  let privateKey: CryptoKey;
  let publicKey: CryptoKey;
  try {
    privateKey = await crypto.subtle.importKey("jwk", clean, ED25519, false, ["sign"]);
    publicKey = await crypto.subtle.importKey("raw", x, ED25519, true, ["verify"]);
  } catch (cause) {
    throw new TypeError(
      "Fabric key JWK is not a usable Ed25519 key: use a key made by fabricd init",
      {
        cause,
      },
    );
  }
  // Web Crypto imports a JWK whose `x` belongs to another key without a word.
  const probe = crypto.getRandomValues(new Uint8Array(32));
  const signature = await crypto.subtle.sign(ED25519, privateKey, probe);
  if (!await crypto.subtle.verify(ED25519, publicKey, signature, probe)) {
    throw new TypeError(
      'Fabric key JWK is inconsistent: its public part "x" does not belong to its private part "d"',
    );
  }
  return { privateKey, publicKey, fingerprint: await fingerprintOf(x), jwk: clean };
}

/**
 * Computes a fabric fingerprint: `"sha256:"` and the lowercase hex SHA-256 of
 * the raw public key. This is what `FABRIC_PIN` and signature `keyid`s carry.
 *
 * @param publicKeyRaw The raw 32-byte Ed25519 public key.
 * @returns The fingerprint, matching `/^sha256:[0-9a-f]{64}$/`.
 * @throws {TypeError} If the key is not 32 bytes.
 */
export async function fingerprintOf(publicKeyRaw: Uint8Array): Promise<string> {
  if (!(publicKeyRaw instanceof Uint8Array) || publicKeyRaw.length !== KEY_LENGTH) {
    throw new TypeError(
      `Public key must be the raw 32 bytes of an Ed25519 key, got ${
        publicKeyRaw instanceof Uint8Array ? `${publicKeyRaw.length} bytes` : describe(publicKeyRaw)
      }`,
    );
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", copyBytes(publicKeyRaw)));
  return `sha256:${Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Writes the private JWK to a key file readable by its owner only (0600).
 * The mode is set at creation and again after writing, since an umask or an
 * old file could leave it wider. With `force`, the new file is written beside
 * the old one and renamed over it, so the key is never in a wider file.
 *
 * @param path Where to write the key file.
 * @param keys The keys whose `jwk` is written.
 * @param options `force` replaces an existing file.
 * @throws {Deno.errors.AlreadyExists} If the file exists and `force` is not set.
 * @throws {Deno.errors.NotFound} If the folder does not exist; other `Deno.errors` as the file system reports.
 */
export async function writeKeyFile(
  path: string,
  keys: FabricKeys,
  options: WriteKeyFileOptions = {},
): Promise<void> {
  const text = `${JSON.stringify(keys.jwk, null, 2)}\n`;
  if (!options.force) {
    try {
      await Deno.writeTextFile(path, text, { createNew: true, mode: 0o600 });
    } catch (cause) {
      if (cause instanceof Deno.errors.AlreadyExists) {
        throw new Deno.errors.AlreadyExists(
          `Key file ${JSON.stringify(path)} already exists: use --force to overwrite it`,
          { cause },
        );
      }
      throw cause;
    }
    await restrictMode(path);
    return;
  }
  const temporary = `${path}.${toBase64Url(crypto.getRandomValues(new Uint8Array(6)))}.tmp`;
  try {
    await Deno.writeTextFile(temporary, text, { createNew: true, mode: 0o600 });
    await restrictMode(temporary);
    await Deno.rename(temporary, path);
  } catch (cause) {
    // It may never have been written (createNew); the cause is what matters.
    await Deno.remove(temporary).catch(() => {});
    throw cause;
  }
  await restrictMode(path);
}

/**
 * Reads fabric keys from a key file written by {@linkcode writeKeyFile}.
 *
 * @param path The key file.
 * @returns The keys it holds.
 * @throws {KeyFileError} If the file is missing, unreadable, a directory, a
 * FIFO or device, over 64 KiB or not a fabric key; `path` names it.
 */
export async function readKeyFile(path: string): Promise<FabricKeys> {
  const keys = await readJwkFile(path);
  const rotation = await readRotationFile(path);
  // A statement for another key is a rotation that never completed: ignored.
  return {
    ...keys,
    file: path,
    ...(rotation?.new.fingerprint === keys.fingerprint ? { rotation } : {}),
  };
}

/** The companion of key file `path` that holds the statement of its last rotation. */
export function rotationPathOf(path: string): string {
  return `${path}.rotation`;
}

/**
 * The rotation statement beside key file `path`, or null when there is none.
 * @throws {KeyFileError} when it is there but unreadable or not a valid statement.
 */
export async function readRotationFile(path: string): Promise<Rotation | null> {
  const where = rotationPathOf(path);
  let text: string;
  try {
    text = await readKeyText(where, {
      name: "Rotation file",
      fix: "restore it, or remove it once the grace of the last rotation is over",
    });
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) return null;
    if (cause instanceof KeyFileError) throw cause;
    throw new KeyFileError(`Cannot read rotation file ${JSON.stringify(where)}: ${cause}`, {
      path: where,
      cause,
    });
  }
  const rotation = await verifyRotation(text.trim());
  if (typeof rotation === "string") {
    throw new KeyFileError(
      `Rotation file ${JSON.stringify(where)} is not a rotation statement (${rotation}): ` +
        "restore it, or remove it once the grace of the last rotation is over",
      { path: where },
    );
  }
  return rotation;
}

/**
 * Reads `keys.file` again and, when it now holds another key (the root was
 * rotated), takes that key in place: every holder of `keys` signs with it
 * from then on.
 * @returns Whether the key changed.
 * @throws {KeyFileError} as {@linkcode readKeyFile}, or when `keys` came from no file.
 */
export async function reloadKeyFile(keys: FabricKeys): Promise<boolean> {
  if (!keys.file) throw new KeyFileError("These keys were not read from a key file", { path: "" });
  const fresh = await readKeyFile(keys.file);
  if (fresh.fingerprint === keys.fingerprint) return false;
  keys.privateKey = fresh.privateKey;
  keys.publicKey = fresh.publicKey;
  keys.fingerprint = fresh.fingerprint;
  keys.jwk = fresh.jwk;
  if (fresh.rotation) keys.rotation = fresh.rotation;
  else delete keys.rotation;
  return true;
}

async function readJwkFile(path: string): Promise<FabricKeys> {
  let text: string;
  try {
    text = await readKeyText(path, { name: "Key file", fix: "give the right key path" });
  } catch (cause) {
    if (cause instanceof KeyFileError) throw cause;
    const message = cause instanceof Deno.errors.NotFound
      ? `Key file ${
        JSON.stringify(path)
      } does not exist: run fabricd init or give the right key path`
      : `Cannot read key file ${JSON.stringify(path)}: ${
        cause instanceof Error ? cause.message : String(cause)
      }`;
    throw new KeyFileError(message, { path, cause });
  }
  let jwk: JsonWebKey;
  try {
    jwk = JSON.parse(text);
  } catch (cause) {
    throw new KeyFileError(
      `Key file ${
        JSON.stringify(path)
      } is not JSON: restore it or run fabricd init for a new fabric`,
      { path, cause },
    );
  }
  try {
    return await importFabricKeys(jwk);
  } catch (cause) {
    throw new KeyFileError(
      `Key file ${JSON.stringify(path)} does not hold a fabric key: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { path, cause },
    );
  }
}

/**
 * The text of `path`, read only when it is a regular file of at most
 * {@linkcode MAX_KEY_FILE_BYTES} (base/small_file.ts). `what` names it and
 * says what to do in messages.
 * @throws {KeyFileError} for a directory, another non-regular file or a larger
 * file; `Deno.errors` as `stat` and `open` report them.
 */
async function readKeyText(path: string, what: { name: string; fix: string }): Promise<string> {
  try {
    return await readSmallFile(path, MAX_KEY_FILE_BYTES);
  } catch (error) {
    if (!(error instanceof SmallFileError)) throw error;
    const holds = error.kind === "too-large"
      ? `, far more than a ${what.name.toLowerCase()} holds`
      : "";
    throw new KeyFileError(
      `${what.name} ${JSON.stringify(path)} ${error.problem}${holds}: ${what.fix}`,
      { path },
    );
  }
}

async function restrictMode(path: string): Promise<void> {
  // Windows has no POSIX modes; its ACLs on the user's folder protect the file there.
  if (Deno.build.os !== "windows") await Deno.chmod(path, 0o600);
}
