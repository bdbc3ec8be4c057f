import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  contentDigest,
  digestField,
  digestMatches,
  verifyContentDigest,
} from "../../src/crypto/content_digest.ts";

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

Deno.test("digestField() of a string equals the field of its UTF-8 bytes, small or large", async () => {
  const texts = ["", "a", '{"ok":true}', "é€😀", "x".repeat(511), "x".repeat(512), "y".repeat(513)];
  texts.push(`${"z".repeat(300)}é`, "w".repeat(5000), "v".repeat(16_384), "v".repeat(16_385));
  texts.push(`${"u".repeat(16_383)}é`, "t".repeat(100_000));
  for (const value of texts) {
    const expected = await contentDigest(text(value));
    assert.equal(await digestField(value), expected, JSON.stringify(value.slice(0, 20)));
    assert.equal(await digestField(text(value)), expected);
    assert.equal(await digestMatches(expected, text(value)), true);
    // The same digest spelt another way (another member first) is parsed and checked too.
    assert.equal(await digestMatches(`sha-512=:AAAA:, ${expected}`, text(value)), true);
    assert.equal(await digestMatches(`sha-512=:AAAA:, ${expected}`, text(`${value}.`)), false);
  }
  // The JavaScript and Web Crypto paths meet at 16 KiB: both give RFC 9530's answer.
  for (const size of [1200, 16_384, 16_385, 70_000]) {
    const big = new Uint8Array(size).map((_, i) => i * 7);
    assert.equal(
      await digestField(big),
      `sha-256=:${createHash("sha256").update(big).digest("base64")}:`,
      String(size),
    );
  }
});
