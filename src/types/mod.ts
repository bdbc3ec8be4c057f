/**
 * Wire and record types shared by every module of fabricd.
 *
 * This folder imports nothing from `src/`: it is the vocabulary that roles, the
 * registry and the command line agree on.
 *
 * @example
 * ```ts
 * import { EXIT, ROLES } from "./src/types/mod.ts";
 * if (!ROLES.includes("registry")) Deno.exit(EXIT.USAGE);
 * ```
 * @module
 */
import type { ServiceRecord } from "./service_record.ts";

/** Every role name fabricd knows, built or not. */
export const ROLES = [
  "registry",
  "spawner",
  "bridge",
  "agent",
  "queue",
  "pubsub",
  "pilot-manager",
] as const;

/** A role name. */
export type Role = typeof ROLES[number];

/**
 * What the fabric does when a service of a role is lost: `fresh` starts a
 * new instance of the role in its place; `propagate` tells every application
 * session that used it.
 */
export type ReplacementPolicy = "fresh" | "propagate";

/** Roles that this build can actually run; the others are refused with exit 64. */
export const BUILT_ROLES: readonly Role[] = [
  "registry",
  "spawner",
  "bridge",
  "agent",
  "queue",
  "pubsub",
  "pilot-manager",
];

/** Every state a service record can be in (DESIGN.md "Registry"). */
export const SERVICE_STATES = [
  "LAUNCHING",
  "BOOTSTRAPPING",
  "CONFIGURING",
  "ALIVE",
  "SUSPECT",
  "DEAD",
  "RESTARTING",
  "FAILED",
  "LOST",
  "STOPPED",
] as const;

/** A service state. */
export type ServiceState = typeof SERVICE_STATES[number];

/** Exit codes of every command and role; the README's table mirrors this. */
export const EXIT = {
  OK: 0,
  /** A generic failure that no other code describes. */
  FAILURE: 1,
  /** Wrong command line: unknown flag, missing argument, role not built. */
  USAGE: 64,
  /** An input file (fabric file, key file) is malformed. */
  DATA: 65,
  /** Bootstrap: the parent could not be reached. */
  UNREACHABLE: 69,
  /** Bootstrap: the one-time password was refused. */
  REFUSED: 77,
  /** Bad configuration: missing fabric file, wrong pin, unusable directory. */
  CONFIG: 78,
  /** An output file or cache cannot be created (`fabricd report --out`, a self-extracting cache). */
  CANNOT_CREATE: 73,
  /** A restarted service could not pick up its old state. */
  STATE_LOST: 79,
} as const;

/** One registry record per service (DESIGN.md "Registry"), inferred from its zod schema. */
export type { ServiceRecord };

/** One stored state transition. */
export interface Transition {
  /** Position in the registry's change stream; grows by one per change. */
  seq: number;
  id: string;
  incarnation: number;
  from: ServiceState | "";
  to: ServiceState;
  reason: string;
  /** Milliseconds since the epoch. */
  at: number;
}

/** An event on the registry's change stream. */
export interface RegistryEvent {
  seq: number;
  /** `removed`: the record was forgotten (`record` is its last state). */
  kind: "transition" | "sessions" | "removed";
  record: ServiceRecord;
  transition?: Transition;
}

/** The answer of a spawn request (DESIGN.md bootstrap step 7). */
export interface SpawnResult {
  id: string;
  endpoint: string;
  state: ServiceState;
}

/** What a service's `GET /v1/status` answers. */
export interface ServiceStatus {
  id: string;
  role: Role;
  state: ServiceState;
  incarnation: number;
  host: string;
  pid: number;
  endpoint: string;
  parent: string;
  sessions: string[];
  children: string[];
  /** One-time passwords this service has issued that are still usable. */
  pendingPasswords: number;
  uptimeMs: number;
}

/** A registry endpoint as the fabric file and the key bundle carry it. */
export interface RegistryEndpoint {
  id: string;
  url: string;
}
