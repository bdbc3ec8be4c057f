/**
 * The application side (DESIGN.md "Reconnect"): attach to a running fabric
 * from the fabric file, find the services of the application's sessions,
 * connect to each (restarting dead ones through their parents), follow the
 * change stream, and call services with failure handling. The same path
 * attaches a brand-new client to a fabric it did not create.
 *
 * @example
 * ```ts
 * import { attach } from "./src/client/attach.ts";
 * const session = await attach(undefined, { sessions: ["run-42"] });
 * for (const s of session.services) console.log(s.id, s.fate);
 * session.close();
 * ```
 * @module
 */
import { keyPathOf, loadFabricFile, resolveFabricPath } from "../config/fabric_file.ts";
import type { FabricFile } from "../config/fabric_file.ts";
import { log } from "../config/logging.ts";
import { sleep } from "../config/retry.ts";
import { eachAtMost } from "../base/at_most.ts";
import { readKeyFile } from "../crypto/keys.ts";
import type { RegistryEvent, ServiceRecord, ServiceState } from "../types/mod.ts";
import { FabricClient, FabricRequestError } from "./fabric_client.ts";
import { RegistryClient } from "./registry_client.ts";
import { targetFor } from "./route.ts";

/** What became of a service since the application last saw the fabric. */
export type ServiceFate = "alive" | "restarted" | "lost" | "unreachable";

/** One service of the application's sessions, after attaching. */
export interface AttachedService {
  id: string;
  role: string;
  state: ServiceState;
  incarnation: number;
  sessions: string[];
  fate: ServiceFate;
  /** Why a service is lost or unreachable. */
  reason: string;
}

/** A change that concerns the application. */
export interface SessionEvent {
  id: string;
  /** The state the service moved to, and the incarnation that moved. */
  state: ServiceState;
  incarnation: number;
  /** Sessions of the service that the application holds. */
  sessions: string[];
  reason: string;
  /** When the registry recorded it, ms since the epoch. */
  at: number;
}

/** A service the fabric lost; the application must decide what to do. */
export class ServiceLostError extends Error {
  /** The lost service. */
  readonly serviceId: string;
  /** Builds the error. */
  constructor(serviceId: string, reason: string) {
    super(`Service "${serviceId}" is lost: ${reason}`);
    this.name = "ServiceLostError";
    this.serviceId = serviceId;
  }
}

/** Options of {@linkcode attach}. */
export interface AttachOptions {
  /** Sessions to attach to. Default: every session of the fabric file. */
  sessions?: string[];
  /** Name the services log for this client. Default `fabricd-client-<pid>`. */
  client?: string;
  /** How long to wait for a dead service's restart, ms. Default 30000. */
  restartTimeoutMs?: number;
}

/** An application's handle on a fabric. */
export class FabricSession {
  readonly fabricPath: string;
  readonly fabric: FabricFile;
  readonly client: FabricClient;
  readonly registry: RegistryClient;
  readonly sessions: string[];
  /** The services found at attach time, with what became of them. */
  services: AttachedService[] = [];
  #options: Required<AttachOptions>;
  #watch = new AbortController();
  /** Per service, the last change {@linkcode follow} does not report (set by connectAll). */
  #followFrom = new Map<string, number>();

  /** Use {@linkcode attach}. */
  constructor(
    parts: { fabricPath: string; fabric: FabricFile; client: FabricClient },
    options: Required<AttachOptions>,
  ) {
    this.fabricPath = parts.fabricPath;
    this.fabric = parts.fabric;
    this.client = parts.client;
    this.registry = new RegistryClient(parts.client, parts.fabric.registries);
    this.sessions = options.sessions;
    this.#options = options;
  }

  /** Connects to every service of the sessions; fills {@linkcode services}. */
  async connectAll(): Promise<AttachedService[]> {
    const records = await this.registry.list();
    const mine = records.filter((r) => r.sessions.some((s) => this.sessions.includes(s)));
    this.#followFrom = await this.#lastChanges(mine);
    this.services = [];
    for (const record of mine) this.services.push(await this.#connect(record));
    return this.services;
  }

  /**
   * Calls a service of the fabric. When it cannot be reached, reports it to
   * the registry; when it is dead, has its parent restart it and tries once more.
   * @throws {ServiceLostError} when the service is lost.
   * @throws {FabricRequestError} for any other failure.
   */
  async call<T>(id: string, request: { method: string; path: string; body?: unknown }): Promise<T> {
    const records = await this.registry.list();
    const record = records.find((r) => r.id === id);
    if (!record) throw new FabricRequestError(`No service "${id}" in the registry`, 404);
    if (record.state === "LOST") throw new ServiceLostError(id, record.lastFailure);
    try {
      return await this.client.call<T>(targetFor(record, records), request);
    } catch (error) {
      if (!(error instanceof FabricRequestError) || error.status !== 0) throw error;
      const revived = await this.#revive(record, error.message);
      const now = await this.registry.list();
      return await this.client.call<T>(targetFor(revived, now), request);
    }
  }

  /**
   * Follows the registry's changes to the services of these sessions (a lost
   * service arrives as state LOST, with its sessions) until `close()`: each
   * change since the last {@linkcode connectAll}, once, not those the registry
   * held before.
   */
  follow(onEvent: (event: SessionEvent) => void): Promise<void> {
    const signal = this.#watch.signal;
    const seen = this.#followFrom;
    const run = async (): Promise<void> => {
      let since = seen.size > 0 ? Math.min(...seen.values()) : 0;
      while (!signal.aborted) {
        try {
          await this.registry.watch(since, (event: RegistryEvent) => {
            since = Math.max(since, event.seq);
            const sessions = event.record.sessions.filter((s) => this.sessions.includes(s));
            const transition = event.transition;
            if (sessions.length === 0 || event.kind !== "transition" || !transition) return;
            if (event.seq <= (seen.get(transition.id) ?? 0)) return;
            onEvent({
              id: transition.id,
              state: transition.to,
              incarnation: transition.incarnation,
              sessions,
              reason: transition.reason,
              at: transition.at,
            });
          }, signal);
        } catch {
          // The registry went away; retry below until closed.
        }
        if (!signal.aborted) await sleep(500);
      }
    };
    return run();
  }

  /**
   * The number of the last stored change of each of `records`: where
   * {@linkcode follow} begins for it (a service it cannot read: 0).
   */
  async #lastChanges(records: ServiceRecord[]): Promise<Map<string, number>> {
    const seen = new Map<string, number>();
    await eachAtMost(records, 8, async (record) => {
      const held = await this.registry.get(record.id).catch(() => undefined);
      seen.set(record.id, held?.transitions.at(-1)?.seq ?? 0);
    });
    return seen;
  }

