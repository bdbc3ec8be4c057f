/**
 * A spawner's pool of warm processes (issue 16): fabricd processes started
 * ahead of their spawn that have loaded the code and wait on their stdin pipe
 * for an ID, a role and a one-time password. A spawn on `local://` or on an
 * `ssh://` host takes one instead of starting a process, so it costs a
 * bootstrap, not a Deno start. Over SSH the "pipe" is the standard input of
 * the warm process's own channel on the spawner's connection to that host.
 *
 * The pool keeps `perRole` processes (FABRIC_WARM_POOL, default 1) for each
 * role it has been asked to spawn, at most `maxTotal` in all, and refills
 * after each spawn. Warm processes are not services: they listen on nothing,
 * have no ID and are in no registry until one is handed over. The launcher
 * that started them ends them when it closes (the spawner stops), and they
 * end by themselves when their pipe closes (the spawner died, or its SSH
 * connection to the host).
 * @module
 */
import { log } from "../config/logging.ts";
import type { LaunchedProcess, Launcher, LaunchSpec, WarmProcess } from "../launchers/launcher.ts";

/** What starts warm processes: the `local://` and `ssh://` launchers. */
export interface WarmStarter {
  /** Starts a process that has loaded `role`'s code and waits for its hand-over. */
  startWarm(role: string): Promise<WarmProcess>;
  /** Starts a process cold, when no warm one is there. */
  launch(spec: LaunchSpec): Promise<LaunchedProcess>;
}

/** Options of {@linkcode WarmPool}. */
export interface WarmPoolOptions {
  /** Warm processes kept per role in use. Default 1. */
  perRole?: number;
  /** Warm processes in all roles together. Default 4, and never below `perRole`. */
  maxTotal?: number;
  /** Warm processes of one role that may die unused in a row before its refills stop. Default 3. */
  maxFailures?: number;
}

/** The most warm processes per role `FABRIC_WARM_POOL` may ask for. */
export const MAX_WARM_PER_ROLE = 16;

/** Keeps warm processes of the roles in use; see the module doc. */
export class WarmPool {
  #starter: WarmStarter;
  #perRole: number;
  #maxTotal: number;
  #maxFailures: number;
  #ready = new Map<string, WarmProcess[]>();
  #starting = new Map<string, number>();
  #failures = new Map<string, number>();
  #stopped = false;
  #logger = log("children");

  /** A pool over `starter`. */
  constructor(starter: WarmStarter, options: WarmPoolOptions = {}) {
    this.#starter = starter;
    this.#perRole = Math.max(0, Math.min(MAX_WARM_PER_ROLE, options.perRole ?? 1));
    this.#maxTotal = Math.max(this.#perRole, options.maxTotal ?? 4);
    this.#maxFailures = options.maxFailures ?? 3;
  }

