/**
 * MAC sessions (docs/protocol.md 2.13): after one Ed25519-signed handshake
 * (`POST /v1/session`), a client and a service share a 32-byte key and sign
 * further requests and answers with RFC 9421's `hmac-sha256`, naming the
 * session in `keyid` (`mac:` + 22 base64url characters). The key comes from
 * an X25519 exchange of fresh keys, through HKDF-SHA256 bound to both
 * identities and both public keys. A session lives as long as the shorter of
 * an hour and the client's certificate, and dies with a revocation.
 * @module
 */
import type { Signer } from "./certificate.ts";
import { fromBase64Url, toBase64Url, utf8 } from "./_bytes.ts";

/** Longest session life, seconds. */
export const SESSION_SECONDS = 3600;
/** A session's keyid. */
export const SESSION_KEYID = /^mac:[A-Za-z0-9_-]{22}$/;
const X25519 = { name: "X25519" } as const;

/** A session as its client holds it. */
export interface MacSession {
  keyid: string;
  secret: Uint8Array<ArrayBuffer>;
  /** Seconds since the epoch. */
  expires: number;
  /** The other side: the service for a client, the client for a service. */
  peer: Signer;
}

/** A session as the service holds it. */
export interface ServedSession extends MacSession {
  /** When it was opened, seconds since the epoch. */
  opened: number;
}

/** The name of a signer in the key derivation: `operator`, or `ID#INCARNATION`. */
export function signerLabel(signer: Signer): string {
  return signer.kind === "operator" ? "operator" : `${signer.id}#${signer.incarnation}`;
}

/** Derives the session key (HKDF-SHA256, 32 bytes) from the X25519 shared secret. */
async function deriveSecret(
  privateKey: CryptoKey,
  peerPublic: string,
  binding: { client: string; service: string; clientKey: string; serviceKey: string },
): Promise<Uint8Array<ArrayBuffer>> {
  const raw = fromBase64Url(peerPublic);
  if (!raw || raw.length !== 32) {
    throw new TypeError("An X25519 public key is 32 bytes of base64url");
  }
  const peer = await crypto.subtle.importKey("raw", raw, X25519, true, []);
  const shared = await crypto.subtle.deriveBits({ name: "X25519", public: peer }, privateKey, 256);
  const ikm = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveBits"]);
  const info = utf8(
    ["fabricd-mac-v1", binding.client, binding.service, binding.clientKey, binding.serviceKey]
      .join("\n"),
  );
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info },
    ikm,
    256,
  );
  return new Uint8Array(bits);
}

/** A fresh X25519 pair: the private key and the raw public key in base64url. */
export async function freshX25519(): Promise<{ privateKey: CryptoKey; publicKey: string }> {
  const pair = await crypto.subtle.generateKey(X25519, false, ["deriveBits"]) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicKey: toBase64Url(raw) };
}

/**
 * The client's side of a handshake: the key from the service's answer
 * (`x25519`, `keyid`, `expires`), which was verified as signed by `service`.
 */
export async function clientSession(
  mine: { privateKey: CryptoKey; publicKey: string },
  answer: { x25519: string; keyid: string; expires: number },
  binding: { client: string; service: string; peer: Signer },
): Promise<MacSession> {
  if (!SESSION_KEYID.test(answer.keyid)) {
    throw new TypeError("A session keyid is mac: + 22 characters");
  }
  const secret = await deriveSecret(mine.privateKey, answer.x25519, {
    client: binding.client,
    service: binding.service,
    clientKey: mine.publicKey,
    serviceKey: answer.x25519,
  });
  return { keyid: answer.keyid, secret, expires: answer.expires, peer: binding.peer };
}

/** Options of {@linkcode MacSessions}. */
export interface MacSessionsOptions {
  /** Sessions kept; the oldest goes first. Default 4096. */
  maxSessions?: number;
  /** The clock, ms since the epoch. Default `Date.now`. */
  now?: () => number;
}

/** The sessions a service serves: bounded, expiring. */
export class MacSessions {
  #sessions = new Map<string, ServedSession>();
  #max: number;
  #now: () => number;

  /** An empty table. */
  constructor(options: MacSessionsOptions = {}) {
    this.#max = options.maxSessions ?? 4096;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Opens a session for `signer` (verified) offering `clientKey`, served by
   * `serviceId`; answers what the client needs to derive the same key.
   * @throws {TypeError} when `clientKey` is not an X25519 public key.
   */
  async open(
    signer: Signer,
    clientKey: string,
    serviceId: string,
  ): Promise<{ x25519: string; keyid: string; expires: number }> {
    const mine = await freshX25519();
    const secret = await deriveSecret(mine.privateKey, clientKey, {
      client: signerLabel(signer),
      service: serviceId,
      clientKey,
      serviceKey: mine.publicKey,
    });
    const nowSeconds = Math.floor(this.#now() / 1000);
    const certified = signer.kind === "service" ? signer.expires : Number.POSITIVE_INFINITY;
    const expires = Math.min(nowSeconds + SESSION_SECONDS, certified);
    const keyid = `mac:${toBase64Url(crypto.getRandomValues(new Uint8Array(16)))}`;
    if (this.#sessions.size >= this.#max) {
      this.#sessions.delete(this.#sessions.keys().next().value!);
    }
    this.#sessions.set(keyid, { keyid, secret, expires, peer: signer, opened: nowSeconds });
    return { x25519: mine.publicKey, keyid, expires };
  }

  /** The live session `keyid`, or undefined (unknown or expired: the client opens a new one). */
  get(keyid: string): ServedSession | undefined {
    const session = this.#sessions.get(keyid);
    if (session && session.expires * 1000 < this.#now()) {
      this.#sessions.delete(keyid);
      return undefined;
    }
    return session;
  }

  /** Sessions served now. */
  get size(): number {
    return this.#sessions.size;
  }
}

/** What {@linkcode sessionKey} asks of the service's trust store. */
export interface SessionTrust {
  /** The revoked link of a signer's chain (its own incarnation, or a cascade above it). */
  revokedLink(signer: Signer): { id: string; incarnation: number } | undefined;
  /** The newest root rotation it adopted: its grace ends at `until` (seconds). */
  readonly rotation?: { until: number } | null;
}

/**
 * The key of a request signed in MAC session `keyid` and who signed it,
 * unless the session is unknown or expired, its client is revoked (or a
 * service above it, with cascade: the chain it opened the session with), or it was
 * opened before a root rotation's grace ended and is used after (its opener
 * may have proved itself with the retired root: it must open a new one).
 */
export function sessionKey(
  sessions: MacSessions | undefined,
  trust: SessionTrust | undefined,
  keyid: string,
  nowMs: number = Date.now(),
): { ok: true; publicKey: Uint8Array; signer: Signer; session: MacSession } | {
  ok: false;
  reason: string;
} {
  const session = sessions?.get(keyid);
  const until = trust?.rotation?.until;
  const outlived = session && until !== undefined && session.opened <= until &&
    nowMs / 1000 > until;
  if (!session || outlived) {
    return { ok: false, reason: "Unknown or expired session: open a new one (POST /v1/session)" };
  }
  const peer = session.peer;
  const revoked = trust?.revokedLink(peer);
  if (revoked) {
    return {
      ok: false,
      reason: `Identity of "${revoked.id}" incarnation ${revoked.incarnation} is revoked`,
    };
  }
  return { ok: true, publicKey: session.secret, signer: peer, session };
}
