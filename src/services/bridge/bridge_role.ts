/**
 * The bridge role: a hop of the spawn tree. Besides the common API (a bridge
 * spawns the next hop), it relays requests for other services down the tree
 * and up to the registry and its parent (`relay.ts`); the runtime mounts the
 * relay for every role that declares `relays`. Stateless: a restart starts clean.
 * @module
 */
import type { RoleConfig, RoleDeps, RoleHandle, RoleModule } from "../../runtime/role.ts";

function start(_config: RoleConfig, _deps: RoleDeps): Promise<RoleHandle> {
  return Promise.resolve({ stop: () => Promise.resolve() });
}

/** The bridge role module. */
export const bridgeRole: RoleModule = { start, relays: true, replacement: "fresh" };
