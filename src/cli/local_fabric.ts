/**
 * Starting a local fabric: the root registry (SQLite) and the root spawner, as
 * `fabricd up` and `fabricd demo` run them (stopping is `stop_services.ts`).
 * @module
 */
import { join } from "../base/paths.ts";
import { type FabricFile, keyPathOf, saveFabricFile } from "../config/fabric_file.ts";
import { FabricClient, FabricRequestError, type Target } from "../client/fabric_client.ts";
import { RegistryClient } from "../client/registry_client.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import { LocalLauncher } from "../launchers/local.ts";
import { newServiceId } from "../children/service_id.ts";
import { EXIT } from "../types/mod.ts";
import { CliError } from "./cli_error.ts";
import { stopServices, type StopServicesOptions } from "./stop_services.ts";
import { type Root, RootKeeper, runsAt } from "./_root_keeper.ts";
import { readFabricKeys } from "./context.ts";

/** Options of {@linkcode startLocalFabric}. */
export interface LocalFabricOptions {
  /** State directory: registry.db, logs. */
  dir: string;
  /**
   * Registry port; 0 keeps the fabric file's port or picks a free one. A port
   * other than the fabric file's is refused while the registry runs there.
   */
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
   * Resolves once every root service has stopped cleanly (exit 0, or
   * `STOPPED` on record and then silent): something else, such as
   * "fabricd stop --all", stopped the fabric. Never resolves after `stopAll`.
   */
  stopped: Promise<void>;
  /**
   * Stops every live service of the fabric in dependency order (see
   * {@linkcode stopServices}), the registry last; 0 when the fabric was
   * stopped meanwhile by something else and its registry is gone.
   */
  stopAll(
    reason: string,
    options?: Pick<StopServicesOptions, "graceMs" | "onStop" | "onUnreachable">,
  ): Promise<number>;
}

/**
 * Starts the root registry and the root spawner of the fabric at `fabricPath`,
 * waits until both are ALIVE, and writes their endpoints into the fabric file.
 * A root that already runs at its endpoint (an earlier `fabricd up` was
 * killed, or still runs) is adopted instead: kept running and watched.
 * @throws {CliError} when either does not come up (the reason and the log file are named);
 * (78) when `options.port` would move a registry that runs at the fabric file's port.
 */
