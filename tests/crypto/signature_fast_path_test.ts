import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash, createHmac } from "node:crypto";
import fc from "fast-check";
import { serializeInnerList } from "structured-headers";
import {
  freshNonce,
  fromBase64,
  sameText,
  toBase64,
  toBase64Url,
  utf8Scratch,
} from "../../src/crypto/_bytes.ts";
import { hmacSha256Base64, hmacSha256Matches } from "../../src/crypto/_hmac.ts";
import { absorb, finishFrom, sha256 } from "../../src/crypto/_sha256.ts";
import {
  ANSWER,
  contentTypeOf,
  type Profile,
  REQUEST,
  REQUEST_TYPED,
} from "../../src/crypto/_signature.ts";
import {
  parseGeneral,
  parseSignature,
  serializeParams,
} from "../../src/crypto/_signature_fields.ts";
import { generateFabricKeys } from "../../src/crypto/keys.ts";
import { signRequest } from "../../src/crypto/signing.ts";

const RUNS = { numRuns: 300 };
const PROFILES: readonly Profile[] = [REQUEST, REQUEST_TYPED, ANSWER];
const BASE64URL = /^[A-Za-z0-9_-]{16,40}$/;

const paramsArbitrary = fc.record({
  profile: fc.constantFrom(...PROFILES),
  created: fc.integer({ min: -1e15 + 1, max: 1e15 - 101 }),
  lifetime: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
  nonce: fc.stringMatching(BASE64URL),
  keyid: fc.oneof(fc.stringMatching(/^mac:[A-Za-z0-9_-]{22}$/), fc.string({ maxLength: 30 })),
  alg: fc.constantFrom("ed25519", "hmac-sha256", 'we"ird', "back\\slash"),
});

type Params = typeof paramsArbitrary extends fc.Arbitrary<infer T> ? T : never;

/** The fields fabricd writes for these parameters, and a signature of `size` bytes. */
function fields(
  params: Params,
  signature: Uint8Array,
): Headers {
  const { profile, created, lifetime, nonce, keyid, alg } = params;
  const paramsValue = serializeParams(profile, {
    created,
    ...(lifetime === undefined ? {} : { expires: created + lifetime }),
    nonce,
    keyid,
    alg,
  });
  return new Headers({
    "signature-input": `sig1=${paramsValue}`,
    signature: `sig1=:${toBase64(signature)}:`,
  });
}

function generalOf(headers: Headers, profile: Profile): ReturnType<typeof parseGeneral> {
  return parseGeneral(headers.get("signature-input")!, headers.get("signature")!, profile);
}

Deno.test("serializeParams() writes what the general RFC 8941 serializer writes", () => {
  fc.assert(
    fc.property(paramsArbitrary, (params) => {
      const { profile, created, lifetime, nonce, keyid, alg } = params;
      const expected = new Map<string, string | number>([["created", created]]);
      if (lifetime !== undefined) expected.set("expires", created + lifetime);
      expected.set("nonce", nonce).set("keyid", keyid).set("alg", alg).set("tag", profile.tag);
      const general = (() => {
        try {
          return serializeInnerList([
            profile.components.map((name) => [name, new Map()]),
            expected,
          ]);
        } catch (error) {
          return error instanceof Error ? error.message : String(error);
        }
      })();
      const mine = (() => {
        try {
          return serializeParams(profile, {
            created,
            ...(lifetime === undefined ? {} : { expires: created + lifetime }),
            nonce,
            keyid,
            alg,
          });
        } catch (error) {
          return error instanceof Error ? error.message : String(error);
        }
      })();
      assert.equal(mine, general);
    }),
    RUNS,
  );
});

Deno.test("parseSignature() agrees with the general parser when the fields are fabricd's own", () => {
  fc.assert(
    fc.property(
      paramsArbitrary,
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.boolean(),
      (params, bytes, long) => {
        const signature = long ? Uint8Array.from([...bytes, ...bytes]) : bytes;
        const headers = fields(params, signature);
        const parsed = parseSignature(headers, params.profile);
        assert.deepEqual(parsed, generalOf(headers, params.profile));
        assert.ok(!("ok" in parsed), "fabricd's own fields parse");
        assert.deepEqual(parsed.signature, signature);
      },
    ),
    RUNS,
  );
});

