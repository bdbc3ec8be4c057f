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
import { log } from "../runtime/logging.ts";
import {
  ChunkedReader,
  headEnd,
  HeadError,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
} from "./_http1.ts";

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
   * connection that is only waiting (for a request head, or idle) makes room;
   * with none waiting, the new one is closed at once. Default 256.
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
  /** Waiting connections closed to make room for a new one at a connection limit. */
  evicted: number;
  /** Connections closed because a request head or body was too slow. */
  timedOut: number;
  /** Connections closed because they stayed idle. */
  idleClosed: number;
}

/** The header that carries the peer's address (`HOST:PORT`) to the server behind the front. */
export const PEER_HEADER = "fabric-peer";

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

  /** Stops accepting and closes every open connection at once. Idempotent. */
  async close(): Promise<void> {
    this.stopAccepting();
    for (const connection of this.#open) connection.close();
    await this.#acceptLoop;
  }

  #oldestWaiting(peer: string | null): FrontConnection | null {
    // A Set iterates in insertion order: the oldest connection comes first.
    return oldestWaitingOf(this.#open, peer);
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
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      this.#admit(conn);
    }
  }

  #admit(conn: Deno.TcpConn): void {
    const peer = conn.remoteAddr.hostname;
    const count = this.#perPeer.get(peer) ?? 0;
    const overPeer = count >= this.#limits.maxConnectionsPerPeer;
    if (overPeer || this.#open.size >= this.#limits.maxConnections) {
      // Half-open connections must not lock out a client that talks at once
      // (on a login node every local user shares the loopback peer): the
      // oldest connection that is only waiting makes room.
      const waiting = this.#oldestWaiting(overPeer ? peer : null);
      if (!waiting) {
        this.#stats.refused++;
        closeQuietly(conn);
        return;
      }
      this.#stats.evicted++;
      waiting.close();
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

/** The first of `connections` (oldest first) that is only waiting, from `peer` if given. */
function oldestWaitingOf(
  connections: Iterable<FrontConnection>,
  peer: string | null,
): FrontConnection | null {
  for (const connection of connections) {
    if ((peer === null || connection.peer === peer) && connection.waiting) return connection;
  }
  return null;
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

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

const ENCODER = new TextEncoder();
const PEER_PREFIX = ENCODER.encode(`${PEER_HEADER}:`);

function isPeerLine(line: Uint8Array): boolean {
  if (line.length < PEER_PREFIX.length) return false;
  for (let i = 0; i < PEER_PREFIX.length; i++) {
    // ASCII letters only in the name: OR 0x20 lower-cases them and leaves "-" and ":".
    if ((line[i]! | 0x20) !== (PEER_PREFIX[i]! | 0x20)) return false;
  }
  return true;
}

/** The head as sent, less any `Fabric-Peer` line, plus the front's own. */
function rewriteHead(head: RequestHead, peer: Uint8Array): Uint8Array {
  const kept = head.lines.filter((line, i) => i === 0 || !isPeerLine(line));
  let size = peer.length + 4;
  for (const line of kept) size += line.length + 2;
  const out = new Uint8Array(size);
  let at = 0;
  for (const line of [...kept, peer]) {
    out.set(line, at);
    out[at + line.length] = 13;
    out[at + line.length + 1] = 10;
    at += line.length + 2;
  }
  out[at] = 13;
  out[at + 1] = 10;
  return out;
}

function errorAnswer(status: number, message: string): Uint8Array {
  const reasons: Record<number, string> = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
  };
  const body = JSON.stringify({ error: message });
  return ENCODER.encode(
    `HTTP/1.1 ${status} ${reasons[status] ?? "Error"}\r\nconnection: close\r\n` +
      `content-type: application/json\r\ncontent-length: ${ENCODER.encode(body).length}\r\n\r\n` +
      body,
  );
}

type CloseReason = "timeout" | "idle" | "other";

/** One client connection: its request framing, deadlines and the proxied bytes. */
class FrontConnection {
  #client: Deno.TcpConn;
  #backend: Deno.Conn | null = null;
  #backendPath: string;
  #limits: Required<HttpFrontLimits>;
  #onClose: (why: CloseReason) => void;
  #peer: Uint8Array;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Methods of the requests passed on whose answers have not ended, oldest first. */
  #outstanding: string[] = [];
  /** The client is between requests: no head or body bytes pending. A new
   * connection is not: its first request's deadlines run from the accept. */
  #between = false;
  #clientEnded = false;
  #tunnel = false;
  #upgradeDecided: ((tunnel: boolean) => void) | null = null;
  #pump: Promise<void> | null = null;

  /** The peer's address, as counted for its connection limit. */
  readonly peer: string;

  constructor(
    client: Deno.TcpConn,
    peer: string,
    backendPath: string,
    limits: Required<HttpFrontLimits>,
    onClose: (why: CloseReason) => void,
  ) {
    this.peer = peer;
    this.#client = client;
    this.#backendPath = backendPath;
    this.#limits = limits;
    this.#onClose = onClose;
    const { hostname, port } = client.remoteAddr;
    this.#peer = ENCODER.encode(`${PEER_HEADER}: ${hostname}:${port}`);
    try {
      client.setNoDelay(true);
    } catch {
      // Not fatal: only latency.
    }
  }

  /**
   * True while nothing on the connection is being served: no request passed on
   * whose answer is outstanding, no tunnel. Such a connection may be closed to
   * make room (a request it is still sending is simply refused with it).
   */
  get waiting(): boolean {
    return !this.#closed && this.#outstanding.length === 0 && !this.#tunnel;
  }

  /** Serves the connection until either side ends it or a deadline passes. */
  async run(): Promise<void> {
    try {
      await this.#readClient();
    } catch {
      // A refused head was answered; socket errors just end the connection.
    } finally {
      if (!this.#clientEnded || this.#outstanding.length === 0 || this.#tunnel) {
        this.close();
      }
    }
    await this.#pump;
  }

  /** Closes both sides. Idempotent. */
  close(why: CloseReason = "other"): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#upgradeDecided?.(false);
    closeQuietly(this.#client);
    if (this.#backend) closeQuietly(this.#backend);
    this.#onClose(why);
  }

  #arm(ms: number, what: "deadline" | "idle"): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#expire(what), Math.max(0, ms));
  }

  #disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #expire(what: "deadline" | "idle"): void {
    if (what === "idle" || this.#outstanding.length > 0) {
      this.close(what === "idle" ? "idle" : "timeout");
      return;
    }
    // Nothing is being answered on this connection: say why it closes.
    const answer = errorAnswer(408, "Request was not received in time: send it faster");
    this.#client.write(answer).catch(() => {}).finally(() => this.close("timeout"));
  }

  async #refuse(error: HeadError): Promise<never> {
    this.#disarm();
    if (this.#outstanding.length === 0) {
      await writeAll(this.#client, errorAnswer(error.status, error.message)).catch(() => {});
    }
    this.close();
    throw error;
  }

  async #toBackend(bytes: Uint8Array): Promise<void> {
    if (!this.#backend) {
      this.#backend = await Deno.connect({ transport: "unix", path: this.#backendPath });
      if (this.#closed) {
        closeQuietly(this.#backend);
        throw new Deno.errors.BadResource("Connection closed");
      }
      this.#pump = this.#readBackend(this.#backend);
    }
    await writeAll(this.#backend, bytes);
  }

  async #readClient(): Promise<void> {
    const { headersTimeoutMs, requestTimeoutMs, maxHeadBytes } = this.#limits;
    const chunk = new Uint8Array(64 * 1024);
    let head = new Uint8Array(0);
    let body: { left: number } | ChunkedReader | null = null;
    let requestStart = performance.now();
    this.#arm(headersTimeoutMs, "deadline");
    while (true) {
      const n = await this.#client.read(chunk);
      if (n === null) {
        this.#clientEnded = true;
        return;
      }
      let data: Uint8Array = chunk.subarray(0, n);
      while (data.length > 0) {
        if (this.#tunnel) {
          await this.#toBackend(data);
          break;
        }
        if (body) {
          let end: number;
          if (body instanceof ChunkedReader) {
            end = body.feed(data, 0);
            if (end < 0) end = data.length;
            else body = null;
          } else {
            end = Math.min(body.left, data.length);
            body.left -= end;
            if (body.left === 0) body = null;
          }
          await this.#toBackend(data.subarray(0, end));
          data = data.subarray(end);
          if (!body) this.#requestDone();
          continue;
        }
        if (this.#between) {
          // First byte of a new request: its deadlines start now.
          this.#between = false;
          requestStart = performance.now();
          this.#arm(headersTimeoutMs, "deadline");
        }
        const searched = Math.max(0, head.length - 3);
        head = concat(head, data);
        const end = headEnd(head, searched);
        if (end < 0) {
          if (head.length > maxHeadBytes) {
            await this.#refuse(new HeadError(431, "Request head is too large"));
          }
          break;
        }
        if (end > maxHeadBytes) await this.#refuse(new HeadError(431, "Request head is too large"));
        data = head.subarray(end);
        let request: RequestHead;
        try {
          request = parseRequestHead(head.subarray(0, end));
        } catch (error) {
          if (error instanceof HeadError) await this.#refuse(error);
          throw error;
        }
        head = new Uint8Array(0);
        if (request.upgrade && request.framing.kind !== "none") {
          await this.#refuse(new HeadError(400, "An upgrade request cannot have a body"));
        }
        this.#outstanding.push(request.method);
        await this.#toBackend(rewriteHead(request, this.#peer));
        if (request.framing.kind === "chunked") body = new ChunkedReader();
        else if (request.framing.kind === "length") body = { left: request.framing.bytes };
        if (body) {
          this.#arm(requestTimeoutMs - (performance.now() - requestStart), "deadline");
          continue;
        }
        this.#requestDone();
        if (request.upgrade) {
          // Hold further client bytes until the server says whether it switches protocols.
          this.#tunnel = await new Promise<boolean>((resolve) => this.#upgradeDecided = resolve);
          this.#upgradeDecided = null;
          if (this.#closed) return;
        }
      }
    }
  }

  /** A request's last byte went to the server: no deadline until its answer ends. */
  #requestDone(): void {
    this.#between = true;
    this.#disarm();
  }

  /** A whole answer reached the client. */
  #answerDone(): void {
    this.#outstanding.shift();
    if (this.#outstanding.length > 0) return;
    if (this.#clientEnded) this.close();
    else if (this.#between && !this.#tunnel) this.#arm(this.#limits.idleTimeoutMs, "idle");
  }

  async #readBackend(backend: Deno.Conn): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    let head = new Uint8Array(0);
    let body: { left: number } | ChunkedReader | "close" | null = null;
    try {
      while (true) {
        const n = await backend.read(chunk);
        if (n === null) break;
        const data = chunk.subarray(0, n);
        let answers = 0;
        if (!this.#tunnel) ({ head, body, answers } = this.#followAnswers(data, head, body));
        await writeAll(this.#client, data);
        for (let i = 0; i < answers; i++) this.#answerDone();
      }
    } catch {
      // Either side went away.
    } finally {
      this.close();
    }
  }

  /** Follows answer framing through `data`; returns the new parse state and the answers ended. */
  #followAnswers(
    input: Uint8Array,
    head: Uint8Array<ArrayBuffer>,
    body: { left: number } | ChunkedReader | "close" | null,
  ): { head: Uint8Array<ArrayBuffer>; body: typeof body; answers: number } {
    let data = input;
    let answers = 0;
    while (data.length > 0 && !this.#tunnel) {
      if (body === "close") break;
      if (body) {
        let end: number;
        if (body instanceof ChunkedReader) {
          end = body.feed(data, 0);
          if (end < 0) end = data.length;
          else body = null;
        } else {
          end = Math.min(body.left, data.length);
          body.left -= end;
          if (body.left === 0) body = null;
        }
        data = data.subarray(end);
        if (!body) answers++;
        continue;
      }
      const searched = Math.max(0, head.length - 3);
      head = concat(head, data);
      const end = headEnd(head, searched);
      if (end < 0) break;
      data = head.subarray(end);
      const method = this.#outstanding[answers] ?? "GET";
      const answer = parseResponseHead(head.subarray(0, end), method);
      head = new Uint8Array(0);
      if (answer.status === 101) {
        this.#tunnel = true;
        this.#disarm();
        this.#upgradeDecided?.(true);
        break;
      }
      if (answer.status < 200) continue;
      if (this.#upgradeDecided && this.#outstanding.length - answers === 1) {
        this.#upgradeDecided(false);
      }
      if (answer.framing.kind === "none") answers++;
      else if (answer.framing.kind === "chunked") body = new ChunkedReader();
      else if (answer.framing.kind === "length") body = { left: answer.framing.bytes };
      else body = "close";
    }
    return { head, body, answers };
  }
}
