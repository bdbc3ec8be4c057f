/**
 * `fabricd restart ID`: has a dead (or stopped) service restarted by its
 * parent, under its old ID, through its original launcher and the same
 * bootstrap, with the next incarnation.
 * @module
 */
import { targetFor } from "../client/route.ts";
import { EXIT, type SpawnResult } from "../types/mod.ts";
import { checkId, parseFlags, stringFlag } from "./args.ts";
import { CliError, recordNamed, usage } from "./cli_error.ts";
import { loadContext } from "./context.ts";

/** Help text of `fabricd restart`. */
export const RESTART_HELP = `fabricd restart ID [--json] [--fabric FILE]

Asks the parent of service ID to restart it under the same ID with the next
incarnation (only SUSPECT, DEAD, FAILED or STOPPED services). Parents restart
dead children by themselves; this is for an operator who wants it now, or a
service that was stopped.
`;

/** Runs `fabricd restart`. */
export async function restartCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("restart", args, {
    json: { type: "boolean" },
    fabric: { type: "string" },
  });
  if (parsed.flags.help) {
    console.log(RESTART_HELP);
    return EXIT.OK;
  }
  const [id, ...extra] = parsed.positionals;
  if (!id || extra.length > 0) throw usage('Give one service ID: "fabricd restart spw-1a2b3c4d"');
  checkId("service", id);
  const context = await loadContext(stringFlag(parsed, "fabric"));
  const records = await context.registry.list();
  const record = recordNamed(records, id);
  const parent = records.find((r) => r.id === record.parent);
  if (!parent) {
    throw new CliError(
      `Service "${id}" is a root service (started by "fabricd up"): restart it with "fabricd up"`,
      EXIT.FAILURE,
    );
  }
  const result = await context.client.call<SpawnResult>(targetFor(parent, records), {
    method: "POST",
    path: "/v1/spawn",
    body: { role: record.role, restart: id },
  }, { timeoutMs: 120_000 });
  const after = await context.registry.get(id);
  if (parsed.flags.json) {
    console.log(JSON.stringify({ ...result, incarnation: after?.record.incarnation }));
  } else {console.log(
      `${id} ${result.state} as incarnation ${after?.record.incarnation} (restarted by ${parent.id})`,
    );}
  return EXIT.OK;
}
