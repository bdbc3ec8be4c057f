/**
 * Just enough HTTP/1.1 for the connection front (`http_front.ts`): where a
 * message head ends, how its body is framed, a chunked-body reader, and the
 * bytes the front writes itself (a head with its `Fabric-Peer` line, its own
 * error answers). The
 * front must frame requests exactly as the server behind it does, so anything
 * ambiguous (bare LF, folded lines, `Transfer-Encoding` with `Content-Length`,
 * codings other than `chunked`) is refused rather than guessed.
 * @module
 */

const CR = 13;
const LF = 10;

/** How a message body is delimited. */
export type BodyFraming =
  | { kind: "none" }
  | { kind: "length"; bytes: number }
  | { kind: "chunked" }
  | { kind: "close" };

/** A request head as the front needs it. */
export interface RequestHead {
  method: string;
  framing: BodyFraming;
  /** The request asks to switch protocols (a WebSocket handshake). */
  upgrade: boolean;
  /** The client asked to close the connection after this request. */
  close: boolean;
  /** The head's lines (request line first), each without its CRLF, as sent. */
  lines: Uint8Array[];
}

/** A response head as the front needs it. */
export interface ResponseHead {
  status: number;
  framing: BodyFraming;
}

/** A request or response head the front refuses; `status` is what the client is told. */
export class HeadError extends Error {
  /** HTTP status for the client: 400 or 431. */
  readonly status: number;
  /** Builds the error with the status the client gets. */
  constructor(status: number, message: string) {
    super(message);
    this.name = "HeadError";
    this.status = status;
  }
}

/**
 * Where the head in `bytes` ends: the index just past its blank line, or -1
 * when it has not ended yet. `from` lets a caller skip bytes it already searched.
 */
export function headEnd(bytes: Uint8Array, from = 0): number {
  for (let i = Math.max(3, from); i < bytes.length; i++) {
    if (
      bytes[i] === LF && bytes[i - 1] === CR && bytes[i - 2] === LF && bytes[i - 3] === CR
    ) return i + 1;
  }
  return -1;
}

/** Splits a complete head into lines; bare CR or LF is refused. */
function splitLines(head: Uint8Array): Uint8Array[] {
  const lines: Uint8Array[] = [];
  let start = 0;
  // The head ends with CRLF CRLF: the last line is the empty one, left out.
  const end = head.length - 2;
  for (let i = 0; i < end; i++) {
    const byte = head[i];
    if (byte === CR) {
      if (head[i + 1] !== LF) throw new HeadError(400, "Bare CR in the request head");
      lines.push(head.subarray(start, i));
      start = i + 2;
      i++;
    } else if (byte === LF || byte === 0) {
      throw new HeadError(400, "Bare LF or NUL in the request head");
    }
  }
  return lines;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function ascii(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    text += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return text;
}

/** Whether `value` holds a control character other than HTAB (0x00-0x08, 0x0A-0x1F, 0x7F). */
function hasControl(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09) || code === 0x7f) return true;
  }
  return false;
}

/**
 * Header fields of a head, names lower-cased, values trimmed. With `request`,
 * a value holding a control character other than HTAB is refused, as the
 * server behind the front would (with an empty 400 of its own).
 */
function fields(lines: Uint8Array[], request: boolean): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 1; i < lines.length; i++) {
    const text = ascii(lines[i]!);
    if (text.startsWith(" ") || text.startsWith("\t")) {
      throw new HeadError(400, "Folded header lines are not accepted");
    }
    const colon = text.indexOf(":");
    const name = colon > 0 ? text.slice(0, colon) : "";
    if (!TOKEN.test(name)) throw new HeadError(400, "Malformed header line");
    // The value as sent: trim() would drop a vertical tab or form feed at its ends.
    const value = text.slice(colon + 1);
    if (request && hasControl(value)) {
      throw new HeadError(400, `Control character in header "${name}"`);
    }
    // Optional whitespace is spaces and tabs only (RFC 9110 5.6.3), as the server behind reads it.
    out.push([name.toLowerCase(), value.replace(/^[ \t]+|[ \t]+$/g, "")]);
  }
  return out;
}

/**
 * Most header lines in a request head. The server behind the front refuses
 * more than 128 (with an empty 400 of its own), and the front adds its
 * `Fabric-Peer` line: 100 leaves room.
 */
const MAX_HEADER_LINES = 100;

/** A request head's header fields, refusing what the server behind would refuse. */
function requestFields(lines: Uint8Array[]): [string, string][] {
  if (lines.length - 1 > MAX_HEADER_LINES) {
    throw new HeadError(400, `Too many header lines (over ${MAX_HEADER_LINES}): send fewer`);
  }
  const headers = fields(lines, true);
  if (headers.filter(([n]) => n === "host").length > 1) {
    throw new HeadError(400, "Duplicate Host header");
  }
  return headers;
}

function lengthOf(values: string[]): number | undefined {
  if (values.length === 0) return undefined;
  const first = values[0]!;
  for (const value of values) {
    if (value !== first || !/^[0-9]{1,15}$/.test(value)) {
      throw new HeadError(400, "Content-Length must be one decimal number");
    }
  }
  return Number(first);
}

function framingOf(headers: [string, string][], whenAbsent: BodyFraming): BodyFraming {
  const te = headers.filter(([n]) => n === "transfer-encoding").map(([, v]) => v);
  const cl = lengthOf(headers.filter(([n]) => n === "content-length").map(([, v]) => v));
  if (te.length > 0) {
    if (cl !== undefined) {
      throw new HeadError(400, "Transfer-Encoding and Content-Length together are ambiguous");
    }
    if (te.length !== 1 || te[0]!.toLowerCase() !== "chunked") {
      throw new HeadError(400, "Only Transfer-Encoding: chunked is accepted");
    }
    return { kind: "chunked" };
  }
  if (cl !== undefined) return cl === 0 ? { kind: "none" } : { kind: "length", bytes: cl };
  return whenAbsent;
}

