/**
 * Keeping the root services of `fabricd up` (registry, root spawner) running:
 * starting them, adopting those that run already, starting again one that
 * dies, and telling when all of them were stopped cleanly.
 * @module
 */
import type { FabricClient, Target } from "../client/fabric_client.ts";
import type { RegistryClient } from "../client/registry_client.ts";
import type { LocalLauncher } from "../launchers/local.ts";
import type { LaunchedProcess } from "../launchers/launcher.ts";
import { join } from "../base/paths.ts";
import { EXIT, type ServiceRecord, type ServiceStatus } from "../types/mod.ts";
import { log } from "../config/logging.ts";
import { readLogTail } from "../config/log_file.ts";
import { sleep } from "../config/retry.ts";
import { CliError } from "./cli_error.ts";
import { checkSqliteStore, ForeignStoreError } from "../registry/sqlite_check.ts";
import { StateLostError } from "../types/errors.ts";

/** Options of {@linkcode RootKeeper}. */
export interface RootKeeperOptions {
  /** Where the roots' records are read. */
  registry: RegistryClient;
  /** Signs the status probes of roots to adopt. */
  client: FabricClient;
  /** IDs of every root kept: all of them stopping cleanly ends the fabric. */
  roots: readonly string[];
  /** Directory of the roots' logs, `ID.log` each (the launcher's). */
  logDir: string;
}

/** A root service of `fabricd up`: its ID, endpoint and command line. */
export interface Root {
  id: string;
  url: string;
  args: string[];
  /** A registry's SQLite file. */
  store?: string;
  /** The registry ran before: its `store` must be there (it holds the fabric's records). */
  reopen?: boolean;
}

/**
 * `target`'s answer to a signed status request, verified as signed by it,
 * within `timeoutMs`; undefined when none came. The unsigned health probe
 * would not do: any process that took a dead root's port (another user's, on
 * a shared host) could answer it.
 */
async function signedStatus(
  client: FabricClient,
  target: Target,
  timeoutMs: number,
): Promise<ServiceStatus | undefined> {
  return await client.call<ServiceStatus>(
    target,
    { method: "GET", path: "/v1/status" },
    { timeoutMs },
  ).catch(() => undefined);
}

/** Whether `target` answers a signed status request as ALIVE (within 2 s). */
export async function runsAt(client: FabricClient, target: Target): Promise<boolean> {
  return (await signedStatus(client, target, 2000))?.state === "ALIVE";
}

/** Misses of the health probe, a second apart, after which an adopted root is started again. */
const ADOPTED_MISSES = 3;

/**
 * Keeps the root services of `fabricd up` running: one that dies (a non-zero
 * exit) while the fabric is up is started again with the same ID, port and store (its record
 * gets the next incarnation; the registry reopens its store). A root adopted
 * from an earlier `up` is not this process's child: it is probed every second
 * and started again when it stops answering, unless it had stopped cleanly.
 */
export class RootKeeper {
  /** The roots this keeper started (not adopted), in order. */
  #started: LaunchedProcess[] = [];
  #launcher: LocalLauncher;
  #registry: RegistryClient;
  #client: FabricClient;
  #stopped = false;
  /**
   * A root was seen to stop cleanly (exit 0, or STOPPED on record): the
   * fabric is being stopped ("fabricd stop --all", another "up"), so roots
   * that go silent now are not brought back.
   */
  #cleanStop = false;
  /** IDs of every root kept, and of those that have stopped cleanly. */
  #roots: readonly string[];
  #logDir: string;
  #down = new Set<string>();
  #allDown = Promise.withResolvers<void>();
  #logger = log("up");

  /** Keeps the roots `options.roots` names, started through `launcher`. */
  constructor(launcher: LocalLauncher, options: RootKeeperOptions) {
    this.#launcher = launcher;
    this.#registry = options.registry;
    this.#client = options.client;
    this.#roots = options.roots;
    this.#logDir = options.logDir;
  }

  /** Resolves once every root has stopped cleanly while kept (not after {@linkcode stop}). */
  get allStopped(): Promise<void> {
    return this.#allDown.promise;
  }

