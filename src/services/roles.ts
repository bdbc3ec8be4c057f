/**
 * The table of built roles. A valid role that is missing here is refused with
 * exit 64 by the command line, never started as a stub.
 *
 * A service runs one role, so it loads only that role's code: each entry
 * holds a loader (`import()` of the role's `mod.ts`, a chunk of its own in
 * the bundled image) and the role's replacement policy, which a spawner needs
 * for every child's role without loading any of them (docs/performance.md
 * "idle-memory").
 * @module
 */
import type { ReplacementPolicy, Role } from "../types/mod.ts";
import type { RoleModule } from "../runtime/role.ts";

/** A built role, before its code is loaded. */
export interface RoleEntry {
  /** The role's {@linkcode RoleModule.replacement}, known without loading it. */
  replacement: ReplacementPolicy;
  /** Loads the role's module (once; later calls answer the same module). */
  load(): Promise<RoleModule>;
}

/** Role entries by role name; only built roles appear. */
export const ROLE_TABLE: Readonly<Partial<Record<Role, RoleEntry>>> = {
  registry: {
    replacement: "propagate",
    load: async () => (await import("./registry/mod.ts")).registryRole,
  },
  spawner: {
    replacement: "fresh",
    load: async () => (await import("./spawner/mod.ts")).spawnerRole,
  },
  bridge: {
    replacement: "fresh",
    load: async () => (await import("./bridge/mod.ts")).bridgeRole,
  },
  queue: {
    replacement: "propagate",
    load: async () => (await import("./queue/mod.ts")).queueRole,
  },
  pubsub: {
    replacement: "fresh",
    load: async () => (await import("./pubsub/mod.ts")).pubsubRole,
  },
  agent: {
    replacement: "fresh",
    load: async () => (await import("./agent/mod.ts")).agentRole,
  },
  "pilot-manager": {
    replacement: "fresh",
    load: async () => (await import("./pilot_manager/mod.ts")).pilotManagerRole,
  },
};

/**
 * What the fabric does when a service of `role` is lost, without loading the
 * role's code; `propagate` for a role that is not built.
 */
export function replacementOf(role: Role): ReplacementPolicy {
  return ROLE_TABLE[role]?.replacement ?? "propagate";
}

/**
 * Loads the module of `role`.
 * @returns The module, or null when the role is not built in this version.
 */
export async function loadRole(role: Role): Promise<RoleModule | null> {
  const entry = ROLE_TABLE[role];
  return entry ? await entry.load() : null;
}
