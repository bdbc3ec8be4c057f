/**
 * `fabricd up`: the main job. A local fabric (registry on the embedded SQLite
 * store plus a spawner) under `~/.fabric` or `--dir`, running until Ctrl-C,
 * which stops everything the fabric runs.
 * @module
 */
import { dirname, join, resolve } from "../base/paths.ts";
import { notPrivateDirectory } from "../base/private_dir.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";
import {
  type FabricFile,
  homeDir,
  loadFabricFile,
  resolveFabricPath,
} from "../config/fabric_file.ts";
import { EXIT } from "../types/mod.ts";
import {
  noMoreArgs,
  type ParsedArgs,
  parseFlags,
  rangeFlag,
  storeFlag,
  stringFlag,
} from "./args.ts";
import { HEARTBEAT_MS } from "../types/role_options.ts";
import { initFabric } from "./init.ts";
import { type LocalFabric, startLocalFabric } from "./local_fabric.ts";
import { CliError, usage } from "./cli_error.ts";
import { renderTree } from "./status_tree.ts";

/** Help text of `fabricd up`. */
export const UP_HELP = `fabricd up [--dir DIR] [--fabric FILE] [--port N] [--heartbeat-ms N]
           [--store etcd://host:port,... [--replicas N]]

Starts a local fabric: a registry (SQLite in DIR/registry.db) and a spawner,
creating the fabric keys first if there are none. Runs until Ctrl-C (or
SIGTERM), then stops every service of the fabric in dependency order: agents
and pilot managers, queues and pub/subs, spawners and bridges, the registry
last. While it runs it restarts a root service (registry, spawner) that dies.

"up" is idempotent. Services outlive a crash of this command (kill -9): run
"fabricd up" again and it adopts the registry and spawner still running (same
IDs, same services) and starts again, on their ports, those that are not. On a
fabric that is fully running (another "up" runs it), it attaches: prints
"Fabric ... is already running in DIR: attached as its supervisor" and the
tree, and stays in the foreground as a supervisor; Ctrl-C stops the fabric as
above. Several "up" at once on one directory start one fabric: the others wait
for it (a lock on DIR) and then attach. "fabricd stop --all" stops it without Ctrl-C; "up" then says so and
exits. Every flag is checked before anything is created or started. To move
a running registry to another --port, stop the fabric first.

Exit codes: 0 the fabric was stopped by Ctrl-C, SIGTERM or "fabricd stop
--all" (fresh or attached); 1 a root service could not start (the message
gives its reason and log file, e.g. "Cannot listen on ...: Address already in
use"); 64 usage (a bad or empty flag value); 65 malformed fabric or key file;
73 the fabric file or key cannot be created; 78 unusable configuration (key
file readable by others or of another fabric; --port other than the running
registry's).

  --dir DIR          state directory (default ~/.fabric); the fabric file is DIR/fabric.yaml
  --fabric FILE      fabric file (default: FABRIC_FILE, then DIR/fabric.yaml)
  --port N           registry port, 1-65535 (default: the one used last time, else any
                     free port)
  --heartbeat-ms N   heartbeat interval of every service, 50-600000 (default 2000)
  --store STORE      registry store: sqlite:PATH (default DIR/registry.db) or an etcd
                     cluster, etcd://host:port,host:port,... (see docs/registry.md)
  --replicas N       registry replicas sharing the etcd store, 1-64 (default 1)
`;

/** What `fabricd up` was asked for, every flag checked. */
interface UpFlags {
  dir: string;
  fabricPath: string;
  /** 0: the port used last time, else any free port. */
  port: number;
  heartbeatMs: number;
  store?: string;
  replicas: number;
}

/**
 * Checks every flag of `fabricd up` before anything is written or started.
 * @throws {CliError} (64) naming the flag and what to give instead.
 */
function checkUpFlags(parsed: ParsedArgs): UpFlags {
  const dirFlag = stringFlag(parsed, "dir");
  if (dirFlag === "") throw usage("Empty --dir: give a directory, or leave it out");
  const dir = resolve(dirFlag ?? join(homeDir(), ".fabric"));
  const fabricPath = resolveFabricPath(
    // An empty --fabric is refused there (64), as by every command.
    stringFlag(parsed, "fabric") ?? (dirFlag ? join(dir, "fabric.yaml") : undefined),
  );
  const store = storeFlag(parsed);
  const replicas = rangeFlag(parsed, "replicas", { min: 1, max: 64 }) ?? 1;
  if (replicas > 1 && !store?.startsWith("etcd://")) {
    throw usage("--replicas needs a shared store: add --store etcd://host:port,...");
  }
  return {
    dir,
    fabricPath,
    port: rangeFlag(parsed, "port", { min: 1, max: 65535 }, "leave it out to keep the last one") ??
      0,
    heartbeatMs: rangeFlag(parsed, "heartbeat-ms", HEARTBEAT_MS) ?? 2000,
    ...(store ? { store } : {}),
    replicas,
  };
}

