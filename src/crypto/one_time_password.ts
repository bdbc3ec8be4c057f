/**
 * One-time passwords for bootstrap (DESIGN.md "Bootstrap", step 2 and 4).
 *
 * The spawner issues a password per new service and keeps only its
 * `passwordKey`, a SHA-256 of it. The new service proves that it knows the
 * password with an HMAC over a transcript of its bootstrap request, so the
 * password never crosses the wire. A password is single use, expires, and is
 * burnt after too many bad proofs. A pending password is addressed by its
 * handle, derived from the password itself, never by the public service ID:
 * who cannot name the handle cannot touch the password.
 *
 * @module
 */

import { fromBase64Url, quote, sameBytes, toBase64Url, utf8 } from "./_bytes.ts";
import { hmacSha256 } from "./_hmac.ts";
import { sha256 } from "./_sha256.ts";

/** The inputs of a bootstrap transcript. */
export interface BootstrapTranscriptInput {
  /** The new service's ID. */
  serviceId: string;
  /** The new service's ephemeral X25519 public key, base64url of its raw 32 bytes. */
  publicKey: string;
  /** The parent endpoint the request is sent to. */
  endpoint: string;
  /** The new service's own Ed25519 public key, base64url of its raw 32 bytes. */
  signingKey: string;
}

/** The outcome of {@linkcode OneTimePasswords.consume}. */
export type ProofOutcome =
  | { ok: true; passwordKey: Uint8Array }
  | {
    ok: false;
    reason: "unknown" | "expired" | "used" | "burnt" | "bad-proof";
    message: string;
  };

/** Options of {@linkcode OneTimePasswords}. */
export interface OneTimePasswordsOptions {
  /** Bad proofs after which a password is burnt. Default 5. */
  maxBadProofs?: number;
  /** The clock, in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number;
}

/** Options of {@linkcode OneTimePasswords.issue}. */
export interface IssueOptions {
  /** How long the password is usable, in milliseconds. Default 600 000 (10 min). */
  ttlMs?: number;
}

const KEY_LENGTH = 32;
const HANDLE_BYTES = 16;

/** The one answer to an unknown handle and to a wrong proof, so neither tells what is pending. */
export const REFUSED_MESSAGE =
  "Bootstrap refused: wrong one-time password or proof; check the password and the parent endpoint";

/**
 * Derives the handle by which a new service addresses its pending password:
 * base64url of the first 16 bytes of SHA-256 of `"fabricd-otp-handle-v1\0"`
 * and the password's UTF-8 bytes (22 characters). It names the password
 * without revealing it or the password key.
 *
 * @param password The password as issued (base64url).
 * @returns The handle, 22 base64url characters.
 * @throws {TypeError} If `password` is not a non-empty string.
 */
export function passwordHandle(password: string): string {
  if (typeof password !== "string" || password === "") {
    throw new TypeError("Password must be a non-empty string: pass the password as given");
  }
  const digest = sha256(utf8(`fabricd-otp-handle-v1\0${password}`));
  return toBase64Url(digest.subarray(0, HANDLE_BYTES));
}

/**
 * Derives the `passwordKey` that the spawner stores instead of the password:
 * SHA-256 of `"fabricd-otp-v1\0"` and the password's UTF-8 bytes. The new
 * service derives the same key from `FABRIC_OTP`.
 *
 * @param password The password as issued (base64url).
 * @returns The 32-byte password key.
 * @throws {TypeError} If `password` is not a non-empty string.
 */
export function derivePasswordKey(password: string): Uint8Array {
  if (typeof password !== "string" || password === "") {
    throw new TypeError("Password must be a non-empty string: pass FABRIC_OTP as given");
  }
  return sha256(utf8(`fabricd-otp-v1\0${password}`));
}

/**
 * Builds the text that a bootstrap proof covers:
 * `"fabricd-bootstrap-v2\n"` then service ID, public key, endpoint and
 * signing key joined by `"\n"`. Binding both keys stops a man in the middle
 * from swapping in his own (to open the bundle, or to be certified); binding
 * the endpoint stops a proof from being replayed to another parent.
 *
 * @param input The service ID, its ephemeral public key and the parent endpoint.
 * @returns The transcript.
 * @throws {TypeError} If a field is not a string or holds a line break, which
 * would make the transcript ambiguous.
 */
export function bootstrapTranscript(input: BootstrapTranscriptInput): string {
  const fields = [input.serviceId, input.publicKey, input.endpoint, input.signingKey];
  for (const [index, name] of ["serviceId", "publicKey", "endpoint", "signingKey"].entries()) {
    const value = fields[index];
    if (typeof value !== "string" || /[\r\n]/.test(value)) {
      throw new TypeError(
        `Bootstrap ${name} must be a string without line breaks, got ${quote(value)}`,
      );
    }
  }
  return `fabricd-bootstrap-v2\n${fields.join("\n")}`;
}

/**
 * Proves knowledge of the password: HMAC-SHA256 keyed by the password key
 * over the transcript.
 *
 * @param passwordKey The 32-byte key from {@linkcode derivePasswordKey}.
 * @param transcript The text from {@linkcode bootstrapTranscript}.
 * @returns The proof, base64url.
 * @throws {TypeError} If the key is not 32 bytes or the transcript not a string.
 */
export function proveBootstrap(passwordKey: Uint8Array, transcript: string): string {
  assertPasswordKey(passwordKey);
  if (typeof transcript !== "string") {
    throw new TypeError(
      "Bootstrap transcript must be a string: build it with bootstrapTranscript()",
    );
  }
  return toBase64Url(hmacSha256(passwordKey, transcript));
}

interface Entry {
  serviceId: string;
  passwordKey: Uint8Array;
  expiresAt: number;
  badProofs: number;
  state: "live" | "used" | "burnt";
}

/**
 * The spawner's one-time passwords, one per service ID, found by their
 * handle ({@linkcode passwordHandle}). It holds only the password keys. A used or burnt password stays as a marker until its TTL
 * ends, so that late callers learn "used" or "burnt"; then it is swept and
 * reads as "unknown". `issue()` sweeps whenever the store has doubled since
 * the last sweep and `size` always does, which keeps memory bounded by about
 * twice the passwords issued within one TTL at O(1) amortised cost.
 */
export class OneTimePasswords {
  readonly #maxBadProofs: number;
  readonly #now: () => number;
  /** By handle. */
  readonly #entries = new Map<string, Entry>();
  /** The handle of each service's current password. */
  readonly #handles = new Map<string, string>();
  #sweepAt = 64;

