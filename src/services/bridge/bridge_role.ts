/**
 * The bridge role: a hop of the spawn tree. Besides the common API (a bridge
 * spawns the next hop), it relays requests for other services down the tree
 * and up to the registry and its parent (`api/relay.ts`), as the front
 * middleware of its service. Stateless: a restart starts clean.
 * @module
 */
import { relayFront } from "../../api/relay_front.ts";
import type { RoleContext, RoleHandle, RoleModule } from "../../runtime/role.ts";

function start(ctx: RoleContext): Promise<RoleHandle> {
  const relay = relayFront(ctx);
  return Promise.resolve({
    front: relay.front,
    stop: () => {
      relay.stop();
      return Promise.resolve();
    },
  });
}

/** The bridge role module. */
export const bridgeRole: RoleModule = { start, replacement: "fresh" };
