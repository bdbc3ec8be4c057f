/**
 * The bridge role: a hop of the spawn tree. Besides the common API (a bridge
 * spawns the next hop), it relays requests for other services down the tree
 * and up to the registry and its parent (`api/relay.ts`), as the front
 * middleware of its service, and aggregates its children's heartbeats into
 * one batch to the registry (`health/aggregator.ts`). Stateless: a restart
 * starts clean.
 * @module
 */
import { relayFront } from "../../api/relay_front.ts";
import { aggregatorRoutes, HeartbeatAggregator } from "../../health/aggregator.ts";
import type { RoleContext, RoleHandle, RoleModule } from "../../runtime/role.ts";

function start(ctx: RoleContext): Promise<RoleHandle> {
  const relay = relayFront(ctx);
  const aggregator = new HeartbeatAggregator(ctx.registry, { via: ctx.serviceId });
  return Promise.resolve({
    front: relay.front,
    routes: aggregatorRoutes(aggregator),
    stop: async () => {
      relay.stop();
      await aggregator.stop();
    },
  });
}

/** The bridge role module. */
export const bridgeRole: RoleModule = { start, replacement: "fresh" };