  /** Warm processes ready (or still loading) for `role`, or for every role. */
  size(role?: string): number {
    if (role !== undefined) return this.#ready.get(role)?.length ?? 0;
    return [...this.#ready.values()].reduce((sum, list) => sum + list.length, 0);
  }

  /**
   * A warm process of `role`, taken out of the pool, or undefined when none is
   * there. The caller hands it over or stops it.
   */
  take(role: string): WarmProcess | undefined {
    const warm = this.#ready.get(role)?.shift();
    if (warm) this.#failures.delete(role);
    return warm;
  }

  /**
   * Starts warm processes of `role` in the background until the pool holds
   * its share; does nothing once stopped, or after `maxFailures` warm
   * processes of the role died unused in a row.
   */
  refill(role: string): void {
    if (this.#stopped || (this.#failures.get(role) ?? 0) >= this.#maxFailures) return;
    const starting = this.#starting.get(role) ?? 0;
    const total = this.size() + [...this.#starting.values()].reduce((sum, n) => sum + n, 0);
    const missing = Math.min(
      this.#perRole - this.size(role) - starting,
      this.#maxTotal - total,
    );
    for (let i = 0; i < missing; i++) void this.#startOne(role);
  }

  /**
   * Starts the service `spec` describes (`--role ROLE --id ID`, a new one):
   * hands it to a warm process of `role` when the pool has one, else
   * launches it cold. The caller refills once the spawn is done.
   * @throws {Error} when the cold launch fails.
   */
  async launch(role: string, spec: LaunchSpec): Promise<LaunchedProcess> {
    const warm = this.take(role);
    if (warm) {
      try {
        return await warm.handOver(spec);
      } catch (error) {
        this.#logger.warn("Cannot hand {id} to warm process {pid}: {error}; starting it cold", {
          id: spec.id,
          pid: warm.pid,
          error: error instanceof Error ? error.message : String(error),
        });
        void warm.stop();
      }
    }
    return await this.#starter.launch(spec);
  }

  /** Stops every warm process not taken; refills stop too. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const all = [...this.#ready.values()].flat();
    this.#ready.clear();
    await Promise.all(all.map((warm) => warm.stop()));
  }

  async #startOne(role: string): Promise<void> {
    this.#starting.set(role, (this.#starting.get(role) ?? 0) + 1);
    let warm: WarmProcess;
    try {
      warm = await this.#starter.startWarm(role);
    } catch (error) {
      // The launcher closed (its spawner stops) or cannot start processes at all.
      this.#stopped = true;
      this.#logger.debug("No warm {role} process: {error}", { role, error: String(error) });
      return;
    } finally {
      this.#starting.set(role, (this.#starting.get(role) ?? 1) - 1);
    }
    if (this.#stopped) {
      await warm.stop();
      return;
    }
    const list = this.#ready.get(role) ?? [];
    list.push(warm);
    this.#ready.set(role, list);
    void warm.exited.then((code) => this.#ended(role, warm, code));
  }

  /** A warm process ended: out of the pool; one that failed unused counts against its role. */
  #ended(role: string, warm: WarmProcess, code: number): void {
    const list = this.#ready.get(role) ?? [];
    const at = list.indexOf(warm);
    if (at < 0) return;
    list.splice(at, 1);
    // Killed by a signal (128 + N): someone on the host ended it on purpose. It is not
    // replaced until the role's next spawn, which starts cold and refills.
    if (code === 0 || code >= 128 || this.#stopped) return;
    const failures = (this.#failures.get(role) ?? 0) + 1;
    this.#failures.set(role, failures);
    this.#logger.warn("Warm {role} process {pid} exited {code} before use ({failures} in a row)", {
      role,
      pid: warm.pid,
      code,
      failures,
    });
    this.refill(role);
  }
}

const pools = new WeakMap<Launcher, WarmPool>();

/**
 * The warm pool of `launcher`, made on first use: only a launcher that can
 * start warm processes (`local://`, `ssh://`) has one, and none when `FABRIC_WARM_POOL`
 * is 0 or invalid (which is logged).
 */
export function warmPoolOf(launcher: Launcher): WarmPool | undefined {
  const known = pools.get(launcher);
  if (known) return known;
  if (!isWarmStarter(launcher)) return undefined;
  let perRole: number;
  try {
    perRole = warmPoolSize();
  } catch (error) {
    log("children").warn("No warm pool: {error}", { error: (error as Error).message });
    perRole = 0;
  }
  if (perRole === 0) return undefined;
  const pool = new WarmPool(launcher, { perRole, maxTotal: Math.max(4, perRole) });
  pools.set(launcher, pool);
  return pool;
}

/**
 * Warm processes per role from `FABRIC_WARM_POOL` (`--warm-pool` sets it for a
 * service and the services it starts), 1 when unset.
 * @throws {RangeError} when it is not a whole number from 0 to 16.
 */
export function warmPoolSize(): number {
  const text = Deno.env.get("FABRIC_WARM_POOL");
  if (text === undefined || text === "") return 1;
  const value = Number(text);
  if (!/^\d{1,2}$/.test(text) || value > MAX_WARM_PER_ROLE) {
    throw new RangeError(`FABRIC_WARM_POOL must be a whole number from 0 to 16, got "${text}"`);
  }
  return value;
}

function isWarmStarter(launcher: Launcher): launcher is Launcher & WarmStarter {
  return typeof (launcher as Partial<WarmStarter>).startWarm === "function";
}
