/**
 * The TCP front of every service's HTTP server. `Deno.serve` has no header or
 * request deadline and no connection limit, so a client that sends half a
 * request head and stays silent holds a connection (and a file descriptor) for
 * good. The front owns the listening socket instead: it bounds connections per
 * peer address and in all, follows each request's head and body with deadlines,
 * closes idle keep-alive connections, and passes the bytes on to the real
 * server on a private Unix socket, adding the peer's address as `Fabric-Peer`
 * (the server behind it sees only the socket). Answers, server-sent-event
 * streams and upgraded (WebSocket) connections are never under a deadline.
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { log } from "../config/logging.ts";
import { sleep } from "../config/retry.ts";
import { closeQuietly, FrontConnection, PEER_HEADER } from "./_front_connection.ts";

export { PEER_HEADER };

/** Limits of an {@linkcode HttpFront}; every field has a production default. */
export interface HttpFrontLimits {
  /** Time from a request's first byte (a connection's accept, for its first request) to the end of its head, ms. Default 10000. */
  headersTimeoutMs?: number;
  /** Time from a request's first byte to the end of its body, ms. Default 30000. */
  requestTimeoutMs?: number;
  /** A connection with no request in progress and no answer outstanding is closed after this, ms. Default 30000. */
  idleTimeoutMs?: number;
  /**
   * Open connections from one peer address. At the limit, the peer's oldest
   * connection that is only waiting (for a request head, or idle) makes room,
   * else the one whose request body has been arriving the longest; with none
   * of either, the new one is closed at once. Default 256.
   */
  maxConnectionsPerPeer?: number;
  /** Open connections in all, with the same rule. Default 1024, less when the file limit is low. */
  maxConnections?: number;
  /** Largest request head, bytes (431 above it). Default 65536. */
  maxHeadBytes?: number;
}

/** Options of {@linkcode HttpFront.listen}. */
export interface HttpFrontOptions extends HttpFrontLimits {
  /** Address to listen on. */
  hostname: string;
  /** Port to listen on; 0 for any free port. */
  port: number;
  /** The Unix socket of the HTTP server behind the front. */
  backendPath: string;
}

/** Counters of an {@linkcode HttpFront}, for tests and metrics. */
export interface HttpFrontStats {
  /** Connections open now. */
  open: number;
  /** Connections closed at once because a connection limit was reached and none was waiting. */
  refused: number;
  /** Waiting connections, or ones still sending a body, closed to make room at a connection limit. */
  evicted: number;
  /** Connections closed because a request head or body was too slow. */
  timedOut: number;
  /** Connections closed because they stayed idle. */
  idleClosed: number;
}

/** Production limits (docs/protocol.md 2.10). */
export const FRONT_DEFAULTS: Readonly<Required<HttpFrontLimits>> = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 30_000,
  maxConnectionsPerPeer: 256,
  maxConnections: 1024,
  maxHeadBytes: 65_536,
};

/**
 * A listening front for an HTTP/1.1 server on a Unix socket.
 * @example
 * ```ts
 * const front = HttpFront.listen({ hostname: "127.0.0.1", port: 0, backendPath: "/run/x.sock" });
 * console.log(front.addr.port);
 * await front.close();
 * ```
 */
export class HttpFront {
  #listener: Deno.TcpListener;
  #limits: Required<HttpFrontLimits>;
  #backendPath: string;
  #logger: Logger;
  #open = new Set<FrontConnection>();
  #perPeer = new Map<string, number>();
  #stats = { refused: 0, evicted: 0, timedOut: 0, idleClosed: 0 };
  #accepting = true;
  #acceptLoop: Promise<void>;

  private constructor(listener: Deno.TcpListener, options: HttpFrontOptions) {
    this.#listener = listener;
    this.#backendPath = options.backendPath;
    this.#logger = log("front");
    this.#limits = limitsOf(options);
    this.#acceptLoop = this.#accept();
  }

  /**
   * Listens on `hostname:port` and starts accepting.
   * @throws {RangeError} when a limit is not a positive integer.
   * @throws {Deno.errors.AddrInUse} (and other `Deno.listen` errors) when it cannot listen.
   */
  static listen(options: HttpFrontOptions): HttpFront {
    limitsOf(options);
    const listener = Deno.listen({ hostname: options.hostname, port: options.port });
    return new HttpFront(listener, options);
  }

  /** The address the front listens on. */
  get addr(): Deno.NetAddr {
    return this.#listener.addr;
  }

  /** The limits in force, defaults filled in. */
  get limits(): Readonly<Required<HttpFrontLimits>> {
    return this.#limits;
  }