  /**
   * Creates an empty store.
   *
   * @param options `maxBadProofs` (default 5) and the clock (default `Date.now`).
   * @throws {RangeError} If `maxBadProofs` is not a positive integer.
   * @throws {TypeError} If `now` is not a function.
   */
  constructor(options: OneTimePasswordsOptions = {}) {
    const { maxBadProofs = 5, now = Date.now } = options;
    if (!Number.isSafeInteger(maxBadProofs) || maxBadProofs < 1) {
      throw new RangeError(`maxBadProofs must be a positive integer, got ${String(maxBadProofs)}`);
    }
    if (typeof now !== "function") throw new TypeError("now must be a function returning ms");
    this.#maxBadProofs = maxBadProofs;
    this.#now = now;
  }

  /**
   * Issues a password (256 random bits, base64url) for a service, replacing
   * any earlier one for that ID. Only its key is kept.
   *
   * @param serviceId The service the password is for.
   * @param options `ttlMs`, how long it is usable (default 10 min; give batch
   * launchers more, their jobs wait in a queue).
   * @returns The password, to hand to the new service in `FABRIC_OTP`.
   * @throws {TypeError} If `serviceId` is not a non-empty string.
   * @throws {RangeError} If `ttlMs` is not a positive finite number.
   */
  issue(serviceId: string, options: IssueOptions = {}): string {
    assertServiceId(serviceId);
    const { ttlMs = 600_000 } = options;
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
      throw new RangeError(`ttlMs must be a positive number of milliseconds, got ${String(ttlMs)}`);
    }
    if (this.#entries.size >= this.#sweepAt) {
      this.#sweep();
      this.#sweepAt = Math.max(64, 2 * this.#entries.size);
    }
    const password = toBase64Url(crypto.getRandomValues(new Uint8Array(KEY_LENGTH)));
    this.discard(serviceId);
    const handle = passwordHandle(password);
    this.#handles.set(serviceId, handle);
    this.#entries.set(handle, {
      serviceId,
      passwordKey: derivePasswordKey(password),
      expiresAt: this.#now() + ttlMs,
      badProofs: 0,
      state: "live",
    });
    return password;
  }

  /**
   * Checks a proof in constant time and, if it is right, consumes the
   * password in the same synchronous step: of many concurrent calls with
   * right proofs exactly one gets `ok`, the others "used". A wrong or
   * malformed proof for a known handle counts; the `maxBadProofs`-th burns
   * the password. An unknown handle changes nothing. Unknown handles and
   * wrong proofs get the same message ({@linkcode REFUSED_MESSAGE}).
   *
   * @param claim The handle of the password, the service that claims it, and
   * the transcript its proof covers (rebuilt by the caller).
   * @param proof The proof it sent (base64url).
   * @returns `{ ok: true, passwordKey }` (the key to seal the bundle with), or
   * `{ ok: false, reason, message }`.
   * @throws {TypeError} If `transcript` is not a string.
   */
  consume(
    claim: { handle: string; serviceId: string; transcript: string },
    proof: string,
  ): ProofOutcome {
    const { handle, serviceId, transcript } = claim;
    if (typeof transcript !== "string") {
      throw new TypeError(
        "Bootstrap transcript must be a string: build it with bootstrapTranscript()",
      );
    }
    const entry = typeof handle === "string" ? this.#entries.get(handle) : undefined;
    if (entry === undefined) return refuse("unknown", REFUSED_MESSAGE);
    if (entry.state === "used") {
      return refuse("used", "One-time password already used: spawn the service again");
    }
    if (entry.state === "burnt") {
      return refuse("burnt", "One-time password burnt after too many bad proofs: spawn again");
    }
    if (this.#now() >= entry.expiresAt) {
      return refuse("expired", "One-time password expired: spawn the service again");
    }
    const expected = hmacSha256(entry.passwordKey, transcript);
    const given = fromBase64Url(proof);
    const right = given !== undefined && sameBytes(given, expected);
    if (!right || serviceId !== entry.serviceId) {
      entry.badProofs++;
      if (entry.badProofs >= this.#maxBadProofs) {
        entry.state = "burnt";
        entry.passwordKey.fill(0);
      }
      return refuse("bad-proof", REFUSED_MESSAGE);
    }
    entry.state = "used";
    const passwordKey = entry.passwordKey.slice();
    entry.passwordKey.fill(0);
    return { ok: true, passwordKey };
  }

  /**
   * Tells whether `handle` names a password this store holds (usable or
   * not), without touching it: the bootstrap's rate limit spares them.
   *
   * @param handle A handle from {@linkcode passwordHandle}.
   * @returns Whether the handle is known.
   */
  knows(handle: string): boolean {
    return this.#entries.has(handle);
  }

  /**
   * Forgets the password of a service, as the spawner does when a launch
   * failed.
   *
   * @param serviceId The service.
   * @returns `true` if there was an entry (usable or not) to forget.
   */
  discard(serviceId: string): boolean {
    const handle = this.#handles.get(serviceId);
    if (handle === undefined) return false;
    this.#handles.delete(serviceId);
    this.#entries.get(handle)?.passwordKey.fill(0);
    return this.#entries.delete(handle);
  }

  /**
   * Tells whether a service's password is still usable: issued, not used,
   * not burnt, not expired.
   *
   * @param serviceId The service.
   * @returns Whether {@linkcode OneTimePasswords.consume} could still succeed.
   */
  has(serviceId: string): boolean {
    const handle = this.#handles.get(serviceId);
    const entry = handle === undefined ? undefined : this.#entries.get(handle);
    return entry?.state === "live" && this.#now() < entry.expiresAt;
  }

  /** The number of passwords that could still be used (live and unexpired). */
  get usable(): number {
    this.#sweep();
    let count = 0;
    for (const entry of this.#entries.values()) if (entry.state === "live") count++;
    return count;
  }

  /** The number of entries held, after sweeping those past their TTL. */
  get size(): number {
    this.#sweep();
    return this.#entries.size;
  }

  #sweep(): void {
    const now = this.#now();
    for (const [handle, entry] of this.#entries) {
      if (now >= entry.expiresAt) {
        entry.passwordKey.fill(0);
        this.#entries.delete(handle);
        if (this.#handles.get(entry.serviceId) === handle) this.#handles.delete(entry.serviceId);
      }
    }
  }
}

function refuse(
  reason: "unknown" | "expired" | "used" | "burnt" | "bad-proof",
  message: string,
): ProofOutcome {
  return { ok: false, reason, message };
}

function assertServiceId(serviceId: unknown): asserts serviceId is string {
  if (typeof serviceId !== "string" || serviceId === "") {
    throw new TypeError(`Service ID must be a non-empty string, got ${quote(serviceId)}`);
  }
}

function assertPasswordKey(passwordKey: unknown): asserts passwordKey is Uint8Array {
  if (!(passwordKey instanceof Uint8Array) || passwordKey.length !== KEY_LENGTH) {
    throw new TypeError("Password key must be 32 bytes: derive it with derivePasswordKey()");
  }
}
