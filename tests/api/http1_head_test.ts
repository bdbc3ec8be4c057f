/**
 * The front's request head parser refuses what the server behind it would
 * refuse with an empty 400 of its own: too many header lines, a second Host
 * header, a control character (other than HTAB) in a header value. The
 * client gets the front's `400 {"error": REASON}` instead (docs/protocol.md 2.10).
 */
import assert from "node:assert/strict";
import { HeadError, parseRequestHead } from "../../src/api/_http1.ts";
import { serveGuarded } from "../../src/api/guarded_server.ts";

const decoder = new TextDecoder();

/** The bytes of `text`, one per character (so "\x80" stays one byte). */
function bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** A GET head with `count` header lines: Host, Connection: close, then X-Hn fillers, then `extra`. */
function headWith(count: number, extra: string[] = []): string {
  const lines = ["Host: x", "Connection: close", ...extra];
  for (let i = 0; lines.length < count; i++) lines.push(`X-H${i}: v`);
  return `GET /a HTTP/1.1\r\n${lines.join("\r\n")}\r\n\r\n`;
}

function refusal(head: string): string {
  try {
    parseRequestHead(bytes(head));
  } catch (error) {
    assert.ok(error instanceof HeadError, String(error));
    assert.equal(error.status, 400);
    return error.message;
  }
  assert.fail("the head was accepted");
}

const TOO_MANY = "Too many header lines (over 100): send fewer";

Deno.test("parseRequestHead() takes 100 header lines and refuses 101 or more", () => {
  assert.equal(parseRequestHead(bytes(headWith(100))).method, "GET");
  assert.equal(refusal(headWith(101)), TOO_MANY);
  assert.equal(refusal(headWith(200)), TOO_MANY);
});

Deno.test("parseRequestHead() refuses a second Host header, whatever its case or value", () => {
  assert.equal(refusal(headWith(3, ["host: x"])), "Duplicate Host header");
  assert.equal(refusal(headWith(3, ["HOST: y"])), "Duplicate Host header");
  assert.equal(parseRequestHead(bytes(headWith(3, ["X-Host: y"]))).method, "GET");
});

Deno.test("parseRequestHead() refuses a control character other than HTAB in a header value", () => {
  for (const code of [0x01, 0x08, 0x0b, 0x0c, 0x1b, 0x1f, 0x7f]) {
    const char = String.fromCharCode(code);
    for (const value of [`a${char}b`, `a${char}`, `${char}a`]) {
      assert.equal(
        refusal(headWith(3, [`X-Odd: ${value}`])),
        'Control character in header "X-Odd"',
        `0x${code.toString(16)} in ${JSON.stringify(value)}`,
      );
    }
  }
  // HTAB and obs-text are allowed, as the server behind allows them.
  assert.equal(parseRequestHead(bytes(headWith(3, ["X-Odd: a\tb\t"]))).method, "GET");
  assert.equal(parseRequestHead(bytes(headWith(3, ["X-Odd: caf\xe9"]))).method, "GET");
});

Deno.test("serveGuarded() answers the front's 400 JSON to heads the server behind would refuse, and passes 100 header lines on", async () => {
  const server = await serveGuarded(
    (request) => new Response(`headers ${[...request.headers].length}`),
    { hostname: "127.0.0.1", port: 0, graceMs: 200 },
  );
  const send = async (head: string): Promise<string> => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    try {
      await conn.write(bytes(head));
      const chunks: string[] = [];
      const buffer = new Uint8Array(65536);
      while (true) {
        const n = await conn.read(buffer).catch(() => null);
        if (n === null) break;
        chunks.push(decoder.decode(buffer.subarray(0, n)));
      }
      return chunks.join("");
    } finally {
      try {
        conn.close();
      } catch {
        // Closed by the server already.
      }
    }
  };
  try {
    const cases: [string, string][] = [
      [headWith(129), TOO_MANY],
      [headWith(200), TOO_MANY],
      [headWith(3, ["Host: y"]), "Duplicate Host header"],
      [headWith(3, ["X-Odd: a\x01b"]), 'Control character in header "X-Odd"'],
      [headWith(3, ["X-Odd: a\x7f"]), 'Control character in header "X-Odd"'],
    ];
    for (const [head, reason] of cases) {
      const answer = await send(head);
      assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/, answer);
      assert.deepEqual(JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)), {
        error: reason,
      });
    }
    // 100 lines and the front's Fabric-Peer are within what the server behind takes.
    const answer = await send(headWith(100, ["X-Tab: a\tb"]));
    assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/, answer);
    assert.match(answer, /headers 101$/, answer);
  } finally {
    await server.shutdown();
  }
});

Deno.test("parseRequestHead() refuses a control character in the target and keeps a non-blank byte at a value's end", () => {
  const head = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
  assert.throws(
    () => parseRequestHead(head("GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n")),
    /Malformed request line/,
  );
  assert.throws(
    () => parseRequestHead(head("GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n")),
    /Malformed request line/,
  );
  // A length with a byte after it that is not blank is no length: refused, not trimmed away.
  assert.throws(
    () => parseRequestHead(head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\xa0\r\n\r\n")),
    HeadError,
  );
});
