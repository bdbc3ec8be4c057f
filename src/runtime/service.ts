/**
 * One running service: its management API, its keys, its role, its record in
 * the registry and its heartbeats. Implements the API's handlers with plain
 * methods, and stops its parts in reverse order (STYLE.md rule 7).
 * @module
 */
import type {
  BootstrapRequest,
  ConfigureRequest,
  ConnectRequest,
  SpawnRequest,
} from "../api/schemas.ts";
import {
  type ConfigureAnswer,
  ConflictError,
  type ConnectAnswer,
  type ServiceHandlers,
} from "../api/service_handlers.ts";
import { FabricClient } from "../client/fabric_client.ts";
import { RegistryClient } from "../client/registry_client.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import type { SealedBundle } from "../crypto/seal.ts";
import { type Heartbeats, startHeartbeats } from "../health/heartbeat.ts";
import { KeyHandover } from "../spawner/key_handover.ts";
import { spawnService } from "../spawner/spawn_flow.ts";
import { beginRootIncarnation } from "../health/root_restart.ts";
import { closeLaunchers, type LaunchedProcess } from "../launchers/mod.ts";
import {
  EXIT,
  type RegistryEndpoint,
  type ServiceRecord,
  type ServiceState,
  type ServiceStatus,
  type SpawnResult,
} from "../types/mod.ts";
import { log } from "./logging.ts";
import { aliveRecord, type ServiceIdentity, type ServicePlacement } from "./_service_types.ts";

export type { ServiceIdentity, ServicePlacement };
import { type RoleHandle, type RoleModule, type SpawnHooks, StateLostError } from "./role.ts";
import { ROLE_MODULES } from "./roles.ts";
import { Supervisor } from "../health/supervisor.ts";
import type { ServiceMetrics } from "../metrics/service_metrics.ts";

/** A service process's state and handlers. */
export class FabricService implements ServiceHandlers {
  readonly identity: ServiceIdentity;
  #module: RoleModule;
  #logger = log("service");
  #keys: FabricKeys | null = null;
  #registryEndpoints: RegistryEndpoint[] = [];
  #client: FabricClient | null = null;
  #registry: RegistryClient | null = null;
  #handover: KeyHandover | null = null;
  #placement: ServicePlacement | null = null;
  #placing = false;
  #role: RoleHandle | null = null;
  #heartbeats: Heartbeats | null = null;
  #state: ServiceState = "BOOTSTRAPPING";
  #sessions = new Set<string>();
  #children = new Map<string, string>();
  #parent: RegistryEndpoint | null = null;
  #started = Date.now();
  #stopping: Promise<void> | null = null;
  /** The grace a stop request named for the role's work, ms. */
  #stopGraceMs: number | undefined;
  /** Set when this instance learnt it was replaced (or fenced itself off). */
  #replaced = false;
  #supervisor: Supervisor | null = null;
  /** Children launched by spawns that have not returned yet. */
  #spawning = new Set<LaunchedProcess>();
  /** The process exit code once stopped: 0, or 79 when old state could not be picked up. */
  exitCode: number = EXIT.OK;
  #stopRequested: (reason: string) => void;
  /** Resolves with the reason when the service has been asked to stop. */
  readonly stopRequested: Promise<string>;
  /** Resolves once the service is configured and registered ALIVE. */
  readonly placed: Promise<void>;
  #placed: () => void;
  #metrics: ServiceMetrics | undefined;

  /** A service that has not bootstrapped yet; `metrics` are handed to its role. */
  constructor(identity: ServiceIdentity, module: RoleModule, metrics?: ServiceMetrics) {
    this.identity = identity;
    this.#module = module;
    this.#metrics = metrics;
    let resolve = (_reason: string): void => {};
    this.stopRequested = new Promise<string>((r) => (resolve = r));
    this.#stopRequested = resolve;
    let placed = (): void => {};
    this.placed = new Promise<void>((r) => (placed = r));
    this.#placed = placed;
  }

  /** The fabric keys once known, else null. */
  keys(): FabricKeys | null {
    return this.#keys;
  }

  /** The service's state as it sees it. */
  get state(): ServiceState {
    return this.#state;
  }

