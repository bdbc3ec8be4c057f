/**
 * A root service of `fabricd up` (the registry, the root spawner: no parent,
 * started from the key file) that starts again under its old ID goes through
 * the state machine like every other restart (issue 18, item 6):
 * `ALIVE -> DEAD -> RESTARTING -> ALIVE`, never `ALIVE -> ALIVE`.
 * @module
 */
import type { RegistryClient } from "../client/registry_client.ts";
import type { ServiceRecord } from "../types/mod.ts";

/**
 * Records the start of a root service's next incarnation over its `old`
 * record and returns the record the new incarnation continues from: the
 * previous incarnation, if still on record as running, is declared DEAD
 * (its process is gone: this one took its ID), then the next incarnation is
 * put RESTARTING. A root stopped cleanly (STOPPED) starts afresh: nothing is
 * written, and the returned record carries the next incarnation. A root
 * already RESTARTING (an earlier start died before it was ALIVE) continues
 * that incarnation.
 * @throws {FabricRequestError} when the registry refuses or cannot be reached.
 */
export async function beginRootIncarnation(
  registry: RegistryClient,
  old: ServiceRecord,
): Promise<ServiceRecord> {
  if (old.state === "RESTARTING") return old;
  if (old.state === "STOPPED" || old.state === "LOST") {
    return { ...old, incarnation: old.incarnation + 1 };
  }
  let last = old;
  if (old.state !== "DEAD" && old.state !== "FAILED") {
    last = await registry.transition(old.id, {
      incarnation: old.incarnation,
      to: "DEAD",
      reason: `incarnation ${old.incarnation} ended without a clean stop (${old.state} on record)` +
        ": its ID was started again",
      exited: true,
    });
  }
  return await registry.put(
    {
      ...last,
      state: "RESTARTING",
      incarnation: last.incarnation + 1,
      pid: 0,
      endpoint: "",
      lastHeartbeat: 0,
      restarts: last.restarts + 1,
      updated: Date.now(),
    },
    `restarting incarnation ${last.incarnation} (${last.state}${
      last.lastFailure ? `: ${last.lastFailure}` : ""
    }) as ${last.incarnation + 1}`,
  );
}
