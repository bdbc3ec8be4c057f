/**
 * The facts a service process starts with, the placement it gets when it is
 * configured, and the record it registers from them; kept apart so
 * `service.ts` stays about the behaviour.
 * @module
 */
import type { FabricKeys } from "../crypto/keys.ts";
import type { RegistryEndpoint, Role, ServiceRecord } from "../types/mod.ts";

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
}

/**
 * The ALIVE record a service registers once placed. A service taking over
 * its own old record (`old`) keeps its image hash and last failure, and
 * counts a restart when its incarnation went up.
 */
export function aliveRecord(
  identity: ServiceIdentity,
  placement: ServicePlacement,
  facts: { old: ServiceRecord | undefined; sessions: string[]; started: number },
): ServiceRecord {
  const { old } = facts;
  const now = Date.now();
  return {
    id: identity.id,
    role: identity.role,
    state: "ALIVE",
    incarnation: placement.incarnation,
    host: identity.host,
    pid: Deno.pid,
    endpoint: placement.endpoint,
    parent: placement.parent,
    route: placement.route,
    launcher: placement.launcher,
    imageHash: old?.imageHash ?? "",
    sessions: facts.sessions,
    started: facts.started,
    lastHeartbeat: now,
    restarts: old ? old.restarts + (old.incarnation < placement.incarnation ? 1 : 0) : 0,
    lastFailure: old?.lastFailure ?? "",
    updated: now,
    options: placement.options,
    ...(identity.instance ? { instance: identity.instance } : {}),
  };
}
