/**
 * `fabricd ui [--listen 127.0.0.1:0]`: a local web view of the fabric and a
 * Prometheus `/metrics` gateway (issue 13). Prints a one-time login URL; the
 * browser then holds a session cookie, Prometheus the bearer token of
 * `DIR/ui.token` (mode 0600, made on first use).
 * @module
 */
import { dirname, join } from "../base/paths.ts";
import { EXIT } from "../types/mod.ts";
import { noMoreArgs, parseFlags, stringFlag } from "./args.ts";
import { CliError, usage } from "./cli_error.ts";
import { loadContext } from "./context.ts";
import { createUiServer, randomToken } from "../ui/ui_server.ts";
import { type GuardedServer, serveGuarded } from "../api/guarded_server.ts";
import type { HttpFrontLimits } from "../api/http_front.ts";

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

/**
 * `--listen`'s host and port.
 * @throws {CliError} (64) when it is not HOST:PORT with a port up to 65535 and,
 * for a dotted IPv4 address, every part up to 255.
 */
function parseListen(listen: string): { hostname: string; port: number } {
  const match = /^([0-9A-Za-z.\-]{1,253}|\[[0-9a-fA-F:]{2,39}\]):(\d{1,5})$/.exec(listen);
  const hostname = match?.[1]?.replace(/^\[|\]$/g, "") ?? "";
  const parts = /^[\d.]+$/.test(hostname) ? hostname.split(".") : [];
  const badIpv4 = parts.length > 0 &&
    (parts.length !== 4 || parts.some((part) => !/^\d{1,3}$/.test(part) || Number(part) > 255));
  if (!match || Number(match[2]) > 65535 || badIpv4) {
    throw usage(`Invalid --listen "${listen}": use HOST:PORT, e.g. 127.0.0.1:8080`);
  }
  return { hostname, port: Number(match[2]) };
}

/**
 * Serves `handler` on `hostname:port` behind the connection front the
 * services use (docs/protocol.md 2.10): head and request deadlines, per-peer
 * and total connection bounds, the front's own 400/408/431 answers. Loopback
 * is not a trust boundary: every local user can reach the UI. Answers (the
 * page's server-sent events) are never under a deadline. `limits` default
 * to the services' production ones.
 * @throws {CliError} 78 when the address cannot be listened on (in use, not
 * this host's) or the front's socket directory cannot be made, 64 when the
 * host name does not resolve.
 */
export async function serveUi(
  hostname: string,
  port: number,
  handler: Deno.ServeHandler<Deno.NetAddr>,
  limits: HttpFrontLimits = {},
): Promise<GuardedServer> {
  try {
    return await serveGuarded(handler, { ...limits, hostname, port });
  } catch (error) {
    const at = `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
    const reason = error instanceof Error ? error.message : String(error);
    if (
      error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.AddrNotAvailable ||
      error instanceof Deno.errors.PermissionDenied
    ) {
      throw new CliError(
        `Cannot listen on ${at}: ${reason}: give another --listen (port 0 picks a free one)`,
        EXIT.CONFIG,
        { cause: error },
      );
    }
    if (Object.values(Deno.errors).some((kind) => error instanceof kind)) {
      // The front's private socket directory (under $TMPDIR), not the address.
      throw new CliError(`Cannot start the UI's server: ${reason}`, EXIT.CONFIG, { cause: error });
    }
    throw usage(`Invalid --listen "${at}": ${reason}: use HOST:PORT, e.g. 127.0.0.1:8080`);
  }
}

/** Runs `fabricd ui` until SIGINT or SIGTERM. */
export async function uiCommand(args: string[]): Promise<number> {
  const parsed = parseFlags("ui", args, { listen: { type: "string" }, fabric: { type: "string" } });
  noMoreArgs("ui", parsed.positionals);
  if (parsed.flags.help) {
    console.log(UI_HELP);
    return EXIT.OK;
  }
  const { hostname, port } = parseListen(stringFlag(parsed, "listen") ?? "127.0.0.1:0");
  const fabricFlag = stringFlag(parsed, "fabric");
  const context = await loadContext(fabricFlag);
  const dir = dirname(context.fabricPath);
  // Listen before the token file is made: a busy address changes nothing.
  const serving: { app?: Deno.ServeHandler<Deno.NetAddr> } = {};
  const server = await serveUi(
    hostname,
    port,
    (request, info) => serving.app?.(request, info) ?? new Response("Starting", { status: 503 }),
  );
  const bearer = await uiToken(join(dir, "ui.token")).catch(async (error) => {
    await server.shutdown();
    throw error;
  });
  const loginToken = randomToken();
  const ui = createUiServer({
    keys: context.keys,
    client: context.client,
    registry: context.registry,
    dir,
    bearer,
    loginToken,
  });
  serving.app = ui.app.fetch;
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
