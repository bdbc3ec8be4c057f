/**
 * The table of built roles. A valid role that is missing here is refused with
 * exit 64 by the command line, never started as a stub.
 * @module
 */
import { registryRole } from "./registry/registry_role.ts";
import { agentRole } from "./agent/agent_role.ts";
import { bridgeRole } from "./bridge/bridge_role.ts";
import { pilotManagerRole } from "./pilot_manager/pilot_manager_role.ts";
import { pubsubRole } from "./pubsub/pubsub_role.ts";
import { queueRole } from "./queue/queue_role.ts";
import { spawnerRole } from "./spawner/spawner_role.ts";
import type { Role } from "../types/mod.ts";
import type { RoleModule } from "../runtime/role.ts";

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
