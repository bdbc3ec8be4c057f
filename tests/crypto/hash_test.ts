import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { contentDigest, StreamedDigest } from "../../src/crypto/content_digest.ts";
import { sameSecret, sha256FileHex, sha256Hex } from "../../src/crypto/hash.ts";

function bytes(size: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(size).map((_, i) => (i * 31 + 7) & 0xff);
}

Deno.test("sha256Hex() gives node:crypto's SHA-256 for texts and bytes of every tail length", () => {
  for (const size of [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000]) {
    const data = bytes(size);
    assert.equal(sha256Hex(data), createHash("sha256").update(data).digest("hex"), String(size));
  }
  assert.equal(sha256Hex("é€"), createHash("sha256").update("é€", "utf8").digest("hex"));
});

Deno.test("sha256FileHex() hashes a file as node:crypto does", async () => {
  const path = await Deno.makeTempFile();
  try {
    const data = bytes(300_000);
    await Deno.writeFile(path, data);
    assert.equal(await sha256FileHex(path), createHash("sha256").update(data).digest("hex"));
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("sameSecret() is true only for equal, non-empty texts", () => {
  assert.equal(sameSecret("token-a", "token-a"), true);
  assert.equal(sameSecret("token-a", "token-b"), false);
  assert.equal(sameSecret("token", "token-a"), false);
  assert.equal(sameSecret("", ""), false);
});

Deno.test("StreamedDigest matches a body cut into any pieces, and nothing else", async () => {
  const body = bytes(10_000);
  const field = await contentDigest(body);
  for (const piece of [1, 7, 63, 64, 65, 1000, 4096, 10_000]) {
    const digest = new StreamedDigest(field);
    for (let at = 0; at < body.length; at += piece) digest.update(body.subarray(at, at + piece));
    assert.equal(digest.matches(), true, `pieces of ${piece}`);
  }
  const short = new StreamedDigest(field);
  short.update(body.subarray(0, 9999));
  assert.equal(short.matches(), false, "a body cut short");
  const changed = body.slice();
  changed[5000]! ^= 1;
  const altered = new StreamedDigest(field);
  altered.update(changed);
  assert.equal(altered.matches(), false, "an altered body");
  for (const bad of [null, "", "sha-256=:AAAA:", "not a dictionary ("]) {
    const digest = new StreamedDigest(bad);
    digest.update(body);
    assert.equal(digest.matches(), false, String(bad));
  }
});
