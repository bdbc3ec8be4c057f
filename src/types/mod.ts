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
  /** A restarted service could not pick up its old state. */
  STATE_LOST: 79,
} as const;

/** One registry record per service (DESIGN.md "Registry"). */
export interface ServiceRecord {
  id: string;
  role: Role;
  state: ServiceState;
  incarnation: number;
  host: string;
  pid: number;
  endpoint: string;
  /** Service ID of the parent, or "" for a root service. */
  parent: string;
  /** Service IDs from the root down to this service, this one included. */
  route: string[];
  launcher: string;
  imageHash: string;
  sessions: string[];
  /** Milliseconds since the epoch. */
  started: number;
  /** Milliseconds since the epoch; 0 before the first heartbeat. */
  lastHeartbeat: number;
  restarts: number;
  lastFailure: string;
  /** Milliseconds since the epoch of the last state change. */
  updated: number;
  /** Role settings given at spawn (e.g. an agent's queue); kept for restarts. */
  options: Record<string, string>;
  /**
   * The process that registered this incarnation: a random ID it made at
   * start, sent with each heartbeat. Absent before the service is ALIVE.
   */
  instance?: string | undefined;
  /**
   * Set when this incarnation's death was reported by its parent (the process
   * ended): final for the incarnation, no heartbeat takes it back. Cleared by
   * the next incarnation.
   */
  exited?: boolean | undefined;
}

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
  kind: "transition" | "sessions";
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