  /** Gives the service its keys (after bootstrap, or from the key file for a root). */
  holdKeys(keys: FabricKeys, registries: RegistryEndpoint[], parent?: RegistryEndpoint): void {
    this.#keys = keys;
    this.#registryEndpoints = registries;
    this.#parent = parent ?? null;
    // One client for the life of the service: it remembers which registry
    // endpoint answers, so a dead replica is not tried first on every call.
    this.#client = new FabricClient(keys);
    this.#registry = new RegistryClient(this.#client, registries);
    this.#handover = new KeyHandover({
      keys,
      registries: () => this.#registryEndpoints,
      self: { id: this.identity.id, url: this.identity.endpoint },
    });
  }

  /**
   * Starts the role, registers ALIVE and starts heartbeating.
   * @throws {ConflictError} when already configured.
   */
  async place(placement: ServicePlacement): Promise<ServiceRecord> {
    if (this.#placement || this.#placing) {
      throw new ConflictError(`Service "${this.identity.id}" is already configured`);
    }
    this.#placing = true;
    try {
      return await this.#place(placement);
    } catch (error) {
      await this.#role?.stop().catch(() => {});
      this.#role = null;
      this.#placement = null;
      throw error;
    } finally {
      this.#placing = false;
    }
  }

  async #place(placement: ServicePlacement): Promise<ServiceRecord> {
    for (const s of placement.sessions) this.#sessions.add(s);
    this.#role = await this.#module.start(
      {
        serviceId: this.identity.id,
        role: this.identity.role,
        dir: this.identity.dir,
        endpoint: this.identity.endpoint,
        options: { ...this.identity.options, ...placement.options },
        incarnation: placement.incarnation,
      },
      {
        keys: placement.keys,
        registry: this.registry(),
        spawn: (request, hooks) => this.spawn(request, hooks),
        parent: this.#parent ? { id: this.#parent.id, url: this.#parent.url } : null,
        registries: [...this.#registryEndpoints],
        ...(this.#metrics ? { metrics: this.#metrics } : {}),
      },
    );
    const registry = this.registry();
    const found = (await registry.get(this.identity.id))?.record;
    // A root (no parent) restarting under its ID records DEAD -> RESTARTING first.
    const old = found && !placement.parent ? await beginRootIncarnation(registry, found) : found;
    const incarnation = old && !placement.parent ? old.incarnation : placement.incarnation;
    placement.incarnation = incarnation;
    const record = aliveRecord(this.identity, placement, {
      old,
      sessions: [...this.#sessions].sort(),
      started: this.#started,
    });
    const registered = await registry.put(record, `${this.identity.role} configured and running`);
    const records = old ? await registry.list() : [];
    this.#placement = placement;
    this.#placed();
    // A restarted parent supervises at once the children its previous
    // incarnation left, and resumes the restarts it was killed in.
    if (records.some((r) => r.parent === this.identity.id)) {
      await this.#supervise().reconcile({ orphaned: true, records }).catch((error) =>
        this.#logger.warn("Cannot resume the children's restarts: {error}", {
          error: String(error),
        })
      );
    }
    this.#state = "ALIVE";
    const beating = { id: this.identity.id, incarnation, instance: this.identity.instance ?? "" };
    this.#heartbeats = startHeartbeats(registry, beating, {
      intervalMs: placement.heartbeatMs,
      onReplaced: (reason) => {
        this.#logger.error("Stopping: this incarnation was replaced or cut off ({reason})", {
          reason,
        });
        this.exitCode = EXIT.FAILURE;
        this.#replaced = true;
        this.#stopRequested(`replaced or cut off: ${reason}`);
      },
    });
    this.#logger.info("Service {id} is ALIVE as {role} (incarnation {incarnation})", {
      id: this.identity.id,
      role: this.identity.role,
      incarnation,
    });
    return registered;
  }

  /** A registry client signed with the fabric keys. */
  registry(): RegistryClient {
    if (!this.#registry) throw new ConflictError("Service is not bootstrapped yet");
    return this.#registry;
  }

  status(): ServiceStatus {
    return {
      id: this.identity.id,
      role: this.identity.role,
      state: this.#state,
      incarnation: this.#placement?.incarnation ?? 0,
      host: this.identity.host,
      pid: Deno.pid,
      endpoint: this.identity.endpoint,
      parent: this.#placement?.parent ?? "",
      sessions: [...this.#sessions].sort(),
      children: [...this.#children.keys()],
      pendingPasswords: this.#handover?.pending ?? 0,
      uptimeMs: Date.now() - this.#started,
    };
  }

  bootstrap(request: BootstrapRequest, source: string): Promise<SealedBundle> {
    if (!this.#handover) throw new ConflictError("Service is not bootstrapped itself yet");
    return this.#handover.answer(request, source);
  }

  async configure(request: ConfigureRequest): Promise<ConfigureAnswer> {
    if (this.#placement || this.#placing) {
      throw new ConflictError(`Service "${this.identity.id}" is already configured`);
    }
    if (request.role !== this.identity.role) {
      // Refused before it was ever configured: this instance will not serve.
      this.#state = "FAILED";
      throw new ConflictError(
        `Service "${this.identity.id}" runs as ${this.identity.role}, not ${request.role}`,
      );
    }
    this.#state = "CONFIGURING";
    let record: ServiceRecord;
    try {
      record = await this.place({
        keys: this.#keys!,
        registries: this.#registryEndpoints,
        incarnation: request.incarnation,
        parent: request.parent,
        route: request.route,
        launcher: request.launcher,
        endpoint: request.endpoint,
        heartbeatMs: request.heartbeatMs,
        sessions: request.sessions,
        options: request.options,
      });
    } catch (error) {
      this.#state = "FAILED";
      if (!(error instanceof StateLostError)) throw error;
      this.exitCode = EXIT.STATE_LOST;
      this.#stopRequested(`state lost: ${error.message}`);
      throw new ConflictError(`Cannot pick up the old state: ${error.message}`);
    }
    return {
      id: record.id,
      role: record.role,
      state: record.state,
      incarnation: record.incarnation,
    };
  }

  async spawn(request: SpawnRequest, hooks: SpawnHooks = {}): Promise<SpawnResult> {
    const placement = this.#requirePlacement();
    const supervisor = this.#supervise();
    let launched: LaunchedProcess | undefined;
    let recorded: string | undefined;
    const timing = this.#metrics ? spawnTiming(this.#metrics, request) : undefined;
    const result = await spawnService(request, {
      keys: placement.keys,
      client: this.#client!,
      registry: this.registry(),
      handover: this.#handover!,
      self: { id: this.identity.id, url: this.identity.endpoint, route: placement.route },
      dir: this.identity.dir,
      registries: this.#registryEndpoints,
      heartbeatMs: placement.heartbeatMs,
      onRecorded: (service) => {
        recorded = service.id;
        supervisor.began(service.id);
        hooks.onRecorded?.(service);
      },
      onLaunched: (child, service) => {
        launched = child;
        this.#spawning.add(child);
        void child.exited.then((code) =>
          supervisor.childExited(service, { code, why: child.endReason?.() })
        );
      },
    }).then((r) => (timing?.("ok"), r), (error) => {
      timing?.("failed");
      throw error;
    }).finally(() => {
      if (launched) this.#spawning.delete(launched);
      if (recorded) supervisor.ended(recorded);
    });
    // A spawn that ends while this service stops would leave an orphan.
    if (this.#stopping && launched) {
      launched.kill("SIGTERM");
      throw new ConflictError(`Service "${this.identity.id}" is stopping: spawn undone`);
    }
    this.#children.set(result.id, result.endpoint);
    return result;
  }

  #supervise(): Supervisor {
    if (!this.#supervisor) {
      this.#supervisor = new Supervisor({
        selfId: this.identity.id,
        registry: () => this.registry(),
        restart: (id, role) =>
          this.spawn({ role, on: "local://", sessions: [], options: {}, restart: id }),
        replace: (lost) =>
          this.spawn({
            role: lost.role,
            on: lost.launcher,
            sessions: lost.sessions,
            options: lost.options,
          }),
        policyOf: (role) => ROLE_MODULES[role]?.replacement ?? "propagate",
      });
      this.#supervisor.follow();
    }
    return this.#supervisor;
  }

  /**
   * A child's endpoint as this service reaches it: from its own spawns, else
   * from the registry (after a restart of this service).
   */
  async childEndpoint(id: string): Promise<string | undefined> {
    const known = this.#children.get(id);
    if (known) return known;
    const found = await this.registry().get(id).catch(() => undefined);
    if (found?.record.parent !== this.identity.id || !found.record.endpoint) return undefined;
    this.#children.set(id, found.record.endpoint);
    return found.record.endpoint;
  }

  /** Where a request for `target` goes when it is not below this service. */
  upstream(target: string): string | undefined {
    const registry = this.#registryEndpoints.find((r) => r.id === target);
    return registry?.url ?? this.#parent?.url;
  }

  async openSession(session: string): Promise<string[]> {
    this.#requirePlacement();
    await this.registry().setSession(this.identity.id, session, true);
    this.#sessions.add(session);
    return [...this.#sessions].sort();
  }

  async closeSession(session: string): Promise<string[]> {
    this.#requirePlacement();
    await this.registry().setSession(this.identity.id, session, false);
    this.#sessions.delete(session);
    return [...this.#sessions].sort();
  }

  async connect(request: ConnectRequest): Promise<ConnectAnswer> {
    const placement = this.#requirePlacement();
    if (!this.#sessions.has(request.session)) await this.openSession(request.session);
    this.#logger.info("Client {client} connected for session {session}", { ...request });
    return {
      id: this.identity.id,
      role: this.identity.role,
      state: this.#state,
      incarnation: placement.incarnation,
      endpoint: placement.endpoint,
      sessions: [...this.#sessions].sort(),
    };
  }

  stop(reason: string, graceMs?: number): Promise<void> {
    if (graceMs !== undefined) this.#stopGraceMs = graceMs;
    // Answer first; the runtime stops the service once the answer is out.
    setTimeout(() => this.#stopRequested(reason), 10);
    return Promise.resolve();
  }

  /**
   * Records STOPPED (or `finalState`) in the registry, then stops heartbeats and
   * the role; idempotent.
   */
  shutdown(reason: string, finalState: ServiceState = "STOPPED"): Promise<void> {
    this.#stopping ??= this.#shutdown(reason, finalState);
    return this.#stopping;
  }

  async #shutdown(reason: string, finalState: ServiceState): Promise<void> {
    this.#supervisor?.stop();
    this.#heartbeats?.stop();
    const placement = this.#placement;
    // A replaced instance's record is its successor's: it writes nothing, and
    // stops at once (its registry may not even be reachable).
    if (placement && this.#state === "ALIVE" && !this.#replaced) {
      try {
        await this.registry().transition(this.identity.id, {
          incarnation: placement.incarnation,
          to: finalState,
          reason,
        });
      } catch (error) {
        this.#logger.warn("Could not record {state}: {error}", {
          state: finalState,
          error: String(error),
        });
      }
    }
    this.#state = finalState;
    const grace = this.#stopGraceMs === undefined ? {} : { graceMs: this.#stopGraceMs };
    await this.#role?.stop({ urgent: this.#replaced, ...grace });
    // Children still bootstrapping would outlive this service unseen.
    for (const child of this.#spawning) child.kill("SIGTERM");
    await closeLaunchers();
  }

  #requirePlacement(): ServicePlacement {
    if (!this.#placement) {
      throw new ConflictError(`Service "${this.identity.id}" is not configured yet: retry shortly`);
    }
    return this.#placement;
  }
}

/** Starts timing a spawn; the function returned records its outcome. */
function spawnTiming(
  metrics: ServiceMetrics,
  request: SpawnRequest,
): (outcome: "ok" | "failed") => void {
  const started = performance.now();
  const launcher = /^([a-z+]{1,16}):\/\//.exec(request.on ?? "local://")?.[1] ?? "other";
  return (outcome) => {
    metrics.spawns.inc({ launcher, outcome });
    metrics.spawnSeconds.observe({ launcher }, (performance.now() - started) / 1000);
    if (request.restart && outcome === "ok") metrics.restarts.inc();
  };
}
