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
 *
 * This finds the dead (exit reports, the registry's change stream, a
 * periodic look at the records); when and how often a child is restarted,
 * and when it is given up, is `_restarts.ts`.
 * @module
 */
import type { RegistryClient } from "../client/registry_client.ts";
import { FabricRequestError } from "../client/fabric_client.ts";
import type { ReplacementPolicy } from "../types/mod.ts";
import { log } from "../config/logging.ts";
import { sleep } from "../config/retry.ts";
import { PENDING_STATES } from "../registry/state_machine.ts";
import type { RegistryEvent, Role, ServiceRecord } from "../types/mod.ts";
import { _killOrphanProcess } from "./_orphan_process.ts";
import { Restarts } from "./_restarts.ts";
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
  /**
   * Asked before each restart of a `DEAD` child: false leaves it as it is
   * (its parent's role restarts it itself, or not at all: a pilot that
   * ended). Default: every child is restarted.
   */
  restartable?: (record: ServiceRecord) => boolean;
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
  #restarts: Restarts;
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
    this.#restarts = new Restarts(deps, this.#options);
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
      if (record.state === "DEAD") this.#restarts.schedule(record.id);
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
    if (restart) this.#restarts.schedule(record.id);
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
    this.#restarts.schedule(id);
  }

  /** Stops following and cancels pending restarts. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#tick);
    this.#watch?.abort();
    this.#restarts.stop();
  }

  #onEvent(event: RegistryEvent): void {
    const record = event.record;
    if (record.parent !== this.#deps.selfId || event.kind !== "transition") return;
    if (event.transition?.to === "DEAD" && record.state === "DEAD") {
      this.#restarts.schedule(record.id);
    }
    if (record.state === "ALIVE") this.#restarts.cancel(record.id);
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
}
