/**
 * The facts a service process starts with and the placement it gets when it
 * is configured; kept apart so `service.ts` stays about the behaviour.
 * @module
 */
import type { FabricKeys } from "../crypto/keys.ts";
import type { RegistryEndpoint, Role } from "../types/mod.ts";

/** Fixed facts of a service process. */
export interface ServiceIdentity {
  id: string;
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
}
