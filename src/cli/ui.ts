/**
 * `fabricd ui [--listen 127.0.0.1:0]`: a local web view of the fabric and a
 * Prometheus `/metrics` gateway (issue 13). Prints a one-time login URL; the
 * browser then holds a session cookie, Prometheus the bearer token of
 * `DIR/ui.token` (mode 0600, made on first use).
 * @module
 */
import { dirname, join } from "../base/paths.ts";
import { EXIT } from "../types/mod.ts";
import { parseFlags, stringFlag } from "./args.ts";
import { CliError, usage } from "./cli_error.ts";
import { loadContext } from "./context.ts";
import { createUiServer, randomToken } from "../ui/ui_server.ts";

/** Help text of `fabricd ui`. */
export const UI_HELP = `fabricd ui [--listen HOST:PORT] [--fabric FILE]

Serves a live view of the fabric (the spawn tree, states, transitions, log
tails, pilots, the task queue's depth and tasks running, done and failed per
second over the last 5 minutes; restart and stop buttons) and /metrics for
Prometheus, which the UI scrapes from every ALIVE service with signed requests.

  --listen HOST:PORT  address to listen on (default 127.0.0.1:0, any free port)

It prints a one-time login URL. /metrics takes "Authorization: Bearer TOKEN"
with the token of DIR/ui.token (DIR: the fabric file's directory), the file
Prometheus' authorization.credentials_file names. Every route needs the cookie
or the token; a wrong or missing one gets the login page (401).
`;

/** Reads `path`'s token, or writes a new one there with mode 0600. */
export async function uiToken(path: string): Promise<string> {
  try {
    const token = (await Deno.readTextFile(path)).trim();
    if (token.length >= 32) return token;
    throw new CliError(
      `Token file "${path}" holds fewer than 32 characters: delete it to make a new one`,
      EXIT.DATA,
    );
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const token = randomToken();
  await Deno.writeTextFile(path, token + "\n", { mode: 0o600, createNew: true });
  return token;
}

/** Runs `fabricd ui` until SIGINT or SIGTERM. */
export async function uiCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("ui", args, { listen: { type: "string" }, fabric: { type: "string" } });
  if (parsed.flags.help) {
    console.log(UI_HELP);
    return EXIT.OK;
  }
  const listen = stringFlag(parsed, "listen") ?? "127.0.0.1:0";
  const match = /^([0-9A-Za-z.\-]{1,253}|\[[0-9a-fA-F:]{2,39}\]):(\d{1,5})$/.exec(listen);
  if (!match || Number(match[2]) > 65535) {
    throw usage(`Invalid --listen "${listen}": use HOST:PORT, e.g. 127.0.0.1:8080`);
  }
  const context = await loadContext(stringFlag(parsed, "fabric"));
  const dir = dirname(context.fabricPath);
  const bearer = await uiToken(join(dir, "ui.token"));
  const loginToken = randomToken();
  const ui = createUiServer({
    keys: context.keys,
    client: context.client,
    registry: context.registry,
    dir,
    bearer,
    loginToken,
  });
  const hostname = match[1]!.replace(/^\[|\]$/g, "");
  const server = Deno.serve({ hostname, port: Number(match[2]), onListen: () => {} }, ui.app.fetch);
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  const base = `http://${host}:${server.addr.port}`;
  console.log(`fabricd ui: open ${base}/login?token=${loginToken}`);
  console.log(
    `fabricd ui: Prometheus scrapes ${base}/metrics with the bearer token in ${
      join(dir, "ui.token")
    }`,
  );
  const stop = Promise.withResolvers<void>();
  const onSignal = (): void => stop.resolve();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  await stop.promise;
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  ui.close();
  await server.shutdown();
  return EXIT.OK;
}
