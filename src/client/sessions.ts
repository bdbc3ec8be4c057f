/**
 * A client's MAC sessions (docs/protocol.md 2.13), one per service it calls
 * directly: opened with one Ed25519-signed `POST /v1/session`, used until
 * shortly before they expire, dropped when the service no longer knows them.
 * A service that cannot open one is called with Ed25519 signatures for a
 * while before it is asked again.
 * @module
 */
import { type Signer, signerLabelOf } from "../crypto/certificate.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import { clientSession, freshX25519, type MacSession } from "../crypto/mac_sessions.ts";

/** Opens a session: sends the handshake and answers the verified reply and its signer. */
export type Handshake = (
  x25519: string,
) => Promise<{ answer: { x25519: string; keyid: string; expires: number }; signer: Signer }>;

/** Sessions kept at most; the oldest goes first. */
const MAX_SESSIONS = 256;
/** A session is not used in its last seconds. */
const MARGIN_SECONDS = 30;
/** How long a service that refused a session is called without one, ms. */
const BACKOFF_MS = 60_000;

/** The sessions of one client. */
export class ClientSessions {
  #keys: FabricKeys;
  #sessions = new Map<string, MacSession>();
  #opening = new Map<string, Promise<MacSession | undefined>>();
  #refused = new Map<string, number>();

  /** Sessions of the holder of `keys`. */
  constructor(keys: FabricKeys) {
    this.#keys = keys;
  }

  /** The session to call `target` (`id` at `url`) in, opening one if needed; undefined: sign with the key. */
  async for(
    target: { id: string; url: string },
    handshake: Handshake,
  ): Promise<MacSession | undefined> {
    const name = `${target.id} ${target.url}`;
    const known = this.#sessions.get(name);
    if (known && known.expires - MARGIN_SECONDS > Date.now() / 1000) return known;
    if (known) this.#sessions.delete(name);
    if (this.#backingOff(name)) return undefined;
    let opening = this.#opening.get(name);
    if (!opening) {
      opening = this.#open(name, target.id, handshake).finally(() => this.#opening.delete(name));
      this.#opening.set(name, opening);
    }
    return await opening;
  }

  /**
   * The live session to call `target` in, or undefined: then the call is
   * signed with the key, and a session is opened meanwhile (unless one is
   * opening or the service refused one lately), so that the first call to a
   * service does not wait for the handshake's round trip.
   */
  ready(target: { id: string; url: string }, handshake: Handshake): MacSession | undefined {
    const name = `${target.id} ${target.url}`;
    const known = this.#sessions.get(name);
    if (known && known.expires - MARGIN_SECONDS > Date.now() / 1000) return known;
    if (known) this.#sessions.delete(name);
    if (this.#backingOff(name) || this.#opening.has(name)) return undefined;
    const opening = this.#open(name, target.id, handshake).finally(() =>
      this.#opening.delete(name)
    );
    this.#opening.set(name, opening);
    return undefined;
  }

  /** Forgets the session with `target` (the service did not know it). */
  drop(target: { id: string; url: string }): void {
    this.#sessions.delete(`${target.id} ${target.url}`);
  }

  async #open(
    name: string,
    serviceId: string,
    handshake: Handshake,
  ): Promise<MacSession | undefined> {
    try {
      const mine = await freshX25519();
      const { answer, signer } = await handshake(mine.publicKey);
      // Only the service itself (or a root service, which signs as the operator) opens a session for it.
      if (signer.kind === "service" && signer.id !== serviceId) return undefined;
      const session = await clientSession(mine, answer, {
        client: signerLabelOf(this.#keys),
        service: serviceId,
        peer: signer,
      });
      if (this.#sessions.size >= MAX_SESSIONS) {
        this.#sessions.delete(this.#sessions.keys().next().value!);
      }
      this.#sessions.set(name, session);
      return session;
    } catch {
      // An older service, or one that cannot serve sessions now: keys, for a while.
      this.#refused.set(name, Date.now() + BACKOFF_MS);
      return undefined;
    }
  }

  /** Whether a handshake with `name` failed less than the backoff ago; forgets an older failure. */
  #backingOff(name: string): boolean {
    const until = this.#refused.get(name);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#refused.delete(name);
    return false;
  }
}
