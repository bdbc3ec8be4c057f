/**
 * `fabricd pilot submit|list|cancel`: agents submitted as pilots through a
 * pilot manager (`slurm://partition` on a head node, or any launcher), their
 * batch states, and cancelling one.
 * @module
 */
import type { Pilot } from "../services/pilot_manager/pilots.ts";
import { EXIT } from "../types/mod.ts";
import { LAUNCHER_FORMS, launcherUrlProblem } from "../types/launcher_urls.ts";
import { checkLauncherUrl } from "../launchers/mod.ts";
// The pilot manager's own request schema: a flag is refused here as the manager would.
import { MAX_PILOTS_PER_REQUEST, pilotRequestSchema } from "../types/pilot_schemas.ts";
import { WALLTIME_FORMS } from "../types/walltime.ts";
import { checkId, idFlag, noMoreArgs, type ParsedArgs, parseFlags, stringFlag } from "./args.ts";
import { CliError, usage } from "./cli_error.ts";
import { loadContext } from "./context.ts";
import { serviceOf } from "./_service_of.ts";

/** Help text of `fabricd pilot`. */
export const PILOT_HELP = `fabricd pilot submit [--on URL] [--count N] [--cores N] [--walltime T]
                     [--policy resubmit|report] [--queue ID] [--pubsub ID]
                     [--queue-name NAME] [--manager ID] [--json] [--fabric FILE]
fabricd pilot list [--manager ID] [--json] [--fabric FILE]
fabricd pilot cancel PILOT_ID [--manager ID] [--json] [--fabric FILE]

  submit   asks the pilot manager to submit N agents (default 1, at most
           ${MAX_PILOTS_PER_REQUEST}) through a launcher (default the manager's own, e.g.
           slurm://compute; else local://, ssh://HOST or slurm://PARTITION) with N
           cores each (1-4096) and a walltime (30, 90s, 2h, HH:MM:SS or
           D-HH:MM:SS; Slurm gets whole minutes, rounded up); they take
           tasks from the queue service and report on the pub/sub service (the
           fabric's only ones, or --queue/--pubsub)
  list     every pilot: its state, batch job, node, agent state and reason
  cancel   cancels a pilot's batch job (scancel); it is not resubmitted

  --manager ID       which pilot manager, when the fabric has more than one
  --policy P         when a job ends early: resubmit (under its ID) or report
  --queue-name NAME  queue name the agents read (default tasks)
  --json             machine-readable output
  --fabric FILE      fabric file (default: FABRIC_FILE, then ~/.fabric/fabric.yaml)

Every argument is checked before anything is sent (exit 64); an unknown
--manager, --queue or --pubsub ID exits 1.
`;

/** What `pilot submit` asks for, checked, without the queue and pub/sub services. */
type PilotAsk = Record<string, string | number>;

/**
 * `pilot submit`'s flags as the pilot manager's request fields, checked with
 * the manager's own schema (`pilotRequestSchema`) so that a value it would
 * refuse is a usage error naming the flag.
 * @throws {CliError} (64) naming the flag and its valid values.
 */
function pilotAskOf(parsed: ParsedArgs): PilotAsk {
  const fields = pilotRequestSchema.shape;
  const ask: PilotAsk = {};
  // Each flag is named after its field; a number flag's text is sent as its number.
  const check = (field: "count" | "cores" | "walltime" | "policy", valid: string): void => {
    const given = stringFlag(parsed, field);
    if (given === undefined) return;
    const value = field === "count" || field === "cores"
      ? /^\d{1,9}$/.test(given) ? Number(given) : NaN
      : given;
    if (!fields[field].safeParse(value).success) {
      throw usage(`Invalid --${field} "${given}": ${valid}`);
    }
    ask[field] = value;
  };
  check("count", `give a whole number from 1 to ${MAX_PILOTS_PER_REQUEST}`);
  check("cores", "give a whole number from 1 to 4096");
  check("walltime", `give ${WALLTIME_FORMS}, more than zero`);
  check("policy", "use resubmit or report");
  const on = stringFlag(parsed, "on");
  if (on !== undefined) ask.on = checkLauncher(on);
  const queueName = idFlag(parsed, "queue-name", "queue");
  if (queueName !== undefined) ask.queueName = queueName;
  return ask;
}

/**
 * A launcher URL the pilot manager can use: `local://`, `ssh://...` or
 * `slurm://...` (the manager's launchers, types/launcher_urls.ts), its host,
 * partition and parameters checked by the launcher's own parser
 * (`checkLauncherUrl`), as `spawn --on` is; nothing is started.
 * @throws {CliError} (64) for any other, with what to use instead.
 */
