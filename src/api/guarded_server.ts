/**
 * A service's HTTP server: `Deno.serve` on a Unix socket in a private (0700)
 * directory, behind an {@linkcode HttpFront} that owns the TCP port and drops
 * slow clients. The handler sees the peer's TCP address as `remoteAddr`, as
 * if `Deno.serve` listened on the port itself.
 * @module
 */
import { join } from "node:path";
import { log } from "../config/logging.ts";
import { HttpFront, type HttpFrontLimits, PEER_HEADER } from "./http_front.ts";

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
  const dir = await Deno.makeTempDir({ prefix: "fabricd-http-" });
  await Deno.chmod(dir, 0o700);
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
    let timer: ReturnType<typeof setTimeout> | undefined;
    const drained = await Promise.race([
      backend.shutdown().then(() => true, () => true),
      new Promise<false>((resolve) =>
        timer = setTimeout(() => resolve(false), options.graceMs ?? 2000)
      ),
    ]);
    clearTimeout(timer);
    // Streams never end on their own: cut what is left after the grace.
    if (!drained) abort.abort();
    // What the server said last (a WebSocket's close frame, an answer's tail)
    // is still on its way through the front: let it arrive before cutting.
    await front.settle(Math.min(1000, options.graceMs ?? 2000));
    await front.close();
    await backend.finished.catch((error) =>
      log("api").debug("Backend server ended with an error: {error}", { error: String(error) })
    );
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

/** The client's address as the front wrote it (`HOST:PORT`; IPv6 hosts unbracketed). */
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
