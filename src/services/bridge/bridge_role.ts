/**
 * The bridge role: a hop of the spawn tree. Besides the common API (a bridge
 * spawns the next hop, and relays requests along the tree, as every service
 * does: `api/relay.ts`), it aggregates its children's heartbeats into one
 * batch to the registry (`health/aggregator.ts`). Stateless: a restart starts
 * clean.
 * @module
 */
import { aggregatorRoutes, HeartbeatAggregator } from "../../health/aggregator.ts";
import type { RoleContext, RoleHandle, RoleModule } from "../../runtime/role.ts";

function start(ctx: RoleContext): Promise<RoleHandle> {
  const aggregator = new HeartbeatAggregator(ctx.registry, { via: ctx.serviceId });
  return Promise.resolve({
    routes: aggregatorRoutes(aggregator),
    stop: () => aggregator.stop(),
  });
}

/** The bridge role module. */
export const bridgeRole: RoleModule = { start, replacement: "fresh" };
