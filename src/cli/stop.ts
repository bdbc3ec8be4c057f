/**
 * `fabricd stop ID... | --all`: stops services cleanly (they record STOPPED).
 * @module
 */
import { EXIT } from "../types/mod.ts";
import { parseFlags, stringFlag } from "./args.ts";
import { CliError, usage } from "./cli_error.ts";
import { loadContext } from "./context.ts";
import { stopServices } from "./local_fabric.ts";

/** Help text of `fabricd stop`. */
export const STOP_HELP = `fabricd stop ID... | --all [--fabric FILE]

Stops the named services, or with --all every live service of the fabric,
children before parents and the registry last.
`;

/** Runs `fabricd stop`. */
export async function stopCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("stop", args, { all: { type: "boolean" }, fabric: { type: "string" } });
  if (parsed.flags.help) {
    console.log(STOP_HELP);
    return EXIT.OK;
  }
  const all = parsed.flags.all === true;
  if (all === parsed.positionals.length > 0) {
    throw usage(
      'Give service IDs or --all, not both and not neither: e.g. "fabricd stop spw-1a2b3c4d"',
    );
  }
  const context = await loadContext(stringFlag(parsed, "fabric"));
  if (!all) {
    for (const id of parsed.positionals) {
      const found = await context.registry.get(id);
      if (!found) {
        throw new CliError(
          `No service "${id}" in the registry: see "fabricd status"`,
          EXIT.FAILURE,
        );
      }
    }
  }
  const stopped = await stopServices(context.client, context.registry, {
    reason: "stopped by fabricd stop",
    ...(all ? {} : { ids: parsed.positionals }),
  });
  console.log(`Stopped ${stopped} service${stopped === 1 ? "" : "s"}.`);
  return EXIT.OK;
}
