/**
 * What a service is made of, before it runs: the fixed facts of its process
 * ({@linkcode ServiceIdentity}), the parts it is built from
 * ({@linkcode ServiceParts}), and its place in the fabric once it holds keys
 * ({@linkcode ServicePlacement}: from its parent's configuration, or for a
 * root from `up`). `service.ts` runs a service from them.
 * @module
 */
import type { RoleSlot } from "../api/role_slot.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import type { ServiceMetrics } from "../metrics/service_metrics.ts";
import type { RegistryEndpoint, ReplacementPolicy, Role } from "../types/mod.ts";
import type { RoleModule } from "./role.ts";

/** Fixed facts of a service process. */
export interface ServiceIdentity {
  id: string;
  /** Random ID of this process, made at its start; heartbeats carry it. Default: none. */
  instance?: string;
  role: Role;
  host: string;
  dir: string;
  endpoint: string;
  /** Role options from the command line. */
  options: Record<string, string>;
}

/** How a service is set up once it holds the keys. */
export interface ServicePlacement {
  keys: FabricKeys;
  registries: RegistryEndpoint[];
  incarnation: number;
  parent: string;
  route: string[];
  launcher: string;
  /** The endpoint registered: as the parent reaches this service. */
  endpoint: string;
  heartbeatMs: number;
  sessions: string[];
  /** Role settings from the spawn request (merged over the command line's). */
  options: Record<string, string>;
  /** Configured by the bootstrap answer: the parent records it ALIVE on its ready report. */
  reportReady?: boolean;
}

/** What a service is built from besides its identity. */
export interface ServiceParts {
  /** The role it runs. */
  module: RoleModule;
  /** Where the role plugs into the API. Default: a slot of its own (no app). */
  slot?: RoleSlot;
  /** What happens when a child of a role is lost. Default: `propagate`. */
  policyOf?: (role: Role) => ReplacementPolicy;
  /** This service's metrics, handed to its role and its spawns. Default: none. */
  metrics?: ServiceMetrics;
}