  /** Current counters. */
  stats(): HttpFrontStats {
    return { open: this.#open.size, ...this.#stats };
  }

  /** Stops accepting new connections; open ones go on. Idempotent. */
  stopAccepting(): void {
    if (!this.#accepting) return;
    this.#accepting = false;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
  }

  /**
   * Waits until every connection that is being served (an answer or a tunnel
   * still passing bytes) has ended on its own, at most `ms`: the server
   * behind closed it after its last bytes were passed on.
   */
  async settle(ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    const busy = (): boolean => [...this.#open].some((connection) => !connection.waiting);
    while (busy() && performance.now() < deadline) {
      await sleep(10);
    }
  }

  /** Stops accepting and closes every open connection at once. Idempotent. */
  async close(): Promise<void> {
    this.stopAccepting();
    for (const connection of this.#open) connection.close();
    await this.#acceptLoop;
  }

  async #accept(): Promise<void> {
    while (this.#accepting) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (!this.#accepting || error instanceof Deno.errors.BadResource) return;
        // Out of file descriptors and the like: wait rather than spin.
        this.#logger.warn("Cannot accept a connection: {error}", { error: String(error) });
        await sleep(100);
        continue;
      }
      this.#admit(conn);
    }
  }

  #admit(conn: Deno.TcpConn): void {
    const peer = peerOf(conn.remoteAddr.hostname);
    const count = this.#perPeer.get(peer) ?? 0;
    const overPeer = count >= this.#limits.maxConnectionsPerPeer;
    if (overPeer || this.#open.size >= this.#limits.maxConnections) {
      // Half-open connections must not lock out a client that talks at once
      // (on a login node every local user shares the loopback peer): the
      // oldest connection that is only waiting makes room, else the one whose
      // request body has been arriving the longest.
      const victim = evictableOf(this.#open, overPeer ? peer : null);
      if (!victim) {
        this.#stats.refused++;
        closeQuietly(conn);
        return;
      }
      this.#stats.evicted++;
      victim.close();
    }
    this.#perPeer.set(peer, count + 1);
    const connection = new FrontConnection(conn, peer, this.#backendPath, this.#limits, (why) => {
      if (why === "timeout") this.#stats.timedOut++;
      if (why === "idle") this.#stats.idleClosed++;
    });
    this.#open.add(connection);
    connection.run().finally(() => {
      this.#open.delete(connection);
      const left = (this.#perPeer.get(peer) ?? 1) - 1;
      if (left > 0) this.#perPeer.set(peer, left);
      else this.#perPeer.delete(peer);
    });
  }
}

/**
 * The peer a connection from `address` counts against: the address itself,
 * except that every loopback address (`127.0.0.0/8`, `::1`) is one peer,
 * "loopback": a local user could otherwise pass the per-peer bound with a
 * connection from each of 16 million addresses.
 */
export function peerOf(address: string): string {
  const v4 = address.startsWith("::ffff:") ? address.slice(7) : address;
  return v4.startsWith("127.") || address === "::1" ? "loopback" : address;
}

/**
 * Requests a connection must have had passed on before it may be closed to
 * make room while it is being served: a client pipelining without pause.
 */
export const BUSY_CONNECTION_REQUESTS = 64;

/**
 * The connection of `connections` (oldest first: a Set iterates in insertion
 * order), from `peer` if given, that may be closed to make room: the first
 * that is only waiting, else the one that has been holding up the longest
 * (its request body still arriving, or an answer it does not read), else the
 * one that has had the most requests passed on, if at least
 * {@linkcode BUSY_CONNECTION_REQUESTS} (one that pipelines without pause:
 * it keeps every slot busy while reading its answers), else none.
 */
function evictableOf(
  connections: Iterable<FrontConnection>,
  peer: string | null,
): FrontConnection | null {
  let holding: FrontConnection | null = null;
  let holdingSince = Number.POSITIVE_INFINITY;
  let busiest: FrontConnection | null = null;
  for (const connection of connections) {
    if (peer !== null && connection.peer !== peer) continue;
    if (connection.waiting) return connection;
    if (connection.passed >= (busiest?.passed ?? BUSY_CONNECTION_REQUESTS)) busiest = connection;
    const since = Math.min(
      connection.receivingSince ?? Number.POSITIVE_INFINITY,
      connection.stalledSince ?? Number.POSITIVE_INFINITY,
    );
    if (since < holdingSince) {
      holding = connection;
      holdingSince = since;
    }
  }
  return holding ?? busiest;
}

function limitsOf(options: HttpFrontLimits): Required<HttpFrontLimits> {
  const limits = { ...FRONT_DEFAULTS, maxConnections: defaultMaxConnections() };
  for (const key of Object.keys(FRONT_DEFAULTS) as (keyof HttpFrontLimits)[]) {
    const value = options[key];
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new RangeError(`HTTP front limit "${key}" must be a positive integer, got ${value}`);
    }
    limits[key] = value;
  }
  return limits;
}

/**
 * The default connection bound: 1024, or less when the process's open-file
 * limit could not hold that many (a proxied connection takes three
 * descriptors: the client's, and both ends of the Unix socket).
 */
function defaultMaxConnections(): number {
  try {
    const limits = Deno.readTextFileSync("/proc/self/limits");
    const soft = Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1]);
    if (soft > 0) return Math.max(16, Math.min(FRONT_DEFAULTS.maxConnections, (soft - 64) / 3 | 0));
  } catch {
    // No /proc: keep the default.
  }
  return FRONT_DEFAULTS.maxConnections;
}
