/**
 * `fabricd --role ROLE [flags]`: parses a service's command line and runs it.
 * @module
 */
import { BUILT_ROLES, EXIT, type RegistryEndpoint, type Role, ROLES } from "../types/mod.ts";
import { runService } from "./run_service.ts";
import { homeDir } from "../config/home.ts";
import { listFlag, parseFlags, rangeFlag, storeFlag, stringFlag } from "./args.ts";
import { HEARTBEAT_MS, TTL_MS } from "../types/role_options.ts";
import { CliError, usage } from "./cli_error.ts";
import { join } from "../base/paths.ts";

/** Help text of `fabricd --role`. */
export const ROLE_HELP = `fabricd --role ROLE [flags]: run one service

Roles: ${ROLES.join(", ")} (built: ${BUILT_ROLES.join(", ")})

Services are normally started by "fabricd up" and "fabricd spawn": the parent
and pin come in the environment (FABRIC_PARENT, FABRIC_PIN), the one-time
password on standard input.

Flags:
  --id ID              service ID (a new one by default; a restart passes the old one)
  --listen HOST:PORT   management address (default 127.0.0.1:0, any free port)
  --dir DIR            state directory: logs, stores (default ~/.fabric)
  --key FILE           root services only: the fabric key file
  --registry ID@URL    root services only: a registry to register with (repeatable: replicas)
  --store STORE        registry only: sqlite:PATH (default DIR/registry-ID.db) or
                       etcd://host:port,host:port,... (replicas share the cluster)
  --heartbeat-ms N     heartbeat interval, 50-600000 (default 2000)
  --ttl-ms N           registry only: silence after which a service is DEAD, 100-3600000
                       (default 3 x heartbeat)
  --warm               load the code, then wait on standard input for one line of JSON
                       {id, role, password, parent, pin} from the spawner that started it
                       (its warm pool); no --id, --key or --registry
  --warm-pool N        warm processes kept per role this service spawns on local://
                       (0-16, default FABRIC_WARM_POOL, else 1; 0 turns the pool off)
`;

/** Runs `fabricd --role ...`; resolves with the exit code. */
export async function roleCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("--role", args, {
    role: { type: "string" },
    id: { type: "string" },
    listen: { type: "string" },
    dir: { type: "string" },
    key: { type: "string" },
    registry: { type: "string", multiple: true },
    store: { type: "string" },
    "heartbeat-ms": { type: "string" },
    "ttl-ms": { type: "string" },
    warm: { type: "boolean" },
    "warm-pool": { type: "string" },
  });
  if (parsed.flags.help) {
    console.log(ROLE_HELP);
    return EXIT.OK;
  }
  const role = stringFlag(parsed, "role") ?? "";
  if (!(ROLES as readonly string[]).includes(role)) {
    throw usage(`Unknown role "${role}": use one of ${ROLES.join(", ")}`);
  }
  if (!BUILT_ROLES.includes(role as Role)) {
    throw new CliError(
      `Role "${role}" is not built in this version of fabricd: the built roles are ${
        BUILT_ROLES.join(", ")
      }`,
      EXIT.USAGE,
    );
  }
  const [hostname, port] = parseListen(stringFlag(parsed, "listen") ?? "127.0.0.1:0");
  const heartbeatMs = rangeFlag(parsed, "heartbeat-ms", HEARTBEAT_MS) ?? 2000;
  const options: Record<string, string> = { heartbeatMs: String(heartbeatMs) };
  const store = storeFlag(parsed);
  if (store) options.store = store;
  const ttlMs = rangeFlag(parsed, "ttl-ms", TTL_MS);
  if (ttlMs !== undefined) options.ttlMs = String(ttlMs);
  const id = stringFlag(parsed, "id");
  const key = stringFlag(parsed, "key");
  const warm = parsed.flags.warm === true;
  if (warm && (id || key || listFlag(parsed, "registry").length > 0)) {
    throw usage("--warm takes no --id, --key or --registry: the spawner hands the ID over");
  }
  const warmPool = stringFlag(parsed, "warm-pool");
  if (warmPool !== undefined && !(/^\d{1,2}$/.test(warmPool) && Number(warmPool) <= 16)) {
    throw usage(`Invalid --warm-pool "${warmPool}": use a whole number from 0 to 16`);
  }
  return await runService({
    role: role as Role,
    ...(id ? { id } : {}),
    ...(key ? { keyFile: key } : {}),
    ...(warm ? { warm } : {}),
    ...(warmPool !== undefined ? { warmPool: Number(warmPool) } : {}),
    hostname,
    port,
    dir: stringFlag(parsed, "dir") ?? join(homeDir(), ".fabric"),
    registries: listFlag(parsed, "registry").map(parseRegistry),
    heartbeatMs,
    options,
  });
}

function parseListen(value: string): [string, number] {
  const match = /^([^:]+):(\d{1,5})$/.exec(value);
  const port = Number(match?.[2]);
  if (!match || port > 65535) {
    throw usage(`Invalid --listen "${value}": use HOST:PORT, e.g. 127.0.0.1:0`);
  }
  return [match[1]!, port];
}

function parseRegistry(value: string): RegistryEndpoint {
  const at = value.indexOf("@");
  if (at < 1) throw usage(`Invalid --registry "${value}": use ID@URL`);
  return { id: value.slice(0, at), url: value.slice(at + 1) };
}
