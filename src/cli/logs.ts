/**
 * `fabricd logs ID [-f] [--since D]`: a service's log, asked of the service
 * itself with a signed `GET /v1/logs` (through the bridges on its route), so
 * it works for a service on any host; a service that is not running is read
 * from its log file when it ran on this host.
 * @module
 */
import { FabricRequestError, type Target } from "../client/fabric_client.ts";
import { dirname } from "../base/paths.ts";
import { readLogTail, serviceLogPath } from "../config/log_file.ts";
import { EXIT, type ServiceRecord, type ServiceState } from "../types/mod.ts";
import { checkId, durationFlag, noMoreArgs, parseFlags, stringFlag } from "./args.ts";
import { CliError, recordNamed, usage } from "./cli_error.ts";
import { type FabricContext, loadContext } from "./context.ts";
import { routeTo } from "./_service_of.ts";

/** Help text of `fabricd logs`. */
export const LOGS_HELP = `fabricd logs ID [-f] [--since D] [--fabric FILE]

Prints the log of service ID: the lines it wrote (JSON lines from fabricd,
anything else the process printed), asked of the service itself with a signed
GET /v1/logs, through the bridges on its route, so it works for a service on
any host. At most the last 256 KiB are shown; a note on stderr says when
older lines were left out.

  -f, --follow   keep printing lines as the service writes them, until Ctrl-C
                 or until the service stops
  --since D      only lines written in the last D (e.g. 30s, 10m, 2h, 1d)

A service that is not running (STOPPED, FAILED, LOST, DEAD) or does not answer
left its log in DIR/logs/ID.log on its host. When that host is this one and
the file is in the fabric's directory, it is read from there (a note on
stderr says so; -f does not follow it). Exit codes: 0 done; 1 no such service
in the registry, or a service that is not running whose log is on another
host or unreadable (the message says where it is); 64 usage; 69 a running
service that does not answer and whose log cannot be read here.
`;

/** States in which a service's process is gone: its log is read from its file. */
const NOT_RUNNING: readonly ServiceState[] = ["STOPPED", "FAILED", "LOST", "DEAD"];

/** Runs `fabricd logs`. */
export async function logsCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("logs", args, {
    follow: { type: "boolean", short: "f" },
    since: { type: "string" },
    fabric: { type: "string" },
  });
  if (parsed.flags.help) {
    console.log(LOGS_HELP);
    return EXIT.OK;
  }
  const [id, ...extra] = parsed.positionals;
  if (!id) throw usage('Give the ID of a service: e.g. "fabricd logs spw-1a2b3c4d"');
  noMoreArgs("logs", extra);
  checkId("service", id);
  const since = parsed.flags.since === undefined
    ? undefined
    : Date.now() - durationFlag(parsed, "since", 0);
  const context = await loadContext(stringFlag(parsed, "fabric"));
  const records = await context.registry.list();
  const record = recordNamed(records, id);
  if (NOT_RUNNING.includes(record.state)) return await fromFile(context, record, since);
  const query = since === undefined ? "" : `since=${since}`;
  const target = routeTo(record, records);
  try {
    if (parsed.flags.follow) return await follow(context, target, query);
    const answer = await context.client.call<{ lines: string[]; truncated: boolean }>(target, {
      method: "GET",
      path: `/v1/logs${query ? `?${query}` : ""}`,
    });
    print(id, answer);
    return EXIT.OK;
  } catch (error) {
    if (!(error instanceof FabricRequestError && error.status === 0)) throw error;
    return await fromFile(context, record, since, error);
  }
}

function print(id: string, tail: { lines: string[]; truncated: boolean }): void {
  if (tail.truncated) {
    console.error(`(older lines of ${id} left out: only the last 256 KiB are answered)`);
  }
  for (const line of tail.lines) console.log(line);
}

/**
 * The log of `record`, a service that is not running (or, with `unreachable`,
 * does not answer), read from DIR/logs/ID.log when it ran on this host in the
 * fabric's directory.
 * @throws {CliError} saying where the log is when it cannot be read here:
 * exit 69 for a service that does not answer, 1 for one that is not running.
 */
async function fromFile(
  context: FabricContext,
  record: ServiceRecord,
  since: number | undefined,
  unreachable?: FabricRequestError,
): Promise<number> {
  const path = serviceLogPath(context.fabric.dir ?? dirname(context.fabricPath), record.id);
  const why = unreachable ? "does not answer" : `is ${record.state}`;
  const here = record.host === Deno.hostname();
  const tail = here ? await readLogTail(path, { since }).catch(() => null) : null;
  if (tail) {
    console.error(`(${record.id} ${why}: its log as it left it, from ${path})`);
    print(record.id, tail);
    return EXIT.OK;
  }
  const where = here
    ? `${path} cannot be read here`
    : `it is in DIR/logs/${record.id}.log on host ${record.host} (DIR: the state directory its spawner gave it)`;
  throw new CliError(
    `${unreachable ? `${unreachable.message}: ` : ""}service "${record.id}" ${why}, ` +
      `so its log cannot be asked of it: ${where}`,
    unreachable ? EXIT.UNREACHABLE : EXIT.FAILURE,
    { ...(unreachable ? { cause: unreachable } : {}) },
  );
}

/** Prints the log's tail, then each new line, until Ctrl-C or the end of the stream. */
async function follow(context: FabricContext, target: Target, query: string): Promise<number> {
  const id = target.id;
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await context.client.stream(
      target,
      `/v1/logs?follow=1${query ? `&${query}` : ""}`,
      (event) => {
        if (event.event === "log") console.log(event.data);
      },
      stop.signal,
    );
  } catch (error) {
    if (error instanceof FabricRequestError) throw error;
    // Opened, then cut: the service stopped (its server ends open streams).
    if (!stop.signal.aborted) {
      const why = error instanceof Error ? error.message : String(error);
      console.error(
        `(the log stream of ${id} was cut: the service stopped, or the connection to it ` +
          `dropped (${why}); "fabricd logs ${id}" shows the rest)`,
      );
    }
    return EXIT.OK;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  if (!stop.signal.aborted) console.error(`(the log stream of ${id} ended: the service stopped)`);
  return EXIT.OK;
}
