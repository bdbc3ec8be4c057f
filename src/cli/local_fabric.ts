/**
 * Starting and stopping a local fabric: the root registry (SQLite) and the root
 * spawner, as `fabricd up` and `fabricd demo` run them.
 * @module
 */
import { join } from "node:path";
import { type FabricFile, keyPathOf, saveFabricFile } from "../config/fabric_file.ts";
import { FabricClient, type Target } from "../client/fabric_client.ts";
import { RegistryClient } from "../client/registry_client.ts";
import { targetFor } from "../client/route.ts";
import { type FabricKeys, readKeyFile } from "../crypto/keys.ts";
import { LocalLauncher } from "../launchers/local.ts";
import type { LaunchedProcess } from "../launchers/launcher.ts";
import { newServiceId } from "../spawner/service_id.ts";
import { EXIT, type ServiceRecord } from "../types/mod.ts";
import { log } from "../runtime/logging.ts";
import { CliError } from "./cli_error.ts";
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

/** Options of {@linkcode stopServices}. */
export interface StopServicesOptions {
  reason: string;
  /** Only these IDs; default every live service. */
  ids?: string[];
  /**
   * Time an agent's tasks get between SIGTERM and SIGKILL, ms, sent with each
   * stop request. Default: each agent's own (`graceMs`, 10 s).
   */
  graceMs?: number;
  /**
   * Time to wait for each service to be gone (STOPPED and no longer
   * answering), ms. Default: the grace (or 10 s) plus 5 s.
   */
  timeoutMs?: number;
  /** Called for each service as it is asked to stop. */
  onStop?: (record: ServiceRecord) => void;
}

/**
 * The stop order of a role (issue 12): work first (agents and pilot
 * managers), then what work talks to (queues, pub/subs), then the services
 * that start and relay (spawners, bridges), the registry last.
 */
const STOP_TIER: Readonly<Record<string, number>> = {
  agent: 0,
  "pilot-manager": 0,
  queue: 1,
  pubsub: 1,
  spawner: 2,
  bridge: 2,
  registry: 3,
};

/**
 * The order to stop `records` in, as groups stopped one after the other (the
 * services of a group at once): by role (see `STOP_TIER`), and never a
 * service before one below it, since requests to a service travel through
 * the relays above it. So a service's rank is the highest tier in its
 * subtree; within a rank, the deepest go first.
 */
