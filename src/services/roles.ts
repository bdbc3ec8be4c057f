/**
 * The table of built roles. A valid role that is missing here is refused with
 * exit 64 by the command line, never started as a stub.
 * @module
 */
import { registryRole } from "./registry/mod.ts";
import { agentRole } from "./agent/mod.ts";
import { bridgeRole } from "./bridge/mod.ts";
import { pilotManagerRole } from "./pilot_manager/mod.ts";
import { pubsubRole } from "./pubsub/mod.ts";
import { queueRole } from "./queue/mod.ts";
import { spawnerRole } from "./spawner/mod.ts";
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
