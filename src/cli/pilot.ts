/**
 * `fabricd pilot submit|list|cancel`: agents submitted as pilots through a
 * pilot manager (`slurm://partition` on a head node, or any launcher), their
 * batch states, and cancelling one.
 * @module
 */
import type { Pilot } from "../services/pilot_manager/pilots.ts";
import { EXIT } from "../types/mod.ts";
import { intFlag, parseFlags, stringFlag } from "./args.ts";
import { CliError, usage } from "./cli_error.ts";
import { loadContext } from "./context.ts";
import { serviceOf } from "./_service_of.ts";

/** Help text of `fabricd pilot`. */
export const PILOT_HELP = `fabricd pilot submit [--on URL] [--count N] [--cores N] [--walltime T]
                     [--policy resubmit|report] [--queue ID] [--pubsub ID]
fabricd pilot list
fabricd pilot cancel PILOT_ID

  submit   asks the pilot manager to submit N agents (default 1) through a launcher
           (default the manager's own, e.g. slurm://compute) with N cores each and a
           walltime (30, 90s, 2h or HH:MM:SS); they take tasks from the queue service
           and report on the pub/sub service (the fabric's only ones, or --queue/--pubsub)
  list     every pilot: its state, batch job, node, agent state and reason
  cancel   cancels a pilot's batch job (scancel); it is not resubmitted

  --manager ID       which pilot manager, when the fabric has more than one
  --policy P         when a job ends early: resubmit (under its ID) or report
  --queue-name NAME  queue name the agents read (default tasks)
  --json             machine-readable output
`;

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
  if (!["submit", "list", "cancel"].includes(action)) {
    throw usage(`Unknown action "${action}": use submit, list or cancel`);
  }
  const context = await loadContext(stringFlag(parsed, "fabric"));
  const manager = await serviceOf(context, "pilot-manager", stringFlag(parsed, "manager"));
  const call = <T>(method: string, path: string, body?: unknown) =>
    context.client.call<T>(manager, { method, path, ...(body ? { body } : {}) }, {
      timeoutMs: 60_000,
    });
  const print = (pilots: Pilot[]): void => {
    if (parsed.flags.json) console.log(JSON.stringify({ pilots }));
    else if (pilots.length === 0) console.log("no pilots");
    else for (const pilot of pilots) console.log(describe(pilot));
  };
  if (action === "submit") {
    if (rest.length > 0) throw usage(`Unexpected "${rest[0]}": submit takes flags only`);
    const queue = await serviceOf(context, "queue", stringFlag(parsed, "queue"));
    const pubsub = await serviceOf(context, "pubsub", stringFlag(parsed, "pubsub"));
    const body = {
      count: intFlag(parsed, "count", 1),
      cores: intFlag(parsed, "cores", 1),
      queue: queue.id,
      pubsub: pubsub.id,
      ...optional("on", stringFlag(parsed, "on")),
      ...optional("walltime", stringFlag(parsed, "walltime")),
      ...optional("policy", stringFlag(parsed, "policy")),
      ...optional("queueName", stringFlag(parsed, "queue-name")),
    };
    print((await call<{ pilots: Pilot[] }>("POST", "/v1/pilots", body)).pilots);
    return EXIT.OK;
  }
  if (action === "list") {
    print((await call<{ pilots: Pilot[] }>("GET", "/v1/pilots")).pilots);
    return EXIT.OK;
  }
  const [id, ...extra] = rest;
  if (!id || extra.length > 0) {
    throw usage('Give one pilot ID: "fabricd pilot cancel agt-1a2b3c4d"');
  }
  const pilot = await call<Pilot>("DELETE", `/v1/pilots/${encodeURIComponent(id)}`).catch(
    (error: Error & { status?: number }) => {
      if (error.status === 404) {
        throw new CliError(`No pilot "${id}": see "fabricd pilot list"`, EXIT.FAILURE);
      }
      throw error;
    },
  );
  print([pilot]);
  return EXIT.OK;
}

function optional(key: string, value: string | undefined): Record<string, string> {
  return value === undefined ? {} : { [key]: value };
}

function describe(pilot: Pilot): string {
  const job = pilot.batch
    ? ` job ${pilot.batch.jobId} ${pilot.batch.state}${
      pilot.batch.nodes ? ` on ${pilot.batch.nodes}` : ""
    }`
    : "";
  const agent = pilot.service ? ` agent ${pilot.service}` : "";
  return `${pilot.id} ${pilot.state}${job}${agent} (${pilot.cores} cores, ${pilot.on}` +
    `${pilot.walltime ? `, walltime ${pilot.walltime}` : ""}): ${pilot.reason}`;
}
