import assert from "node:assert/strict";
import { generateFabricKeys } from "../../src/crypto/keys.ts";
import {
  signResponse,
  signStreamResponse,
  verifyResponse,
  type VerifyResult,
  verifyStreamResponse,
} from "../../src/crypto/signing.ts";

const NOW = 1_700_000_000_000;
const keys = await generateFabricKeys();
const otherKeys = await generateFabricKeys();
const text = (value: string): Uint8Array => new TextEncoder().encode(value);

function freshNonce(): string {
  return crypto.randomUUID().replaceAll("-", "");
}

function reasonOf(result: VerifyResult): string {
  return result.ok ? "ok" : result.reason;
}

function withHeader(headers: Headers, name: string, value: string | null): Headers {
  const copy = new Headers(headers);
  if (value === null) copy.delete(name);
  else copy.set(name, value);
  return copy;
}

Deno.test("verifyResponse() accepts a signed answer when it carries the request's nonce", async () => {
  const nonce = freshNonce();
  const body = text('{"id":"svc-a"}');
  const headers = await signResponse(
    { status: 201, headers: new Headers({ "content-type": "application/json" }), body },
    keys,
    { requestNonce: nonce, now: NOW },
  );
  assert.equal(headers.get("content-type"), "application/json");
  assert.match(headers.get("signature-input") ?? "", /tag="fabricd-answer"$/);
  const verified = {
    publicKey: keys.publicKey,
    fingerprint: keys.fingerprint,
    requestNonce: nonce,
  };
  const result = await verifyResponse({ status: 201, headers, body }, verified);
  assert.deepEqual(result, {
    ok: true,
    nonce,
    expires: Number.POSITIVE_INFINITY,
    signer: { kind: "operator" },
  });
});

Deno.test("verifyResponse() refuses the answer when status, body, nonce or key differ", async () => {
  const nonce = freshNonce();
  const body = text('{"id":"svc-a"}');
  const headers = await signResponse({ status: 200, body }, keys, { requestNonce: nonce });
  const verified = {
    publicKey: keys.publicKey,
    fingerprint: keys.fingerprint,
    requestNonce: nonce,
  };
  assert.equal(
    reasonOf(await verifyResponse({ status: 500, headers, body }, verified)),
    "Signature does not verify",
  );
  assert.equal(
    reasonOf(await verifyResponse({ status: 200, headers, body: text("{}") }, verified)),
    "Content-Digest does not match the body",
  );
  const otherNonce = freshNonce();
  assert.match(
    reasonOf(
      await verifyResponse({ status: 200, headers, body }, {
        ...verified,
        requestNonce: otherNonce,
      }),
    ),
    /^Answer is for another request/,
  );
  assert.match(
    reasonOf(
      await verifyResponse({ status: 200, headers, body }, {
        ...verified,
        publicKey: otherKeys.publicKey,
        fingerprint: otherKeys.fingerprint,
      }),
    ),
    /^Unknown key/,
  );
  assert.match(
    reasonOf(
      await verifyResponse(
        { status: 200, headers: withHeader(headers, "signature", null), body },
        verified,
      ),
    ),
    /^Missing Signature header: sign the answer/,
  );
});

Deno.test("verifyStreamResponse() accepts a signed stream answer and refuses changed ones", async () => {
  const nonce = freshNonce();
  const headers = await signStreamResponse(
    { status: 200, headers: new Headers({ "content-type": "text/event-stream" }) },
    keys,
    { requestNonce: nonce, now: NOW },
  );
  assert.equal(headers.has("content-digest"), false);
  assert.match(
    headers.get("signature-input") ?? "",
    /^sig1=\("@status" "content-type"\);.*tag="fabricd-stream"$/,
  );
  const verified = {
    publicKey: keys.publicKey,
    fingerprint: keys.fingerprint,
    requestNonce: nonce,
  };
  assert.equal(reasonOf(await verifyStreamResponse({ status: 200, headers }, verified)), "ok");
  assert.equal(
    reasonOf(await verifyStreamResponse({ status: 204, headers }, verified)),
    "Signature does not verify",
  );
  assert.equal(
    reasonOf(
      await verifyStreamResponse(
        { status: 200, headers: withHeader(headers, "content-type", "text/html") },
        verified,
      ),
    ),
    "Signature does not verify",
  );
  assert.match(
    reasonOf(await verifyResponse({ status: 200, headers, body: new Uint8Array() }, verified)),
    /^Signature tag "fabricd-stream" is not "fabricd-answer"/,
  );
  await assert.rejects(
    signStreamResponse({ status: 200, headers: new Headers() }, keys, { requestNonce: nonce }),
    TypeError,
  );
});

Deno.test("signResponse() signs a string body exactly as its UTF-8 bytes", async () => {
  const nonce = freshNonce();
  const body = '{"name":"é","n":1}';
  const fromText = await signResponse({ status: 200, body }, keys, {
    requestNonce: nonce,
    now: NOW,
  });
  const fromBytes = await signResponse({ status: 200, body: text(body) }, keys, {
    requestNonce: nonce,
    now: NOW,
  });
  assert.deepEqual([...fromText], [...fromBytes], "the same fields, the same signature");
  const verdict = await verifyResponse(
    { status: 200, headers: fromText, body: text(body) },
    { publicKey: keys.publicKey, fingerprint: keys.fingerprint, requestNonce: nonce },
  );
  assert.equal(reasonOf(verdict), "ok");
});
