import assert from "node:assert/strict";
import { contentDigest, verifyContentDigest } from "../../src/crypto/content_digest.ts";

const text = (value: string): Uint8Array => new TextEncoder().encode(value);

Deno.test("contentDigest() gives the RFC 9530 sha-256 field for known bodies", async () => {
  assert.equal(
    await contentDigest(text("hello world")),
    "sha-256=:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=:",
  );
  // RFC 9530 section 2, the example body {"hello": "world"}.
  assert.equal(
    await contentDigest(text('{"hello": "world"}')),
    "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
  );
  assert.equal(
    await contentDigest(new Uint8Array()),
    "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
  );
});

Deno.test("verifyContentDigest() accepts the matching digest when other algorithms are present too", async () => {
  const body = text("hello world");
  assert.equal(await verifyContentDigest(await contentDigest(body), body), true);
  assert.equal(
    await verifyContentDigest(
      "sha-512=:AAAA:, sha-256=:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=:",
      body,
    ),
    true,
  );
});

Deno.test("verifyContentDigest() returns false when the digest does not match the body", async () => {
  assert.equal(
    await verifyContentDigest(await contentDigest(text("hello world")), text("hello World")),
    false,
  );
  assert.equal(await verifyContentDigest(await contentDigest(new Uint8Array()), text("x")), false);
});

Deno.test("verifyContentDigest() returns false when the header is missing, garbage or lacks sha-256", async () => {
  const body = text("hello world");
  for (
    const header of [
      null,
      "",
      "garbage",
      "sha-256=:not base64!:",
      "sha-256=uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=",
      'sha-256="uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="',
      "sha-512=:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=:",
      "sha-256=:uU0n:",
      "sha-256=(:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=:)",
      "\u00ff\u00fe",
    ]
  ) {
    assert.equal(await verifyContentDigest(header, body), false, String(header));
  }
});
