/**
 * One client connection of the HTTP front (`http_front.ts`): the framing of
 * its requests, their deadlines, and the bytes passed on to the server behind
 * the front and back.
 * @module
 */
import type { HttpFrontLimits } from "./http_front.ts";
import {
  ChunkedReader,
  concat,
  errorAnswer,
  headEnd,
  HeadError,
  parseRequestHead,
  parseResponseHead,
  PEER_HEADER,
  type RequestHead,
  rewriteHead,
  takeBody,
} from "./_http1.ts";
import { clearTimeout, setTimeout } from "../base/timers.ts";

export { PEER_HEADER };

const ENCODER = new TextEncoder();

/** Closes a connection that may be closed already. */
export function closeQuietly(conn: Deno.Conn): void {
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

/** How long the 408 of a missed deadline may take to reach the client, ms. */
const FAREWELL_MS = 1000;

/** A write of answer bytes pending this long (ms): the client does not read its answers. */
export const ANSWER_STALL_MS = 1000;

/** Why a connection closed, for the front's counters. */
export type CloseReason = "timeout" | "idle" | "other";

/** One client connection: its request framing, deadlines and the proxied bytes. */
export class FrontConnection {
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
  #passed = 0;
  /** The client is between requests: no head or body bytes pending. A new
   * connection is not: its first request's deadlines run from the accept. */
  #between = false;
  /** The request passed on last is still sending its body. */
  #bodyPending = false;
  /** When the request now in progress sent its first byte (`performance.now()`). */
  #requestStart = performance.now();
  /** Bytes of the oldest outstanding answer came from the server (or are being sent on). */
  #answerStarted = false;
  /** The 408 of a missed deadline is being sent: nothing else is read, relayed or closed. */
  #farewell: Promise<void> | null = null;
  #tunnel = false;
  #upgradeDecided: ((tunnel: boolean) => void) | null = null;
  #pump: Promise<void> | null = null;
  /** Since when a write of answer bytes to the client is pending (`performance.now()`). */
  #writingSince: number | null = null;

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

  /**
   * When the request whose body is still arriving sent its first byte
   * (`performance.now()`), or null when no body is arriving. Such a request
   * is not served yet (its handler waits for the body), so the connection may
   * be closed to make room too: a client that trickles a body in cannot lock
   * out one that sends its request at once.
   */
  get receivingSince(): number | null {
    return this.#bodyPending && !this.#closed ? this.#requestStart : null;
  }

  /**
   * Since when the client has not taken the answer bytes written to it, once
   * over {@linkcode ANSWER_STALL_MS}, else null: it may be closed to make room.
   */
  get stalledSince(): number | null {
    const since = this.#writingSince;
    if (this.#closed || since === null) return null;
    return performance.now() - since >= ANSWER_STALL_MS ? since : null;
  }

  /** Requests passed on to the server so far: a client that pipelines without pause has many. */
  get passed(): number {
    return this.#passed;
  }

  /** Serves the connection until either side ends it or a deadline passes. */
  async run(): Promise<void> {
    try {
      await this.#readClient();
    } catch {
      // A refused head was answered; socket errors just end the connection.
    } finally {
      // A client that ended its side hung up: what it has not been answered
      // is abandoned, and the server behind sees its requests go (a long poll
      // stops waiting), as a server without the front would.
      if (this.#farewell) await this.#farewell;
      else this.close();
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
    if (what === "idle") {
      this.close("idle");
      return;
    }
    // A 408 is the next thing the client reads only when every earlier answer
    // was sent whole and the server sent nothing for the late request (else
    // the 408 would cut into an answer, or follow one as a second answer).
    const late = this.#bodyPending ? 1 : 0;
    if (this.#outstanding.length !== late || this.#answerStarted) {
      this.close("timeout");
      return;
    }
    this.#farewell = this.#sayTimedOut();
  }

  /**
   * Cuts the server off from the late request (it gets no more of it, and
   * whatever it answers goes nowhere), tells the client why, and closes.
   */
  async #sayTimedOut(): Promise<void> {
    if (this.#backend) closeQuietly(this.#backend);
    // A client that does not read cannot hold the connection open.
    this.#timer = setTimeout(() => this.close("timeout"), FAREWELL_MS);
    const answer = errorAnswer(408, "Request was not received in time: send it faster");
    // A client that is gone cannot be told; the connection closes either way.
    await writeAll(this.#client, answer).catch(() => {});
    this.close("timeout");
  }

  async #refuse(error: HeadError): Promise<never> {
    this.#disarm();
    if (this.#outstanding.length === 0) {
      // A client that is gone cannot be told; the connection closes either way.
      await writeAll(this.#client, errorAnswer(error.status, error.message)).catch(() => {});
    }
    this.close();
    throw error;
  }

  async #toBackend(bytes: Uint8Array): Promise<void> {
    if (this.#farewell) throw new Deno.errors.BadResource("Request timed out");
    if (!this.#backend) {
      this.#backend = await Deno.connect({ transport: "unix", path: this.#backendPath });
      if (this.#closed || this.#farewell) {
        closeQuietly(this.#backend);
        throw new Deno.errors.BadResource("Connection closed");
      }
      this.#pump = this.#readBackend(this.#backend);
    }
    await writeAll(this.#backend, bytes);
    // A deadline passed meanwhile: the rest of what the client sent is not framed or passed on.
    if (this.#farewell) throw new Deno.errors.BadResource("Request timed out");
  }

  async #readClient(): Promise<void> {
    const { headersTimeoutMs, requestTimeoutMs, maxHeadBytes } = this.#limits;
    const chunk = new Uint8Array(64 * 1024);
    let head = new Uint8Array(0);
    let body: { left: number } | ChunkedReader | null = null;
    this.#requestStart = performance.now();
    this.#arm(headersTimeoutMs, "deadline");
    while (true) {
      const n = await this.#client.read(chunk);
      // A 408 is on its way: what the client sends now is not passed on.
      if (this.#farewell) return;
      if (n === null) return;
      let data: Uint8Array = chunk.subarray(0, n);
      while (data.length > 0) {
        if (this.#tunnel) {
          await this.#toBackend(data);
          break;
        }
        if (body) {
          const { end, done } = takeBody(body, data);
          if (done) body = null;
          await this.#toBackend(data.subarray(0, end));
          data = data.subarray(end);
          if (!body) this.#requestDone();
          continue;
        }
        if (this.#between) {
          // First byte of a new request: its deadlines start now.
          this.#between = false;
          this.#requestStart = performance.now();
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
        this.#passed++;
        await this.#toBackend(rewriteHead(request, this.#peer));
        if (request.framing.kind === "chunked") body = new ChunkedReader();
        else if (request.framing.kind === "length") body = { left: request.framing.bytes };
        if (body) {
          this.#bodyPending = true;
          this.#arm(requestTimeoutMs - (performance.now() - this.#requestStart), "deadline");
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

  /**
   * A request's last byte went to the server: no deadline until its answer
   * ends, or the idle timer at once when every answer has ended already (a
   * request answered before its body was in: no answer's end will start it).
   */
  #requestDone(): void {
    this.#between = true;
    this.#bodyPending = false;
    if (this.#outstanding.length === 0 && !this.#tunnel) {
      this.#arm(this.#limits.idleTimeoutMs, "idle");
    } else {
      this.#disarm();
    }
  }

  /** A whole answer reached the client. */
  #answerDone(): void {
    this.#outstanding.shift();
    if (this.#outstanding.length > 0) return;
    if (this.#between && !this.#tunnel) this.#arm(this.#limits.idleTimeoutMs, "idle");
  }

  async #readBackend(backend: Deno.Conn): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    let head = new Uint8Array(0);
    let body: { left: number } | ChunkedReader | "close" | null = null;
    try {
      while (true) {
        const n = await backend.read(chunk);
        // After a 408, what the server sends goes nowhere.
        if (n === null || this.#farewell) break;
        const data = chunk.subarray(0, n);
        this.#answerStarted = true;
        let answers = 0;
        if (!this.#tunnel) ({ head, body, answers } = this.#followAnswers(data, head, body));
        this.#writingSince = performance.now();
        await writeAll(this.#client, data);
        this.#writingSince = null;
        // Only an answer not yet whole (not a whole 1xx either) leaves one started.
        this.#answerStarted = head.length > 0 || body !== null;
        for (let i = 0; i < answers; i++) this.#answerDone();
      }
    } catch {
      // Either side went away.
    } finally {
      if (!this.#farewell) this.close();
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
        const { end, done } = takeBody(body, data);
        if (done) body = null;
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
