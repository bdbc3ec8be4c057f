/**
 * The contract of a role (DESIGN.md "One binary, many roles"): a component
 * whose `start(ctx)` returns what it adds to its service (routes) and an
 * idempotent `stop()`. A role keeps its state in what
 * `start` returns, never in its module. Roles never import each other; they
 * talk over the API.
 * @module
 */
import type { Hono } from "hono";
import type { RegistryClient } from "../client/registry_client.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import type { SpawnRequest } from "../types/wire.ts";
import type { RegistryEndpoint, Role, ServiceRecord, SpawnResult } from "../types/mod.ts";
import type { ServiceMetrics } from "../metrics/service_metrics.ts";

/** What a role gets when it starts. */
export interface RoleConfig {
  serviceId: string;
  role: Role;
  /** This service's state directory (logs, stores). */
  dir: string;
  /** The service's own endpoint. */
  endpoint: string;
  /** Role-specific settings from the command line (e.g. the registry's `--store`). */
  options: Record<string, string>;
  /** 1 for a new service; higher when it is restarted under its old ID. */
  incarnation: number;
}

export type { ReplacementPolicy } from "../types/mod.ts";
import type { ReplacementPolicy } from "../types/mod.ts";

export type { SpawnHooks } from "../children/children.ts";
import type { SpawnHooks } from "../children/children.ts";

/** What a role may use. */
export interface RoleDeps {
  keys: FabricKeys;
  /** The registry; the registry role gets a client to itself. */
  registry: RegistryClient;
  /**
   * Spawns a child of this service through its own spawn flow (what `POST
   * /v1/spawn` does), supervised like every child.
   */
  spawn(request: SpawnRequest, hooks?: SpawnHooks): Promise<SpawnResult>;
  /**
   * The parent as this service reaches it (its bootstrap endpoint), or null
   * for a root service. A service below the root reaches the rest of the
   * fabric through it, along the target's route.
   */
  parent: { id: string; url: string } | null;
  /** The registries as this service reaches them. */
  registries: RegistryEndpoint[];
  /**
   * This service's metrics: a role adds its gauges (read from its state at
   * scrape time) and counters here, and removes them in `stop()`. Default: none.
   */
  metrics?: ServiceMetrics;
  /** Where this service's own children are, for relaying down the tree. */
  children: {
    /** A child's URL as this service reaches it, or undefined. */
    endpoint(id: string): Promise<string | undefined>;
  };
  /** Where a request for `target` goes when it is not below this service. */
  upstream(target: string): string | undefined;
}

/** What a role gets when it starts: its settings and what it may use. */
export type RoleContext = RoleConfig & RoleDeps;

/** Options of {@linkcode RoleHandle.stop}. */
export interface RoleStopOptions {
  /**
   * This instance was replaced (or fenced itself off): another may already
   * run under its ID, so the role stops within about a second, giving its
   * work only a short grace (docs/failures.md). Default false.
   */
  urgent?: boolean;
  /**
   * Time the role's work gets to end, ms (an agent's tasks: SIGTERM to
   * SIGKILL), when the stop request named one. Default: the role's own.
   */
  graceMs?: number;
}

/** A running role: what it adds to its service, and how it stops. */
export interface RoleHandle {
  /**
   * The role's routes, mounted under `/v1` once it has started; until then
   * (and once it stops) they answer 503. Default: none.
   */
  routes?: Hono;
  /** Stops the role; calling it again does nothing (an urgent call may still hurry it). */
  stop(options?: RoleStopOptions): Promise<void>;
  /**
   * Whether the service's supervisor may restart its `DEAD` child `record`
   * now, asked before each restart: a role that restarts some children
   * itself (the pilot manager resubmits its pilots) says no for those.
   * Default: every child is restarted.
   */
  restartable?(record: ServiceRecord): boolean;
}

/** A role module. */
export interface RoleModule {
  /** Starts the role. */
  start(ctx: RoleContext): Promise<RoleHandle>;
  /** What happens when a service of this role is lost (docs/failures.md). */
  replacement: ReplacementPolicy;
}
