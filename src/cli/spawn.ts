/**
 * `fabricd spawn --role R [--on URL] [--via ID]`: asks a service (the root
 * spawner by default) to grow the fabric by one service.
 * @module
 */
import { FabricRequestError } from "../client/fabric_client.ts";
import { checkRoleOptions, formatRoleOptions, RoleOptionsError } from "../types/role_options.ts";
import { EXIT, type Role, ROLES, type SpawnResult } from "../types/mod.ts";
import { keyValueFlag, listFlag, parseFlags, stringFlag } from "./args.ts";
import { CliError, usage } from "./cli_error.ts";
import { loadContext, targetOf } from "./context.ts";

/** Help text of `fabricd spawn`. */
export const SPAWN_HELP = `fabricd spawn --role ROLE [--on URL] [--via ID] [--session S]... [--json]

Starts a new service through a running one: the named service (--via, default
the root spawner) launches it, hands it the fabric keys with a one-time password,
configures it and answers once it is ALIVE.

  --role ROLE     one of ${ROLES.join(", ")}
  --on URL        launcher: local:// (default)
  --via ID        the service that spawns (default: the fabric's root spawner)
  --session S     a session the new service serves (repeatable)
  --option K=V    a role setting, e.g. --option queue=que-1a2b3c4d (repeatable);
                  an unknown option or a bad value exits 64 before anything starts
  --fabric FILE   fabric file (default: FABRIC_FILE, then ~/.fabric/fabric.yaml)
  --json          print the answer as JSON

"fabricd spawn --role ROLE --help" lists the role's options.
`;

/** Runs `fabricd spawn`. */
export async function spawnCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("spawn", args, {
    role: { type: "string" },
    on: { type: "string" },
    via: { type: "string" },
    session: { type: "string", multiple: true },
    option: { type: "string", multiple: true },
    fabric: { type: "string" },
    json: { type: "boolean" },
  });
  const role = stringFlag(parsed, "role");
  if (role !== undefined && !(ROLES as readonly string[]).includes(role)) {
    throw usage(`Unknown role "${role}": use one of ${ROLES.join(", ")}`);
  }
  if (parsed.flags.help) {
    if (role) {
      console.log(
        `Options of role ${role} (--option NAME=VALUE):\n${formatRoleOptions(role as Role)}`,
      );
    } else console.log(SPAWN_HELP);
    return EXIT.OK;
  }
  if (!role) throw usage('Missing --role: e.g. "fabricd spawn --role spawner"');
  const options = keyValueFlag(parsed, "option");
  try {
    checkRoleOptions(role as Role, options);
  } catch (error) {
    if (error instanceof RoleOptionsError) throw usage(error.message);
    throw error;
  }
  const context = await loadContext(stringFlag(parsed, "fabric"));
  const via = await targetOf(context, stringFlag(parsed, "via"));
  let result: SpawnResult;
  try {
    result = await context.client.call<SpawnResult>(via, {
      method: "POST",
      path: "/v1/spawn",
      body: {
        role,
        on: stringFlag(parsed, "on") ?? "local://",
        sessions: listFlag(parsed, "session"),
        options,
      },
    }, { timeoutMs: 120_000 });
  } catch (error) {
    if (error instanceof FabricRequestError && error.status !== 0) {
      const exit = typeof error.body.exitCode === "number"
        ? ` (child exit ${error.body.exitCode})`
        : "";
      // 69: the child could not reach its parent, or no image could be made to ship;
      // 64: the spawner refused the request itself (unknown launcher, bad options).
      const code = error.body.exitCode === EXIT.UNREACHABLE
        ? EXIT.UNREACHABLE
        : error.status === 400
        ? EXIT.USAGE
        : EXIT.FAILURE;
      throw new CliError(`${error.message}${exit}`, code, { cause: error });
    }
    throw error;
  }
  if (parsed.flags.json) console.log(JSON.stringify(result));
  else console.log(`${result.id} ${result.state} at ${result.endpoint} (via ${via.id})`);
  return EXIT.OK;
}
