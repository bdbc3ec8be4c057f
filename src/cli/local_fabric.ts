/**
 * Starting a local fabric: the root registry (SQLite) and the root spawner, as
 * `fabricd up` and `fabricd demo` run them (stopping is `stop_services.ts`).
 * @module
 */
import { join } from "../base/paths.ts";
import { type FabricFile, keyPathOf, saveFabricFile } from "../config/fabric_file.ts";
import { FabricClient, FabricRequestError, type Target } from "../client/fabric_client.ts";
import { RegistryClient } from "../client/registry_client.ts";
import { type FabricKeys, readKeyFile } from "../crypto/keys.ts";
import { LocalLauncher } from "../launchers/local.ts";
import type { LaunchedProcess } from "../launchers/launcher.ts";
import { newServiceId } from "../children/service_id.ts";
import { EXIT, type ServiceRecord, type ServiceStatus } from "../types/mod.ts";
import { log } from "../config/logging.ts";
import { readLogTail } from "../config/log_file.ts";
import { sleep } from "../config/retry.ts";
import { CliError } from "./cli_error.ts";
import { stopServices, type StopServicesOptions } from "./stop_services.ts";
import { checkKeyFileMode } from "./context.ts";

/** Options of {@linkcode startLocalFabric}. */
export interface LocalFabricOptions {
  /** State directory: registry.db, logs. */
  dir: string;
  /** Registry port; 0 keeps the fabric file's port or picks a free one. */
  port: number;
  heartbeatMs: number;
  /** Registry store: `sqlite:PATH` (default `DIR/registry.db`) or `etcd://host:port,...`. */
  store?: string;
  /** Registry replicas on an etcd store. Default 1. */
  replicas?: number;
}

/** A running local fabric. */
export interface LocalFabric {
  fabric: FabricFile;
  keys: FabricKeys;
  client: FabricClient;
  registry: RegistryClient;
  /** The first registry. */
  registryTarget: Target;
  /** Every registry replica (one on SQLite). */
  registryTargets: Target[];
  spawner: Target;
  /**
   * The roots that were running already (left by an earlier `fabricd up`) and
   * were adopted rather than started: every root when the fabric was up.
   */
  adopted: string[];
  /**
   * Stops every live service of the fabric in dependency order (see
   * {@linkcode stopServices}), the registry last; 0 when the fabric was
   * stopped meanwhile by something else and its registry is gone.
   */
  stopAll(
    reason: string,
    options?: Pick<StopServicesOptions, "graceMs" | "onStop">,
  ): Promise<number>;
}

/**
 * Starts the root registry and the root spawner of the fabric at `fabricPath`,
 * waits until both are ALIVE, and writes their endpoints into the fabric file.
 * A root that already runs at its endpoint (an earlier `fabricd up` was
 * killed, or still runs) is adopted instead: kept running and watched.
 * @throws {CliError} when either does not come up (the reason and the log file are named).
 */
export async function startLocalFabric(
  fabricPath: string,
  fabric: FabricFile,
  options: LocalFabricOptions,
): Promise<LocalFabric> {
  const keyFile = keyPathOf(fabricPath, fabric);
  await checkKeyFileMode(keyFile);
  const keys = await readKeyFile(keyFile);
  const launcher = new LocalLauncher({ dir: options.dir });
  const client = new FabricClient(keys, { timeoutMs: 5000 });
  // Every root keeps its ID and port across runs and restarts, so services and
  // the fabric file keep finding them. Replicas only make sense on etcd.
  const store = options.store ?? `sqlite:${join(options.dir, "registry.db")}`;
  const replicas = store.startsWith("etcd://") ? Math.max(1, options.replicas ?? 1) : 1;
  const registryTargets = Array.from({ length: replicas }, (_, i) => {
    const old = fabric.registries[i];
    const port = (i === 0 && options.port) || portOf(old?.url) || freePort();
    return { id: old?.id ?? newServiceId("registry"), url: `http://127.0.0.1:${port}` };
  });
  const registry = new RegistryClient(client, registryTargets);
  const spawnerId = fabric.spawner?.id ?? newServiceId("spawner");
  const spawnerPort = portOf(fabric.spawner?.url) || freePort();
  const common = [
    "--dir",
    options.dir,
    "--key",
    keyFile,
    "--heartbeat-ms",
    String(options.heartbeatMs),
  ];
  const roots: Root[] = [
    ...registryTargets.map((target, i) => ({
      id: target.id,
      url: target.url,
      // A registry this fabric ran before must find its records again.
      ...(store.startsWith("sqlite:")
        ? { store: store.slice("sqlite:".length), reopen: fabric.registries[i] !== undefined }
        : {}),
      args: [
        "--role",
        "registry",
        "--id",
        target.id,
        "--listen",
        target.url.slice("http://".length),
        "--store",
        store,
        ...common,
      ],
    })),
    {
      id: spawnerId,
      url: `http://127.0.0.1:${spawnerPort}`,
      args: [
        "--role",
        "spawner",
        "--id",
        spawnerId,
        "--listen",
        `127.0.0.1:${spawnerPort}`,
        ...registryTargets.flatMap((t) => ["--registry", `${t.id}@${t.url}`]),
        ...common,
      ],
    },
  ];
  for (const root of roots) await createPrivateLog(options.dir, root.id);
  const keeper = new RootKeeper(launcher, registry, client);
  const adopted: string[] = [];
  for (const root of roots) {
    if (await keeper.adopt(root)) adopted.push(root.id);
    else await keeper.start(root);
  }
  const spawner = { id: spawnerId, url: `http://127.0.0.1:${spawnerPort}` };
  const updated: FabricFile = {
    ...fabric,
    registries: registryTargets,
    spawner,
    dir: options.dir,
  };
  await saveFabricFile(fabricPath, updated);
  return {
    fabric: updated,
    keys,
    client,
    registry,
    registryTarget: registryTargets[0]!,
    registryTargets,
    spawner,
    adopted,
    stopAll: async (reason, options = {}) => {
      const stoppedElsewhere = keeper.stop();
      try {
        return await stopServices(client, registry, { ...options, reason });
      } catch (error) {
        // "fabricd stop --all" or another "up" stopped the fabric, registry included.
        if (stoppedElsewhere && error instanceof FabricRequestError && error.status === 0) return 0;
        throw error;
      }
    },
  };
}

