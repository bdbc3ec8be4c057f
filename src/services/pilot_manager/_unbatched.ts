/**
 * Pilots on a launcher without a batch system (`local://`, `ssh://`): no job
 * reports their end or keeps their walltime, so the manager does both. Such
 * a pilot ends with its agent's record (`STOPPED`: ENDED; `LOST`: FAILED;
 * `FAILED`: its policy), looked at every few seconds, and its agent is
 * stopped when its walltime has passed since it started.
 * @module
 */
import { clearTimeout, setTimeout } from "../../base/timers.ts";
import type { ServiceRecord } from "../../types/mod.ts";
import { walltimeSeconds } from "../../types/walltime.ts";

/** Whether pilots on `launcher` are batch jobs, whose end the launcher reports. */
export function isBatchLauncher(launcher: string): boolean {
  return launcher.startsWith("slurm://");
}

/**
 * How a running unbatched pilot ends, from its agent's record: ENDED once it
 * is STOPPED (for its walltime when `walltimeReached`), FAILED once LOST,
 * "policy" (resubmit or report) once FAILED; null while it runs.
 */
export function unbatchedEnd(
  record: ServiceRecord,
  walltimeReached: boolean,
): { state: "ENDED" | "FAILED" | "policy"; reason: string } | null {
  const why = record.lastFailure ? `: ${record.lastFailure}` : "";
  if (record.state === "STOPPED") {
    return { state: "ENDED", reason: walltimeReached ? "walltime reached" : "agent stopped" };
  }
  if (record.state === "LOST") return { state: "FAILED", reason: `agent LOST${why}` };
  if (record.state === "FAILED") return { state: "policy", reason: `agent FAILED${why}` };
  return null;
}

/** How often the manager looks at the records of its unbatched pilots, ms. */
export const UNBATCHED_CHECK_MS = 5000;

/**
 * A walltime in ms (types/walltime.ts: minutes, a unit, `HH:MM:SS` or
 * `D-HH:MM:SS`); null for none or another form.
 */
export function walltimeMs(text: string): number | null {
  const seconds = walltimeSeconds(text);
  return seconds === null ? null : seconds * 1000;
}

/** Walltime timers of unbatched pilots, by pilot ID. */
export class Walltimes {
  #timers = new Map<string, ReturnType<typeof setTimeout>>();
  /** Pilots whose walltime passed: their agent was stopped for it. */
  readonly reached = new Set<string>();

  /** Calls `expire(id)` once `walltime` has passed since `startedAt` (ms since the epoch). */
  keep(id: string, walltime: string, startedAt: number, expire: (id: string) => void): void {
    this.forget(id);
    const ms = walltimeMs(walltime);
    if (ms === null) return;
    const left = Math.max(0, startedAt + ms - Date.now());
    this.#timers.set(
      id,
      setTimeout(() => {
        this.#timers.delete(id);
        this.reached.add(id);
        expire(id);
      }, Math.min(left, 2 ** 31 - 1)),
    );
  }

  /** Stops keeping `id`'s walltime, and forgets that it was reached. */
  forget(id: string): void {
    const timer = this.#timers.get(id);
    if (timer !== undefined) clearTimeout(timer);
    this.#timers.delete(id);
    this.reached.delete(id);
  }

  /** Stops every timer. */
  clear(): void {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.reached.clear();
  }
}
