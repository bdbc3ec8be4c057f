/**
 * The spawner role. Every service can spawn through its management API
 * (DESIGN.md "Words"); a spawner is a service that does only that, so it is
 * the lightest process to keep at each hop. Its role adds no routes.
 * @module
 */
import type { RoleHandle, RoleModule } from "../../runtime/role.ts";

/** Starts the spawner role: nothing beyond the common API to start. */
function start(): Promise<RoleHandle> {
  return Promise.resolve({ stop: () => Promise.resolve() });
}

/** The spawner role module. */
export const spawnerRole: RoleModule = { start, replacement: "fresh" };
