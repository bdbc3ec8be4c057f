/**
 * fabricd: one program, every role. Parses the command line and dispatches to
 * a subcommand (`src/cli/`) or runs a service (`--role`); nothing else.
 * @module
 */
import { toCliError } from "./src/cli/cli_error.ts";
import { demoCommand } from "./src/cli/demo.ts";
import { initCommand } from "./src/cli/init.ts";
import { roleCommand } from "./src/cli/role.ts";
import { sessionCommand } from "./src/cli/session.ts";
import { spawnCommand } from "./src/cli/spawn.ts";
import { statusCommand } from "./src/cli/status.ts";
import { stopCommand } from "./src/cli/stop.ts";
import { upCommand } from "./src/cli/up.ts";
import { EXIT } from "./src/types/mod.ts";

const VERSION = "0.1.0";

const HELP = `fabricd ${VERSION}: grow and keep alive a fabric of services across machines

Usage:
  fabricd init                     create the fabric keys and fabric file
  fabricd up                       run a local fabric (registry + spawner) until Ctrl-C
  fabricd spawn --role ROLE        start a new service through a running one
  fabricd status                   show the fabric as a tree
  fabricd session open|close|list  manage application sessions
  fabricd stop ID... | --all       stop services
  fabricd demo                     a scripted tour in a temporary directory
  fabricd --role ROLE [flags]      run one service (normally started for you)

"fabricd COMMAND --help" tells more. Exit codes are listed in the README.`;

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  init: initCommand,
  up: upCommand,
  spawn: spawnCommand,
  status: statusCommand,
  session: sessionCommand,
  stop: stopCommand,
  demo: demoCommand,
};

async function main(args: string[]): Promise<number> {
  // A service's command line is flags only (`fabricd --role R ...`); a command
  // comes first otherwise (`fabricd spawn --role R`).
  const serviceMode = args[0]?.startsWith("-") &&
    args.some((a) => a === "--role" || a.startsWith("--role="));
  if (serviceMode) return await roleCommand(args);
  const [command, ...rest] = args;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    console.log(HELP);
    return command === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (command === "version" || command === "--version") {
    console.log(`fabricd ${VERSION}`);
    return EXIT.OK;
  }
  const run = COMMANDS[command];
  if (!run) {
    console.error(`fabricd: unknown command "${command}": see "fabricd --help"`);
    return EXIT.USAGE;
  }
  return await run(rest);
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (error) {
    const failure = toCliError(error);
    console.error(`fabricd: ${failure.message}`);
    code = failure.exitCode;
  }
  Deno.exit(code);
}
