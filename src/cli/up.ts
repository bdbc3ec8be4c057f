/**
 * `fabricd up`: the main job. A local fabric (registry on the embedded SQLite
 * store plus a spawner) under `~/.fabric` or `--dir`, running until Ctrl-C,
 * which stops everything the fabric runs.
 * @module
 */
import { join, resolve } from "node:path";
import { homeDir, loadFabricFile, resolveFabricPath } from "../config/fabric_file.ts";
import { EXIT } from "../types/mod.ts";
import { intFlag, parseFlags, stringFlag } from "./args.ts";
import { initFabric } from "./init.ts";
import { startLocalFabric } from "./local_fabric.ts";
import { usage } from "./cli_error.ts";
import { renderTree } from "./status.ts";

/** Help text of `fabricd up`. */
export const UP_HELP = `fabricd up [--dir DIR] [--fabric FILE] [--port N] [--heartbeat-ms N]
           [--store etcd://host:port,... [--replicas N]]

Starts a local fabric: a registry (SQLite in DIR/registry.db) and a spawner,
creating the fabric keys first if there are none. Runs until Ctrl-C (or
SIGTERM), then stops every service of the fabric in dependency order: agents
and pilot managers, queues and pub/subs, spawners and bridges, the registry
last. Services outlive a crash of this command; run
"fabricd up" again to take them back, or "fabricd stop --all".

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
  console.log(`Fabric ${fabric.fingerprint} is up`);
  for (const r of local.registryTargets) console.log(`  registry: ${r.id} at ${r.url}`);
  console.log(`  spawner:  ${local.spawner.id} at ${local.spawner.url}`);
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
