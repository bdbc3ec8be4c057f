import assert from "node:assert/strict";
import { derivePasswordKey } from "../../src/crypto/one_time_password.ts";
import {
  generateEphemeralKey,
  openBundle,
  sealBundle,
  type SealedBundle,
  SealError,
} from "../../src/crypto/seal.ts";

const info = "fabricd-bundle-v1\nsvc-1";
const passwordKey = derivePasswordKey("correct horse");
const plaintext = new TextEncoder().encode('{"fabric":"keys"}');

async function sealed(): Promise<{ bundle: SealedBundle; privateKey: CryptoKey }> {
  const ephemeral = await generateEphemeralKey();
  const bundle = await sealBundle(plaintext, {
    peerPublicKey: ephemeral.publicKey,
    passwordKey,
    info,
  });
  return { bundle, privateKey: ephemeral.privateKey };
}

function flipFirstChar(text: string): string {
  return (text[0] === "A" ? "B" : "A") + text.slice(1);
}

Deno.test("generateEphemeralKey() gives a fresh 32-byte X25519 public key in base64url", async () => {
  const first = await generateEphemeralKey();
  const second = await generateEphemeralKey();
  assert.match(first.publicKey, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(first.publicKey, second.publicKey);
  assert.equal(first.privateKey.extractable, false);
});

Deno.test("openBundle() returns the plaintext when key, password key and info match", async () => {
  const { bundle, privateKey } = await sealed();
  assert.match(bundle.iv, /^[A-Za-z0-9_-]{16}$/);
  assert.deepEqual(await openBundle(bundle, { privateKey, passwordKey, info }), plaintext);
  const other = await sealBundle(plaintext, {
    peerPublicKey: (await generateEphemeralKey()).publicKey,
    passwordKey,
    info,
  });
  assert.notEqual(other.publicKey, bundle.publicKey);
});

Deno.test("openBundle() throws SealError when the password key is wrong", async () => {
  const { bundle, privateKey } = await sealed();
  await assert.rejects(
    openBundle(bundle, { privateKey, passwordKey: derivePasswordKey("wrong"), info }),
    (error: unknown) => {
      assert.ok(error instanceof SealError);
      assert.equal(error.name, "SealError");
      assert.match(error.message, /^Cannot open the key bundle: /);
      return true;
    },
  );
});

Deno.test("openBundle() throws SealError when the private key is another one", async () => {
  const { bundle } = await sealed();
  const { privateKey } = await generateEphemeralKey();
  await assert.rejects(openBundle(bundle, { privateKey, passwordKey, info }), SealError);
});

Deno.test("openBundle() throws SealError when the ciphertext, iv or public key is tampered with", async () => {
  const { bundle, privateKey } = await sealed();
  for (
    const tampered of [
      { ...bundle, ciphertext: flipFirstChar(bundle.ciphertext) },
      { ...bundle, iv: flipFirstChar(bundle.iv) },
      { ...bundle, publicKey: flipFirstChar(bundle.publicKey) },
      { ...bundle, ciphertext: bundle.ciphertext.slice(0, -4) },
    ]
  ) {
    await assert.rejects(openBundle(tampered, { privateKey, passwordKey, info }), SealError);
  }
});

Deno.test("openBundle() throws SealError when the info names another service", async () => {
  const { bundle, privateKey } = await sealed();
  await assert.rejects(
    openBundle(bundle, { privateKey, passwordKey, info: "fabricd-bundle-v1\nsvc-2" }),
    SealError,
  );
});

Deno.test("openBundle() throws SealError and no DOMException when fields are not base64url", async () => {
  const { bundle, privateKey } = await sealed();
  for (
    const broken of [
      { ...bundle, ciphertext: "not base64url!" },
      { ...bundle, iv: `${bundle.iv}==` },
      { ...bundle, publicKey: "" },
      { ...bundle, ciphertext: "AAAA" },
      null as unknown as SealedBundle,
    ]
  ) {
    await assert.rejects(openBundle(broken, { privateKey, passwordKey, info }), SealError);
  }
  await assert.rejects(
    openBundle(bundle, { privateKey, passwordKey: new Uint8Array(3), info }),
    SealError,
  );
});

Deno.test("sealBundle() throws TypeError when the peer public key is malformed or weak", async () => {
  for (const peerPublicKey of ["", "not base64url!", "AAAA", "A".repeat(43)]) {
    await assert.rejects(sealBundle(plaintext, { peerPublicKey, passwordKey, info }), TypeError);
  }
  const { publicKey } = await generateEphemeralKey();
  await assert.rejects(
    sealBundle(plaintext, { peerPublicKey: publicKey, passwordKey: new Uint8Array(31), info }),
    TypeError,
  );
});
