/**
 * The application sessions a service serves (DESIGN.md "Sessions"): kept
 * here and on the service's registry record, so a lost service's sessions
 * can be told.
 * @module
 */
import type { RegistryClient } from "../client/registry_client.ts";
import { TooManySessionsError } from "../registry/store.ts";
import { MAX_SESSIONS } from "../types/service_record.ts";

/** The sessions of one service. */
export class Sessions {
  #ids = new Set<string>();
  #serviceId: string;
  #registry: () => RegistryClient;

  /** Sessions of `serviceId`, recorded through `registry`. */
  constructor(serviceId: string, registry: () => RegistryClient) {
    this.#serviceId = serviceId;
    this.#registry = registry;
  }

  /** The sessions served now, sorted. */
  list(): string[] {
    return [...this.#ids].sort();
  }

  /** Whether `session` is served. */
  has(session: string): boolean {
    return this.#ids.has(session);
  }

  /** Takes sessions over without recording them (they are on the record being written). */
  adopt(sessions: readonly string[]): void {
    for (const s of sessions) this.#ids.add(s);
  }

  /**
   * Serves `session` from now on; the sessions served afterwards.
   * @throws {TooManySessionsError} (409) when it serves `MAX_SESSIONS` already.
   */
  async open(session: string): Promise<string[]> {
    if (!this.#ids.has(session) && this.#ids.size >= MAX_SESSIONS) {
      throw new TooManySessionsError(this.#serviceId);
    }
    await this.#registry().setSession(this.#serviceId, session, true);
    this.#ids.add(session);
    return this.list();
  }

  /** Stops serving `session`; the sessions served afterwards. */
  async close(session: string): Promise<string[]> {
    await this.#registry().setSession(this.#serviceId, session, false);
    this.#ids.delete(session);
    return this.list();
  }
}
