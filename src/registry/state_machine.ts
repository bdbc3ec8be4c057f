/**
 * The service state machine of DESIGN.md "Registry" and docs/failures.md:
 * `LAUNCHING -> BOOTSTRAPPING -> CONFIGURING -> ALIVE`, `ALIVE -> SUSPECT -> DEAD`,
 * `DEAD -> RESTARTING -> ALIVE | FAILED -> LOST`, and `STOPPED` for a clean stop.
 * @module
 */
import type { ServiceState } from "../types/mod.ts";

const NEXT: Record<ServiceState, readonly ServiceState[]> = {
  LAUNCHING: ["BOOTSTRAPPING", "FAILED", "STOPPED"],
  // A restart's bootstrap that ends without the child's fault (its spawner
  // died, the launch or configure failed) is a death, resumed by a restart;
  // FAILED is for exit 79 and exhausted restarts (issue 18).
  BOOTSTRAPPING: ["CONFIGURING", "DEAD", "FAILED", "STOPPED"],
  CONFIGURING: ["ALIVE", "DEAD", "FAILED", "STOPPED"],
  ALIVE: ["SUSPECT", "DEAD", "STOPPED"],
  // A heartbeat that arrives late takes a suspect (or a dead, not yet replaced)
  // service back; DESIGN.md leaves the choice to us and docs/failures.md records it.
  SUSPECT: ["ALIVE", "DEAD", "STOPPED"],
  DEAD: ["ALIVE", "RESTARTING", "FAILED", "LOST", "STOPPED"],
  RESTARTING: ["BOOTSTRAPPING", "CONFIGURING", "ALIVE", "DEAD", "FAILED", "STOPPED"],
  FAILED: ["LOST", "RESTARTING", "STOPPED"],
  LOST: [],
  STOPPED: [],
};

/**
 * How a new incarnation may begin, by the state its predecessor ended in
 * (`""`: no predecessor). A first spawn starts LAUNCHING; a restart starts
 * RESTARTING after a death, a failure or a clean stop; a root service of
 * `fabricd up` (no parent, reads the key file) starts ALIVE when it is new,
 * was stopped cleanly or was given up (LOST).
 */
const FIRST: Record<ServiceState | "", readonly ServiceState[]> = {
  "": ["LAUNCHING", "ALIVE"],
  LAUNCHING: [],
  BOOTSTRAPPING: [],
  CONFIGURING: [],
  ALIVE: [],
  SUSPECT: [],
  RESTARTING: [],
  DEAD: ["RESTARTING"],
  FAILED: ["RESTARTING"],
  STOPPED: ["RESTARTING", "ALIVE"],
  LOST: ["ALIVE"],
};

/** Whether a record may move from `from` to `to` within one incarnation. */
export function canTransition(from: ServiceState, to: ServiceState): boolean {
  return NEXT[from].includes(to);
}

/**
 * Whether the next incarnation may begin in `to` when the previous one ended
 * in `from` (`""` for a service's first record).
 */
export function canBeginIncarnation(from: ServiceState | "", to: ServiceState): boolean {
  return FIRST[from].includes(to);
}

/** States in which a service is expected to heartbeat. */
export const LIVE_STATES: readonly ServiceState[] = ["ALIVE", "SUSPECT"];

/** States after which the incarnation never runs again. */
export const FINAL_STATES: readonly ServiceState[] = ["STOPPED", "LOST"];

/** States of a spawn or restart under way: the record waits for its spawner. */
export const PENDING_STATES: readonly ServiceState[] = [
  "LAUNCHING",
  "BOOTSTRAPPING",
  "CONFIGURING",
  "RESTARTING",
];
