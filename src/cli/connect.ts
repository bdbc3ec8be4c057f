/**
 * `fabricd connect --session S`: an application (or an operator) attaches to
 * a running fabric from the fabric file and sees what became of the session's
 * services: alive, restarted (dead ones are restarted on the way), or lost.
 * @module
 */
import { attach, type AttachedService } from "../client/attach.ts";
import { keyPathOf, loadFabricFile, resolveFabricPath } from "../config/fabric_file.ts";
import { EXIT } from "../types/mod.ts";
import { idFlags, noMoreArgs, parseFlags, stringFlag } from "./args.ts";
import { CliError } from "./cli_error.ts";
import { checkKeyFileMode } from "./context.ts";

/** Help text of `fabricd connect`. */
export const CONNECT_HELP = `fabricd connect [--session S]... [--follow] [--json] [--fabric FILE]

Attaches to the fabric of the fabric file: connects to every service of the
sessions (default: the sessions of the fabric file) with POST /v1/connect,
restarting dead ones through their parents, and reports each as alive,
restarted, lost or unreachable. A service that is not ALIVE, or that does not
answer although the registry still says ALIVE (killed a moment ago), is
reported to the registry and waited for, up to 30 s, while its parent restarts
it; it is then "restarted". --follow then prints every change to those
services until Ctrl-C. Exit 0 when every service is alive or restarted, 1 when
one is lost or unreachable, or when no service serves the sessions named with
--session.
`;

/** Runs `fabricd connect`. */
export async function connectCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("connect", args, {
    session: { type: "string", multiple: true },
    follow: { type: "boolean" },
    json: { type: "boolean" },
    fabric: { type: "string" },
  });
  noMoreArgs("connect", parsed.positionals);
  if (parsed.flags.help) {
    console.log(CONNECT_HELP);
    return EXIT.OK;
  }
  const sessions = idFlags(parsed, "session", "session");
  const fabricFlag = stringFlag(parsed, "fabric");
  const fabricPath = resolveFabricPath(fabricFlag);
  const fabric = await loadFabricFile(fabricPath);
  await checkKeyFileMode(keyPathOf(fabricPath, fabric));
  if (fabric.registries.length === 0) {
    throw new CliError(
      `Fabric file "${fabricPath}" names no registry: start the fabric with "fabricd up"`,
      EXIT.CONFIG,
    );
  }
  const session = await attach(fabricPath, sessions.length > 0 ? { sessions } : {});
  const services = session.services;
  if (sessions.length > 0 && services.length === 0) {
    session.close();
    throw new CliError(
      `No service serves session${sessions.length === 1 ? "" : "s"} ${
        sessions.map((s) => `"${s}"`).join(", ")
      }: see "fabricd session list"`,
      EXIT.FAILURE,
    );
  }
  if (parsed.flags.json) {
    console.log(JSON.stringify({ sessions: session.sessions, services }));
  } else {
    console.log(
      `Attached to ${session.fabric.fingerprint} for ${
        session.sessions.join(", ") || "no session"
      }`,
    );
    for (const s of services) console.log(describe(s));
    if (services.length === 0) console.log("No service serves these sessions.");
  }
  const healthy = services.every((s) => s.fate === "alive" || s.fate === "restarted");
  if (parsed.flags.follow) {
    const stop = () => session.close();
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    await session.follow((event) => {
      const line = `${
        new Date(event.at).toISOString()
      } ${event.id} ${event.state} (incarnation ${event.incarnation}): ${event.reason}`;
      console.log(parsed.flags.json ? JSON.stringify(event) : line);
    });
  }
  session.close();
  return healthy ? EXIT.OK : EXIT.FAILURE;
}

function describe(s: AttachedService): string {
  const why = s.reason ? `: ${s.reason}` : "";
  return `  ${s.id.padEnd(14)} ${s.role.padEnd(10)} ${
    s.state.padEnd(8)
  } inc ${s.incarnation}  ${s.fate}${why}`;
}
