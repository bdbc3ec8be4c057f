import assert from "node:assert/strict";
import fc from "fast-check";
import { parseDictionary, serializeDictionary } from "structured-headers";
import { generateFabricKeys } from "../../src/crypto/keys.ts";
import { ReplayCache } from "../../src/crypto/replay_cache.ts";
import {
  type RequestParts,
  signRequest,
  signResponse,
  verifyRequest,
  type VerifyRequestOptions,
  verifyResponse,
} from "../../src/crypto/signing.ts";

const NOW = 1_700_000_000_000;
const RUNS = { numRuns: 200 };
const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"] as const;
const keys = await generateFabricKeys();

const requestArbitrary = fc.record({
  methodIndex: fc.nat({ max: METHODS.length - 1 }),
  path: fc.array(fc.stringMatching(/^[A-Za-z0-9._~-]{1,12}$/), { maxLength: 5 })
    .map((segments) => `/${segments.join("/")}`),
  query: fc.stringMatching(/^[A-Za-z0-9=&._~-]{0,24}$/),
  body: fc.uint8Array({ maxLength: 512 }),
  target: fc.stringMatching(/^[a-z0-9-]{1,24}$/),
});

type Mutation =
  | { kind: "body"; index: number; xor: number }
  | { kind: "method"; step: number }
  | { kind: "path"; extra: string }
  | { kind: "query"; extra: string }
  | { kind: "target"; extra: string; alsoServiceId: boolean }
  | { kind: "signature" | "signature-input"; index: number; step: number }
  | { kind: "created" | "expires"; delta: number }
  | { kind: "content-type"; value: string | null };

const mutationArbitrary: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant("body" as const),
    index: fc.nat(),
    xor: fc.integer({ min: 1, max: 255 }),
  }),
  fc.record({
    kind: fc.constant("method" as const),
    step: fc.integer({ min: 1, max: METHODS.length - 1 }),
  }),
  fc.record({ kind: fc.constant("path" as const), extra: fc.stringMatching(/^[a-z0-9/]{1,4}$/) }),
  fc.record({ kind: fc.constant("query" as const), extra: fc.stringMatching(/^[a-z0-9=&]{1,4}$/) }),
  fc.record({
    kind: fc.constant("target" as const),
    extra: fc.stringMatching(/^[a-z0-9-]{1,4}$/),
    alsoServiceId: fc.boolean(),
  }),
  fc.record({
    kind: fc.constantFrom("signature" as const, "signature-input" as const),
    index: fc.nat(),
    step: fc.integer({ min: 1, max: 94 }),
  }),
  fc.record({
    kind: fc.constantFrom("created" as const, "expires" as const),
    delta: fc.integer({ min: -1_000, max: 1_000 }).filter((delta) => delta !== 0),
  }),
  fc.record({
    kind: fc.constant("content-type" as const),
    value: fc.constantFrom(null, "text/plain", "application/x-www-form-urlencoded"),
  }),
);

/** Replaces one printable ASCII character by another. */
function mutateChar(text: string, index: number, step: number): string {
  const at = index % text.length;
  const code = 0x20 + ((text.charCodeAt(at) - 0x20 + step) % 95);
  return text.slice(0, at) + String.fromCharCode(code) + text.slice(at + 1);
}

function shiftParam(input: string, name: string, delta: number): string {
  const dictionary = parseDictionary(input);
  const member = dictionary.get("sig1");
  assert.ok(member !== undefined);
  const value = member[1].get(name);
  assert.equal(typeof value, "number");
  member[1].set(name, (value as number) + delta);
  return serializeDictionary(dictionary);
}

