/**
 * `fabricd up`: the main job. A local fabric (registry on the embedded SQLite
 * store plus a spawner) under `~/.fabric` or `--dir`, running until Ctrl-C,
 * which stops everything the fabric runs.
 * @module
 */
import { join, resolve } from "../base/paths.ts";
import { homeDir, loadFabricFile, resolveFabricPath } from "../config/fabric_file.ts";
import { EXIT } from "../types/mod.ts";
import { intFlag, parseFlags, stringFlag } from "./args.ts";
import { initFabric } from "./init.ts";
import { startLocalFabric } from "./local_fabric.ts";
import { usage } from "./cli_error.ts";
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
above. "fabricd stop --all" stops it without Ctrl-C.

Exit codes: 0 the fabric was stopped by Ctrl-C or SIGTERM (fresh or attached);
1 a root service could not start (the message gives its reason and log file,
e.g. "Cannot listen on ...: Address already in use"); 64 usage; 65 malformed
fabric or key file; 78 unusable configuration (key file readable by others).

  --dir DIR          state directory (default ~/.fabric); the fabric file is DIR/fabric.yaml
  --fabric FILE      fabric file (default: FABRIC_FILE, then DIR/fabric.yaml)
  --port N           registry port (default: the one used last time, else any free port)
  --heartbeat-ms N   heartbeat interval of every service (default 2000)
  --store STORE      registry store: sqlite:PATH (default DIR/registry.db) or an etcd
                     cluster, etcd://host:port,host:port,... (see docs/registry.md)
  --replicas N       registry replicas sharing the etcd store (default 1)
`;

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
  if (parsed.flags.help) {
    console.log(UP_HELP);
    return EXIT.OK;
  }
  const dirFlag = stringFlag(parsed, "dir");
  const dir = resolve(dirFlag ?? join(homeDir(), ".fabric"));
  const fabricFlag = stringFlag(parsed, "fabric") ??
    (dirFlag ? join(dir, "fabric.yaml") : undefined);
  const fabricPath = resolveFabricPath(fabricFlag);
  const exists = await Deno.stat(fabricPath).then(() => true, () => false);
  const fabric = exists ? await loadFabricFile(fabricPath) : await initFabric(fabricPath);
  if (!exists) console.log(`Created fabric ${fabric.fingerprint} in ${fabricPath}`);
  const store = stringFlag(parsed, "store");
  if (store !== undefined && !/^(sqlite:.+|etcd:\/\/.+)$/.test(store)) {
    throw usage(`Invalid --store "${store}": use sqlite:PATH or etcd://host:port[,host:port...]`);
  }
  const replicas = intFlag(parsed, "replicas", 1);
  if (replicas > 1 && !store?.startsWith("etcd://")) {
    throw usage("--replicas needs a shared store: add --store etcd://host:port,...");
  }
  const local = await startLocalFabric(fabricPath, fabric, {
    dir,
    port: intFlag(parsed, "port", 0),
    heartbeatMs: intFlag(parsed, "heartbeat-ms", 2000),
    ...(store ? { store } : {}),
    replicas,
  });
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
  console.log("Press Ctrl-C to stop the fabric.");
  const signal = await new Promise<string>((resolveSignal) => {
    const on = (name: Deno.Signal) => () => resolveSignal(name);
    Deno.addSignalListener("SIGINT", on("SIGINT"));
    Deno.addSignalListener("SIGTERM", on("SIGTERM"));
  });
  console.log(`\n${signal}: stopping the fabric...`);
  const stopped = await local.stopAll(`fabricd up stopped by ${signal}`, {
    onStop: (record) => console.log(`stopping ${record.id} (${record.role})`),
  });
  console.log(`Stopped ${stopped} services.`);
  return EXIT.OK;
}
