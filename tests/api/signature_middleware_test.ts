import assert from "node:assert/strict";
import type { Hono } from "hono";
import { generateFabricKeys } from "../../src/crypto/keys.ts";
import { signRequest, verifyResponse } from "../../src/crypto/signing.ts";
import { signedRequest, signingApp } from "./_signed.ts";

const keys = await generateFabricKeys();

function app(): Hono {
  const app = signingApp("svc-1", keys);
  app.get("/v1/own", (c) => {
    c.header("x-kept", "yes");
    return c.json({ ok: true });
  });
  // A fetched answer's headers are immutable: it is signed on a copy.
  app.get("/v1/fetched", async () => await fetch("data:application/json,%7B%22ok%22%3Atrue%7D"));
  app.get("/v1/empty", (c) => c.body(null, 204));
  app.get("/v1/unicode", (c) => c.json({ name: "é€😀", lone: "\ud800" }));
  app.get(
    "/v1/binary",
    (c) => c.body(Uint8Array.of(0xff, 0xfe, 0), 200, { "content-type": "x/y" }),
  );
  return app;
}

Deno.test("signatures() signs the handler's answer and keeps its headers when they are mutable", async () => {
  const unsigned = await app().request("http://fabric.test/v1/own");
  assert.equal(unsigned.status, 401, "an unsigned request is refused");
  const url = new URL("http://fabric.test/v1/own");
  const signed = await signRequest({ method: "GET", url, body: new Uint8Array() }, keys, {
    target: "svc-1",
  });
  const answer = await app().request(url, { headers: signed.headers });
  const body = new Uint8Array(await answer.arrayBuffer());
  assert.equal(answer.status, 200);
  assert.equal(answer.headers.get("x-kept"), "yes");
  const verdict = await verifyResponse(
    { status: answer.status, headers: answer.headers, body },
    { publicKey: keys.publicKey, fingerprint: keys.fingerprint, requestNonce: signed.nonce },
  );
  assert.equal(verdict.ok, true);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(body)), { ok: true });
});

Deno.test("signatures() signs a copy when the handler's answer has immutable headers", async () => {
  const signed = await signedRequest(app(), keys, {
    method: "GET",
    path: "/v1/fetched",
    target: "svc-1",
  });
  assert.equal(signed.status, 200);
  assert.equal(signed.answerVerified, true);
  assert.deepEqual(signed.json, { ok: true });
});

Deno.test("signatures() keeps a 204 answer without a body when it signs it", async () => {
  const signed = await signedRequest(app(), keys, {
    method: "GET",
    path: "/v1/empty",
    target: "svc-1",
  });
  assert.equal(signed.status, 204);
  assert.equal(signed.answerVerified, true);
});

Deno.test("signatures() signs a JSON answer read as text with the bytes it sends", async () => {
  const signed = await signedRequest(app(), keys, {
    method: "GET",
    path: "/v1/unicode",
    target: "svc-1",
  });
  assert.equal(signed.status, 200);
  assert.equal(signed.answerVerified, true);
  assert.deepEqual(signed.json, { name: "é€😀", lone: "\ud800" });
});

Deno.test("signatures() signs an answer that is not JSON with its bytes untouched", async () => {
  const url = new URL("http://fabric.test/v1/binary");
  const signed = await signRequest({ method: "GET", url, body: new Uint8Array() }, keys, {
    target: "svc-1",
  });
  const answer = await app().request(url, { headers: signed.headers });
  const body = new Uint8Array(await answer.arrayBuffer());
  assert.deepEqual([...body], [0xff, 0xfe, 0]);
  const verdict = await verifyResponse(
    { status: answer.status, headers: answer.headers, body },
    { publicKey: keys.publicKey, fingerprint: keys.fingerprint, requestNonce: signed.nonce },
  );
  assert.equal(verdict.ok, true);
});
