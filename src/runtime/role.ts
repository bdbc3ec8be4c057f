/**
 * The contract of a role (DESIGN.md "One binary, many roles"): a module whose
 * `start(config, deps)` returns a handle with an idempotent `stop()`. Roles
 * never import each other; they talk over the API.
 * @module
 */
import type { Hono } from "hono";
import type { RegistryClient } from "../client/registry_client.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import type { SpawnRequest } from "../api/schemas.ts";
import type { RegistryEndpoint, Role, SpawnResult } from "../types/mod.ts";
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

/**
 * Thrown by a role's `start()` when a restarted service cannot pick up its
 * old state; the service then exits 79 and is marked FAILED, then LOST.
 */
export class StateLostError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StateLostError";
  }
}

/**
 * What the fabric does when a service of this role is lost: `fresh` starts a
 * new instance of the role in its place; `propagate` tells every application
 * session that used it.
 */
export type ReplacementPolicy = "fresh" | "propagate";

/** What a role may learn of a spawn it asked for. */
export interface SpawnHooks {
  /** Called once the new service is on record (LAUNCHING), before it is launched. */
  onRecorded?: (service: { id: string; incarnation: number }) => void;
}

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
}

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

/** A running role. */
export interface RoleHandle {
  /** Stops the role; calling it again does nothing (an urgent call may still hurry it). */
  stop(options?: RoleStopOptions): Promise<void>;
}

/** A role module. */
export interface RoleModule {
  /** Starts the role. */
  start(config: RoleConfig, deps: RoleDeps): Promise<RoleHandle>;
  /** Routes of the role, mounted under `/v1` before the role starts. */
  routes?: () => Hono;
  /** Whether the service relays requests meant for other services (bridges). */
  relays?: boolean;
  /** What happens when a service of this role is lost (docs/failures.md). */
  replacement: ReplacementPolicy;
}
