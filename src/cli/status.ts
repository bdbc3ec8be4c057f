/**
 * `fabricd status`: the fabric as a tree (ID, role, host, pid, state,
 * uptime, restarts, heartbeat age, last failure), or `--json`; `--prune`
 * forgets the ended records first.
 * @module
 */
import type { ServiceStatus } from "../types/mod.ts";
import { EXIT, ROLES, SERVICE_STATES } from "../types/mod.ts";
import type { ListFilter } from "../client/registry_client.ts";
import { checkId, idFlag, listFlag, type ParsedArgs, parseFlags, stringFlag } from "./args.ts";
import { unknownService, usage } from "./cli_error.ts";
import { loadContext, targetOf } from "./context.ts";
import { forgetRecords, FORGETTABLE_STATES, reportForgotten } from "./forget.ts";
import { renderTree, shownRecords, withReachability, writeServicesJson } from "./status_tree.ts";

/** Help text of `fabricd status`. */
export const STATUS_HELP = `fabricd status [ID] [--fabric FILE] [--json] [--all] [--prune]

Without ID: every service of the fabric as the spawn tree (ID, role, host, pid,
state, incarnation, uptime of a running service, restarts, age of the last
heartbeat, last failure shortened), from the registry. Stopped and lost
services are hidden unless --all is given. --json prints the registry's records.
--prune first forgets every ended record (STOPPED, FAILED, LOST; see "fabricd
forget --help") that the filters below keep, printing each (on stderr with
--json), then shows what is left; exit 1 if any was refused.

Filters, applied by the registry (repeat a flag or give a comma-separated list):
--role ROLE keeps services of these roles, --state STATE those in these states,
--under ID that service and everything below it (exit 1 when the registry has
no service ID).

With ID: asks that service itself (a signed GET /v1/status, through the bridges
on its route) and prints its answer and the round-trip time.
`;

/** Runs `fabricd status`. */
export async function statusCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("status", args, {
    fabric: { type: "string" },
    json: { type: "boolean" },
    all: { type: "boolean" },
    role: { type: "string", multiple: true },
    state: { type: "string", multiple: true },
    under: { type: "string" },
    prune: { type: "boolean" },
  });
  if (parsed.flags.help) {
    console.log(STATUS_HELP);
    return EXIT.OK;
  }
  const [id, ...extra] = parsed.positionals;
  if (extra.length > 0) throw usage(`Unexpected "${extra[0]}": see "fabricd status --help"`);
  // An empty ID ("") is an ID all the same: refused as every command refuses it, never the whole tree.
  if (id !== undefined && parsed.flags.prune) {
    throw usage("--prune works on the whole fabric: give no ID");
  }
  if (id !== undefined) checkId("service", id);
  const filter = listFilterOf(parsed);
  const context = await loadContext(stringFlag(parsed, "fabric"));
  if (id !== undefined) {
    const target = await targetOf(context, id);
    const started = performance.now();
    const answer = await context.client.call<ServiceStatus>(target, {
      method: "GET",
      path: "/v1/status",
    });
    const ms = performance.now() - started;
    if (parsed.flags.json) {
      console.log(JSON.stringify({ ...answer, roundTripMs: Math.round(ms * 10) / 10 }));
    } else {
      const via = target.route ? ` via ${target.route.slice(0, -1).join(" > ")}` : "";
      console.log(
        `${answer.id} (${answer.role}) on ${answer.host}, pid ${answer.pid}: ${answer.state}, incarnation ${answer.incarnation}`,
      );
      console.log(`  signed answer verified in ${ms.toFixed(1)} ms${via}`);
      console.log(
        `  sessions: ${answer.sessions.join(", ") || "none"}; children: ${
          answer.children.join(", ") || "none"
        }`,
      );
    }
    return EXIT.OK;
  }
  if (filter.under && !(await context.registry.get(filter.under))) {
    throw unknownService(filter.under);
  }
  let code: number = EXIT.OK;
  if (parsed.flags.prune) {
    // Only what the filters show; with --json the report goes to stderr, the JSON alone to stdout.
    const say = parsed.flags.json ? console.error : console.log;
    const ended = (await context.registry.list(undefined, filter)).filter((r) =>
      FORGETTABLE_STATES.includes(r.state)
    );
    code = reportForgotten(await forgetRecords(context.registry, ended.map((r) => r.id)), say);
    if (ended.length === 0) say("No ended records to forget.");
  }
  const records = await context.registry.list(undefined, filter);
  if (parsed.flags.json) {
    await writeServicesJson(withReachability(records));
    return code;
  }
  console.log(renderTree(shownRecords(records, parsed.flags.all === true), Date.now(), records));
  return code;
}

/** `--role`, `--state` and `--under` as the registry's list filter. */
function listFilterOf(parsed: ParsedArgs): ListFilter {
  const split = (name: string): string[] =>
    listFlag(parsed, name).flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
  const roles = split("role");
  const bad = roles.find((r) => !(ROLES as readonly string[]).includes(r));
  if (bad !== undefined) throw usage(`Unknown role "${bad}": use one of ${ROLES.join(", ")}`);
  const states = split("state").map((s) => s.toUpperCase());
  const badState = states.find((s) => !(SERVICE_STATES as readonly string[]).includes(s));
  if (badState !== undefined) {
    throw usage(`Unknown state "${badState}": use one of ${SERVICE_STATES.join(", ")}`);
  }
  const under = idFlag(parsed, "under", "service");
  return {
    ...(roles.length ? { roles } : {}),
    ...(states.length ? { states } : {}),
    ...(under ? { under } : {}),
  };
}
