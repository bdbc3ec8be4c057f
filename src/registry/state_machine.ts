/**
 * The service state machine of DESIGN.md "Registry":
 * `LAUNCHING -> BOOTSTRAPPING -> CONFIGURING -> ALIVE`, `ALIVE -> SUSPECT -> DEAD`,
 * `DEAD -> RESTARTING -> ALIVE | FAILED -> LOST`, and `STOPPED` for a clean stop.
 * @module
 */
import type { ServiceState } from "../types/mod.ts";

const NEXT: Record<ServiceState, readonly ServiceState[]> = {
  LAUNCHING: ["BOOTSTRAPPING", "FAILED", "STOPPED"],
  BOOTSTRAPPING: ["CONFIGURING", "FAILED", "STOPPED"],
  CONFIGURING: ["ALIVE", "FAILED", "STOPPED"],
  ALIVE: ["SUSPECT", "DEAD", "STOPPED"],
  // A heartbeat that arrives late takes a suspect (or a dead, not yet replaced)
  // service back; DESIGN.md leaves the choice to us and docs/failures.md records it.
  SUSPECT: ["ALIVE", "DEAD", "STOPPED"],
  DEAD: ["ALIVE", "RESTARTING", "FAILED", "LOST", "STOPPED"],
  RESTARTING: ["BOOTSTRAPPING", "CONFIGURING", "ALIVE", "FAILED", "STOPPED"],
  FAILED: ["LOST", "RESTARTING", "STOPPED"],
  LOST: [],
  STOPPED: [],
};

/** Whether a record may move from `from` to `to` within one incarnation. */
export function canTransition(from: ServiceState, to: ServiceState): boolean {
  return NEXT[from].includes(to);
}

/** States in which a service is expected to heartbeat. */
export const LIVE_STATES: readonly ServiceState[] = ["ALIVE", "SUSPECT"];

/** States after which the incarnation never runs again. */
export const FINAL_STATES: readonly ServiceState[] = ["STOPPED", "LOST"];