export function stopOrder(records: ServiceRecord[]): ServiceRecord[][] {
  const children = new Map<string, ServiceRecord[]>();
  for (const r of records) children.set(r.parent, [...(children.get(r.parent) ?? []), r]);
  const ranks = new Map<string, number>();
  const rankOf = (r: ServiceRecord, seen: Set<string>): number => {
    const known = ranks.get(r.id);
    if (known !== undefined) return known;
    seen.add(r.id);
    let rank = STOP_TIER[r.role] ?? 2;
    for (const child of children.get(r.id) ?? []) {
      if (!seen.has(child.id)) rank = Math.max(rank, rankOf(child, seen));
    }
    ranks.set(r.id, rank);
    return rank;
  };
  const groups = new Map<string, ServiceRecord[]>();
  for (const r of records) {
    const key = `${rankOf(r, new Set())}:${r.route.length}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => {
      const [rankA, depthA] = a.split(":").map(Number) as [number, number];
      const [rankB, depthB] = b.split(":").map(Number) as [number, number];
      return rankA - rankB || depthB - depthA;
    })
    .map(([, group]) => group);
}

/**
 * Stops live services in dependency order (see {@linkcode stopOrder}): each
 * group is asked to stop and waited for until it is gone before the next, so
 * an agent gives its tasks back to a queue that still runs. Returns how many
 * were asked to stop. A spawn or restart under way is waited for (it registers
 * meanwhile) only while its spawner runs; one whose spawner is gone can never
 * come up, so it is not waited on but recorded STOPPED with the reason.
 */
export async function stopServices(
  client: FabricClient,
  registry: RegistryClient,
  options: StopServicesOptions,
): Promise<number> {
  const stopped = new Set<string>();
  const wanted = (r: ServiceRecord): boolean =>
    RUNNING_STATES.includes(r.state) && (!options.ids || options.ids.includes(r.id));
  const timeoutMs = options.timeoutMs ?? (options.graceMs ?? 10_000) + 5000;
  const stopGroup = async (group: ServiceRecord[], all: ServiceRecord[]): Promise<void> => {
    await Promise.all(group.map(async (record) => {
      const target = targetOrNull(record, all);
      if (!target) return;
      options.onStop?.(record);
      if (await askToStop(client, target, options.reason, options.graceMs)) {
        stopped.add(record.id);
        await waitGone(client, registry, record.id, target, timeoutMs);
      }
    }));
  };
  // Services first, in order; again while any is still running, until two
  // looks half a second apart find none (a restart that was under way when
  // the stop began registers meanwhile), for at most 30 s plus the waits.
  const deadline = Date.now() + 30_000;
  let all: ServiceRecord[] = [];
  for (let quiet = 0; quiet < 2 && Date.now() < deadline;) {
    all = await registry.list();
    const records = all.filter((r) => wanted(r) && r.role !== "registry" && canComeUp(r, all));
    quiet = records.length === 0 ? quiet + 1 : 0;
    for (const group of stopOrder(records)) await stopGroup(group, all);
    if (quiet < 2) await new Promise((r) => setTimeout(r, 500));
  }
  for (const record of all.filter((r) => wanted(r) && !canComeUp(r, all))) {
    await registry.transition(record.id, {
      incarnation: record.incarnation,
      to: "STOPPED",
      reason: `${options.reason}: its spawner ${record.parent || "(none)"} is gone, so it ` +
        `never came up from ${record.state}`,
    }).catch(() => {});
  }
  // Registries last: the others record STOPPED in them on the way out.
  all = await registry.list();
  for (const record of all.filter((r) => wanted(r) && r.role === "registry")) {
    const target = targetOrNull(record, all);
    if (!target) continue;
    options.onStop?.(record);
    if (await askToStop(client, target, options.reason, options.graceMs)) stopped.add(record.id);
  }
  return stopped.size;
}

/**
 * `id` and every service below it (by parent), from `records`; the deepest
 * come last in no particular order.
 */
export function subtreeOf(records: ServiceRecord[], id: string): ServiceRecord[] {
  const out: ServiceRecord[] = [];
  const seen = new Set<string>();
  const visit = (current: string): void => {
    if (seen.has(current)) return;
    seen.add(current);
    const record = records.find((r) => r.id === current);
    if (record) out.push(record);
    for (const child of records.filter((r) => r.parent === current)) visit(child.id);
  };
  visit(id);
  return out;
}

/** States of a spawn or restart under way, waiting for its spawner. */
const PENDING: readonly string[] = ["LAUNCHING", "BOOTSTRAPPING", "CONFIGURING", "RESTARTING"];

/** Whether `record` runs, or is a spawn whose spawner still runs to finish it. */
function canComeUp(record: ServiceRecord, all: ServiceRecord[]): boolean {
  if (!PENDING.includes(record.state)) return true;
  const parent = all.find((r) => r.id === record.parent);
  return parent !== undefined && ["ALIVE", "SUSPECT"].includes(parent.state);
}

/** States of a service that may still have a process running. */
export const RUNNING_STATES: readonly string[] = [
  "LAUNCHING",
  "BOOTSTRAPPING",
  "CONFIGURING",
  "RESTARTING",
  "ALIVE",
  "SUSPECT",
];

function targetOrNull(record: ServiceRecord, all: ServiceRecord[]): Target | null {
  try {
    return targetFor(record, all);
  } catch {
    // No endpoint yet, or its route has no live relay.
    return null;
  }
}

async function askToStop(
  client: FabricClient,
  target: Target,
  reason: string,
  graceMs: number | undefined,
): Promise<boolean> {
  try {
    await client.call(target, {
      method: "POST",
      path: "/v1/stop",
      body: graceMs === undefined ? { reason } : { reason, graceMs },
    });
    return true;
  } catch {
    // Unreachable (already gone, or declared DEAD in time), or no endpoint yet.
    return false;
  }
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
      await new Promise((r) => setTimeout(r, 200));
      if (!this.#stopped) await this.start(root).catch(() => {});
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
    const found = await registry.get(id).catch(() => undefined);
    if (found?.record.state === "ALIVE" && found.record.pid === child.pid) return found.record;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  throw new CliError(
    `Service "${id}" did not come up within 20 s: see ${child.logFile}`,
    EXIT.FAILURE,
  );
}

/**
 * Waits until service `id` is no longer live on record and no longer
 * answers (its process ended its stop: an agent's tasks are gone and its
 * messages given back), for at most `timeoutMs`.
 */
async function waitGone(
  client: FabricClient,
  registry: RegistryClient,
  id: string,
  target: Target,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = await registry.get(id).catch(() => undefined);
    if (!found || !["ALIVE", "SUSPECT"].includes(found.record.state)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  while (Date.now() < deadline) {
    const answers = await client.call(target, { method: "GET", path: "/v1/status" }, {
      timeoutMs: 1000,
    }).then(() => true, () => false);
    if (!answers) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
