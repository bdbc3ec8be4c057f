/**
 * `fabricd stop ID... | --all`: stops services cleanly (they record STOPPED),
 * each with everything below it unless `--only`, in dependency order.
 * @module
 */
import { EXIT, type ServiceRecord } from "../types/mod.ts";
import { checkId, durationFlag, parseFlags, stringFlag } from "./args.ts";
import { CliError, recordNamed, usage } from "./cli_error.ts";
import { loadContext } from "./context.ts";
import { RUNNING_STATES, stopServices } from "./stop_services.ts";
import { subtreeIds } from "../registry/record_filter.ts";

/** Help text of `fabricd stop`. */
export const STOP_HELP = `fabricd stop ID... | --all [--only] [--grace D] [--fabric FILE]

Stops the named services and every service below them (spawned by them, at
any depth), or with --all every live service of the fabric. Services stop in
dependency order: agents and pilot managers, then queues and pub/subs, then
spawners and bridges, the registry last; never a service before one below it
(a pilot manager with a queue below it stops with the queues).
Each is printed as it is asked to stop.

  --only      stop only the named services; the services below them keep
              running without their parent (a warning names them)
  --grace D   time an agent's tasks get between SIGTERM and SIGKILL, at most
              10m (e.g. 500ms, 10s, 2m; default: each agent's own, 10 s)

Exits 1, naming them, when services refused to stop (their answer says why),
or could not be reached and may still run (each with why: e.g. a relay on its
route has stopped). A service on this host whose relay has stopped is asked
directly at its own endpoint.
`;

/** Longest --grace: what a service's stop request takes (docs/protocol.md 5.2). */
const MAX_GRACE_MS = 600_000;

/** Runs `fabricd stop`. */
export async function stopCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("stop", args, {
    all: { type: "boolean" },
    only: { type: "boolean" },
    grace: { type: "string" },
    fabric: { type: "string" },
  });
  if (parsed.flags.help) {
    console.log(STOP_HELP);
    return EXIT.OK;
  }
  const all = parsed.flags.all === true;
  const only = parsed.flags.only === true;
  if (all === parsed.positionals.length > 0) {
    throw usage(
      'Give service IDs or --all, not both and not neither: e.g. "fabricd stop spw-1a2b3c4d"',
    );
  }
  if (all && only) throw usage("--only names services: give IDs instead of --all");
  for (const id of parsed.positionals) checkId("service", id);
  const graceMs = parsed.flags.grace === undefined
    ? undefined
    : durationFlag(parsed, "grace", 0, { max: MAX_GRACE_MS });
  const context = await loadContext(stringFlag(parsed, "fabric"));
  if (!all) {
    const records = await context.registry.list();
    for (const id of parsed.positionals) recordNamed(records, id);
    if (only) {
      const named = new Set(parsed.positionals);
      const subtree = subtreeIds(records, parsed.positionals);
      const orphans = records.filter((r) =>
        subtree.has(r.id) && !named.has(r.id) && RUNNING_STATES.includes(r.state)
      ).map((r) => r.id);
      if (orphans.length > 0) {
        console.error(
          `Warning: ${orphans.length} service${orphans.length === 1 ? "" : "s"} below ` +
            `${parsed.positionals.join(", ")} keep running without their parent: ` +
            `${orphans.join(", ")} (stop them with "fabricd stop ${orphans.join(" ")}")`,
        );
      }
    }
  }
  const refused: string[] = [];
  const unreachable: string[] = [];
  const stopped = await stopServices(context.client, context.registry, {
    reason: "stopped by fabricd stop",
    ...(all ? {} : only ? { ids: parsed.positionals } : { under: parsed.positionals }),
    ...(graceMs === undefined ? {} : { graceMs }),
    onStop: (record: ServiceRecord) => console.log(`stopping ${record.id} (${record.role})`),
    onRefused: (record, message) => {
      refused.push(record.id);
      console.error(`${record.id} refused to stop: ${message}`);
    },
    onUnreachable: (record, why) => {
      unreachable.push(record.id);
      console.error(`${record.id} (${record.role}) could not be reached and may still run: ${why}`);
    },
  });
  console.log(`Stopped ${stopped} service${stopped === 1 ? "" : "s"}.`);
  const failures = [
    ...(refused.length > 0
      ? [`${plural(refused.length)} refused to stop: ${refused.join(", ")}`]
      : []),
    ...(unreachable.length > 0
      ? [`${plural(unreachable.length)} could not be reached: ${unreachable.join(", ")}`]
      : []),
  ];
  if (failures.length === 0) return EXIT.OK;
  throw new CliError(`${failures.join("; ")} (see above)`, EXIT.FAILURE);
}

function plural(n: number): string {
  return `${n} service${n === 1 ? "" : "s"}`;
}