function mutate(
  parts: RequestParts,
  options: VerifyRequestOptions,
  mutation: Mutation,
): { parts: RequestParts; options: VerifyRequestOptions } {
  const headers = new Headers(parts.headers);
  const url = new URL(parts.url);
  switch (mutation.kind) {
    case "body": {
      if (parts.body.length === 0) {
        return { parts: { ...parts, body: Uint8Array.of(mutation.xor) }, options };
      }
      const body = parts.body.slice();
      const index = mutation.index % body.length;
      body[index] = (body[index] ?? 0) ^ mutation.xor;
      return { parts: { ...parts, body }, options };
    }
    case "method": {
      const index = METHODS.indexOf(parts.method as typeof METHODS[number]);
      const method = METHODS[(index + mutation.step) % METHODS.length] ?? "GET";
      return { parts: { ...parts, method }, options };
    }
    case "path": {
      const before = url.pathname;
      url.pathname = `${url.pathname}${mutation.extra}`;
      assert.notEqual(url.pathname, before);
      return { parts: { ...parts, url: url.href }, options };
    }
    case "query":
      url.search = `?${url.search.slice(1)}${mutation.extra}`;
      return { parts: { ...parts, url: url.href }, options };
    case "target": {
      const target = `${headers.get("fabric-target")}${mutation.extra}`;
      headers.set("fabric-target", target);
      return {
        parts: { ...parts, headers },
        options: mutation.alsoServiceId ? { ...options, serviceId: target } : options,
      };
    }
    case "signature":
    case "signature-input": {
      const value = headers.get(mutation.kind) ?? "";
      headers.set(mutation.kind, mutateChar(value, mutation.index, mutation.step));
      return { parts: { ...parts, headers }, options };
    }
    case "content-type":
      if (mutation.value === null && !headers.has("content-type")) {
        headers.set("content-type", "application/json");
      } else if (mutation.value === null) headers.delete("content-type");
      else headers.set("content-type", mutation.value);
      return { parts: { ...parts, headers }, options };
    case "created":
    case "expires": {
      const value = headers.get("signature-input") ?? "";
      headers.set("signature-input", shiftParam(value, mutation.kind, mutation.delta));
      return { parts: { ...parts, headers }, options };
    }
  }
}

Deno.test("verifyRequest() never accepts a request when any single signed part is mutated", async () => {
  await fc.assert(
    fc.asyncProperty(requestArbitrary, mutationArbitrary, async (request, mutation) => {
      const method = METHODS[request.methodIndex] ?? "GET";
      const url = `http://127.0.0.1:7700${request.path}${request.query ? `?${request.query}` : ""}`;
      const typed = new Headers(
        request.body.length > 0 ? { "content-type": "application/json" } : {},
      );
      const { headers } = await signRequest(
        { method, url, body: request.body, headers: typed },
        keys,
        {
          target: request.target,
          now: NOW,
        },
      );
      const parts = { method, url, headers, body: request.body };
      const options: VerifyRequestOptions = {
        publicKey: keys.publicKey,
        fingerprint: keys.fingerprint,
        serviceId: request.target,
        replayCache: new ReplayCache(),
        now: NOW + 1_000,
      };
      const mutated = mutate(parts, options, mutation);
      const result = await verifyRequest(mutated.parts, mutated.options);
      assert.equal(result.ok, false, JSON.stringify(mutation));
      assert.equal((await verifyRequest(parts, options)).ok, true);
    }),
    RUNS,
  );
});

