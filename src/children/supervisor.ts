/**
 * A parent's care for its children (DESIGN.md "Liveness, restart, reconnect"):
 * a child whose process exits unexpectedly, or that the registry declares
 * DEAD, is restarted under its old ID with the next incarnation, with backoff.
 * A child that cannot pick up its old state (exit 79) is LOST; then the role's
 * replacement policy applies: `fresh` starts a new instance in its place,
 * `propagate` leaves the LOST record, with its sessions, for the applications.
 *
 * Restarts survive their restarter (issue 18): a spawn or restart that no
 * spawner has under way any more (the spawner died mid-bootstrap and came
 * back, or lost track of it while the registry was away) is reconciled: a
 * restart becomes DEAD and is resumed, a first spawn becomes FAILED. The
 * children of a LOST child (it has no next incarnation) are adopted.
 * @module
 */
import type { RegistryClient } from "../client/registry_client.ts";
import { FabricRequestError } from "../client/fabric_client.ts";
import { SpawnFailedError } from "../types/errors.ts";
import type { ReplacementPolicy } from "../types/mod.ts";
import { log } from "../config/logging.ts";
import { sleep } from "../config/retry.ts";
import { PENDING_STATES } from "../registry/state_machine.ts";
import { EXIT, type RegistryEvent, type Role, type ServiceRecord } from "../types/mod.ts";
import { _killOrphanProcess } from "./_orphan_process.ts";
import {
  clearInterval,
  clearTimeout,
  setInterval,
  setTimeout,
  type Timer,
} from "../base/timers.ts";

/** What the supervisor needs from its service. */
export interface SupervisorDeps {
  selfId: string;
  registry: () => RegistryClient;
  /** Restarts a child under its old ID, through `launcher` (the URL on its record). */
  restart: (id: string, role: Role, launcher: string) => Promise<unknown>;
  /** Starts a fresh instance of a lost child's role, with its sessions and launcher. */
  replace: (lost: ServiceRecord) => Promise<{ id: string }>;
  policyOf: (role: Role) => ReplacementPolicy;
}

/** Options of {@linkcode Supervisor}. */
export interface SupervisorOptions {
  /** Restarts allowed per child within `windowMs` before it is given up as LOST. Default 5. */
  maxRestarts?: number;
  /** Default 600000 (10 min). */
  windowMs?: number;
  /** First delay before a restart, doubled each time up to 10 s. Default 200 ms. */
  backoffMs?: number;
  /** Longest wait between two attempts to report a child's exit, ms. Default 2000. */
  reportRetryMs?: number;
  /**
   * How often the children on record are reconciled, ms. A spawn that no
   * spawn of this service has under way and that did not move between two
   * looks is ended (so within twice this). Default 5000.
   */
  reconcileMs?: number;
  /** The clock of restart backoff and the restart window. Default: the real one. */
  clock?: SupervisorClock;
}

/** What the supervisor's restart timing reads and sets (tests give a fake one). */
export interface SupervisorClock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(id: unknown): void;
}

const REAL_CLOCK: SupervisorClock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (id) => clearTimeout(id as Timer),
};

/** Options of {@linkcode Supervisor.reconcile}. */
export interface ReconcileOptions {
  /**
   * This service has just started again: every unfinished spawn on record
   * belongs to its previous incarnation and is ended at once. Default false.
   */
  orphaned?: boolean;
  /** The registry's records, if the caller has them. Default: listed. */
  records?: ServiceRecord[];
}

/** Restarts dead children; `stop()` is idempotent. */
export class Supervisor {
  #deps: SupervisorDeps;
  #options: Required<SupervisorOptions>;
  #logger = log("supervisor");
  #pending = new Map<string, unknown>();
  #running = new Set<string>();
  #history = new Map<string, number[]>();
  /**
   * Per child: restart attempts in a row that started nothing (the host did
   * not answer, the bootstrap failed). They lengthen the backoff but are not
   * restarts: a host that stays away does not use up `maxRestarts`.
   */
  #misses = new Map<string, number>();
  #watch: AbortController | null = null;
  #stopped = false;
  /** Children whose spawn or restart this service has under way. */
  #inflight = new Set<string>();
  /** An unfinished spawn as last seen by reconcile(), by ID. */
  #seen = new Map<string, string>();
  #tick: ReturnType<typeof setInterval> | undefined;