  /**
   * Starts `root` and waits until it is ALIVE.
   * @throws {CliError} (79) when a registry that ran before finds its store
   * gone, empty or not a registry's: starting it empty would forget every
   * service of the fabric. (65) when a new registry's store file is another
   * program's. Either way the file is left as it was.
   */
  async start(root: Root): Promise<void> {
    if (root.store) checkStore(root.store, root.reopen === true);
    const child = await this.#launcher.launch({ id: root.id, args: root.args, env: {} });
    await waitAlive(this.#registry, root.id, child);
    root.reopen = true;
    this.#started.push(child);
    void child.exited.then((code) => {
      // Exit 0 is a clean stop ("fabricd stop"): nothing to bring back.
      if (code === 0) this.#stoppedCleanly(root.id);
      else void this.#again(root, `exited with code ${code}`);
    });
  }

  /**
   * Adopts `root` when it runs already: it answers a signed status request as
   * ALIVE. Resolves false (nothing adopted) otherwise.
   */
  async adopt(root: Root): Promise<boolean> {
    if (!(await runsAt(this.#client, root))) return false;
    void this.#watch(root);
    return true;
  }

  /**
   * Stops keeping the roots and ends those this keeper started (SIGTERM: each
   * records STOPPED on its way out), for an `up` whose later root could not
   * start: it leaves nothing of its own running. Adopted roots are left alone.
   * Resolves once they have exited.
   */
  async endStarted(): Promise<void> {
    this.stop();
    const started = this.#started.splice(0);
    for (const child of started.toReversed()) child.kill("SIGTERM");
    await Promise.all(started.map((child) => child.exited));
  }

  /** Stops keeping the roots; answers whether a root was seen to stop cleanly meanwhile. */
  stop(): boolean {
    this.#stopped = true;
    return this.#cleanStop;
  }

  async #watch(root: Root): Promise<void> {
    let misses = 0;
    while (!this.#stopped) {
      await sleep(1000);
      const healthy = await answersSigned(this.#client, root);
      if (healthy) {
        misses = 0;
        const found = await this.#registry.get(root.id).catch(() => undefined);
        if (found?.record.state === "STOPPED") this.#cleanStop = true;
        continue;
      }
      if (++misses < ADOPTED_MISSES) continue;
      // Stopped by "fabricd stop" or another "fabricd up": nothing to bring back.
      // Its record may not have been read between its STOPPED and its exit:
      // its log's last word tells a clean stop from a crash as well.
      const clean = this.#cleanStop || await loggedCleanStop(join(this.#logDir, `${root.id}.log`));
      if (clean) this.#stoppedCleanly(root.id);
      else void this.#again(root, "does not answer");
      return;
    }
  }

  #stoppedCleanly(id: string): void {
    this.#cleanStop = true;
    this.#down.add(id);
    if (this.#stopped || !this.#roots.every((root) => this.#down.has(root))) return;
    this.#stopped = true;
    this.#allDown.resolve();
  }

  async #again(root: Root, why: string): Promise<void> {
    if (this.#stopped) return;
    this.#logger.warn("Root service {id} {why}; starting it again", { id: root.id, why });
    await sleep(200);
    if (this.#stopped) return;
    await this.start(root).catch((error) => {
      this.#logger.warn("Cannot start root service {id} again: {error}", {
        id: root.id,
        error: error instanceof Error ? error.message : String(error),
      });
      // Something else may hold its port (a root another "up" started): watch it.
      void this.#watch(root);
    });
  }
}

/**
 * Checks a registry's store file before the registry is started on it (which
 * would give it the registry's tables), reading only.
 * @throws {CliError} 79 when `reopen` and the records are not there, 65 for a
 * file that is not a fabricd registry store.
 */
function checkStore(path: string, reopen: boolean): void {
  try {
    checkSqliteStore(path, { mustExist: reopen });
  } catch (error) {
    if (error instanceof StateLostError || error instanceof ForeignStoreError) {
      throw new CliError(error.message, error.exitCode);
    }
    throw error;
  }
}

async function waitAlive(
  registry: RegistryClient,
  id: string,
  child: LaunchedProcess,
): Promise<ServiceRecord> {
  let exitCode: number | null = null;
  child.exited.then((code) => (exitCode = code));
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (exitCode !== null) {
      const why = await lastError(child.logFile);
      throw new CliError(
        `Service "${id}" exited with code ${exitCode} while starting${
          why ? `: ${why}` : ""
        }: see ${child.logFile}`,
        EXIT.FAILURE,
      );
    }
    const found = await registry.get(id).catch((error) => {
      log("up").debug("Cannot read {id} yet: {error}", { id, error: String(error) });
      return undefined;
    });
    if (found?.record.state === "ALIVE" && found.record.pid === child.pid) return found.record;
    await sleep(50);
  }
  child.kill("SIGKILL");
  throw new CliError(
    `Service "${id}" did not come up within 20 s: see ${child.logFile}`,
    EXIT.FAILURE,
  );
}

/** Whether `target` answers a signed status request, signed itself, within a second. */
export async function answersSigned(client: FabricClient, target: Target): Promise<boolean> {
  return (await signedStatus(client, target, 1000)) !== undefined;
}

/**
 * Whether the log of a service says its latest run ended in a clean stop: its
 * runtime's "Stopped: ..." comes after its last "is ALIVE" and is not
 * followed by "Exiting with code N" (a non-zero exit).
 */
async function loggedCleanStop(logFile: string): Promise<boolean> {
  for (const entry of await logEntriesNewestFirst(logFile, 64 * 1024)) {
    const message = entry.message ?? "";
    if (entry.logger === "fabricd.runtime" && message.startsWith("Exiting with code")) {
      return false;
    }
    if (entry.logger === "fabricd.runtime" && message.startsWith("Stopped: ")) return true;
    if (entry.logger === "fabricd.service" && message.includes(" is ALIVE as ")) return false;
  }
  return false;
}

/** The last error a service logged before it exited (its reason), if any. */
async function lastError(logFile: string): Promise<string | undefined> {
  for (const entry of await logEntriesNewestFirst(logFile, 16 * 1024)) {
    if (!["ERROR", "FATAL"].includes(entry.level ?? "") || !entry.message) continue;
    if (!entry.message.startsWith("Exiting with code")) return entry.message;
  }
  return undefined;
}

/** One JSON line of fabricd's logger, as far as these checks read it. */
interface LogEntry {
  logger?: string;
  level?: string;
  message?: string;
}

/**
 * The JSON objects in the last `maxBytes` of a log, one a line, newest
 * first; other lines are left out, and a log that cannot be read has none.
 */
async function logEntriesNewestFirst(logFile: string, maxBytes: number): Promise<LogEntry[]> {
  const tail = await readLogTail(logFile, { maxBytes }).catch(() => undefined);
  const entries: LogEntry[] = [];
  for (const line of (tail?.lines ?? []).reverse()) {
    try {
      const entry: unknown = JSON.parse(line);
      if (entry && typeof entry === "object") entries.push(entry as LogEntry);
    } catch {
      // Not a JSON line of fabricd's logger.
    }
  }
  return entries;
}