Deno.test("parseSignature() agrees with the general parser when a field is altered", () => {
  const alphabet = fc.constantFrom(
    ..." !\"#$%&'()*+,-./0123456789:;<=>?@AZaz[\\]^_`{|}~\u00e9".split(""),
  );
  fc.assert(
    fc.property(
      paramsArbitrary,
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.constantFrom("signature-input", "signature"),
      fc.nat(),
      fc.constantFrom("replace", "insert", "delete"),
      alphabet,
      (params, bytes, name, index, edit, char) => {
        const headers = fields(params, bytes);
        const value = headers.get(name)!;
        const at = index % value.length;
        const altered = edit === "delete"
          ? value.slice(0, at) + value.slice(at + 1)
          : value.slice(0, at) + char + value.slice(edit === "insert" ? at : at + 1);
        headers.set(name, altered);
        assert.deepEqual(
          parseSignature(headers, params.profile),
          generalOf(headers, params.profile),
        );
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("parseSignature() refuses a byte sequence with stray bits as the general parser does", () => {
  const headers = new Headers({
    "signature-input":
      'sig1=("@status" "content-digest");created=1;nonce="AAAAAAAAAAAAAAAAAAAAAA";keyid="mac:AAAAAAAAAAAAAAAAAAAAAA";alg="hmac-sha256";tag="fabricd-answer"',
    // 32 bytes whose last character carries a non-zero unused bit.
    signature: `sig1=:${"A".repeat(42)}B=:`,
  });
  const parsed = parseSignature(headers, ANSWER);
  assert.deepEqual(parsed, {
    ok: false,
    reason: "Malformed Signature header: it must be a canonical RFC 9421 field",
  });
});

Deno.test("hmacSha256Base64() equals node:crypto's HMAC-SHA256 for any key and text", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 130 }), fc.string({ maxLength: 300 }), (key, text) => {
      const expected = createHmac("sha256", key).update(text).digest("base64");
      assert.equal(hmacSha256Base64(key, { message: text }), expected);
      // The second MAC with the same key object comes from the kept states.
      assert.equal(hmacSha256Base64(key, { message: text, stable: text.length }), expected);
    }),
    RUNS,
  );
});

Deno.test("hmacSha256Base64() equals node:crypto's HMAC-SHA256 when messages share kept beginnings", () => {
  const beginnings = ["", "a".repeat(64), `${"b".repeat(130)}é`, "c".repeat(200), "d".repeat(63)];
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 70 }),
      fc.array(
        fc.record({
          beginning: fc.constantFrom(...beginnings),
          rest: fc.string({ maxLength: 150 }),
          stable: fc.integer({ min: -1, max: 500 }),
        }),
        { maxLength: 12 },
      ),
      (key, messages) => {
        // More beginnings than a key keeps: some come back after being dropped.
        for (const { beginning, rest, stable } of messages) {
          const message = beginning + rest;
          const expected = createHmac("sha256", key).update(message).digest("base64");
          assert.equal(hmacSha256Base64(key, { message, stable }), expected);
          const mac = Buffer.from(expected, "base64");
          assert.equal(hmacSha256Matches(key, { message, stable, mac }), true);
          mac[31]! ^= 1;
          assert.equal(hmacSha256Matches(key, { message, stable, mac }), false);
        }
      },
    ),
    RUNS,
  );
});

Deno.test("sha256() and toBase64() equal node:crypto's digest and Buffer's base64", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const expected = createHash("sha256").update(bytes).digest("base64");
      assert.equal(toBase64(sha256(bytes)), expected);
      assert.equal(toBase64(bytes), Buffer.from(bytes).toString("base64"));
    }),
    RUNS,
  );
});

Deno.test("absorb() refuses a part block, and finishFrom() goes on where it stopped", () => {
  assert.throws(() => absorb(new Uint8Array(65)), RangeError);
  const bytes = Uint8Array.from({ length: 200 }, (_, i) => i);
  const out = new Uint8Array(32);
  finishFrom(absorb(bytes.subarray(0, 128)), bytes.subarray(128), out);
  assert.equal(toBase64(out), createHash("sha256").update(bytes).digest("base64"));
});

