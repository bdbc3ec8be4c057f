/**
 * One running service: its lifecycle (bootstrap, configure, ALIVE, stop) and
 * the handlers of its management API, composed of parts that each do one job:
 * its keys ({@linkcode ServiceCredentials}), its record and heartbeats
 * ({@linkcode Registration}), its children ({@linkcode Children}), its
 * sessions ({@linkcode Sessions}) and its role, plugged into the API through a
 * {@linkcode RoleSlot}. Parts stop in reverse order (STYLE.md rule 7).
 * @module
 */
import { parseCertificate, type Signer } from "../crypto/certificate.ts";
import type { ConfigureAnswer, ConnectAnswer, ServiceHandlers } from "../api/service_handlers.ts";
import { RoleSlot } from "../api/role_slot.ts";
import type { SealedBundle } from "../crypto/seal.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import { log } from "../config/logging.ts";
import { serviceLogPath } from "../config/log_file.ts";
import { Children, type SpawnHooks } from "../children/children.ts";
import { Registration } from "../health/registration.ts";
import { closeLaunchers } from "../launchers/mod.ts";
import { ConflictError, StateLostError } from "../types/errors.ts";
import {
  EXIT,
  type RegistryEndpoint,
  type ServiceRecord,
  type ServiceState,
  type ServiceStatus,
  type SpawnResult,
} from "../types/mod.ts";
import type {
  BootstrapRequest,
  ConfigureRequest,
  ConnectRequest,
  ReadyRequest,
  SpawnRequest,
} from "../types/wire.ts";
import { ServiceCredentials } from "./credentials.ts";
import type { RoleContext, RoleHandle } from "./role.ts";
import { relayFront } from "../api/relay_front.ts";
import type { MiddlewareHandler } from "hono";
import { Sessions } from "./sessions.ts";
import type { ServiceIdentity, ServiceParts, ServicePlacement } from "./service_spec.ts";
import { setTimeout } from "../base/timers.ts";

/** A service process's state and handlers; see the module doc. */
export class FabricService implements ServiceHandlers {
  readonly identity: ServiceIdentity;
  #parts: ServiceParts;
  #slot: RoleSlot;
  #logger = log("service");
  #credentials: ServiceCredentials | null = null;
  #placement: ServicePlacement | null = null;
  #placing = false;
  #role: RoleHandle | null = null;
  /** The relay in front of this service, for the services below and above it. */
  #relay: { front: MiddlewareHandler; stop: () => void } | null = null;
  #registration: Registration | null = null;
  #children: Children | null = null;
  #sessions: Sessions;
  #state: ServiceState = "BOOTSTRAPPING";
  #started = Date.now();
  #stopping: Promise<void> | null = null;
  /** The grace a stop request named for the role's work, ms. */
  #stopGraceMs: number | undefined;
  /** Set when this instance learnt it was replaced (or fenced itself off). */
  #replaced = false;
  /** The process exit code once stopped: 0, or 79 when old state could not be picked up. */
  exitCode: number = EXIT.OK;
  #stopRequested: (reason: string) => void;
  /** Resolves with the reason when the service has been asked to stop. */
  readonly stopRequested: Promise<string>;
  /** Resolves once the service is configured and registered ALIVE. */
  readonly placed: Promise<void>;
  #placed: () => void;

  /** A service that has not bootstrapped yet. */
  constructor(identity: ServiceIdentity, parts: ServiceParts) {
    this.identity = identity;
    this.#parts = parts;
    this.#slot = parts.slot ?? new RoleSlot();
    this.#sessions = new Sessions(identity.id, () => this.#requireCredentials().registry);
    let resolve = (_reason: string): void => {};
    this.stopRequested = new Promise<string>((r) => (resolve = r));
    this.#stopRequested = resolve;
    let placed = (): void => {};
    this.placed = new Promise<void>((r) => (placed = r));
    this.#placed = placed;
  }

  /** The fabric keys once known, else null. */
  keys(): FabricKeys | null {
    return this.#credentials?.keys ?? null;
  }

  /** The route from the root down to this service, once configured. */
  route(): readonly string[] | null {
    return this.#placement?.route ?? null;
  }

