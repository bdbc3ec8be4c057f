/**
 * `fabricd report [--out report.html] [--dir DIR]`: one static, self-contained
 * HTML file (inline SVG, no script, nothing fetched) with a timeline of every
 * service's and pilot's states from the registry's transitions and a plot of
 * the tasks finished per interval (issue 13).
 * @module
 */
import { dirname, join, resolve } from "../base/paths.ts";
import { EXIT } from "../types/mod.ts";
import { collectReport } from "../ui/report_data.ts";
import { reportHtml } from "../ui/report_html.ts";
import { parseFlags, stringFlag } from "./args.ts";
import { CliError, usage } from "./cli_error.ts";
import { loadContext } from "./context.ts";

/** The README's "cannot create" (sysexits EX_CANTCREAT): the report file cannot be written. */
export const EXIT_CANNOT_CREATE = EXIT.CANNOT_CREATE;

/** Help text of `fabricd report`. */
export const REPORT_HELP = `fabricd report [--out FILE] [--dir DIR | --fabric FILE]

Writes one self-contained HTML file (inline SVG; no script, nothing fetched
when it is opened) with
  - a timeline of every service's states over time, pilots marked, from the
    registry's transitions (as "fabricd events" prints them);
  - the tasks finished per interval, estimated: each ALIVE agent's
    DONE/FAILED counters spread over the ALIVE time of its current
    incarnation (agents that are gone are not counted; each task's own
    times are in the queue's history: "fabricd task list", "task show").

  --out FILE    where to write (default report.html); replaced atomically
  --dir DIR     the fabric's directory: reads DIR/fabric.yaml
  --fabric FILE the fabric file (default: FABRIC_FILE, then ~/.fabric/fabric.yaml)

Exit codes: 0 written; 64 usage; 69 the registry does not answer (start the
fabric with "fabricd up"); 73 FILE cannot be written, or is a directory
(checked before anything is read or written); 78 no fabric file.
`;

/** Runs `fabricd report`. */
export async function reportCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("report", args, {
    out: { type: "string" },
    dir: { type: "string" },
    fabric: { type: "string" },
  });
  if (parsed.flags.help) {
    console.log(REPORT_HELP);
    return EXIT.OK;
  }
  if (parsed.positionals.length > 0) {
    throw usage('fabricd report takes no arguments: see "fabricd report --help"');
  }
  const dir = stringFlag(parsed, "dir");
  const fabricFlag = stringFlag(parsed, "fabric");
  if (dir !== undefined && fabricFlag !== undefined) {
    throw usage("Give --dir DIR or --fabric FILE, not both");
  }
  const outFlag = stringFlag(parsed, "out");
  if (outFlag === "") throw usage("Empty --out: give a file name, or leave --out out");
  const out = resolve(outFlag ?? "report.html");
  await refuseDirectory(out);
  const context = await loadContext(dir === undefined ? fabricFlag : join(dir, "fabric.yaml"));
  const input = await collectReport(context);
  const html = reportHtml(input);
  await writeReport(out, html);
  const transitions = input.services.reduce((n, s) => n + s.transitions.length, 0);
  console.log(
    `fabricd report: wrote ${out} (${input.services.length} services, ${transitions} transitions)`,
  );
  return EXIT.OK;
}

/**
 * Refuses an `--out` that names a directory, before the fabric is read or
 * anything written (the temporary file would go beside it, into its parent).
 * @throws {CliError} (73) naming the directory and a file to give instead.
 */
async function refuseDirectory(path: string): Promise<void> {
  const info = await Deno.stat(path).catch(() => null);
  if (!info?.isDirectory) return;
  throw new CliError(
    `Cannot write the report to "${path}": it is a directory: give a file name for --out ` +
      `(e.g. --out ${join(path, "report.html")})`,
    EXIT_CANNOT_CREATE,
  );
}

/**
 * Writes `html` to `path` through a temporary file beside it, so a reader
 * never sees half a report.
 * @throws {CliError} (73) when the file cannot be written.
 */
async function writeReport(path: string, html: string): Promise<void> {
  const temporary = join(dirname(path), `.${crypto.randomUUID().slice(0, 8)}.report.tmp`);
  try {
    await Deno.writeTextFile(temporary, html, { createNew: true });
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    const reason = error instanceof Error ? error.message : String(error);
    throw new CliError(
      `Cannot write the report to "${path}": ${reason}: choose a writable --out`,
      EXIT_CANNOT_CREATE,
      { cause: error },
    );
  }
}
