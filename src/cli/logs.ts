/**
 * `fabricd logs ID [-f] [--since D]`: a service's log, asked of the service
 * itself with a signed `GET /v1/logs` (through the bridges on its route), so
 * it works for a service on any host.
 * @module
 */
import { FabricRequestError } from "../client/fabric_client.ts";
import type { FabricContext } from "./context.ts";
import { EXIT } from "../types/mod.ts";
import { durationFlag, parseFlags, stringFlag } from "./args.ts";
import { usage } from "./cli_error.ts";
import { loadContext, targetOf } from "./context.ts";

/** Help text of `fabricd logs`. */
export const LOGS_HELP = `fabricd logs ID [-f] [--since D] [--fabric FILE]

Prints the log of service ID: the lines it wrote (JSON lines from fabricd,
anything else the process printed), asked of the service itself with a signed
GET /v1/logs, through the bridges on its route, so it works for a service on
any host. At most the last 256 KiB are shown; a note on stderr says when
older lines were left out.

  -f, --follow   keep printing lines as the service writes them, until Ctrl-C
                 or until the service stops
  --since D      only lines written in the last D (e.g. 30s, 10m, 2h)

The service must be running to answer; a stopped one's log stays in
DIR/logs/ID.log on its host. Exit codes: 0 done; 1 no such service in the
registry; 64 usage; 69 the service does not answer.
`;

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
  if (extra.length > 0) throw usage(`Unexpected "${extra[0]}": see "fabricd logs --help"`);
  const since = parsed.flags.since === undefined
    ? undefined
    : Date.now() - durationFlag(parsed, "since", 0);
  const context = await loadContext(stringFlag(parsed, "fabric"));
  const query = since === undefined ? "" : `since=${since}`;
  if (parsed.flags.follow) return await follow(context, id, query);
  const target = await targetOf(context, id);
  const answer = await context.client.call<{ lines: string[]; truncated: boolean }>(target, {
    method: "GET",
    path: `/v1/logs${query ? `?${query}` : ""}`,
  });
  if (answer.truncated) {
    console.error(`(older lines of ${id} left out: only the last 256 KiB are answered)`);
  }
  for (const line of answer.lines) console.log(line);
  return EXIT.OK;
}

/** Prints the log's tail, then each new line, until Ctrl-C or the end of the stream. */
async function follow(context: FabricContext, id: string, query: string): Promise<number> {
  const target = await targetOf(context, id);
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
    if (!stop.signal.aborted) console.error(`(the log stream of ${id} was cut: ${error})`);
    return EXIT.OK;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  if (!stop.signal.aborted) console.error(`(the log stream of ${id} ended: the service stopped)`);
  return EXIT.OK;
}