  /**
   * The parent's route once bootstrapped, as this service's own certificate
   * states it (its route less this service); `[]` for a root service (no
   * certificate: the operator's key), else null.
   */
  parentRoute(): readonly string[] | null {
    if (!this.#credentials) return null;
    const identity = this.#credentials.keys.identity;
    if (!identity) return [];
    const own = parseCertificate(identity.split(",").at(-1)!.trim());
    return typeof own === "string" ? null : own.claims.route.slice(0, -1);
  }

  /** The service's state as it sees it. */
  get state(): ServiceState {
    return this.#state;
  }

  /** Gives the service its keys (after bootstrap, or from the key file for a root). */
  holdKeys(keys: FabricKeys, registries: RegistryEndpoint[], parent?: RegistryEndpoint): void {
    const self = { id: this.identity.id, url: this.identity.endpoint };
    const credentials = new ServiceCredentials(self, keys, registries, parent ?? null);
    this.#credentials = credentials;
    // A child reads what its registration needs while its parent configures it.
    this.#registration = parent
      ? new Registration(credentials.registry, credentials).prefetch(self.id, parent.id)
      : null;
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
      if (this.#role) this.#slot.unmount();
      this.#relay?.stop();
      await this.#role?.stop().catch((stopError) =>
        this.#logger.debug("Role stop after a failed start: {error}", { error: String(stopError) })
      );
      this.#role = null;
      this.#placement = null;
      throw error;
    } finally {
      this.#placing = false;
    }
  }

