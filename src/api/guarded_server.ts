/**
 * A service's HTTP server: `Deno.serve` on a Unix socket in a private (0700)
 * directory, behind an {@linkcode HttpFront} that owns the TCP port and drops
 * slow clients. The handler sees the peer's TCP address as `remoteAddr`, as
 * if `Deno.serve` listened on the port itself.
 * @module
 */
import { dirname, join } from "../base/paths.ts";
import { log } from "../config/logging.ts";
import { HttpFront, type HttpFrontLimits, PEER_HEADER } from "./http_front.ts";
import { after } from "../base/timers.ts";

/** Options of {@linkcode serveGuarded}. */
export interface GuardedServerOptions extends HttpFrontLimits {
  /** Address to listen on. */
  hostname: string;
  /** Port; 0 for any free port. */
  port: number;
  /** Time {@linkcode GuardedServer.shutdown} lets open requests finish, ms. Default 2000. */
  graceMs?: number;
}

/** A running guarded server. */
export interface GuardedServer {
  /** The TCP address clients connect to. */
  readonly addr: Deno.NetAddr;
  /** The front, for its limits and counters. */
  readonly front: HttpFront;
  /**
   * Stops accepting, lets open requests finish for up to `graceMs` (streams
   * never finish on their own), then closes every connection and removes the
   * socket. Idempotent.
   */
  shutdown(): Promise<void>;
}

/**
 * Serves `handler` behind a front that enforces the limits of `options`.
 * @throws {RangeError} when a limit is not a positive integer.
 * @throws {Deno.errors.AddrInUse} (and other `Deno.listen` errors) when it cannot listen.
 */
export async function serveGuarded(
  handler: Deno.ServeHandler<Deno.NetAddr>,
  options: GuardedServerOptions,
): Promise<GuardedServer> {
  const dir = await Deno.makeTempDir({ prefix: SOCKET_DIR_PREFIX });
  await Deno.chmod(dir, 0o700);
  if (!swept) {
    swept = true;
    // In the background: a start does not wait for the leftovers of killed services.
    sweepDeadSocketDirs(dirname(dir)).catch((error) =>
      log("api").debug("Cannot sweep old socket directories: {error}", { error: String(error) })
    );
  }
  const path = join(dir, "http.sock");
  const abort = new AbortController();
  const backend = Deno.serve(
    { path, transport: "unix", signal: abort.signal, onListen: () => {} },
    (request, info) => handler(request, { remoteAddr: peerOf(request), completed: info.completed }),
  );
  let front: HttpFront;
  try {
    front = HttpFront.listen({ ...options, backendPath: path });
  } catch (error) {
    abort.abort();
    // Cleanup on the way out; the error that matters is thrown below.
    await backend.finished.catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
  let stopping: Promise<void> | null = null;
  const stop = async (): Promise<void> => {
    front.stopAccepting();
    const grace = after(options.graceMs ?? 2000, false);
    // Open requests get the grace to finish; what is left is cut below.
    await Promise.race([backend.shutdown().catch(() => {}), grace.promise]);
    grace.cancel();
    // What the server said last (a WebSocket's close frame, an answer's tail)
    // is still on its way through the front: let it arrive before cutting.
    await front.settle(Math.min(1000, options.graceMs ?? 2000));
    // Streams never end on their own: closing the front's connections (both
    // ends of each) ends what is left after the grace. Not the server's abort
    // signal: once its shutdown has begun, Deno 2.9 answers an abort with an
    // uncaught BadResource that ended the process (exit 1) while a watch
    // stream was open.
    await front.close();
    const ended = after(5000, false);
    await Promise.race([
      backend.finished.then(() => true, (error) => {
        log("api").debug("Backend server ended with an error: {error}", { error: String(error) });
        return true;
      }),
      ended.promise,
    ]);
    ended.cancel();
    await Deno.remove(dir, { recursive: true }).catch((error) =>
      log("api").debug("Cannot remove {dir}: {error}", { dir, error: String(error) })
    );
  };
  return {
    addr: front.addr,
    front,
    shutdown: () => stopping ??= stop(),
  };
}

const SOCKET_DIR_PREFIX = "fabricd-http-";
/** A socket directory younger than this is never swept: its server may be starting. */
const SWEEP_MIN_AGE_MS = 60_000;
/** At most this many directory entries are looked at per sweep. */
const SWEEP_MAX_ENTRIES = 10_000;
let swept = false;

/**
 * Removes the socket directories that services of this user left in `parent`
 * when they were killed before their shutdown (SIGKILL, the OOM killer): a
 * directory older than `minAgeMs` whose socket refuses a connection (nobody
 * listens) or is gone. A live server's directory, another user's, and a young
 * one are left alone. Done once per process, at its first server.
 * @returns How many directories were removed.
 */
export async function sweepDeadSocketDirs(
  parent: string,
  minAgeMs = SWEEP_MIN_AGE_MS,
): Promise<number> {
  const uid = Deno.uid();
  let seen = 0;
  let removed = 0;
  for await (const entry of Deno.readDir(parent)) {
    if (++seen > SWEEP_MAX_ENTRIES) break;
    if (!entry.isDirectory || !entry.name.startsWith(SOCKET_DIR_PREFIX)) continue;
    const dir = join(parent, entry.name);
    try {
      const info = await Deno.lstat(dir);
      if (info.uid !== uid || Date.now() - (info.mtime?.getTime() ?? Date.now()) < minAgeMs) {
        continue;
      }
      if (await listening(join(dir, "http.sock"))) continue;
      await Deno.remove(dir, { recursive: true });
      removed++;
    } catch {
      // Gone meanwhile, or not ours to read: leave it.
    }
  }
  return removed;
}

/** Whether a server accepts connections on the Unix socket at `path`. */
async function listening(path: string): Promise<boolean> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return true;
  } catch (error) {
    // Only a refusal or a missing socket proves that nobody listens.
    return !(error instanceof Deno.errors.ConnectionRefused ||
      error instanceof Deno.errors.NotFound);
  }
}

/** The client's address as the front wrote it (`HOST:PORT`; IPv6 hosts unbracketed). */
/** The scheme `Deno.serve` gives the requests of a Unix socket (a non-special URL). */
const SOCKET_SCHEME = "http+unix:";

/**
 * A request's URL as the client addressed it, `http:`: behind the front,
 * `Deno.serve` names it `http+unix:`, a scheme the WHATWG parser treats as
 * non-special, whose query keeps `'` where an `http:` URL encodes it (`%27`).
 * The signature's `@path` and `@query` and the relay's next hop read this one
 * (docs/protocol.md 2.3).
 */
export function addressedUrl(url: string): URL {
  return new URL(url.startsWith(SOCKET_SCHEME) ? `http:${url.slice(SOCKET_SCHEME.length)}` : url);
}

function peerOf(request: Request): Deno.NetAddr {
  const value = request.headers.get(PEER_HEADER) ?? "";
  const colon = value.lastIndexOf(":");
  const port = Number(value.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port)) {
    // Only this user can reach the socket; a request without the header came around the front.
    return { transport: "tcp", hostname: "unknown", port: 0 };
  }
  return { transport: "tcp", hostname: value.slice(0, colon), port };
}