function checkLauncher(url: string): string {
  const problem = url.length > 2048
    ? { hint: `use a URL of at most 2048 characters: ${LAUNCHER_FORMS}` }
    : launcherUrlProblem(url);
  if (problem) throw usage(`Invalid --on "${url.slice(0, 200)}": ${problem.hint}`);
  try {
    checkLauncherUrl(url);
  } catch (error) {
    const said = (error as Error).message.replace(`Invalid launcher "${url}": `, "");
    throw usage(`Invalid --on "${url.slice(0, 200)}": ${said}`);
  }
  return url;
}

/** Runs `fabricd pilot`. */
export async function pilotCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("pilot", args, {
    manager: { type: "string" },
    on: { type: "string" },
    count: { type: "string" },
    cores: { type: "string" },
    walltime: { type: "string" },
    policy: { type: "string" },
    queue: { type: "string" },
    pubsub: { type: "string" },
    "queue-name": { type: "string" },
    json: { type: "boolean" },
    fabric: { type: "string" },
  });
  const [action, ...rest] = parsed.positionals;
  if (parsed.flags.help || !action) {
    console.log(PILOT_HELP);
    return parsed.flags.help ? EXIT.OK : EXIT.USAGE;
  }
  // Every argument is checked before the fabric is loaded: a usage error is 64 on any fabric.
  if (!["submit", "list", "cancel"].includes(action)) {
    throw usage(`Unknown action "${action}": use submit, list or cancel`);
  }
  const managerId = idFlag(parsed, "manager", "service");
  const queueId = idFlag(parsed, "queue", "service");
  const pubsubId = idFlag(parsed, "pubsub", "service");
  const ask = action === "submit" ? pilotAskOf(parsed) : undefined;
  if (action !== "cancel") noMoreArgs("pilot", rest);
  const [id, ...extra] = rest;
  if (action === "cancel" && (!id || extra.length > 0)) {
    throw usage('Give one pilot ID: "fabricd pilot cancel agt-1a2b3c4d"');
  }
  const pilotId = id === undefined
    ? undefined
    : checkId("service", id, { example: "agt-1a2b3c4d" });
  const context = await loadContext(stringFlag(parsed, "fabric"));
  const manager = await serviceOf(context, "pilot-manager", managerId);
  const call = <T>(method: string, path: string, body?: unknown) =>
    context.client.call<T>(manager, { method, path, ...(body ? { body } : {}) }, {
      timeoutMs: 60_000,
    });
  const print = (pilots: Pilot[]): void => {
    if (parsed.flags.json) console.log(JSON.stringify({ pilots }));
    else if (pilots.length === 0) console.log("no pilots");
    else for (const pilot of pilots) console.log(describePilot(pilot));
  };
  if (ask) {
    const queue = await serviceOf(context, "queue", queueId);
    const pubsub = await serviceOf(context, "pubsub", pubsubId);
    const body = { ...ask, queue: queue.id, pubsub: pubsub.id };
    print((await call<{ pilots: Pilot[] }>("POST", "/v1/pilots", body)).pilots);
    return EXIT.OK;
  }
  if (action === "list") {
    print((await call<{ pilots: Pilot[] }>("GET", "/v1/pilots")).pilots);
    return EXIT.OK;
  }
  const pilot = await call<Pilot>("DELETE", `/v1/pilots/${pilotId}`).catch(
    (error: Error & { status?: number }) => {
      if (error.status === 404) {
        throw new CliError(`No pilot "${pilotId}": see "fabricd pilot list"`, EXIT.FAILURE);
      }
      throw error;
    },
  );
  print([pilot]);
  return EXIT.OK;
}

/**
 * One line of `pilot list`: the pilot's state, its batch job, its agent's
 * registry state, what it was submitted with, and why it is in its state.
 */
export function describePilot(pilot: Pilot): string {
  const job = pilot.batch
    ? ` job ${pilot.batch.jobId} ${pilot.batch.state}${
      pilot.batch.nodes ? ` on ${pilot.batch.nodes}` : ""
    }`
    : "";
  const agent = pilot.service ? ` agent ${pilot.service}` : "";
  const cores = `${pilot.cores} ${pilot.cores === 1 ? "core" : "cores"}`;
  return `${pilot.id} ${pilot.state}${job}${agent} (${cores}, ${pilot.on}` +
    `${pilot.walltime ? `, walltime ${pilot.walltime}` : ""}): ${pilot.reason}`;
}