  async #place(placement: ServicePlacement): Promise<ServiceRecord> {
    const credentials = this.#requireCredentials();
    this.#sessions.adopt(placement.sessions);
    const children = this.#childrenOf(credentials, placement);
    const ctx: RoleContext = {
      serviceId: this.identity.id,
      role: this.identity.role,
      dir: this.identity.dir,
      endpoint: this.identity.endpoint,
      options: { ...this.identity.options, ...placement.options },
      incarnation: placement.incarnation,
      ...credentials.roleDeps(),
      spawn: (request: SpawnRequest, hooks?: SpawnHooks) => this.spawn(request, hooks),
      ...(this.#parts.metrics ? { metrics: this.#parts.metrics } : {}),
      children: { endpoint: (id) => children.endpoint(id) },
    };
    this.#role = await this.#parts.module.start(ctx);
    // Every service relays along the spawn tree (docs/protocol.md 5.5): any
    // service may spawn, and a request for its child comes down through it.
    this.#relay = relayFront(ctx);
    this.#slot.mount({ routes: this.#role.routes, front: this.#relay.front });
    const registration = this.#registration ?? new Registration(credentials.registry, credentials);
    this.#registration = registration;
    // Placed before its ready report: the parent's caller may use it once the parent answers.
    if (placement.reportReady) this.#placement = placement;
    const { record, records } = await registration.register(
      {
        ...this.identity,
        endpoint: placement.endpoint,
        parent: placement.parent,
        route: placement.route,
        launcher: placement.launcher,
        incarnation: placement.incarnation,
        options: placement.options,
        sessions: this.#sessions.list(),
        started: this.#started,
      },
      `${this.identity.role} configured and running`,
      placement.reportReady,
    );
    if (this.#stopping) {
      // Stopped while registering: the record written is ended here, not left ALIVE.
      await registration.end("STOPPED", "stopped while it was being configured");
      throw new ConflictError(`Service "${this.identity.id}" is stopping: not placed`);
    }
    placement.incarnation = record.incarnation;
    this.#placement = placement;
    this.#placed();
    await children.adopt(records).catch((error) =>
      this.#logger.warn("Cannot resume the children's restarts: {error}", { error: String(error) })
    );
    this.#state = "ALIVE";
    credentials.keepRenewed(this.identity);
    registration.beat(this.identity, placement.heartbeatMs, (reason) => {
      this.#logger.error("Stopping: this incarnation was replaced or cut off ({reason})", {
        reason,
      });
      this.exitCode = EXIT.FAILURE;
      this.#replaced = true;
      this.#stopRequested(`replaced or cut off: ${reason}`);
    }, (answer) => credentials.heard(answer));
    this.#logger.info("Service {id} is ALIVE as {role} (incarnation {incarnation})", {
      id: this.identity.id,
      role: this.identity.role,
      incarnation: record.incarnation,
    });
    return record;
  }

  #childrenOf(credentials: ServiceCredentials, placement: ServicePlacement): Children {
    this.#children = new Children({
      self: { id: this.identity.id, url: this.identity.endpoint, route: placement.route },
      keys: placement.keys,
      client: credentials.client,
      registry: credentials.registry,
      handover: credentials.handover,
      registries: credentials.registries,
      dir: this.identity.dir,
      heartbeatMs: placement.heartbeatMs,
      policyOf: this.#parts.policyOf ?? (() => "propagate"),
      restartable: (record) => this.#role?.restartable?.(record) ?? true,
      metrics: this.#parts.metrics,
    });
    return this.#children;
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
      sessions: this.#sessions.list(),
      children: this.#children?.ids() ?? [],
      pendingPasswords: this.#credentials?.handover.pending ?? 0,
      uptimeMs: Date.now() - this.#started,
    };
  }

  /** `GET /v1/logs`: this service's own log, where every launcher writes it. */
  logs(): string {
    return serviceLogPath(this.identity.dir, this.identity.id);
  }

  bootstrap(request: BootstrapRequest, source: string): Promise<SealedBundle> {
    if (!this.#credentials) throw new ConflictError("Service is not bootstrapped itself yet");
    return this.#credentials.handover.answer(request, source);
  }

  /** `reportReady`: configured by the bootstrap answer (docs/protocol.md 4.8), not by a call. */
  async configure(request: ConfigureRequest, reportReady = false): Promise<ConfigureAnswer> {
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
    const credentials = this.#requireCredentials();
    this.#state = "CONFIGURING";
    let record: ServiceRecord;
    try {
      record = await this.place({
        ...request,
        keys: credentials.keys,
        registries: credentials.registries,
        reportReady,
      });
    } catch (error) {
      this.#state = "FAILED";
      if (!(error instanceof StateLostError)) throw error;
      this.exitCode = EXIT.STATE_LOST;
      this.#stopRequested(`state lost: ${error.message}`);
      throw new ConflictError(`Cannot pick up the old state: ${error.message}`, { cause: error });
    }
    return {
      id: record.id,
      role: record.role,
      state: record.state,
      incarnation: record.incarnation,
    };
  }

  ready(signer: Signer, report: ReadyRequest): Promise<ServiceRecord> {
    return this.#requireCredentials().handover.ready(signer, report);
  }

  renew(signer: Signer): Promise<{ identity: string; expires: number }> {
    const placement = this.#requirePlacement();
    return this.#requireCredentials().renewChild(signer, placement.route);
  }

  spawn(request: SpawnRequest, hooks: SpawnHooks = {}): Promise<SpawnResult> {
    this.#requirePlacement();
    return this.#children!.spawn(request, hooks);
  }

  openSession(session: string): Promise<string[]> {
    this.#requirePlacement();
    return this.#sessions.open(session);
  }

  closeSession(session: string): Promise<string[]> {
    this.#requirePlacement();
    return this.#sessions.close(session);
  }

  async connect(request: ConnectRequest): Promise<ConnectAnswer> {
    const placement = this.#requirePlacement();
    if (!this.#sessions.has(request.session)) await this.#sessions.open(request.session);
    this.#logger.info("Client {client} connected for session {session}", { ...request });
    return {
      id: this.identity.id,
      role: this.identity.role,
      state: this.#state,
      incarnation: placement.incarnation,
      endpoint: placement.endpoint,
      sessions: this.#sessions.list(),
    };
  }

  stop(reason: string, graceMs?: number): Promise<void> {
    if (graceMs !== undefined) this.#stopGraceMs = graceMs;
    // Answer first; the runtime stops the service once the answer is out.
    setTimeout(() => this.#stopRequested(reason), 10);
    return Promise.resolve();
  }

  /**
   * Stops the role (heartbeats go on meanwhile), then heartbeats, and records
   * STOPPED (or `finalState`) in the registry; idempotent.
   */
  shutdown(reason: string, finalState: ServiceState = "STOPPED"): Promise<void> {
    this.#stopping ??= this.#shutdown(reason, finalState);
    return this.#stopping;
  }

  async #shutdown(reason: string, finalState: ServiceState): Promise<void> {
    this.#children?.stopSupervising();
    this.#credentials?.stopRenewing();
    // A registry records its end in its own store, which its role closes: first.
    if (this.identity.role === "registry") await this.#end(finalState, reason);
    this.#slot.unmount();
    this.#relay?.stop();
    // Any other role stops first (an agent's tasks get their grace), beating
    // on meanwhile: the record says STOPPED only once nothing of it runs.
    const grace = this.#stopGraceMs === undefined ? {} : { graceMs: this.#stopGraceMs };
    await this.#role?.stop({ urgent: this.#replaced, ...grace });
    await this.#end(finalState, reason);
    // Children still bootstrapping would outlive this service unseen.
    this.#children?.killLaunching();
    await closeLaunchers();
  }

  /**
   * Stops heartbeats and records `finalState` in the registry, once. A
   * replaced instance's record is its successor's: it writes nothing (its
   * registry may not even be reachable).
   */
  async #end(finalState: ServiceState, reason: string): Promise<void> {
    this.#registration?.stopBeating();
    if (this.#placement && this.#state === "ALIVE" && !this.#replaced) {
      await this.#registration?.end(finalState, reason);
    }
    this.#state = finalState;
  }

  #requireCredentials(): ServiceCredentials {
    if (!this.#credentials) throw new ConflictError("Service is not bootstrapped yet");
    return this.#credentials;
  }

  #requirePlacement(): ServicePlacement {
    if (!this.#placement) {
      throw new ConflictError(`Service "${this.identity.id}" is not configured yet: retry shortly`);
    }
    return this.#placement;
  }
}