/** Runs `fabricd up`. */
export async function upCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("up", args, {
    dir: { type: "string" },
    fabric: { type: "string" },
    port: { type: "string" },
    "heartbeat-ms": { type: "string" },
    store: { type: "string" },
    replicas: { type: "string" },
  });
  noMoreArgs("up", parsed.positionals);
  if (parsed.flags.help) {
    console.log(UP_HELP);
    return EXIT.OK;
  }
  const { dir, fabricPath, ...options } = checkUpFlags(parsed);
  await refuseSharedDirectory(dirname(fabricPath));
  // The state directory (keys, registry, sockets, logs) is the user's alone;
  // the fabric file's, looked at above, is usually the same one.
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 }).catch(() => {});
  if (resolve(dir) !== resolve(dirname(fabricPath))) await refuseSharedDirectory(dir);
  // One "up" starts the fabric at a time: another waits, then finds it
  // running (adopts or attaches) instead of creating a second one.
  const startLock = await lockStart(dir);
  let fabric: FabricFile;
  let local: LocalFabric;
  try {
    const exists = await Deno.stat(fabricPath).then(() => true, () => false);
    fabric = exists ? await loadFabricFile(fabricPath) : await initFabric(fabricPath);
    if (!exists) console.log(`Created fabric ${fabric.fingerprint} in ${fabricPath}`);
    local = await startLocalFabric(fabricPath, fabric, { dir, ...options });
  } finally {
    startLock.close();
  }
  const roots = [...local.registryTargets, local.spawner];
  const attached = roots.every((root) => local.adopted.includes(root.id));
  const note = (id: string): string =>
    !attached && local.adopted.includes(id) ? " (was running: adopted)" : "";
  console.log(
    attached
      ? `Fabric ${fabric.fingerprint} is already running in ${dir}: attached as its supervisor`
      : `Fabric ${fabric.fingerprint} is up`,
  );
  for (const r of local.registryTargets) {
    console.log(`  registry: ${r.id} at ${r.url}${note(r.id)}`);
  }
  console.log(`  spawner:  ${local.spawner.id} at ${local.spawner.url}${note(local.spawner.id)}`);
  console.log(`  fabric file: ${fabricPath}   logs: ${join(dir, "logs")}\n`);
  console.log(renderTree(await local.registry.list(), Date.now()));
  console.log(`\nTry: fabricd spawn --role spawner --fabric ${fabricPath}`);
  console.log('Press Ctrl-C (or run "fabricd stop --all") to stop the fabric.');
  const signal = await untilStopped(local);
  if (signal === undefined) {
    console.log("\nThe fabric was stopped (fabricd stop --all): every root service stopped.");
    return EXIT.OK;
  }
  console.log(`\n${signal}: stopping the fabric...`);
  const stopped = await local.stopAll(`fabricd up stopped by ${signal}`, {
    onStop: (record) => console.log(`stopping ${record.id} (${record.role})`),
    onUnreachable: (record, why) =>
      console.error(`${record.id} (${record.role}) could not be reached and may still run: ${why}`),
  });
  console.log(`Stopped ${stopped} services.`);
  return EXIT.OK;
}

/**
 * Waits for SIGINT or SIGTERM (resolves with its name), or until every root
 * of `local` has stopped cleanly (undefined): "fabricd stop --all" stopped it.
 */
function untilStopped(local: LocalFabric): Promise<Deno.Signal | undefined> {
  const signal = Promise.withResolvers<Deno.Signal>();
  for (const name of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(name, () => signal.resolve(name));
  }
  return Promise.race([signal.promise, local.stopped.then(() => undefined)]);
}

/** How long `up` waits for another `up` starting the same fabric before it says so. */
const LOCK_NOTICE_MS = 500;

/**
 * Takes the start lock of state directory `dir`: an exclusive `flock` on the
 * directory itself (no file is written), which the kernel drops when the
 * process ends, even by SIGKILL; waits for another `up` that holds it. Close
 * the handle to drop it.
 */
async function lockStart(dir: string): Promise<Deno.FsFile> {
  const file = await Deno.open(dir, { read: true }).catch((error) => {
    const why = (error as Error).message;
    throw new CliError(
      `Cannot use state directory "${dir}": ${why}: give another --dir`,
      EXIT.CANNOT_CREATE,
    );
  });
  const locked = file.lock(true);
  const notice = setTimeout(
    () => console.log(`Waiting for another "fabricd up" that is starting the fabric in ${dir}...`),
    LOCK_NOTICE_MS,
  );
  await locked.finally(() => clearTimeout(notice));
  return file;
}

/**
 * Refuses a state directory another user owns or may write to (78), before
 * anything is written in it or read from it.
 */
async function refuseSharedDirectory(path: string): Promise<void> {
  const why = await notPrivateDirectory(path);
  if (why) throw new CliError(`Unsafe state directory: ${why}`, EXIT.CONFIG);
}