function hasToken(headers: [string, string][], name: string, token: string): boolean {
  return headers.some(([n, v]) =>
    n === name && v.toLowerCase().split(",").some((t) => t.trim() === token)
  );
}

/**
 * Whether a request target is a path in the form both the signature (the
 * URL's normalized path) and the router (the path as sent) read alike:
 * origin-form, no dot segments, no empty segment, no backslash, and no
 * percent-encoded dot, slash or backslash. The query is not looked at.
 */
function isNormalTarget(target: string): boolean {
  const path = target.split("?", 1)[0]!;
  if (!path.startsWith("/") || path.includes("//") || path.includes("\\")) return false;
  if (/%(2e|2f|5c)/i.test(path)) return false;
  return !path.split("/").some((segment) => segment === "." || segment === "..");
}

/**
 * Parses a complete request head (through its blank line).
 * @throws {HeadError} when the head is malformed or its framing is ambiguous.
 */
export function parseRequestHead(head: Uint8Array): RequestHead {
  const lines = splitLines(head);
  const requestLine = ascii(lines[0] ?? new Uint8Array());
  const match = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^ ]+) HTTP\/1\.([01])$/.exec(requestLine);
  if (!match || hasControl(match[2]!)) throw new HeadError(400, "Malformed request line");
  if (!isNormalTarget(match[2]!)) {
    throw new HeadError(
      400,
      'Request path must be in normal form: starting with "/", without "." or ".." segments, ' +
        '"//", "\\" or encoded dots, slashes and backslashes',
    );
  }
  const headers = requestFields(lines);
  const upgrade = headers.some(([n]) => n === "upgrade") &&
    hasToken(headers, "connection", "upgrade");
  return {
    method: match[1]!,
    framing: framingOf(headers, { kind: "none" }),
    upgrade,
    close: hasToken(headers, "connection", "close") ||
      (match[3] === "0" && !hasToken(headers, "connection", "keep-alive")),
    lines,
  };
}

/**
 * Parses a complete response head; `method` is the request's, since answers to
 * HEAD have no body whatever their headers say.
 * @throws {HeadError} when the head is malformed.
 */
export function parseResponseHead(head: Uint8Array, method: string): ResponseHead {
  const lines = splitLines(head);
  const match = /^HTTP\/1\.[01] ([0-9]{3})/.exec(ascii(lines[0] ?? new Uint8Array()));
  if (!match) throw new HeadError(400, "Malformed status line");
  const status = Number(match[1]);
  if (status < 200 || status === 204 || status === 304 || method === "HEAD") {
    return { status, framing: { kind: "none" } };
  }
  return { status, framing: framingOf(fields(lines, false), { kind: "close" }) };
}

/** Longest chunk-size or trailer line accepted, bytes. */
const MAX_CHUNK_LINE = 4096;

/**
 * Follows a chunked body through the bytes given to {@linkcode ChunkedReader.feed},
 * without copying them, to find where it ends.
 */
export class ChunkedReader {
  #state: "size" | "data" | "data-crlf" | "trailer" = "size";
  #line = "";
  #remaining = 0;

  /**
   * Reads `bytes` from `offset`; returns the index just past the body's end,
   * or -1 when all of `bytes` belongs to the body and it goes on.
   * @throws {HeadError} when the chunk framing is malformed.
   */
  feed(bytes: Uint8Array, offset: number): number {
    let i = offset;
    while (i < bytes.length) {
      if (this.#state === "data") {
        const take = Math.min(this.#remaining, bytes.length - i);
        i += take;
        this.#remaining -= take;
        if (this.#remaining === 0) this.#state = "data-crlf";
        continue;
      }
      const byte = bytes[i++]!;
      if (byte !== LF) {
        this.#line += String.fromCharCode(byte);
        if (this.#line.length > MAX_CHUNK_LINE) throw new HeadError(400, "Chunk line too long");
        continue;
      }
      if (!this.#line.endsWith("\r")) throw new HeadError(400, "Bare LF in a chunked body");
      const line = this.#line.slice(0, -1);
      this.#line = "";
      if (this.#state === "data-crlf") {
        if (line !== "") throw new HeadError(400, "Chunk data longer than its size");
        this.#state = "size";
      } else if (this.#state === "size") {
        const size = /^([0-9A-Fa-f]{1,12})(;.*)?$/.exec(line);
        if (!size) throw new HeadError(400, "Malformed chunk size");
        this.#remaining = parseInt(size[1]!, 16);
        this.#state = this.#remaining === 0 ? "trailer" : "data";
      } else if (line === "") {
        this.#state = "size";
        return i;
      }
    }
    return -1;
  }
}

/** The header that carries the peer's address (`HOST:PORT`) to the server behind the front. */
export const PEER_HEADER = "fabric-peer";

/** How much of `data` belongs to a body being framed, and whether that ends it. */
export function takeBody(
  body: { left: number } | ChunkedReader,
  data: Uint8Array,
): { end: number; done: boolean } {
  if (body instanceof ChunkedReader) {
    const end = body.feed(data, 0);
    return end < 0 ? { end: data.length, done: false } : { end, done: true };
  }
  const end = Math.min(body.left, data.length);
  body.left -= end;
  return { end, done: body.left === 0 };
}

/** `a` then `b`, in a new array. */
export function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
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
export function rewriteHead(head: RequestHead, peer: Uint8Array): Uint8Array {
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

/** A whole answer of the front's own: `status`, `Connection: close`, `{"error": message}`. */
export function errorAnswer(status: number, message: string): Uint8Array {
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
