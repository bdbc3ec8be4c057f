/**
 * The record a spawn creates: a new service's first record (LAUNCHING), or
 * the next incarnation of a dead child restarted under its old ID
 * (RESTARTING), checked against what the registry holds. The spawner owns
 * this record's life: it records the child ALIVE at the incarnation planned
 * here once the child reports ready (docs/protocol.md 4.8).
 * @module
 */
import type { RegistryClient } from "../client/registry_client.ts";
import { ConflictError } from "../types/errors.ts";
import type { ServiceRecord, ServiceState } from "../types/mod.ts";
import type { SpawnRequest } from "../types/wire.ts";
import { newServiceId } from "./service_id.ts";

/** What planning needs of the spawning service. */
export interface PlanDeps {
  registry: RegistryClient;
  /** The spawning service: the parent of the new one. */
  self: { id: string; url: string; route: string[] };
  /** Launcher given by the caller instead of the one `request.on` names. */
  launcher?: { url: string } | undefined;
}

/** What one spawn (new or restart) will create. */
export interface SpawnPlan {
  record: ServiceRecord;
  /** Why the record is written: the reason of its first transition. */
  reason: string;
  restart: boolean;
  /** The state the previous incarnation is in (restarts). */
  from?: ServiceState;
}

/** The first record of a new service of `request.role` below `deps.self`. */
export function newPlan(request: SpawnRequest, deps: PlanDeps): SpawnPlan {
  const id = newServiceId(request.role);
  const now = Date.now();
  return {
    restart: false,
    reason: `spawn requested by ${deps.self.id}`,
    record: {
      id,
      role: request.role,
      state: "LAUNCHING",
      incarnation: 1,
      host: "",
      pid: 0,
      endpoint: "",
      parent: deps.self.id,
      route: [...deps.self.route, id],
      launcher: deps.launcher?.url ?? request.on,
      imageHash: "",
      sessions: request.sessions,
      started: now,
      lastHeartbeat: 0,
      restarts: 0,
      lastFailure: "",
      updated: now,
      options: request.options,
    },
  };
}

/** States from which a service may be restarted under its old ID. */
export const RESTARTABLE: readonly ServiceState[] = ["SUSPECT", "DEAD", "FAILED", "STOPPED"];

/**
 * The next incarnation of child `id`, restarted under its old ID.
 * @throws {ConflictError} when it is not this service's child or not restartable.
 */
export async function restartPlan(id: string, deps: PlanDeps): Promise<SpawnPlan> {
  const found = await deps.registry.get(id);
  if (!found) throw new ConflictError(`No service "${id}" in the registry: nothing to restart`);
  const old = found.record;
  // A child of a LOST child has no parent left to restart it: its
  // grandparent adopts it (docs/failures.md).
  const parent = old.parent && old.parent !== deps.self.id
    ? (await deps.registry.get(old.parent))?.record
    : undefined;
  const adopted = parent?.parent === deps.self.id && parent.state === "LOST";
  if (old.parent !== deps.self.id && !adopted) {
    throw new ConflictError(
      `Service "${id}" was spawned by "${
        old.parent || "nobody"
      }", not "${deps.self.id}": ask its parent`,
    );
  }
  if (!RESTARTABLE.includes(old.state)) {
    throw new ConflictError(
      `Service "${id}" is ${old.state}: only ${RESTARTABLE.join(", ")} services are restarted`,
    );
  }
  const now = Date.now();
  // The death report of the old incarnation is not the new one's.
  const { exited: _exited, ...kept } = old;
  return {
    restart: true,
    from: old.state,
    reason: `restarting incarnation ${old.incarnation} (${old.state}${
      old.lastFailure ? `: ${old.lastFailure}` : ""
    }) as ${old.incarnation + 1}${adopted ? `, adopted from LOST spawner ${old.parent}` : ""}`,
    record: {
      ...kept,
      state: "RESTARTING",
      incarnation: old.incarnation + 1,
      pid: 0,
      endpoint: "",
      lastHeartbeat: 0,
      restarts: old.restarts + 1,
      updated: now,
      ...(adopted ? { parent: deps.self.id, route: [...deps.self.route, id] } : {}),
    },
  };
}