const latin1 = fc.integer({ min: 0x20, max: 0xff }).map((code) => String.fromCharCode(code));
const fragments = fc.constantFrom(
  "sig1=",
  "sig2=",
  "(",
  ")",
  '"@method"',
  '"@path"',
  '"@query"',
  '"content-digest"',
  '"fabric-target"',
  " ",
  "\t",
  ";",
  ",",
  "=",
  ":",
  '"',
  "\\",
  "created=",
  "expires=",
  "1700000000",
  "-1",
  "9999999999999999",
  "1.5",
  'nonce="abcdefghijklmnopqrstuv"',
  `keyid="${keys.fingerprint}"`,
  'alg="ed25519"',
  'tag="fabricd"',
  "?1",
  "@1700000000",
  '%"caf%c3%a9"',
  "*token",
  "AAAA",
  "A".repeat(86) + "==",
  "\u00e9",
);
/** Well-formed fields with wrong contents, which get past the parser to the profile checks. */
const structuredInput = fc.record({
  components: fc.array(
    fc.constantFrom(
      '"@method"',
      '"@path"',
      '"@query"',
      '"content-digest"',
      '"fabric-target"',
      '"@status"',
      '"@authority"',
      '"@method";sf',
    ),
    { maxLength: 6 },
  ),
  params: fc.array(
    fc.constantFrom(
      ";created=1700000000",
      ";created=1800000000",
      ";created=1.5",
      ";expires=1700000030",
      ";expires=1699999990",
      ';nonce="abcdefghijklmnopqrstuv"',
      ';nonce="x"',
      `;keyid="${keys.fingerprint}"`,
      ';keyid="sha256:00"',
      ';alg="ed25519"',
      ";alg=ed25519",
      ';tag="fabricd"',
      ';tag="fabricd-answer"',
      ";extra",
    ),
    { maxLength: 10 },
  ),
}).map(({ components, params }) => `sig1=(${components.join(" ")})${params.join("")}`);
const structuredSignature = fc.uint8Array({ maxLength: 80 })
  .map((bytes) => `sig1=:${btoa(String.fromCharCode(...bytes))}:`);
const garbage = fc.oneof(
  fc.string({ unit: latin1, maxLength: 200 }),
  fc.array(fragments, { maxLength: 40 }).map((parts) => parts.join("")),
  structuredInput,
  structuredSignature,
);

Deno.test("verifyRequest() never throws or accepts when the signature fields are garbage", async () => {
  const body = new TextEncoder().encode("{}");
  const url = "http://127.0.0.1:7700/v1/status";
  const signed = await signRequest(
    {
      method: "GET",
      url,
      body,
      headers: new Headers({ "content-type": "application/json" }),
    },
    keys,
    { target: "svc", now: NOW },
  );
  await fc.assert(
    fc.asyncProperty(garbage, garbage, fc.nat({ max: 2 }), async (input, signature, variant) => {
      const headers = new Headers(signed.headers);
      if (variant !== 1) headers.set("signature-input", input);
      if (variant !== 2) headers.set("signature", signature);
      const result = await verifyRequest({ method: "GET", url, headers, body }, {
        publicKey: keys.publicKey,
        fingerprint: keys.fingerprint,
        serviceId: "svc",
        replayCache: new ReplayCache(),
        now: NOW,
      });
      assert.ok(!result.ok && result.reason.length > 0);
    }),
    RUNS,
  );
});

Deno.test("verifyResponse() never accepts an answer when its status, body or signature fields are mutated", async () => {
  const nonce = "n".repeat(22);
  const verified = {
    publicKey: keys.publicKey,
    fingerprint: keys.fingerprint,
    requestNonce: nonce,
  };
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 100, max: 599 }),
      fc.uint8Array({ maxLength: 256 }),
      fc.nat({ max: 3 }),
      fc.nat(),
      fc.integer({ min: 1, max: 94 }),
      async (status, body, what, index, step) => {
        const headers = await signResponse({ status, body }, keys, {
          requestNonce: nonce,
          now: NOW,
        });
        assert.equal((await verifyResponse({ status, headers, body }, verified)).ok, true);
        let parts = { status, headers: new Headers(headers), body };
        if (what === 0) parts = { ...parts, status: status === 599 ? 100 : status + 1 };
        if (what === 1) parts = { ...parts, body: Uint8Array.of(...body, step) };
        if (what >= 2) {
          const name = what === 2 ? "signature" : "signature-input";
          parts.headers.set(name, mutateChar(headers.get(name) ?? "", index, step));
        }
        assert.equal((await verifyResponse(parts, verified)).ok, false);
      },
    ),
    RUNS,
  );
});
