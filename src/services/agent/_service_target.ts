/**
 * A service the agent talks to, found by ID in the registry: looked up until
 * it is ALIVE, and looked up again after it could not be reached (a restarted
 * service may listen on another port).
 * @module
 */
import type { Target } from "../../client/fabric_client.ts";
import { FabricRequestError } from "../../client/fabric_client.ts";
import type { RegistryClient } from "../../client/registry_client.ts";
import { targetFor } from "../../client/route.ts";
import { log } from "../../config/logging.ts";
import { sleep } from "../../config/retry.ts";

/** Options of {@linkcode ServiceTarget}. */
export interface ServiceTargetOptions {
  /** How often a service that is not ALIVE is looked up again, ms. Default 500. */
  retryMs?: number;
  /**
   * Send every request to this relay (the agent's parent) with the service's
   * route, instead of to the address the root of the fabric uses: a service
   * on a compute node reaches nothing but its parent. Default: none.
   */
  via?: { url: string };
}

/** The target of one service ID, resolved through the registry when needed. */
export class ServiceTarget {
  #registry: RegistryClient;
  #id: string;
  #retryMs: number;
  #via: { url: string } | undefined;
  #cached: Target | null = null;

  /** Service `id`, looked up every `options.retryMs` while it is not ALIVE. */
  constructor(registry: RegistryClient, id: string, options: ServiceTargetOptions = {}) {
    this.#registry = registry;
    this.#id = id;
    this.#retryMs = options.retryMs ?? 500;
    this.#via = options.via;
  }

  /**
   * The service's target, waiting until the registry lists it ALIVE.
   * @throws {DOMException} the signal's reason when `signal` aborts first.
   */
  async get(signal: AbortSignal): Promise<Target> {
    let reported = false;
    while (!this.#cached) {
      signal.throwIfAborted();
      try {
        const records = await this.#registry.list({ signal, timeoutMs: 10_000 });
        const record = records.find((r) => r.id === this.#id);
        if (record?.state === "ALIVE") {
          this.#cached = this.#via
            ? { id: record.id, url: this.#via.url, route: record.route }
            : targetFor(record, records);
        } else if (!reported) {
          reported = true;
          log("agent").info("Waiting for service {id} to be ALIVE (now {state})", {
            id: this.#id,
            state: record?.state ?? "not registered",
          });
        }
      } catch (error) {
        signal.throwIfAborted();
        if (!reported) {
          reported = true;
          log("agent").warn("Cannot look up service {id}: {error}", {
            id: this.#id,
            error: String(error),
          });
        }
      }
      if (!this.#cached) await sleep(this.#retryMs, signal);
    }
    return this.#cached;
  }

  /** Forgets the target, so the next call looks the service up again (it may have moved). */
  forget(): void {
    this.#cached = null;
  }

  /** Runs `call` on the target; forgets the target when it could not be reached. */
  async use<T>(signal: AbortSignal, call: (target: Target) => Promise<T>): Promise<T> {
    const target = await this.get(signal);
    try {
      return await call(target);
    } catch (error) {
      if (error instanceof FabricRequestError && (error.status === 0 || error.status === 502)) {
        this.#cached = null;
      }
      throw error;
    }
  }
}