  /** A supervisor for the children of `deps.selfId`. */
  constructor(deps: SupervisorDeps, options: SupervisorOptions = {}) {
    this.#deps = deps;
    this.#options = {
      maxRestarts: 5,
      windowMs: 600_000,
      backoffMs: 200,
      reportRetryMs: 2000,
      reconcileMs: 5000,
      clock: REAL_CLOCK,
      ...options,
    };
  }

  /** A spawn of `id` is under way in this service (recorded, not yet answered). */
  began(id: string): void {
    this.#inflight.add(id);
  }

  /** The spawn of `id` returned or failed. */
  ended(id: string): void {
    this.#inflight.delete(id);
  }

  /**
   * Ends the spawns of this service's children that nobody has under way
   * (docs/failures.md "Restarts survive their restarter"): a restart is
   * recorded DEAD and resumed, a first spawn FAILED, each with the reason;
   * a local process left half-started is killed. Also restarts DEAD
   * children, and the children of a LOST child (adopted).
   * @throws {FabricRequestError} when the registry cannot be listed.
   */
  async reconcile(options: ReconcileOptions = {}): Promise<void> {
    if (this.#stopped) return;
    const self = this.#deps.selfId;
    const records = options.records ?? await this.#deps.registry().list();
    const lost = new Set(
      records.filter((r) => r.parent === self && r.state === "LOST").map((r) => r.id),
    );
    const looked = new Set<string>();
    for (const record of records) {
      const adopted = lost.has(record.parent);
      if (record.parent !== self && !adopted) continue;
      if (record.state === "DEAD") this.#schedule(record.id);
      if (!PENDING_STATES.includes(record.state) || this.#inflight.has(record.id)) continue;
      looked.add(record.id);
      const key = `${record.state}/${record.incarnation}/${record.updated}`;
      if (!options.orphaned && !adopted && this.#seen.get(record.id) !== key) {
        this.#seen.set(record.id, key);
        continue;
      }
      const why = adopted
        ? `spawner ${record.parent} is LOST`
        : options.orphaned
        ? `spawner ${self} restarted during the bootstrap: password discarded`
        : `no progress in ${record.state}${
          record.pid ? "" : " with no process"
        }: spawner ${self} has no spawn of it under way`;
      await this.#endSpawn(record, why);
    }
    for (const id of this.#seen.keys()) if (!looked.has(id)) this.#seen.delete(id);
  }

  async #endSpawn(record: ServiceRecord, why: string): Promise<void> {
    const killed = _killOrphanProcess(record);
    const restart = record.incarnation > 1 || record.state === "RESTARTING";
    this.#logger.warn("Ending the unfinished {what} of {id}: {why}", {
      what: restart ? "restart" : "spawn",
      id: record.id,
      why,
      killed,
    });
    this.#seen.delete(record.id);
    try {
      await this.#deps.registry().transition(record.id, {
        incarnation: record.incarnation,
        to: restart ? "DEAD" : "FAILED",
        reason: restart ? `${why}; the restart is resumed by ${this.#deps.selfId}` : why,
        exited: restart,
      });
    } catch (error) {
      this.#logger.debug("{id} moved on meanwhile: {error}", {
        id: record.id,
        error: String(error),
      });
      return;
    }
    if (restart) this.#schedule(record.id);
  }

  /** Follows the registry's change stream for DEAD children (started once). */
  follow(): void {
    if (this.#watch || this.#stopped) return;
    this.#tick = setInterval(() => {
      this.reconcile().catch((error) =>
        this.#logger.debug("Reconcile skipped: {error}", { error: String(error) })
      );
    }, this.#options.reconcileMs);
    this.#watch = new AbortController();
    const signal = this.#watch.signal;
    void (async () => {
      let since = 0;
      while (!signal.aborted) {
        try {
          await this.#deps.registry().watch(since, (event) => {
            since = Math.max(since, event.seq);
            this.#onEvent(event);
          }, signal);
        } catch (error) {
          if (!signal.aborted) {
            this.#logger.debug("Registry stream broke: {error}", { error: String(error) });
          }
        }
        if (!signal.aborted) await sleep(1000);
      }
    })();
  }

  /**
   * Tells the supervisor a child's process (of `incarnation`) ended with `code`
   * (-1: unknown). If that incarnation was still running (not stopped cleanly,
   * not replaced), it is declared DEAD, final for the incarnation (`exited`:
   * no late heartbeat takes it back), and restarted. The report is retried
   * with backoff (at most `reportRetryMs` apart) until the registry has it.
   */
  async childExited(
    child: { id: string; incarnation: number },
    end: { code: number; why?: string | undefined },
  ): Promise<void> {
    const { code, why } = end;
    if (this.#stopped || code < 0) return;
    const id = child.id;
    const reason = `process exited with code ${code}${why ? `: ${why}` : ""}`;
    for (let delay = this.#options.backoffMs; !this.#stopped;) {
      try {
        const record = (await this.#deps.registry().get(id))?.record;
        if (!record || record.incarnation !== child.incarnation) return;
        if (!["ALIVE", "SUSPECT", "DEAD"].includes(record.state)) return;
        if (record.state !== "DEAD" || !record.exited) {
          await this.#deps.registry().transition(id, {
            incarnation: record.incarnation,
            to: "DEAD",
            reason,
            exited: true,
          });
        }
        break;
      } catch (error) {
        if (!(error instanceof FabricRequestError) || error.status !== 0 && error.status < 500) {
          // The registry answered: the record moved on (a newer incarnation, a stop).
          this.#logger.debug("Exit of {id} not recorded: {error}", { id, error: String(error) });
          return;
        }
        this.#logger.warn("Cannot report the exit of {id} yet: {error}", {
          id,
          error: String(error),
        });
        await sleep(delay);
        delay = Math.min(this.#options.reportRetryMs, delay * 2);
      }
    }
    this.#schedule(id);
  }

  /** Stops following and cancels pending restarts. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#tick);
    this.#watch?.abort();
    for (const timer of this.#pending.values()) this.#options.clock.clearTimer(timer);
    this.#pending.clear();
  }

  #onEvent(event: RegistryEvent): void {
    const record = event.record;
    if (record.parent !== this.#deps.selfId || event.kind !== "transition") return;
    if (event.transition?.to === "DEAD" && record.state === "DEAD") this.#schedule(record.id);
    if (record.state === "ALIVE") {
      this.#forget(record.id);
      this.#misses.delete(record.id);
    }
    // A LOST child has no next incarnation to resume its children's restarts.
    if (event.transition?.to === "LOST" && record.state === "LOST") {
      this.reconcile().catch((error) =>
        this.#logger.warn("Cannot adopt the children of {id}: {error}", {
          id: record.id,
          error: String(error),
        })
      );
    }
  }

  #forget(id: string): void {
    const timer = this.#pending.get(id);
    if (timer !== undefined) this.#options.clock.clearTimer(timer);
    this.#pending.delete(id);
  }

  #schedule(id: string): void {
    if (this.#stopped || this.#pending.has(id) || this.#running.has(id)) return;
    const { clock } = this.#options;
    const now = clock.now();
    const recent = (this.#history.get(id) ?? []).filter((t) => now - t < this.#options.windowMs);
    this.#history.set(id, recent);
    const tries = recent.length + (this.#misses.get(id) ?? 0);
    const delay = Math.min(10_000, this.#options.backoffMs * 2 ** Math.min(tries, 16));
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
      this.#schedule(id);
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