export async function startLocalFabric(
  fabricPath: string,
  fabric: FabricFile,
  options: LocalFabricOptions,
): Promise<LocalFabric> {
  const keyFile = keyPathOf(fabricPath, fabric);
  const keys = await readFabricKeys(fabricPath, fabric);
  const launcher = new LocalLauncher({ dir: options.dir });
  const client = new FabricClient(keys, { timeoutMs: 5000 });
  await refuseMove(client, fabricPath, fabric, options.port);
  // Every root keeps its ID and port across runs and restarts, so services and
  // the fabric file keep finding them. Replicas only make sense on etcd.
  const store = options.store ?? `sqlite:${join(options.dir, "registry.db")}`;
  const replicas = store.startsWith("etcd://") ? Math.max(1, options.replicas ?? 1) : 1;
  // Roots whose port is picked now (not kept from an earlier run or given).
  const fresh = new Set<string>();
  const registryTargets = Array.from({ length: replicas }, (_, i) => {
    const old = fabric.registries[i];
    const id = old?.id ?? newServiceId("registry");
    const kept = (i === 0 && options.port) || portOf(old?.url);
    if (!kept) fresh.add(id);
    return { id, url: `http://127.0.0.1:${kept || freePort()}` };
  });
  const registry = new RegistryClient(client, registryTargets);
  const spawnerId = fabric.spawner?.id ?? newServiceId("spawner");
  const keptSpawnerPort = portOf(fabric.spawner?.url);
  if (!keptSpawnerPort) fresh.add(spawnerId);
  const spawnerPort = keptSpawnerPort || freePort();
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
        ? { store: store.slice("sqlite:".length), reopen: ranBefore(fabric, i) }
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
  // The IDs and ports are in the fabric file before any root starts, so an
  // "up" killed meanwhile leaves roots the next one finds and adopts. `dir`
  // goes in once both are ALIVE: it tells that the fabric came up (and so
  // that its registry store must be there).
  if (fresh.size > 0) {
    const spawner = { id: spawnerId, url: `http://127.0.0.1:${spawnerPort}` };
    await saveFabricFile(fabricPath, { ...fabric, registries: registryTargets, spawner });
  }
  const keeper = new RootKeeper(launcher, {
    registry,
    client,
    roots: roots.map((root) => root.id),
    logDir: join(options.dir, "logs"),
  });
  const adopted: string[] = [];
  let warmed = false;
  try {
    for (const root of roots) {
      if (await keeper.adopt(root)) {
        adopted.push(root.id);
        continue;
      }
      // The registry would otherwise be the process that parses the code for
      // Deno's cache, and keep that memory: a throwaway process does it first.
      if (!warmed) {
        warmed = true;
        await launcher.warmCaches("registry");
      }
      const moves = fresh.has(root.id) ? { roots, registryTargets } : null;
      await _startOnSomePort(keeper, root, moves);
    }
  } catch (error) {
    // A root that cannot start (its reason is in the error): what this call
    // started is stopped again, so a failed up leaves nothing of its own running.
    await keeper.endStarted();
    throw error;
  }
  const spawner = { id: spawnerId, url: roots.at(-1)!.url };
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
    stopped: keeper.allStopped,
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

/**
 * Whether registry `i` of `fabric` came up before: then its store holds the
 * fabric's records and must be found again. The fabric file names its roots
 * before they start, and its state directory (`dir`) once they are ALIVE.
 */
function ranBefore(fabric: FabricFile, i: number): boolean {
  return fabric.registries[i] !== undefined && fabric.dir !== undefined;
}

/**
 * Refuses `port` when it would move the registry the fabric file names while
 * that registry runs at its recorded port: a second registry with the same ID
 * on the same store would be started, and the fabric file would then point at
 * it rather than at the one the services report to.
 * @throws {CliError} (78) saying to stop the fabric first.
 */
async function refuseMove(
  client: FabricClient,
  fabricPath: string,
  fabric: FabricFile,
  port: number,
): Promise<void> {
  const recorded = fabric.registries[0];
  if (!port || !recorded || portOf(recorded.url) === port) return;
  if (!(await runsAt(client, recorded))) return;
  throw new CliError(
    `Registry ${recorded.id} of "${fabricPath}" runs at ${recorded.url}: --port ${port} ` +
      "cannot move it while it runs. Leave --port out to adopt it there, or stop the fabric " +
      `first ("fabricd stop --all --fabric ${fabricPath}") and run this again`,
    EXIT.CONFIG,
  );
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

/**
 * Starts `root`. A port picked a moment ago (`moves`: the roots and registry
 * targets that name it) may be taken before the root binds it, by any
 * outgoing connection's ephemeral port: then the root is started again on
 * another free port, at most twice, and everything that names it follows.
 */
export async function _startOnSomePort(
  keeper: RootKeeper,
  root: Root,
  moves: { roots: Root[]; registryTargets: { id: string; url: string }[] } | null,
): Promise<void> {
  for (let tries = 0;; tries++) {
    try {
      return await keeper.start(root);
    } catch (error) {
      const taken = error instanceof Error && /Address already in use/.test(error.message);
      if (!moves || !taken || tries >= 2) throw error;
      const before = root.url;
      root.url = `http://127.0.0.1:${freePort()}`;
      const rename = (arg: string): string =>
        arg === before.slice("http://".length)
          ? root.url.slice("http://".length)
          : arg === `${root.id}@${before}`
          ? `${root.id}@${root.url}`
          : arg;
      for (const each of moves.roots) each.args = each.args.map(rename);
      for (const target of moves.registryTargets) if (target.id === root.id) target.url = root.url;
    }
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
