/**
 * The table of built roles. A valid role that is missing here is refused with
 * exit 64 by the command line, never started as a stub.
 * @module
 */
import { registryRole } from "../registry/registry_role.ts";
import { agentRole } from "../services/agent/agent_role.ts";
import { bridgeRole } from "../services/bridge/bridge_role.ts";
import { pilotManagerRole } from "../services/pilot_manager/pilot_manager_role.ts";
import { pubsubRole } from "../services/pubsub/pubsub_role.ts";
import { queueRole } from "../services/queue/queue_role.ts";
import { spawnerRole } from "../services/spawner/spawner_role.ts";
import type { Role } from "../types/mod.ts";
import type { RoleModule } from "./role.ts";

/** Role modules by role name; only built roles appear. */
export const ROLE_MODULES: Partial<Record<Role, RoleModule>> = {
  registry: registryRole,
  spawner: spawnerRole,
  bridge: bridgeRole,
  queue: queueRole,
  pubsub: pubsubRole,
  agent: agentRole,
  "pilot-manager": pilotManagerRole,
};
