import assert from "node:assert/strict";
import { generateFabricKeys } from "../../src/crypto/keys.ts";
import { ReplayCache } from "../../src/crypto/replay_cache.ts";
import {
  type RequestParts,
  signRequest,
  signResponse,
  verifyRequest,
  verifyRequestHead,
  type VerifyRequestOptions,
  type VerifyResult,
} from "../../src/crypto/signing.ts";

const NOW = 1_700_000_000_000;
const URL_ = "http://127.0.0.1:7700/v1/spawn?dry=1&x=%20y";
const keys = await generateFabricKeys();
const otherKeys = await generateFabricKeys();
const text = (value: string): Uint8Array => new TextEncoder().encode(value);

async function signed(
  overrides: { url?: string; body?: Uint8Array; now?: number; expiresInSeconds?: number } = {},
): Promise<{ parts: RequestParts; nonce: string }> {
  const method = "post";
  const url = overrides.url ?? URL_;
  const body = overrides.body ?? text('{"role":"agent"}');
  const { headers, nonce } = await signRequest(
    { method, url, body, headers: new Headers({ "content-type": "application/json" }) },
    keys,
    {
      target: "svc-a",
      now: overrides.now ?? NOW,
      ...(overrides.expiresInSeconds === undefined
        ? {}
        : { expiresInSeconds: overrides.expiresInSeconds }),
    },
  );
  return { parts: { method, url, headers, body }, nonce };
}

