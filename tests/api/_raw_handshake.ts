/**
 * A signed WebSocket handshake written by hand on a bare TCP connection, so a
 * test can leave out or spoil the headers Deno's WebSocket always sends.
 * @module
 */
import { type FabricKeys, signRequest } from "../../src/crypto/mod.ts";

/** A well-formed key: the base64 of 16 bytes. */
export const GOOD_KEY = "dGhlIHNhbXBsZSBub25jZQ==";

/** The handshake headers of a well-formed request. */
export const GOOD_HANDSHAKE: Record<string, string> = {
  upgrade: "websocket",
  connection: "Upgrade",
  "sec-websocket-key": GOOD_KEY,
  "sec-websocket-version": "13",
};

/** The head and body of an answer to a hand-written handshake. */
export interface RawAnswer {
  status: number;
  headers: Headers;
  body: Uint8Array<ArrayBuffer>;
  /** The request's signature nonce, to verify a signed answer with. */
  nonce: string;
}

/**
 * Sends `GET path` to 127.0.0.1:`port` signed for `target`, with `handshake`
 * (header to value; undefined leaves the header out) and `extra` headers,
 * and reads the answer's head and (by Content-Length) body.
 */
export async function rawHandshake(
  port: number,
  path: string,
  keys: FabricKeys,
  target: string,
  handshake: Record<string, string | undefined>,
  extra: Record<string, string> = {},
): Promise<RawAnswer> {
  const url = new URL(path, `http://127.0.0.1:${port}`);
  const signed = await signRequest(
    { method: "GET", url, headers: new Headers(), body: new Uint8Array() },
    keys,
    { target },
  );
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `host: 127.0.0.1:${port}`];
  for (const [name, value] of Object.entries({ ...handshake, ...extra })) {
    if (value !== undefined) lines.push(`${name}: ${value}`);
  }
  for (const [name, value] of signed.headers) lines.push(`${name}: ${value}`);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(`${lines.join("\r\n")}\r\n\r\n`));
    let bytes = new Uint8Array(0);
    const more = async (): Promise<boolean> => {
      const chunk = new Uint8Array(16 * 1024);
      const n = await conn.read(chunk);
      if (n === null) return false;
      const joined = new Uint8Array(bytes.length + n);
      joined.set(bytes);
      joined.set(chunk.subarray(0, n), bytes.length);
      bytes = joined;
      return true;
    };
    let end = -1;
    while ((end = blankLine(bytes)) < 0) {
      if (!await more()) throw new Error("Connection closed during the answer's head");
    }
    const [statusLine = "", ...fields] = new TextDecoder().decode(bytes.subarray(0, end))
      .split("\r\n");
    const headers = new Headers();
    for (const field of fields) {
      const colon = field.indexOf(":");
      headers.append(field.slice(0, colon).trim(), field.slice(colon + 1).trim());
    }
    const length = Number(headers.get("content-length") ?? "0");
    while (bytes.length < end + 4 + length) {
      if (!await more()) break;
    }
    return {
      status: Number(statusLine.split(" ")[1]),
      headers,
      body: bytes.slice(end + 4, end + 4 + length),
      nonce: signed.nonce,
    };
  } finally {
    conn.close();
  }
}

function blankLine(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}
