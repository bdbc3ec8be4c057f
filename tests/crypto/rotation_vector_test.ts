/**
 * The rotation statement vector of docs/protocol.md 2.14, computed
 * independently (Python `cryptography`) and checked against the project's
 * own `issueRotation` and `verifyRotation`. Example keys only.
 */
import assert from "node:assert/strict";
import { importFabricKeys } from "../../src/crypto/keys.ts";
import { issueRotation, verifyRotation } from "../../src/crypto/rotation.ts";

const OLD_JWK = {
  kty: "OKP",
  crv: "Ed25519",
  d: "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
  x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
};
const NEW_JWK = {
  kty: "OKP",
  crv: "Ed25519",
  d: "TM0Imyj_ltqdtsNG7BFOD1uKMZ81q6Yk2oz27U-4pvs",
  x: "PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw",
};
const STATEMENT =
  "fr1.eyJvbGQiOiIxMXFZQVlLeENyZlZTXzdUeVdRSE9nN2hjdlBhcGlNbHJ3SWFhUGNIVVJvIiwibmV3IjoiUFVBWHctaERpVnFTdHdxblRSdC12SnlZTE04dXhKYU13TTFWOFNyMFpndyIsImlhdCI6MTc2NzIyNTYwMCwidW50aWwiOjE3NjcyMjkyMDB9.bktINPdwuBPToX0iPwvLhAwahgudj8yu7h3DAfJM6BKEFCFZPgFc2QF1XCIOkovpg4EKBtha1XzNv8xcbfpVAQ.kGQo9C_F9djKgJxZe9Nk8w61y3YUlDi2WTSd77jq00EZrNfUU32F4s91dHzakISjww54hgBMPtQ5ati_iCJqDQ";

Deno.test("issueRotation() writes the statement of docs/protocol.md 2.14 byte for byte", async () => {
  const old = await importFabricKeys(OLD_JWK);
  const next = await importFabricKeys(NEW_JWK);
  const made = await issueRotation(old, next, { graceSeconds: 3600, now: 1767225600_000 });
  assert.equal(made, STATEMENT);
});

Deno.test("verifyRotation() accepts the vector and refuses it with one byte changed", async () => {
  const rotation = await verifyRotation(STATEMENT);
  assert.ok(typeof rotation !== "string", String(rotation));
  assert.equal(rotation.iat, 1767225600);
  assert.equal(rotation.until, 1767229200);
  assert.equal(
    rotation.old.fingerprint,
    "sha256:21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9",
  );
  assert.equal(
    rotation.new.fingerprint,
    "sha256:39f713d0a644253f04529421b9f51b9b08979d08295959c4f3990ee617f5139f",
  );
  const last = STATEMENT.at(-2) === "A" ? "B" : "A";
  const tampered = STATEMENT.slice(0, -2) + last + STATEMENT.slice(-1);
  assert.equal(
    await verifyRotation(tampered),
    "the rotation statement is not signed by its new key",
  );
});

Deno.test("verifyRotation() names the length limit for a statement over 1024 characters", async () => {
  assert.equal(
    await verifyRotation(`fr1.${"a".repeat(1100)}`),
    "a rotation statement is at most 1024 characters",
  );
  assert.equal(await verifyRotation("xx1.abc"), 'a rotation statement starts with "fr1."');
});
