/**
 * Behind the front, `Deno.serve` names a request's URL `http+unix:`, a scheme
 * the WHATWG parser treats as non-special: its query kept `'` where the
 * `http:` URL a client signs has `%27` (docs/protocol.md 2.3). A request sent
 * with `'` on the wire and signed as the document says was refused, and a
 * relay forwarded `%27` for a `'` it had verified.
 */
import assert from "node:assert/strict";
import { addressedUrl, serveGuarded } from "../../src/api/guarded_server.ts";
import { generateFabricKeys, signRequest } from "../../src/crypto/mod.ts";
import { signingApp } from "./_signed.ts";

const keys = await generateFabricKeys();

Deno.test("addressedUrl() reads a Unix socket's request URL as the http: URL the client addressed", () => {
  const url = addressedUrl("http+unix://127.0.0.1:5/v1/x?a='b&c=%27");
  assert.equal(url.protocol, "http:");
  assert.equal(url.pathname, "/v1/x");
  assert.equal(url.search, "?a=%27b&c=%27");
  assert.equal(addressedUrl("http://h/p?a='").search, "?a=%27", "an http: URL is parsed as it is");
});

Deno.test("a request sent with ' in its query and signed as an http: URL verifies behind the front", async () => {
  const app = signingApp("svc-1", keys);
  app.get("/v1/q", (c) => c.text(addressedUrl(c.req.url).search));
  app.onError((error, c) => c.text(error.message, 401));
  const server = await serveGuarded(app.fetch, { hostname: "127.0.0.1", port: 0, graceMs: 200 });
  try {
    const wire = "/v1/q?a='b";
    const signed = await signRequest(
      { method: "GET", url: new URL(wire, "http://x"), body: new Uint8Array() },
      keys,
      { target: "svc-1" },
    );
    const head = [`GET ${wire} HTTP/1.1`, "Host: x", "Connection: close"];
    for (const [name, value] of signed.fields) head.push(`${name}: ${value}`);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await conn.write(new TextEncoder().encode(`${head.join("\r\n")}\r\n\r\n`));
    const answer = await new Response(conn.readable).text();
    assert.match(answer, /^HTTP\/1\.1 200 /, answer);
    assert.ok(answer.endsWith("?a=%27b"), answer);
  } finally {
    await server.shutdown();
  }
});
