/**
 * Starting a local fabric: the root registry (SQLite) and the root spawner, as
 * `fabricd up` and `fabricd demo` run them (stopping is `stop_services.ts`).
 * @module
 */
import { join } from "node:path";
import { type FabricFile, keyPathOf, saveFabricFile } from "../config/fabric_file.ts";
import { FabricClient, type Target } from "../client/fabric_client.ts";
import { RegistryClient } from "../client/registry_client.ts";
import { type FabricKeys, readKeyFile } from "../crypto/keys.ts";
import { LocalLauncher } from "../launchers/local.ts";
import type { LaunchedProcess } from "../launchers/launcher.ts";
import { newServiceId } from "../children/service_id.ts";
import { EXIT, type ServiceRecord } from "../types/mod.ts";
import { log } from "../config/logging.ts";
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
   * Stops every live service of the fabric in dependency order (see
   * {@linkcode stopServices}), the registry last.
   */
  stopAll(
    reason: string,
    options?: Pick<StopServicesOptions, "graceMs" | "onStop">,
  ): Promise<number>;
}

/**
 * Starts the root registry and the root spawner of the fabric at `fabricPath`,
 * waits until both are ALIVE, and writes their endpoints into the fabric file.
 * @throws {CliError} when either does not come up (the log file is named).
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
  const roots = [
    ...registryTargets.map((target) => ({
      id: target.id,
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
  const keeper = new RootKeeper(launcher, registry);
  for (const root of roots) await keeper.start(root);
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
    stopAll: (reason, options = {}) => {
      keeper.stop();
      return stopServices(client, registry, { ...options, reason });
    },
  };
}

/**
 * Keeps the root services of `fabricd up` running: one that dies (a non-zero
 * exit) while the fabric is up is started again with the same ID, port and store (its record
 * gets the next incarnation; the registry reopens its store).
 */
class RootKeeper {
  #launcher: LocalLauncher;
  #registry: RegistryClient;
  #stopped = false;
  #logger = log("up");

  constructor(launcher: LocalLauncher, registry: RegistryClient) {
    this.#launcher = launcher;
    this.#registry = registry;
  }

  async start(root: { id: string; args: string[] }): Promise<void> {
    const child = await this.#launcher.launch({ id: root.id, args: root.args, env: {} });
    await waitAlive(this.#registry, root.id, child);
    void child.exited.then(async (code) => {
      // Exit 0 is a clean stop ("fabricd stop"): nothing to bring back.
      if (this.#stopped || code === 0) return;
      this.#logger.warn("Root service {id} exited with code {code}; starting it again", {
        id: root.id,
        code,
      });
      await sleep(200);
      if (!this.#stopped) {
        await this.start(root).catch((error) =>
          this.#logger.warn("Cannot start root service {id} again: {error}", {
            id: root.id,
            error: String(error),
          })
        );
      }
    });
  }

  stop(): void {
    this.#stopped = true;
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
      throw new CliError(
        `Service "${id}" exited with code ${exitCode} while starting: see ${child.logFile}`,
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

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
