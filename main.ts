/**
 * fabricd: one program, every role. Parses the command line and dispatches to
 * a subcommand (`src/cli/`) or runs a service (`--role`); nothing else.
 * @module
 */
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
  fabricd restart ID               restart a dead service under its old ID
  fabricd revoke ID                cut a service off at once: its identity is refused
  fabricd rotate [--grace S]       replace the root key; the tree is re-certified top-down
  fabricd connect [--session S]    attach to the fabric: connect to a session's services
  fabricd task submit|list|show|logs|cancel
                                   run work on the agents (queue + pub/sub)
  fabricd pilot submit|list|cancel submit agents through a pilot manager (Slurm)
  fabricd events [-f]              state transitions of the fabric, oldest first; -f follows
  fabricd logs ID [-f]             a service's log, from any host; -f follows
  fabricd forget ID...             remove ended services (STOPPED, FAILED, LOST) from the registry
  fabricd ui                       a live web view and a Prometheus /metrics gateway
  fabricd report [--out FILE]      one static HTML page of a run: states over time, tasks done
  fabricd demo                     a scripted tour in a temporary directory
  fabricd image build|show         write this fabricd's image to carry to offline hosts
  fabricd --role ROLE [flags]      run one service (normally started for you)

"fabricd COMMAND --help" tells more. Exit codes are listed in the README.`;

type Command = (args: string[]) => Promise<number>;

// Loaded on demand: a service process (`--role`) then never pays for the
// modules of the commands (YAML, tables), which is most of its start-up.
const COMMANDS: Record<string, () => Promise<Command>> = {
  init: async () => (await import("./src/cli/init.ts")).initCommand,
  up: async () => (await import("./src/cli/up.ts")).upCommand,
  spawn: async () => (await import("./src/cli/spawn.ts")).spawnCommand,
  status: async () => (await import("./src/cli/status.ts")).statusCommand,
  session: async () => (await import("./src/cli/session.ts")).sessionCommand,
  stop: async () => (await import("./src/cli/stop.ts")).stopCommand,
  restart: async () => (await import("./src/cli/restart.ts")).restartCommand,
  revoke: async () => (await import("./src/cli/revoke.ts")).revokeCommand,
  rotate: async () => (await import("./src/cli/rotate.ts")).rotateCommand,
  connect: async () => (await import("./src/cli/connect.ts")).connectCommand,
  task: async () => (await import("./src/cli/task.ts")).taskCommand,
  pilot: async () => (await import("./src/cli/pilot.ts")).pilotCommand,
  demo: async () => (await import("./src/cli/demo.ts")).demoCommand,
  image: async () => (await import("./src/cli/image.ts")).imageCommand,
  events: async () => (await import("./src/cli/events.ts")).eventsCommand,
  logs: async () => (await import("./src/cli/logs.ts")).logsCommand,
  forget: async () => (await import("./src/cli/forget.ts")).forgetCommand,
  ui: async () => (await import("./src/cli/ui.ts")).uiCommand,
  report: async () => (await import("./src/cli/report.ts")).reportCommand,
};

async function main(args: string[]): Promise<number> {
  // A service's command line is flags only (`fabricd --role R ...`); a command
  // comes first otherwise (`fabricd spawn --role R`).
  const serviceMode = args[0]?.startsWith("-") &&
    args.some((a) => a === "--role" || a.startsWith("--role="));
  if (serviceMode) return await (await import("./src/cli/role.ts")).roleCommand(args);
  const [command, ...rest] = args;
  if (command === "help" && rest[0] !== undefined) {
    // "fabricd help status" is "fabricd status --help"; "fabricd help bogus" is "fabricd bogus".
    if (!Object.hasOwn(COMMANDS, rest[0])) return unknownCommand(rest[0]);
    return await (await COMMANDS[rest[0]]!())(["--help"]);
  }
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    console.log(HELP);
    return command === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (command === "version" || command === "--version") {
    console.log(`fabricd ${VERSION}`);
    return EXIT.OK;
  }
  if (command === "status") {
    // On the fabric's own host its registry answers on a local socket: no keys, YAML or signing.
    const local = await (await import("./src/cli/status_local.ts")).localStatus(rest);
    if (local !== null) return local;
  }
  const load = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!load) return unknownCommand(command);
  const { setupLogging } = await import("./src/config/logging.ts");
  await setupLogging({ format: "text", level: "warning" });
  return await (await load())(rest);
}

/** Says that `command` is none of fabricd's, with the commands there are; exit 64. */
function unknownCommand(command: string): number {
  const shown = command.length > 200 ? `${command.slice(0, 200)}…` : command;
  const hint = command.startsWith("-")
    ? `: give the command first, then its flags (e.g. "fabricd status ${shown} ...")`
    : `: use one of ${Object.keys(COMMANDS).join(", ")}, help or version (see "fabricd --help")`;
  console.error(`fabricd: unknown command "${shown}"${hint}`);
  return EXIT.USAGE;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (error) {
    const { toCliError } = await import("./src/cli/cli_error.ts");
    const failure = toCliError(error);
    console.error(`fabricd: ${failure.message}`);
    code = failure.exitCode;
  }
  Deno.exit(code);
}