  /** Stops following; idempotent. */
  close(): void {
    this.#watch.abort();
  }

  async #connect(record: ServiceRecord): Promise<AttachedService> {
    const base = {
      id: record.id,
      role: record.role,
      sessions: record.sessions.filter((s) => this.sessions.includes(s)),
    };
    if (record.state === "LOST" || record.state === "STOPPED") {
      return {
        ...base,
        state: record.state,
        incarnation: record.incarnation,
        fate: "lost",
        reason: record.lastFailure || record.state.toLowerCase(),
      };
    }
    let current = record;
    try {
      // Any state but ALIVE is a service on its way down or back (a restart its
      // parent has begun): wait for it, bounded by restartTimeoutMs.
      if (record.state !== "ALIVE") {
        current = await this.#revive(record, record.lastFailure || record.state);
      }
      const connectAll = async (to: ServiceRecord): Promise<void> => {
        const records = await this.registry.list();
        for (const session of base.sessions) {
          await this.client.call(targetFor(to, records), {
            method: "POST",
            path: "/v1/connect",
            body: { session, client: this.#options.client },
          });
        }
      };
      try {
        await connectAll(current);
      } catch (error) {
        // Killed since the registry last heard of it: report it, wait for its
        // restart and connect to the new incarnation.
        if (!(error instanceof FabricRequestError) || error.status !== 0) throw error;
        current = await this.#revive(current, error.message);
        await connectAll(current);
      }
      return {
        ...base,
        state: current.state,
        incarnation: current.incarnation,
        fate: current.incarnation > 1 ? "restarted" : "alive",
        reason: "",
      };
    } catch (error) {
      const lost = error instanceof ServiceLostError;
      return {
        ...base,
        state: lost ? "LOST" : current.state,
        incarnation: current.incarnation,
        fate: lost ? "lost" : "unreachable",
        reason: error instanceof Error ? error.message : String(error),
      };
    }
  }

  /** Reports a failed contact, and has a dead service restarted by its parent. */
  async #revive(record: ServiceRecord, why: string): Promise<ServiceRecord> {
    await this.registry.report(record.id, record.incarnation, why).catch((error) =>
      log("attach").debug("Cannot report {id}: {error}", { id: record.id, error: String(error) })
    );
    const deadline = Date.now() + this.#options.restartTimeoutMs;
    let asked = false;
    let wasDown = record.state !== "ALIVE";
    while (Date.now() < deadline) {
      const records = await this.registry.list();
      const now = records.find((r) => r.id === record.id);
      if (!now) throw new FabricRequestError(`Service "${record.id}" left the registry`, 404);
      if (now.state === "LOST") throw new ServiceLostError(now.id, now.lastFailure);
      if (now.state !== "ALIVE") wasDown = true;
      else if (wasDown || now.incarnation > record.incarnation) return now;
      if (!asked && ["DEAD", "FAILED"].includes(now.state)) {
        const parent = records.find((r) => r.id === now.parent);
        if (parent) {
          asked = true;
          await this.client.call(targetFor(parent, records), {
            method: "POST",
            path: "/v1/spawn",
            body: { role: now.role, restart: now.id },
          }, { timeoutMs: this.#options.restartTimeoutMs }).catch((error) =>
            log("attach").debug("Cannot ask {parent} to restart {id}: {error}", {
              parent: parent.id,
              id: now.id,
              error: String(error),
            })
          );
        }
      }
      await sleep(100);
    }
    throw new FabricRequestError(
      `Service "${record.id}" did not come back within ${this.#options.restartTimeoutMs} ms`,
      0,
    );
  }
}

/**
 * Attaches to the fabric of `fabricFile` (else `FABRIC_FILE`, else
 * `~/.fabric/fabric.yaml`) and connects to the services of its sessions.
 *
 * @throws {FabricFileError | KeyFileError} when the fabric file or key cannot be read.
 * @throws {FabricRequestError} when no registry answers.
 */
export async function attach(
  fabricFile: string | undefined,
  options: AttachOptions = {},
): Promise<FabricSession> {
  const fabricPath = resolveFabricPath(fabricFile);
  const fabric = await loadFabricFile(fabricPath);
  const keys = await readKeyFile(keyPathOf(fabricPath, fabric));
  const session = new FabricSession(
    { fabricPath, fabric, client: new FabricClient(keys) },
    {
      sessions: options.sessions ?? fabric.sessions,
      client: options.client ?? `fabricd-client-${Deno.pid}`,
      restartTimeoutMs: options.restartTimeoutMs ?? 30_000,
    },
  );
  await session.connectAll();
  return session;
}
