/**
 * A bridge's relay for the relay tests: `brg-11111111`, whose one child,
 * `svc-11111111`, is at `childUrl`.
 */
import type { MiddlewareHandler } from "hono";
import { relay, type RelayMetrics } from "../../src/api/relay.ts";
import type { FabricKeys } from "../../src/crypto/keys.ts";
import { ReplayCache } from "../../src/crypto/replay_cache.ts";

/** The bridge's ID, and its child's. */
export const BRIDGE = "brg-11111111";
export const CHILD = "svc-11111111";

/** The relay of a bridge holding `keys`, bodies limited to `maxBodyBytes`. */
export function bridgeRelay(
  keys: FabricKeys,
  childUrl: string,
  maxBodyBytes = 1024,
  metrics?: RelayMetrics,
): MiddlewareHandler {
  return relay({
    ...(metrics ? { metrics } : {}),
    table: {
      selfId: BRIDGE,
      child: (id) => Promise.resolve(id === CHILD ? childUrl : undefined),
      upstream: () => undefined,
    },
    keys: () => keys,
    replayCache: new ReplayCache(),
    maxBodyBytes,
  });
}