function options(overrides: Partial<VerifyRequestOptions> = {}): VerifyRequestOptions {
  return {
    publicKey: keys.publicKey,
    fingerprint: keys.fingerprint,
    serviceId: "svc-a",
    replayCache: new ReplayCache(),
    now: NOW + 1_000,
    ...overrides,
  };
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

Deno.test("signRequest() adds digest, target and sig1 headers in the fabricd profile", async () => {
  const { parts, nonce } = await signed();
  const { headers } = parts;
  assert.equal(headers.get("content-type"), "application/json");
  assert.match(headers.get("content-digest") ?? "", /^sha-256=:[A-Za-z0-9+/]{43}=:$/);
  assert.equal(headers.get("fabric-target"), "svc-a");
  assert.match(nonce, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(
    headers.get("signature-input"),
    `sig1=("@method" "@path" "@query" "content-digest" "fabric-target" "content-type");created=1700000000;expires=1700000030;nonce="${nonce}";keyid="${keys.fingerprint}";alg="ed25519";tag="fabricd"`,
  );
  assert.match(headers.get("signature") ?? "", /^sig1=:[A-Za-z0-9+/]{86}==:$/);
});

Deno.test("signRequest() signs the RFC 9421 signature base when it is rebuilt by hand", async () => {
  const { parts } = await signed({ url: "http://h:1/v1/a%20b/c?" });
  const { headers } = parts;
  const input = headers.get("signature-input") ?? "";
  const base = [
    '"@method": POST',
    '"@path": /v1/a%20b/c',
    '"@query": ?',
    `"content-digest": ${headers.get("content-digest")}`,
    '"fabric-target": svc-a',
    '"content-type": application/json',
    `"@signature-params": ${input.slice("sig1=".length)}`,
  ].join("\n");
  const signature = Uint8Array.from(
    atob((headers.get("signature") ?? "").slice("sig1=:".length, -1)),
    (char) => char.charCodeAt(0),
  );
  assert.equal(
    await crypto.subtle.verify(
      "Ed25519",
      keys.publicKey,
      signature,
      new TextEncoder().encode(base),
    ),
    true,
  );
});

Deno.test("signRequest() sets Content-Digest of the empty body when there is no body", async () => {
  const { headers } = await signRequest(
    { method: "GET", url: "http://h/v1/status", body: new Uint8Array() },
    keys,
    { target: "svc-a", now: NOW },
  );
  assert.equal(
    headers.get("content-digest"),
    "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
  );
});

Deno.test("signRequest() throws when the URL, method, target, nonce or lifetime is malformed", async () => {
  const body = new Uint8Array();
  const url = "http://h/";
  await assert.rejects(
    signRequest({ method: "GET", url: "/relative", body }, keys, { target: "a" }),
    TypeError,
  );
  await assert.rejects(signRequest({ method: "G T", url, body }, keys, { target: "a" }), TypeError);
  await assert.rejects(
    signRequest({ method: "GET", url, body }, keys, { target: "a b" }),
    TypeError,
  );
  await assert.rejects(signRequest({ method: "GET", url, body }, keys, { target: "" }), TypeError);
  await assert.rejects(
    signRequest({ method: "GET", url, body }, keys, { target: "a", nonce: "short" }),
    TypeError,
  );
  await assert.rejects(
    signRequest({ method: "GET", url, body }, keys, { target: "a", expiresInSeconds: 0 }),
    RangeError,
  );
});

Deno.test("verifyRequest() accepts a signed request when nothing was changed", async () => {
  const { parts, nonce } = await signed();
  const result = await verifyRequest(parts, options());
  assert.deepEqual(result, {
    ok: true,
    nonce,
    expires: 1_700_000_030,
    signer: { kind: "operator" },
  });
});

Deno.test("verifyRequest() accepts an empty query when the URL ends in a bare question mark", async () => {
  const { parts } = await signed({ url: "http://h/v1/status?" });
  assert.equal(
    reasonOf(await verifyRequest({ ...parts, url: "http://h/v1/status" }, options())),
    "ok",
  );
});

Deno.test("verifyRequest() refuses a tampered body when the digest is left as signed", async () => {
  const { parts } = await signed();
  const result = await verifyRequest({ ...parts, body: text('{"role":"queue"}') }, options());
  assert.equal(reasonOf(result), "Content-Digest does not match the body");
});

Deno.test("verifyRequest() refuses a tampered body when the digest is recomputed", async () => {
  const { parts } = await signed();
  const body = text('{"role":"queue"}');
  const json = new Headers({ "content-type": "application/json" });
  const digest = (await signRequest({ method: "POST", url: URL_, body, headers: json }, keys, {
    target: "svc-a",
  })).headers.get("content-digest");
  const headers = withHeader(parts.headers, "content-digest", digest);
  assert.equal(
    reasonOf(await verifyRequest({ ...parts, headers, body }, options())),
    "Signature does not verify",
  );
});

Deno.test("verifyRequest() refuses the request when method, path or query changed", async () => {
  const { parts } = await signed();
  for (
    const changed of [
      { ...parts, method: "PUT" },
      { ...parts, url: "http://127.0.0.1:7700/v1/stop?dry=1&x=%20y" },
      { ...parts, url: "http://127.0.0.1:7700/v1/spawn?dry=0&x=%20y" },
      { ...parts, url: "http://127.0.0.1:7700/v1/spawn" },
    ]
  ) {
    assert.equal(reasonOf(await verifyRequest(changed, options())), "Signature does not verify");
  }
});

Deno.test("verifyRequest() ignores the host and the method's case when checking the signature", async () => {
  const { parts } = await signed();
  const relayed = { ...parts, method: "POST", url: "http://10.0.0.9:9000/v1/spawn?dry=1&x=%20y" };
  assert.equal(reasonOf(await verifyRequest(relayed, options())), "ok");
});

Deno.test("verifyRequest() refuses a request when it is meant for another service", async () => {
  const { parts } = await signed();
  assert.equal(
    reasonOf(await verifyRequest(parts, options({ serviceId: "svc-b" }))),
    'Request is for service "svc-a", this is "svc-b"',
  );
  const retargeted = { ...parts, headers: withHeader(parts.headers, "fabric-target", "svc-b") };
  assert.equal(
    reasonOf(await verifyRequest(retargeted, options({ serviceId: "svc-b" }))),
    "Signature does not verify",
  );
});

Deno.test("verifyRequest() refuses the request when the signature has expired", async () => {
  const { parts } = await signed();
  assert.equal(
    reasonOf(await verifyRequest(parts, options({ now: NOW + 36_000 }))),
    "Signature expired",
  );
  assert.equal(reasonOf(await verifyRequest(parts, options({ now: NOW + 34_000 }))), "ok");
});

Deno.test("verifyRequest() refuses the request when it was created too far in the future", async () => {
  const { parts } = await signed({ now: NOW + 60_000 });
  assert.match(
    reasonOf(await verifyRequest(parts, options())),
    /^Signature created 59 s in the future/,
  );
  const { parts: slightly } = await signed({ now: NOW + 4_000 });
  assert.equal(reasonOf(await verifyRequest(slightly, options({ now: NOW }))), "ok");
});

Deno.test("verifyRequest() refuses the request when its lifetime exceeds the maximum", async () => {
  const { parts } = await signed({ expiresInSeconds: 61 });
  assert.match(
    reasonOf(await verifyRequest(parts, options())),
    /^Signature lifetime 61 s exceeds 60 s/,
  );
  assert.equal(
    reasonOf(await verifyRequest(parts, options({ maxLifetimeSeconds: 600 }))),
    "ok",
  );
});

Deno.test("verifyRequest() refuses a replayed nonce when the same request comes twice", async () => {
  const { parts } = await signed();
  const shared = options();
  assert.equal(reasonOf(await verifyRequest(parts, shared)), "ok");
  assert.equal(reasonOf(await verifyRequest(parts, shared)), "Nonce already used (replay)");
});

Deno.test("verifyRequest() does not consume the nonce when the verification fails", async () => {
  const { parts } = await signed();
  const shared = options();
  assert.notEqual(reasonOf(await verifyRequest({ ...parts, method: "PUT" }, shared)), "ok");
  assert.notEqual(reasonOf(await verifyRequest({ ...parts, body: text("x") }, shared)), "ok");
  assert.notEqual(reasonOf(await verifyRequest(parts, { ...shared, serviceId: "svc-b" })), "ok");
  assert.equal(shared.replayCache.size, 0);
  assert.equal(reasonOf(await verifyRequest(parts, shared)), "ok");
});

Deno.test("verifyRequest() refuses a request when it was signed with another fabric's key", async () => {
  const { headers } = await signRequest(
    { method: "GET", url: "http://h/v1/status", body: new Uint8Array() },
    otherKeys,
    { target: "svc-a", now: NOW },
  );
  const parts = { method: "GET", url: "http://h/v1/status", headers, body: new Uint8Array() };
  assert.equal(
    reasonOf(await verifyRequest(parts, options())),
    `Unknown key "${otherKeys.fingerprint}": not this fabric's key`,
  );
  const impostor = { ...otherKeys, fingerprint: keys.fingerprint };
  const forged = await signRequest(
    { method: "GET", url: "http://h/v1/status", body: new Uint8Array() },
    impostor,
    { target: "svc-a", now: NOW },
  );
  assert.equal(
    reasonOf(await verifyRequest({ ...parts, headers: forged.headers }, options())),
    "Signature does not verify",
  );
});

Deno.test("verifyRequest() names the missing header when a signed header is absent", async () => {
  const { parts } = await signed();
  const cases: [string, RegExp][] = [
    ["signature-input", /^Missing Signature-Input header: sign the request with the fabric key$/],
    ["signature", /^Missing Signature header/],
    ["fabric-target", /^Missing Fabric-Target header/],
    ["content-digest", /^Missing Content-Digest header/],
  ];
  for (const [name, reason] of cases) {
    const headers = withHeader(parts.headers, name, null);
    assert.match(reasonOf(await verifyRequest({ ...parts, headers }, options())), reason, name);
  }
});

Deno.test("verifyRequest() refuses a signature when it departs from the profile", async () => {
  const { parts } = await signed();
  const input = parts.headers.get("signature-input") ?? "";
  const cases: [string, RegExp][] = [
    [input.replace('"@query" ', ""), /^Covered components must be \("@method" "@path" "@query"/],
    [input.replace('"fabric-target"', '"fabric-target";sf'), /^Covered components must be/],
    [
      input.replace('alg="ed25519"', 'alg="rsa-pss-sha512"'),
      /^Signature algorithm "rsa-pss-sha512"/,
    ],
    [input.replace(';alg="ed25519"', ""), /^Signature algorithm \(none\)/],
    [input.replace('tag="fabricd"', 'tag="other"'), /^Signature tag "other" is not "fabricd"/],
    [input.replace(keys.fingerprint, otherKeys.fingerprint), /^Unknown key "sha256:/],
    [input.replace(";expires=1700000030", ""), /"expires" must be an integer/],
    [`${input};extra=1`, /^Unexpected signature parameter "extra"/],
    [input.replace("sig1=", "sig2="), /no inner list labelled "sig1"/],
    [input.replace(/nonce="[^"]*"/, 'nonce="x"'), /nonce must be/],
    [input.replace(/;created=/, "; created="), /^Malformed Signature-Input header/],
  ];
  for (const [value, reason] of cases) {
    const headers = withHeader(parts.headers, "signature-input", value);
    const result = await verifyRequest({ ...parts, headers }, options());
    assert.match(reasonOf(result), reason, value);
  }
});

Deno.test("verifyRequest() refuses a Signature when its base64 has non-zero padding bits", async () => {
  const { parts } = await signed();
  const field = parts.headers.get("signature") ?? "";
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const at = field.length - 4;
  // The last data character before "==" carries 4 unused bits; setting one keeps the bytes.
  const lenient = field.slice(0, at) + alphabet[alphabet.indexOf(field[at] ?? "") | 1] +
    field.slice(at + 1);
  assert.deepEqual(
    Uint8Array.from(atob(lenient.slice(6, -1)), (char) => char.charCodeAt(0)),
    Uint8Array.from(atob(field.slice(6, -1)), (char) => char.charCodeAt(0)),
  );
  const headers = withHeader(parts.headers, "signature", lenient);
  assert.match(
    reasonOf(await verifyRequest({ ...parts, headers }, options())),
    /^Malformed Signature header/,
  );
});

Deno.test("verifyRequest() refuses an answer's signature when it is replayed as a request", async () => {
  const { parts, nonce } = await signed();
  const answer = await signResponse({ status: 200, body: parts.body }, keys, {
    requestNonce: nonce,
    now: NOW,
  });
  const headers = withHeader(
    withHeader(parts.headers, "signature-input", answer.get("signature-input")),
    "signature",
    answer.get("signature"),
  );
  assert.match(
    reasonOf(await verifyRequest({ ...parts, headers }, options())),
    /^Signature tag "fabricd-answer" is not "fabricd"/,
  );
});

Deno.test("verifyRequest() throws TypeError when the options are not usable", async () => {
  const { parts } = await signed();
  await assert.rejects(verifyRequest(parts, options({ publicKey: keys.privateKey })), TypeError);
  await assert.rejects(verifyRequest(parts, options({ serviceId: "" })), TypeError);
  await assert.rejects(verifyRequest(parts, options({ clockSkewSeconds: -1 })), RangeError);
});

Deno.test("verifyRequest() refuses a request created before notBeforeSeconds when a service restarted", async () => {
  const { parts } = await signed();
  const startedAt = NOW / 1000 + 1;
  assert.match(
    reasonOf(await verifyRequest(parts, options({ notBeforeSeconds: startedAt }))),
    /^Signature created before this service started/,
  );
  assert.equal(
    reasonOf(await verifyRequest(parts, options({ notBeforeSeconds: NOW / 1000 }))),
    "ok",
  );
});

Deno.test("verifyRequest() refuses a body whose Content-Type was dropped or changed on the way", async () => {
  const { parts } = await signed();
  const dropped = withHeader(parts.headers, "content-type", null);
  assert.match(
    reasonOf(await verifyRequest({ ...parts, headers: dropped }, options())),
    /^Covered components must be/,
  );
  const changed = withHeader(parts.headers, "content-type", "text/plain");
  assert.equal(
    reasonOf(await verifyRequest({ ...parts, headers: changed }, options())),
    "Signature does not verify",
  );
});

Deno.test("verifyRequestHead() checks the signature without the body and records the nonce in its own cache", async () => {
  const { parts } = await signed();
  const relayCache = new ReplayCache();
  const head = { method: parts.method, url: parts.url, headers: parts.headers };
  assert.equal(reasonOf(await verifyRequestHead(head, options({ replayCache: relayCache }))), "ok");
  assert.equal(
    reasonOf(await verifyRequestHead(head, options({ replayCache: relayCache }))),
    "Nonce already used (replay)",
  );
  // The target's own cache has not seen it: the request still works once there.
  assert.equal(reasonOf(await verifyRequest(parts, options())), "ok");
  const forged = withHeader(parts.headers, "fabric-target", "svc-b");
  assert.equal(
    reasonOf(
      await verifyRequestHead(
        { ...head, headers: forged },
        options({ serviceId: "svc-b", replayCache: relayCache }),
      ),
    ),
    "Signature does not verify",
  );
});

Deno.test("verifyRequest() reads a body only once the signature verified, and a wrong body burns no nonce", async () => {
  const { parts } = await signed();
  let reads = 0;
  const reader = (bytes: Uint8Array) => () => {
    reads++;
    return Promise.resolve(bytes);
  };
  // Signed by someone without the key: refused before the body is read.
  const forged = await signRequest(
    {
      method: "post",
      url: URL_,
      body: parts.body,
      headers: new Headers({ "content-type": "application/json" }),
    },
    otherKeys,
    { target: "svc-a", now: NOW },
  );
  const unsigned = await verifyRequest(
    { ...parts, headers: forged.headers, body: reader(parts.body) },
    options(),
  );
  assert.notEqual(reasonOf(unsigned), "ok");
  assert.equal(reads, 0, "the body of a request nobody signed is never read");
  // Signed, with another body: refused for the body, and the nonce is still good.
  const cache = new ReplayCache();
  const tampered = await verifyRequest(
    { ...parts, body: reader(text('{"role":"queue"}')) },
    options({ replayCache: cache }),
  );
  assert.equal(reasonOf(tampered), "Content-Digest does not match the body");
  assert.equal(reads, 1);
  const good = await verifyRequest(
    { ...parts, body: reader(parts.body) },
    options({ replayCache: cache }),
  );
  assert.equal(reasonOf(good), "ok");
});
