/**
 * `fabricd session open|close|list`: an application's sessions, kept in the
 * fabric file and registered with the services that serve them.
 * @module
 */
import { saveFabricFile } from "../config/fabric_file.ts";
import { sessionIdSchema } from "../types/wire.ts";
import { EXIT, type ServiceRecord } from "../types/mod.ts";
import { listFlag, parseFlags, stringFlag } from "./args.ts";
import { CliError, usage } from "./cli_error.ts";
import { type FabricContext, loadContext, targetOf } from "./context.ts";
import { targetFor } from "../client/route.ts";

/** Help text of `fabricd session`. */
export const SESSION_HELP =
  `fabricd session open [S] --service ID... | close S | list [--fabric FILE]

  open [S]   records session S (a new ID if omitted) in the fabric file and
             registers it with each --service ID (at least one; exit 64 without)
  close S    deregisters S from every service serving it and forgets it; exit 1
             when neither the fabric file nor any service knows S
  list       sessions of the fabric file and the services serving each
`;

/** Runs `fabricd session`. */
export async function sessionCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("session", args, {
    service: { type: "string", multiple: true },
    fabric: { type: "string" },
    json: { type: "boolean" },
  });
  const [action, name, ...extra] = parsed.positionals;
  if (parsed.flags.help || !action) {
    console.log(SESSION_HELP);
    return parsed.flags.help ? EXIT.OK : EXIT.USAGE;
  }
  if (extra.length > 0) throw usage(`Unexpected "${extra[0]}": see "fabricd session --help"`);
  if (name !== undefined && !sessionIdSchema.safeParse(name).success) {
    throw usage(`Invalid session "${name}": use 1-128 letters, digits, '.', '_' or '-'`);
  }
  if (action === "open" && listFlag(parsed, "service").length === 0) {
    throw usage(
      `Name the services that serve the session: "fabricd session open ${
        name ?? "S"
      } --service ID"`,
    );
  }
  const context = await loadContext(stringFlag(parsed, "fabric"));
  const records = await context.registry.list();
  if (action === "list") return listSessions(context, records, parsed.flags.json === true);
  if (action === "open") return await openSession(context, name, listFlag(parsed, "service"));
  if (action === "close") return await closeSession(context, records, name);
  throw usage(`Unknown action "${action}": use open, close or list`);
}

/** `session list`: the sessions of the fabric file and of `records`, with who serves each. */
function listSessions(context: FabricContext, records: ServiceRecord[], json: boolean): number {
  const sessions = new Set([...context.fabric.sessions, ...records.flatMap((r) => r.sessions)]);
  if (json) {
    const out = [...sessions].map((s) => ({
      session: s,
      services: records.filter((r) => r.sessions.includes(s)).map((r) => r.id),
    }));
    console.log(JSON.stringify({ sessions: out }));
    return EXIT.OK;
  }
  if (sessions.size === 0) console.log("No sessions.");
  for (const s of [...sessions].sort()) {
    const served = records.filter((r) => r.sessions.includes(s)).map((r) => `${r.id} (${r.state})`);
    console.log(`${s}: ${served.join(", ") || "no services"}`);
  }
  return EXIT.OK;
}

/** `session open`: registers session `name` (or a new one) with `services`, then records it. */
async function openSession(
  context: FabricContext,
  name: string | undefined,
  services: string[],
): Promise<number> {
  const session = name ?? `ses-${crypto.randomUUID().slice(0, 8)}`;
  for (const id of services) {
    const target = await targetOf(context, id);
    await context.client.call(target, { method: "POST", path: `/v1/sessions/${session}` });
  }
  if (!context.fabric.sessions.includes(session)) {
    await saveFabricFile(context.fabricPath, {
      ...context.fabric,
      sessions: [...context.fabric.sessions, session],
    });
  }
  console.log(session);
  return EXIT.OK;
}

/**
 * `session close`: deregisters session `name` from every service of `records`
 * serving it (or clears it on record when one cannot be reached) and forgets it.
 * @throws {CliError} exit 64 without `name`, 1 when nobody knows it.
 */
async function closeSession(
  context: FabricContext,
  records: ServiceRecord[],
  name: string | undefined,
): Promise<number> {
  if (!name) throw usage('Missing session: "fabricd session close S"');
  if (
    !context.fabric.sessions.includes(name) && !records.some((r) => r.sessions.includes(name))
  ) {
    throw new CliError(
      `No session "${name}" in the fabric file or the registry: see "fabricd session list"`,
      EXIT.FAILURE,
    );
  }
  for (const record of records.filter((r) => r.sessions.includes(name))) {
    await context.client.call(targetFor(record, records), {
      method: "DELETE",
      path: `/v1/sessions/${name}`,
    }).catch(() => context.registry.setSession(record.id, name, false));
  }
  await saveFabricFile(context.fabricPath, {
    ...context.fabric,
    sessions: context.fabric.sessions.filter((s) => s !== name),
  });
  console.log(`Closed ${name}`);
  return EXIT.OK;
}