Deno.test("utf8Scratch() spells any text as TextEncoder does", () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: "binary", maxLength: 300 })),
      (text) => {
        assert.deepEqual([...utf8Scratch(text)], [...new TextEncoder().encode(text)]);
      },
    ),
    RUNS,
  );
  assert.equal(utf8Scratch("x".repeat(5000)).length, 5000);
});

Deno.test("hmacSha256Base64() gives the RFC 4231 test case 2 MAC", () => {
  const key = new TextEncoder().encode("Jefe");
  assert.equal(
    Buffer.from(hmacSha256Base64(key, { message: "what do ya want for nothing?" }), "base64")
      .toString("hex"),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  );
});

Deno.test("fromBase64() decodes every padded encoding and refuses all other spellings", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
      assert.deepEqual(fromBase64(toBase64(bytes)), bytes);
    }),
    RUNS,
  );
  for (const text of ["A", "AB", "ABC", "A===", "AB=A", "AAB=", "AB==", "AAAA=", "A-_A", "ab c"]) {
    assert.equal(fromBase64(text), undefined, text);
  }
  assert.deepEqual(fromBase64("AQ=="), Uint8Array.of(1));
});

Deno.test("sameText() is true only for equal strings", () => {
  assert.equal(sameText("abc", "abc"), true);
  assert.equal(sameText("abc", "abd"), false);
  assert.equal(sameText("abc", "ab"), false);
  assert.equal(sameText("", ""), true);
});

Deno.test("signRequest() lists as fields exactly the headers it added", async () => {
  const keys = await generateFabricKeys();
  const input: [string, string][] = [["accept", "application/json"], [
    "content-type",
    "text/plain",
  ]];
  const signed = await signRequest(
    { method: "POST", url: "http://127.0.0.1:1/v1/x", headers: input, body: Uint8Array.of(1) },
    keys,
    { target: "svc-1" },
  );
  assert.deepEqual(
    signed.fields.map(([name]) => name),
    ["content-digest", "fabric-target", "signature-input", "signature"],
  );
  assert.deepEqual([...new Headers([...input, ...signed.fields])], [...signed.headers]);
});

Deno.test("contentTypeOf() reads pairs as new Headers(pairs).get() does, or throws as it does", () => {
  const names = fc.constantFrom(
    "content-type",
    "Content-Type",
    "CONTENT-TYPE",
    "accept",
    "x y",
    "",
  );
  const values = fc.oneof(
    fc.constantFrom("application/json", " text/plain ", "\ta\t", "", "é", "a\nb", "a\0b"),
    fc.string({ maxLength: 20 }),
  );
  const headersOf = (init: HeadersInit | undefined): string | null | TypeError => {
    try {
      return new Headers(init).get("content-type")?.trim() ?? null;
    } catch (error) {
      return error as TypeError;
    }
  };
  const mine = (init: HeadersInit | undefined): string | null | TypeError => {
    try {
      return contentTypeOf(init);
    } catch (error) {
      return error as TypeError;
    }
  };
  fc.assert(
    fc.property(fc.array(fc.tuple(names, values), { maxLength: 5 }), (pairs) => {
      const expected = headersOf(pairs);
      const actual = mine(pairs);
      if (expected instanceof TypeError) assert.ok(actual instanceof TypeError, String(actual));
      else assert.equal(actual, expected);
      assert.deepEqual(mine(Object.fromEntries(pairs)), headersOf(Object.fromEntries(pairs)));
    }),
    RUNS,
  );
  assert.equal(contentTypeOf(undefined), null);
  assert.equal(contentTypeOf(new Headers({ "content-type": " a/b " })), "a/b");
});

Deno.test("freshNonce() gives 16 random bytes in canonical base64url, never twice", () => {
  const seen = new Set<string>();
  // More than one pool of random bytes (256 nonces), so that a refill is crossed.
  for (let i = 0; i < 1000; i++) {
    const nonce = freshNonce();
    assert.match(nonce, /^[A-Za-z0-9_-]{22}$/);
    const bytes = Buffer.from(nonce, "base64url");
    assert.equal(bytes.length, 16);
    assert.equal(toBase64Url(bytes), nonce, "one spelling per value");
    assert.ok(!seen.has(nonce), "a nonce repeated");
    seen.add(nonce);
  }
  // Not all zero: the pool is drawn before it is used.
  assert.ok([...seen].some((n) => n !== "AAAAAAAAAAAAAAAAAAAAAA"));
});
