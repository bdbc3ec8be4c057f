import { type FabricKeys, signRequest } from "../../../src/crypto/mod.ts";

/**
 * A WebSocket client on a bare TCP connection, so a test can stop reading and
 * let the server's writes back up, which Deno's WebSocket never does.
 */
export class RawWebSocket {
  #conn: Deno.TcpConn;
  #buffer: Uint8Array = new Uint8Array(0);
  #decoder = new TextDecoder();

  private constructor(conn: Deno.TcpConn, rest: Uint8Array) {
    this.#conn = conn;
    this.#buffer = rest;
  }

  /**
   * Opens `path` on `port` with a handshake signed for `target`; resolves once
   * the server answered 101, and rejects with the status line otherwise.
   */
  static async open(
    port: number,
    path: string,
    keys: FabricKeys,
    target: string,
  ): Promise<RawWebSocket> {
    const url = new URL(path, `http://127.0.0.1:${port}`);
    const signed = await signRequest(
      { method: "GET", url, headers: new Headers(), body: new Uint8Array() },
      keys,
      { target },
    );
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    const lines = [
      `GET ${url.pathname}${url.search} HTTP/1.1`,
      `host: 127.0.0.1:${port}`,
      "upgrade: websocket",
      "connection: Upgrade",
      `sec-websocket-key: ${key}`,
      "sec-websocket-version: 13",
      ...[...signed.headers].map(([name, value]) => `${name}: ${value}`),
    ];
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode(`${lines.join("\r\n")}\r\n\r\n`));
    let head: Uint8Array = new Uint8Array(0);
    for (;;) {
      const chunk = new Uint8Array(4096);
      const n = await conn.read(chunk);
      if (n === null) break;
      head = concat(head, chunk.subarray(0, n));
      const end = indexOfBlankLine(head);
      if (end >= 0) {
        const status = new TextDecoder().decode(head.subarray(0, end)).split("\r\n")[0] ?? "";
        if (!status.includes(" 101 ")) {
          conn.close();
          throw new Error(`Handshake refused: ${status}`);
        }
        return new RawWebSocket(conn, head.slice(end + 4));
      }
    }
    conn.close();
    throw new Error("Connection closed during the handshake");
  }

  /** The next text frame, or null when the connection ends; control frames are skipped. */
  async next(): Promise<string | null> {
    for (;;) {
      const frame = this.#parse();
      if (frame) {
        if (frame.opcode === 0x8) return null;
        if (frame.opcode === 0x1) return this.#decoder.decode(frame.payload);
        continue;
      }
      const chunk = new Uint8Array(64 * 1024);
      const n = await this.#conn.read(chunk);
      if (n === null) return null;
      this.#buffer = concat(this.#buffer, chunk.subarray(0, n));
    }
  }

  /** Closes the TCP connection. */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }

  #parse(): { opcode: number; payload: Uint8Array } | null {
    const b = this.#buffer;
    if (b.length < 2) return null;
    const opcode = b[0]! & 0x0f;
    let length = b[1]! & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (b.length < 4) return null;
      length = (b[2]! << 8) | b[3]!;
      offset = 4;
    } else if (length === 127) {
      if (b.length < 10) return null;
      length = Number(new DataView(b.buffer, b.byteOffset + 2, 8).getBigUint64(0));
      offset = 10;
    }
    if (b.length < offset + length) return null;
    const payload = b.slice(offset, offset + length);
    this.#buffer = b.slice(offset + length);
    return { opcode, payload };
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function indexOfBlankLine(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}