/** A root service of `fabricd up`: its ID, endpoint and command line. */
interface Root {
  id: string;
  url: string;
  args: string[];
  /** A registry's SQLite file. */
  store?: string;
  /** The registry ran before: its `store` must be there (it holds the fabric's records). */
  reopen?: boolean;
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
class RootKeeper {
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
  #logger = log("up");

  constructor(launcher: LocalLauncher, registry: RegistryClient, client: FabricClient) {
    this.#launcher = launcher;
    this.#registry = registry;
    this.#client = client;
  }

  /**
   * Starts `root` and waits until it is ALIVE.
   * @throws {CliError} (79) when a registry that ran before finds its store
   * gone: starting it empty would forget every service of the fabric.
   */
  async start(root: Root): Promise<void> {
    if (root.store && root.reopen && !(await Deno.stat(root.store).then(() => true, () => false))) {
      throw new CliError(
        `Registry store "${root.store}" is gone: the records of this fabric cannot be picked ` +
          "up again. Restore the file, or start a new fabric elsewhere " +
          '("fabricd init" with another --fabric file)',
        EXIT.STATE_LOST,
      );
    }
    const child = await this.#launcher.launch({ id: root.id, args: root.args, env: {} });
    await waitAlive(this.#registry, root.id, child);
    root.reopen = true;
    void child.exited.then((code) => {
      // Exit 0 is a clean stop ("fabricd stop"): nothing to bring back.
      if (code === 0) this.#cleanStop = true;
      else void this.#again(root, `exited with code ${code}`);
    });
  }

  /**
   * Adopts `root` when it runs already: it answers a signed status request as
   * ALIVE. Resolves false (nothing adopted) otherwise.
   */
  async adopt(root: Root): Promise<boolean> {
    const status = await this.#client.call<ServiceStatus>(
      { id: root.id, url: root.url },
      { method: "GET", path: "/v1/status" },
      { timeoutMs: 2000 },
    ).catch(() => undefined);
    if (status?.state !== "ALIVE") return false;
    void this.#watch(root);
    return true;
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
      const healthy = await answersHealth(root.url);
      if (healthy) {
        misses = 0;
        const found = await this.#registry.get(root.id).catch(() => undefined);
        if (found?.record.state === "STOPPED") this.#cleanStop = true;
        continue;
      }
      if (++misses < ADOPTED_MISSES) continue;
      // Stopped by "fabricd stop" or another "fabricd up": nothing to bring back.
      if (!this.#cleanStop) void this.#again(root, "does not answer");
      return;
    }
  }

  async #again(root: Root, why: string): Promise<void> {
    if (this.#stopped) return;
    this.#logger.warn("Root service {id} {why}; starting it again", { id: root.id, why });
    await sleep(200);
    if (this.#stopped) return;
    await this.start(root).catch((error) => {
      this.#logger.warn("Cannot start root service {id} again: {error}", {
        id: root.id,
        error: String(error),
      });
      // Something else may hold its port (a root another "up" started): watch it.
      void this.#watch(root);
    });
  }
}

/**
 * Makes a root service's `DIR/logs/ID.log` 0600 before the launcher's shell
 * appends to it: `fabricd up` runs under the user's umask (often 022, which
 * would make it 0644), and logs name services, ports and failures.
 */
async function createPrivateLog(dir: string, id: string): Promise<void> {
  const logs = join(dir, "logs");
  await Deno.mkdir(logs, { recursive: true, mode: 0o700 });
  const path = join(logs, `${id}.log`);
  const file = await Deno.open(path, { create: true, append: true, mode: 0o600 });
  file.close();
  // A log left by an older version keeps its mode otherwise.
  await Deno.chmod(path, 0o600);
}

function portOf(url: string | undefined): number {
  return url ? Number(new URL(url).port) : 0;
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

/** Whether the service at `url` answers its unsigned health probe within a second. */
async function answersHealth(url: string): Promise<boolean> {
  try {
    const answer = await fetch(new URL("/v1/health", url), { signal: AbortSignal.timeout(1000) });
    await answer.body?.cancel();
    return answer.ok;
  } catch {
    return false;
  }
}

/** The last error a service logged before it exited (its reason), if any. */
async function lastError(logFile: string): Promise<string | undefined> {
  const tail = await readLogTail(logFile, { maxBytes: 16 * 1024 }).catch(() => undefined);
  for (const line of (tail?.lines ?? []).reverse()) {
    try {
      const entry = JSON.parse(line) as { level?: string; message?: string };
      if (!["ERROR", "FATAL"].includes(entry.level ?? "") || !entry.message) continue;
      if (!entry.message.startsWith("Exiting with code")) return entry.message;
    } catch {
      // Not a JSON line of fabricd's logger.
    }
  }
  return undefined;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
