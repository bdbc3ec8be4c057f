/**
 * The management app of one service, with one role's routes mounted, as the
 * runtime builds it: for tests of a role's routes.
 * @module
 */
import type { Hono } from "hono";
import { createApp } from "../../src/api/app.ts";
import { RoleSlot } from "../../src/api/role_slot.ts";
import type { ServiceHandlers } from "../../src/api/service_handlers.ts";
import { type FabricKeys, ReplayCache } from "../../src/crypto/mod.ts";

/** The app of service `serviceId`, signing with `keys`, with `routes` mounted. */
export function roleApp(serviceId: string, keys: FabricKeys, routes: Hono): Hono {
  const slot = new RoleSlot();
  const app = createApp({
    serviceId,
    keys: () => keys,
    replayCache: new ReplayCache(),
    handlers: {} as ServiceHandlers,
    role: slot,
  });
  slot.mount({ routes });
  return app;
}
