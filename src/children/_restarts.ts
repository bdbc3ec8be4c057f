/**
 * When a parent restarts a dead child, and when it gives up
 * (docs/failures.md "Restart under the old ID"): backoff from 200 ms,
 * doubling to at most 10 s; at most 5 restarts in 10 minutes, then FAILED
 * and LOST and the role's replacement policy. An attempt that started
 * nothing (the host did not answer, the bootstrap failed) is a miss: it
 * lengthens the backoff but is not a restart, so a host that stays away costs
 * no restarts. The supervisor (`supervisor.ts`) finds the dead; this decides
 * the rest.
 * @module
 */
import { SpawnFailedError } from "../types/errors.ts";
import { EXIT, type ServiceRecord } from "../types/mod.ts";
import { log } from "../config/logging.ts";
import type { SupervisorClock, SupervisorDeps } from "./supervisor.ts";

/** The restart limits of {@linkcode Restarts} (the supervisor's options). */
export interface RestartLimits {
  maxRestarts: number;
  windowMs: number;
  backoffMs: number;
  clock: SupervisorClock;
}

/** Restarts of one parent's children; `stop()` cancels what is pending. */
export class Restarts {
  #deps: SupervisorDeps;
  #options: RestartLimits;
  #logger = log("supervisor");
  #stopped = false;
  #pending = new Map<string, unknown>();
  #running = new Set<string>();
  /** Per child: when its restarts within the window began. */
  #history = new Map<string, number[]>();
  /** Per child: attempts in a row that started nothing. */
  #misses = new Map<string, number>();

  /** Restarts through `deps`, within `limits`. */
  constructor(deps: SupervisorDeps, limits: RestartLimits) {
    this.#deps = deps;
    this.#options = limits;
  }

  /** Cancels every pending restart; nothing is scheduled after. */
  stop(): void {
    this.#stopped = true;
    for (const timer of this.#pending.values()) this.#options.clock.clearTimer(timer);
    this.#pending.clear();
  }

  /** Cancels a pending restart of `id` (it is ALIVE again), and forgets its misses. */
  cancel(id: string): void {
    const timer = this.#pending.get(id);
    if (timer !== undefined) this.#options.clock.clearTimer(timer);
    this.#pending.delete(id);
    this.#misses.delete(id);
  }

  /** Restarts `id` after its backoff, unless one is pending or under way. */
  schedule(id: string): void {
    if (this.#stopped || this.#pending.has(id) || this.#running.has(id)) return;
    const { clock } = this.#options;
    const now = clock.now();
    const recent = (this.#history.get(id) ?? []).filter((t) => now - t < this.#options.windowMs);
    this.#history.set(id, recent);
    const tries = recent.length + (this.#misses.get(id) ?? 0);
    // Out of restarts: the attempt gives up at once, not after one more backoff.
    const delay = recent.length >= this.#options.maxRestarts
      ? 0
      : Math.min(10_000, this.#options.backoffMs * 2 ** Math.min(tries, 16));
    this.#pending.set(id, clock.setTimer(() => void this.#attempt(id), delay));
  }

  async #attempt(id: string): Promise<void> {
    this.#pending.delete(id);
    if (this.#stopped) return;
    const record = (await this.#deps.registry().get(id).catch((error) => {
      this.#logger.debug("Cannot read {id}; no restart now: {error}", { id, error: String(error) });
      return undefined;
    }))?.record;
    if (!record || !["DEAD", "FAILED", "SUSPECT"].includes(record.state)) return;
    if (this.#deps.restartable?.(record) === false) {
      // Its parent's role keeps it down, or restarts it itself: no more tries from here.
      this.#logger.debug("Not restarting {id}: its parent's role keeps it ({state})", {
        id,
        state: record.state,
      });
      this.#misses.delete(id);
      return;
    }
    const recent = this.#history.get(id) ?? [];
    if (recent.length >= this.#options.maxRestarts) {
      await this.#giveUp(
        record,
        `gave up after ${recent.length} restarts in ${this.#options.windowMs / 1000} s`,
      );
      return;
    }
    const stamp = this.#options.clock.now();
    recent.push(stamp);
    this.#running.add(id);
    try {
      await this.#deps.restart(id, record.role, record.launcher);
      this.#misses.delete(id);
      this.#logger.info("Restarted {id} under its old ID; exit code {code} ({lastFailure})", {
        id,
        // A death by TTL has no exit code: its parent never saw the process end.
        code: /exited with code (-?\d+)/.exec(record.lastFailure)?.[1] ?? "unknown",
        lastFailure: record.lastFailure || record.state,
      });
    } catch (error) {
      if (error instanceof SpawnFailedError && error.childExitCode === EXIT.STATE_LOST) {
        const lost = (await this.#deps.registry().get(id).catch((error) => {
          this.#logger.debug("Cannot read {id} to replace it: {error}", {
            id,
            error: String(error),
          });
          return undefined;
        }))?.record;
        if (lost) await this.#replace(lost);
        return;
      }
      this.#logger.warn("Restart of {id} failed: {error}", { id, error: String(error) });
      // Nothing started: a miss, not a restart (docs/failures.md "Restart under the old ID").
      recent.splice(recent.lastIndexOf(stamp), 1);
      this.#misses.set(id, (this.#misses.get(id) ?? 0) + 1);
      this.#running.delete(id);
      this.schedule(id);
      return;
    } finally {
      this.#running.delete(id);
    }
  }

  async #giveUp(record: ServiceRecord, reason: string): Promise<void> {
    const registry = this.#deps.registry();
    if (record.state !== "FAILED") {
      await registry.transition(record.id, {
        incarnation: record.incarnation,
        to: "FAILED",
        reason,
      })
        .catch((error) =>
          this.#logger.debug("Cannot record {id} FAILED: {error}", {
            id: record.id,
            error: String(error),
          })
        );
    }
    const lost = await registry.transition(record.id, {
      incarnation: record.incarnation,
      to: "LOST",
      reason,
    }).catch((error) => {
      this.#logger.debug("Cannot record {id} LOST: {error}", {
        id: record.id,
        error: String(error),
      });
      return undefined;
    });
    if (lost) await this.#replace(lost);
  }

  async #replace(lost: ServiceRecord): Promise<void> {
    if (this.#deps.policyOf(lost.role) !== "fresh") {
      this.#logger.warn("{id} is LOST; its sessions are told through the registry", {
        id: lost.id,
      });
      return;
    }
    try {
      const fresh = await this.#deps.replace(lost);
      this.#logger.info("{id} is LOST; {fresh} replaces it", { id: lost.id, fresh: fresh.id });
    } catch (error) {
      this.#logger.error("Could not replace {id}: {error}", { id: lost.id, error: String(error) });
    }
  }
}
