/**
 * Root key rotation statements (docs/protocol.md 2.14): the operator's old
 * root key and its new one both sign one statement naming the two keys and
 * the end of a grace period. A service that trusts either key can check it,
 * trusts both until the grace ends, then the new one only.
 *
 * A statement is `fr1.` + base64url(payload JSON) + `.` + base64url(old
 * key's Ed25519 signature) + `.` + base64url(new key's), each signature over
 * the ASCII text `fabricd-rotation-v1.` + the payload part.
 * @module
 */
import { fromBase64Url, toBase64Url, utf8 } from "./_bytes.ts";
import { type FabricKeys, fingerprintOf } from "./keys.ts";

/** Shortest grace period accepted, seconds. */
export const MIN_GRACE_SECONDS = 10;
/** Longest grace period accepted, seconds (seven days). */
export const MAX_GRACE_SECONDS = 604_800;
/** Default grace period of `fabricd rotate`, seconds (one hour, one certificate lifetime). */
export const GRACE_SECONDS = 3600;
const PREFIX = "fr1.";
const SIGNED_TEXT = "fabricd-rotation-v1.";
const KEY = /^[A-Za-z0-9_-]{43}$/;

/** One root of trust: an Ed25519 public key and its fingerprint. */
export interface RootKey {
  publicKey: CryptoKey;
  fingerprint: string;
}

/** A verified rotation statement. */
export interface Rotation {
  /** The statement as issued (`fr1.` token). */
  token: string;
  /** The root key rotated out, trusted until `until`. */
  old: RootKey;
  /** The root key rotated in. */
  new: RootKey;
  /** Issued at, seconds since the epoch. */
  iat: number;
  /** End of the grace period, seconds since the epoch: the old root is trusted until then. */
  until: number;
}

/** Options of {@linkcode issueRotation}. */
export interface IssueRotationOptions {
  /** Grace period, seconds, {@linkcode MIN_GRACE_SECONDS} to {@linkcode MAX_GRACE_SECONDS}. Default {@linkcode GRACE_SECONDS}. */
  graceSeconds?: number;
  /** The clock, ms since the epoch. Default `Date.now()`. */
  now?: number;
}

/**
 * Issues the statement that `next` replaces `current` as the fabric's root,
 * signed by both keys.
 * @throws {RangeError} when the grace is out of bounds or the keys are the same.
 */
export async function issueRotation(
  current: FabricKeys,
  next: FabricKeys,
  options: IssueRotationOptions = {},
): Promise<string> {
  const grace = options.graceSeconds ?? GRACE_SECONDS;
  if (!Number.isSafeInteger(grace) || grace < MIN_GRACE_SECONDS || grace > MAX_GRACE_SECONDS) {
    throw new RangeError(
      `Grace must be ${MIN_GRACE_SECONDS} to ${MAX_GRACE_SECONDS} whole seconds, got ${grace}`,
    );
  }
  if (current.fingerprint === next.fingerprint) {
    throw new RangeError("A rotation needs a new key, not the current one");
  }
  const iat = Math.floor((options.now ?? Date.now()) / 1000);
  const claims = {
    old: await raw(current.publicKey),
    new: await raw(next.publicKey),
    iat,
    until: iat + grace,
  };
  const payload = toBase64Url(utf8(JSON.stringify(claims)));
  const signed = utf8(SIGNED_TEXT + payload);
  const signatures = await Promise.all(
    [current, next].map(async (k) =>
      toBase64Url(new Uint8Array(await crypto.subtle.sign("Ed25519", k.privateKey, signed)))
    ),
  );
  return `${PREFIX}${payload}.${signatures.join(".")}`;
}

/** Longest rotation statement, characters. */
export const MAX_STATEMENT_CHARS = 1024;

/**
 * Checks a statement's form and both signatures (not whether either key is
 * trusted: that is the {@linkcode TrustStore}'s decision).
 * @returns The rotation, or the reason it is refused.
 */
export async function verifyRotation(token: string): Promise<Rotation | string> {
  if (typeof token !== "string" || !token.startsWith(PREFIX)) {
    return `a rotation statement starts with "${PREFIX}"`;
  }
  if (token.length > MAX_STATEMENT_CHARS) {
    return `a rotation statement is at most ${MAX_STATEMENT_CHARS} characters`;
  }
  const [payload, oldSig, newSig, ...rest] = token.slice(PREFIX.length).split(".");
  const sigs = [oldSig, newSig].map((s) => fromBase64Url(s));
  const bytes = fromBase64Url(payload);
  if (!bytes || rest.length > 0 || sigs.some((s) => s?.length !== 64)) {
    return "a rotation statement has a payload and two 64-byte signatures";
  }
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return "a rotation statement's payload is not JSON";
  }
  const problem = claimsProblem(claims);
  if (problem) return problem;
  const keys: RootKey[] = [];
  for (const name of ["old", "new"] as const) {
    const rawKey = fromBase64Url(claims[name])!;
    try {
      keys.push({
        publicKey: await crypto.subtle.importKey("raw", rawKey, "Ed25519", true, ["verify"]),
        fingerprint: await fingerprintOf(rawKey),
      });
    } catch {
      return `the rotation statement's ${name} key is not an Ed25519 key`;
    }
  }
  const signed = utf8(SIGNED_TEXT + payload);
  for (const [i, name] of ["old", "new"].entries()) {
    if (!await crypto.subtle.verify("Ed25519", keys[i]!.publicKey, sigs[i]!, signed)) {
      return `the rotation statement is not signed by its ${name} key`;
    }
  }
  return {
    token,
    old: keys[0]!,
    new: keys[1]!,
    iat: claims.iat as number,
    until: claims.until as number,
  };
}

function claimsProblem(claims: unknown): string | null {
  if (typeof claims !== "object" || claims === null || Array.isArray(claims)) {
    return "a rotation statement's claims must be an object";
  }
  const c = claims as Record<string, unknown>;
  const extra = Object.keys(c).find((k) => !["old", "new", "iat", "until"].includes(k));
  if (extra) return `a rotation statement has an unknown claim "${extra}"`;
  if (
    typeof c.old !== "string" || !KEY.test(c.old) || typeof c.new !== "string" || !KEY.test(c.new)
  ) {
    return "a rotation statement's old and new must be 43 base64url characters";
  }
  if (c.old === c.new) return "a rotation statement's old and new keys must differ";
  if (!Number.isSafeInteger(c.iat) || !Number.isSafeInteger(c.until)) {
    return "a rotation statement's iat and until must be whole seconds";
  }
  const grace = (c.until as number) - (c.iat as number);
  if (grace < MIN_GRACE_SECONDS || grace > MAX_GRACE_SECONDS) {
    return `a rotation statement's grace must be ${MIN_GRACE_SECONDS} to ${MAX_GRACE_SECONDS} s`;
  }
  return null;
}

async function raw(key: CryptoKey): Promise<string> {
  return toBase64Url(new Uint8Array(await crypto.subtle.exportKey("raw", key)));
}
