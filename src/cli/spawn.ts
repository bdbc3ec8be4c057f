/**
 * `fabricd spawn --role R [--on URL] [--via ID] [--count N]`: asks a service
 * (the root spawner by default) to grow the fabric by one service, or by N of
 * one role at once.
 * @module
 */
import { type FabricClient, FabricRequestError, type Target } from "../client/fabric_client.ts";
import { checkRoleOptions, formatRoleOptions, RoleOptionsError } from "../types/role_options.ts";
import { EXIT, type Role, ROLES, type SpawnResult } from "../types/mod.ts";
import {
  idFlag,
  idFlags,
  keyValueFlag,
  noMoreArgs,
  parseFlags,
  rangeFlag,
  stringFlag,
} from "./args.ts";
import { CliError, usage } from "./cli_error.ts";
import { loadContext, targetOf } from "./context.ts";
import { spawnWithProgress } from "./spawn_progress.ts";

/** Help text of `fabricd spawn`. */
export const SPAWN_HELP =
  `fabricd spawn --role ROLE [--on URL] [--via ID] [--session S]... [--count N] [--json]

Starts a new service through a running one: the named service (--via, default
the root spawner) launches it, certifies the key the new service makes for itself
(through a one-time password: no private key is sent), configures it and
answers once it is ALIVE.

  --role ROLE     one of ${ROLES.join(", ")}
  --on URL        launcher: local:// (default), ssh://[user@]host[:port], slurm://...;
                  on a terminal the steps show on stderr (connect, copy, launch,
                  bootstrap, configure)
  --via ID        the service that spawns (default: the fabric's root spawner)
  --session S     a session the new service serves (repeatable)
  --option K=V    a role setting, e.g. --option queue=que-1a2b3c4d (repeatable, each key once);
                  an unknown option or a bad value exits 64 before anything starts
  --count N       start N services of the role (1-1000, default 1), --parallel at a time;
                  each prints its line as it comes ALIVE, each failure a line on stderr
  --parallel P    spawns under way at once with --count (1-64, default 8)
  --fabric FILE   fabric file (default: FABRIC_FILE, then ~/.fabric/fabric.yaml)
  --json          print each answer as one line of JSON

Exit codes: 0 when every spawn succeeded; otherwise the code of the first
failure, after the services that did start were printed: they keep running.
69 unreachable: the child could not reach its parent, an ssh:// host that does
not resolve, route or answer, or no image to ship; 64 refused request; 1 other
(an ssh login or host key refused too: the message says what to fix).

"fabricd spawn --role ROLE --help" lists the role's options.
`;

/** One spawn's request body, as `POST /v1/spawn` takes it. */
export interface SpawnBody {
  role: string;
  on: string;
  sessions: string[];
  options: Record<string, string>;
}

/** Options of {@linkcode spawnMany}. */
export interface SpawnManyOptions {
  /** What each spawn asks for. */
  body: SpawnBody;
  /** Services to start. */
  count: number;
  /** Spawns under way at once. Default 8. */
  parallel?: number;
  /** Called with each result as it comes (before the others finish). */
  onResult?: (result: SpawnResult) => void;
  /** Called with each failure as it comes. */
  onFailure?: (failure: CliError) => void;
  /** Time allowed for one spawn, ms. Default 120000. */
  timeoutMs?: number;
  /** Sends one spawn. Default: a signed `POST /v1/spawn` through `client.call`. */
  send?: (body: SpawnBody, timeoutMs: number) => Promise<SpawnResult>;
}

/** What {@linkcode spawnMany} started and what failed. */
export interface SpawnManyOutcome {
  started: SpawnResult[];
  failed: CliError[];
}

/**
 * Sends `options.count` spawns of `options.body` to `via`, at most
 * `options.parallel` under way at once; a failed spawn does not stop the others.
 */
export async function spawnMany(
  client: FabricClient,
  via: Target,
  options: SpawnManyOptions,
): Promise<SpawnManyOutcome> {
  const outcome: SpawnManyOutcome = { started: [], failed: [] };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < options.count) {
      next++;
      try {
        const timeoutMs = options.timeoutMs ?? 120_000;
        const result = options.send
          ? await options.send(options.body, timeoutMs)
          : await client.call<SpawnResult>(via, {
            method: "POST",
            path: "/v1/spawn",
            body: options.body,
          }, { timeoutMs });
        outcome.started.push(result);
        options.onResult?.(result);
      } catch (error) {
        const failure = spawnFailure(error);
        outcome.failed.push(failure);
        options.onFailure?.(failure);
      }
    }
  };
  const parallel = Math.max(1, Math.min(options.parallel ?? 8, options.count));
  await Promise.all(Array.from({ length: parallel }, worker));
  return outcome;
}

/** A failed spawn as the exit it causes: 69, 64 or 1. */
function spawnFailure(error: unknown): CliError {
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
    return new CliError(`${error.message}${exit}`, code, { cause: error });
  }
  if (error instanceof FabricRequestError) {
    // No answer at all: the spawner (or the fabric) is not running.
    return new CliError(
      `${error.message}: check that it runs ("fabricd status"), or start the fabric with ` +
        '"fabricd up"',
      EXIT.UNREACHABLE,
      { cause: error },
    );
  }
  if (error instanceof CliError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new CliError(message, EXIT.FAILURE, { cause: error });
}

/** Runs `fabricd spawn`. */
export async function spawnCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("spawn", args, {
    role: { type: "string" },
    on: { type: "string" },
    via: { type: "string" },
    session: { type: "string", multiple: true },
    option: { type: "string", multiple: true },
    count: { type: "string" },
    parallel: { type: "string" },
    fabric: { type: "string" },
    json: { type: "boolean" },
  });
  noMoreArgs("spawn", parsed.positionals);
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
  if (stringFlag(parsed, "on") === "") {
    throw usage(
      "Empty --on: give a launcher URL (local://, ssh://host, slurm://), or leave --on out",
    );
  }
  const count = rangeFlag(parsed, "count", { min: 1, max: 1000 }) ?? 1;
  const parallel = rangeFlag(parsed, "parallel", { min: 1, max: 64 }) ?? 8;
  const viaId = idFlag(parsed, "via", "service");
  const sessions = idFlags(parsed, "session", "session");
  const context = await loadContext(stringFlag(parsed, "fabric"));
  const via = await targetOf(context, viaId);
  const body = {
    role,
    on: stringFlag(parsed, "on") ?? "local://",
    sessions,
    options,
  };
  const json = parsed.flags.json === true;
  // One spawn watched on a terminal shows its steps on stderr as they come.
  const watched = count === 1 && !json && Deno.stdout.isTerminal();
  const outcome = await spawnMany(context.client, via, {
    body,
    count,
    parallel,
    ...(watched
      ? { send: (b, timeoutMs) => spawnWithProgress(context.client, via, { body: b, timeoutMs }) }
      : {}),
    onResult: (result) =>
      console.log(
        json
          ? JSON.stringify(result)
          : `${result.id} ${result.state} at ${result.endpoint} (via ${via.id})`,
      ),
    onFailure: (failure) => {
      if (count > 1) console.error(`fabricd: ${failure.message}`);
    },
  });
  const [first] = outcome.failed;
  if (!first) return EXIT.OK;
  // One spawn: its failure is the error; several: each was printed, this sums up.
  if (count === 1) throw first;
  throw new CliError(
    `${outcome.failed.length} of ${count} spawns failed, ${outcome.started.length} started`,
    first.exitCode,
  );
}
