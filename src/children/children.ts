/**
 * A service's children: spawning them (the spawn flow), the launches still
 * under way, their endpoints, and the supervisor that restarts or replaces
 * the ones that die. One part of a running service (`runtime/service.ts`).
 * @module
 */
import type { FabricClient } from "../client/fabric_client.ts";
import type { RegistryClient } from "../client/registry_client.ts";
import type { KeyHandover } from "../bootstrap/handover.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import type { LaunchedProcess } from "../launchers/launcher.ts";
import type { ServiceMetrics } from "../metrics/service_metrics.ts";
import { ConflictError } from "../types/errors.ts";
import type {
  RegistryEndpoint,
  ReplacementPolicy,
  Role,
  ServiceRecord,
  SpawnResult,
} from "../types/mod.ts";
import type { SpawnRequest } from "../types/wire.ts";
import type { SpawnProgressListener } from "../types/spawn_progress.ts";
import { spawnService } from "./spawn_flow.ts";
import { Supervisor } from "./supervisor.ts";

/** What the children of one service need from it. */
export interface ChildrenDeps {
  /** The parent: its ID, URL and route from the root. */
  self: { id: string; url: string; route: string[] };
  keys: FabricKeys;
  client: FabricClient;
  registry: RegistryClient;
  handover: KeyHandover;
  registries: RegistryEndpoint[];
  /** The parent's state directory (children's logs, SSH sockets). */
  dir: string;
  /** Heartbeat interval handed to children, ms. */
  heartbeatMs: number;
  /** What happens when a child of a role is lost. */
  policyOf: (role: Role) => ReplacementPolicy;
  /**
   * Whether a `DEAD` child may be restarted now (the role's say, e.g. a pilot
   * manager's for its pilots). Default: every one.
   */
  restartable?: (record: ServiceRecord) => boolean;
  /** Spawns are counted and timed here. Default: not measured. */
  metrics?: ServiceMetrics | undefined;
  /** The spawn flow (tests replace it). Default {@linkcode spawnService}. */
  spawnFlow?: typeof spawnService;
}

/** What a role may learn of a spawn it asked for. */
export interface SpawnHooks {
  /** Called once the new service is on record (LAUNCHING), before it is launched. */
  onRecorded?: (service: { id: string; incarnation: number }) => void;
  /** Told of each step of the spawn (a streamed `POST /v1/spawn` shows them). */
  onProgress?: SpawnProgressListener;
}

/** The children of one service; see the module doc. */
export class Children {
  #deps: ChildrenDeps;
  #endpoints = new Map<string, string>();
  /** Children launched by spawns that have not returned yet. */
  #spawning = new Set<LaunchedProcess>();
  #supervisor: Supervisor | null = null;
  #stopped = false;

  /** Children of the service that `deps.self` names. */
  constructor(deps: ChildrenDeps) {
    this.#deps = deps;
  }

  /** IDs of the children this process spawned. */
  ids(): string[] {
    return [...this.#endpoints.keys()];
  }

  /**
   * Spawns a child (or restarts one, with `request.restart`), supervised.
   * @throws {SpawnFailedError} when launch, bootstrap or configure fail.
   * @throws {ConflictError} when the service stopped while the spawn ran (the child is undone).
   */
  async spawn(request: SpawnRequest, hooks: SpawnHooks = {}): Promise<SpawnResult> {
    if (this.#stopped) {
      throw new ConflictError(`Service "${this.#deps.self.id}" is stopping: no new children`);
    }
    const supervisor = this.supervisor();
    let launched: LaunchedProcess | undefined;
    let recorded: string | undefined;
    const timing = this.#deps.metrics ? spawnTiming(this.#deps.metrics, request) : undefined;
    const flow = this.#deps.spawnFlow ?? spawnService;
    const result = await flow(request, {
      keys: this.#deps.keys,
      client: this.#deps.client,
      registry: this.#deps.registry,
      handover: this.#deps.handover,
      self: this.#deps.self,
      dir: this.#deps.dir,
      registries: this.#deps.registries,
      heartbeatMs: this.#deps.heartbeatMs,
      ...(hooks.onProgress ? { onProgress: hooks.onProgress } : {}),
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
    if (this.#stopped && launched) {
      launched.kill("SIGTERM");
      throw new ConflictError(`Service "${this.#deps.self.id}" is stopping: spawn undone`);
    }
    this.#endpoints.set(result.id, result.endpoint);
    return result;
  }

  /**
   * A child's endpoint as this service reaches it: from its own spawns, else
   * from the registry (after a restart of this service).
   */
  async endpoint(id: string): Promise<string | undefined> {
    const known = this.#endpoints.get(id);
    if (known) return known;
    // An unknown ID or an unreachable registry both mean: no such child here.
    const found = await this.#deps.registry.get(id).catch(() => undefined);
    if (found?.record.parent !== this.#deps.self.id || !found.record.endpoint) return undefined;
    this.#endpoints.set(id, found.record.endpoint);
    return found.record.endpoint;
  }

  /**
   * After a restart of this service: supervises at once the children its
   * previous incarnation left, and resumes the restarts it was killed in.
   */
  async adopt(records: ServiceRecord[]): Promise<void> {
    if (this.#stopped || !records.some((r) => r.parent === this.#deps.self.id)) return;
    // Its running children are its own again: listed in its status, relayed to.
    for (const r of records) {
      const running = ["ALIVE", "SUSPECT"].includes(r.state);
      if (r.parent === this.#deps.self.id && running && r.endpoint) {
        this.#endpoints.set(r.id, r.endpoint);
      }
    }
    await this.supervisor().reconcile({ orphaned: true, records });
  }

  /** The supervisor of the children, started on first use. */
  supervisor(): Supervisor {
    if (!this.#supervisor) {
      this.#supervisor = new Supervisor({
        selfId: this.#deps.self.id,
        registry: () => this.#deps.registry,
        // A restart runs through the launcher on its record; `on` names it for the metrics.
        restart: (id, role, launcher) =>
          this.spawn({ role, on: launcher, sessions: [], options: {}, restart: id }),
        replace: (lost) =>
          this.spawn({
            role: lost.role,
            on: lost.launcher,
            sessions: lost.sessions,
            options: lost.options,
          }),
        policyOf: this.#deps.policyOf,
        ...(this.#deps.restartable ? { restartable: this.#deps.restartable } : {}),
      });
      this.#supervisor.follow();
    }
    return this.#supervisor;
  }

  /** Stops supervising; children still bootstrapping get SIGTERM, they would outlive it unseen. */
  stopSupervising(): void {
    this.#stopped = true;
    this.#supervisor?.stop();
  }

  /** Ends the launches still under way. */
  killLaunching(): void {
    for (const child of this.#spawning) child.kill("SIGTERM");
  }
}

/** Starts timing a spawn; the function returned records its outcome. */
function spawnTiming(
  metrics: ServiceMetrics,
  request: SpawnRequest,
): (outcome: "ok" | "failed") => void {
  const started = performance.now();
  const launcher = /^([a-z+]{1,16}):\/\//.exec(request.on)?.[1] ?? "other";
  return (outcome) => {
    metrics.spawns.inc({ launcher, outcome });
    metrics.spawnSeconds.observe({ launcher }, (performance.now() - started) / 1000);
    if (request.restart && outcome === "ok") metrics.restarts.inc();
  };
}
