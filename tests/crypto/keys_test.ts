import assert from "node:assert/strict";
import {
  fingerprintOf,
  generateFabricKeys,
  importFabricKeys,
  KeyFileError,
  readKeyFile,
  readRotationFile,
  rotationPathOf,
  writeKeyFile,
} from "../../src/crypto/keys.ts";

const FINGERPRINT = /^sha256:[0-9a-f]{64}$/;

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fabricd_keys_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function rawPublicKey(key: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.exportKey("raw", key));
}

Deno.test("generateFabricKeys() makes an Ed25519 pair with a sha256 fingerprint and a clean JWK", async () => {
  const keys = await generateFabricKeys();
  assert.match(keys.fingerprint, FINGERPRINT);
  assert.deepEqual(Object.keys(keys.jwk).sort(), ["crv", "d", "kty", "x"]);
  assert.equal(keys.jwk.kty, "OKP");
  assert.equal(keys.jwk.crv, "Ed25519");
  assert.equal(keys.privateKey.extractable, false);
  const data = new TextEncoder().encode("probe");
  const signature = await crypto.subtle.sign("Ed25519", keys.privateKey, data);
  assert.equal(await crypto.subtle.verify("Ed25519", keys.publicKey, signature, data), true);
  const other = await generateFabricKeys();
  assert.notEqual(other.fingerprint, keys.fingerprint);
});

Deno.test("fingerprintOf() is stable and matches the known SHA-256 of 32 zero bytes", async () => {
  const keys = await generateFabricKeys();
  const raw = await rawPublicKey(keys.publicKey);
  assert.equal(await fingerprintOf(raw), keys.fingerprint);
  assert.equal(await fingerprintOf(raw), await fingerprintOf(raw.slice()));
  assert.equal(
    await fingerprintOf(new Uint8Array(32)),
    "sha256:66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925",
  );
  await assert.rejects(fingerprintOf(new Uint8Array(31)), TypeError);
});

Deno.test("importFabricKeys() gives the same keys and fingerprint when given the JWK again", async () => {
  const keys = await generateFabricKeys();
  const again = await importFabricKeys({ ...keys.jwk, key_ops: ["sign"], ext: true });
  assert.equal(again.fingerprint, keys.fingerprint);
  assert.deepEqual(again.jwk, keys.jwk);
});

Deno.test("importFabricKeys() throws TypeError when the JWK is not a consistent Ed25519 key", async () => {
  const keys = await generateFabricKeys();
  const other = await generateFabricKeys();
  await assert.rejects(importFabricKeys({ ...keys.jwk, x: other.jwk.x as string }), {
    name: "TypeError",
    message: /does not belong to its private part/,
  });
  await assert.rejects(importFabricKeys({ ...keys.jwk, crv: "X25519" }), {
    name: "TypeError",
    message: /Ed25519 JWK/,
  });
  await assert.rejects(importFabricKeys({ ...keys.jwk, d: "short" }), {
    name: "TypeError",
    message: /"d"/,
  });
  const { x: _x, ...noX } = keys.jwk;
  await assert.rejects(importFabricKeys(noX), { name: "TypeError", message: /"x"/ });
  await assert.rejects(importFabricKeys(null as unknown as JsonWebKey), TypeError);
});

Deno.test("writeKeyFile() and readKeyFile() round-trip the keys in a 0600 file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/fabric.key`;
    const keys = await generateFabricKeys();
    await writeKeyFile(path, keys);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const read = await readKeyFile(path);
    assert.equal(read.fingerprint, keys.fingerprint);
    assert.deepEqual(read.jwk, keys.jwk);
    const data = new TextEncoder().encode("probe");
    const signature = await crypto.subtle.sign("Ed25519", read.privateKey, data);
    assert.equal(await crypto.subtle.verify("Ed25519", keys.publicKey, signature, data), true);
  });
});

Deno.test("writeKeyFile() refuses to overwrite an existing file when force is not set", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/fabric.key`;
    const first = await generateFabricKeys();
    await writeKeyFile(path, first);
    const second = await generateFabricKeys();
    await assert.rejects(writeKeyFile(path, second), (error: unknown) => {
      assert.ok(error instanceof Deno.errors.AlreadyExists);
      assert.match(error.message, /--force/);
      assert.ok(error.message.includes(path));
      return true;
    });
    assert.equal((await readKeyFile(path)).fingerprint, first.fingerprint);
  });
});

Deno.test("writeKeyFile() replaces the file with mode 0600 when force is set", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/fabric.key`;
    await writeKeyFile(path, await generateFabricKeys());
    await Deno.chmod(path, 0o644);
    const second = await generateFabricKeys();
    await writeKeyFile(path, second, { force: true });
    assert.equal((await readKeyFile(path)).fingerprint, second.fingerprint);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(dir))).map((entry) => entry.name),
      ["fabric.key"],
    );
  });
});

Deno.test("readKeyFile() throws KeyFileError naming the path when the file is missing or malformed", async () => {
  await withTempDir(async (dir) => {
    const missing = `${dir}/missing.key`;
    await assert.rejects(readKeyFile(missing), (error: unknown) => {
      assert.ok(error instanceof KeyFileError);
      assert.equal(error.path, missing);
      assert.ok(error.message.includes(missing));
      assert.match(error.message, /fabricd init/);
      assert.ok(error.cause instanceof Deno.errors.NotFound);
      return true;
    });
    const notJson = `${dir}/not_json.key`;
    await Deno.writeTextFile(notJson, "{ this is not json");
    await assert.rejects(readKeyFile(notJson), (error: unknown) => {
      assert.ok(error instanceof KeyFileError);
      assert.equal(error.name, "KeyFileError");
      assert.equal(error.path, notJson);
      assert.ok(error.message.includes(notJson));
      return true;
    });
    const notKey = `${dir}/not_key.key`;
    await Deno.writeTextFile(notKey, JSON.stringify({ kty: "RSA", n: "x", e: "AQAB" }));
    await assert.rejects(readKeyFile(notKey), (error: unknown) => {
      assert.ok(error instanceof KeyFileError);
      assert.ok(error.message.includes(notKey));
      assert.ok(error.cause instanceof TypeError);
      return true;
    });
  });
});

Deno.test("readKeyFile() refuses a directory and a file over 64 KiB, and reads a key of 64 KiB", async () => {
  await withTempDir(async (dir) => {
    const refused = async (reading: Promise<unknown>, path: string, message: RegExp) => {
      await assert.rejects(reading, (error: unknown) => {
        assert.ok(error instanceof KeyFileError);
        assert.equal(error.path, path);
        assert.ok(!(error.cause instanceof Deno.errors.NotFound));
        assert.match(error.message, message);
        return true;
      });
    };
    const folder = `${dir}/folder.key`;
    await Deno.mkdir(folder);
    await refused(
      readKeyFile(folder),
      folder,
      /^Key file ".*folder\.key" is a directory: give the right key path$/,
    );
    const keys = await generateFabricKeys();
    const full = `${dir}/full.key`;
    await writeKeyFile(full, keys);
    const text = await Deno.readTextFile(full);
    await Deno.writeTextFile(full, text + " ".repeat(64 * 1024 - text.length));
    assert.equal((await readKeyFile(full)).fingerprint, keys.fingerprint);
    const over = `${dir}/over.key`;
    await Deno.writeTextFile(over, text + " ".repeat(64 * 1024 + 1 - text.length), { mode: 0o600 });
    await refused(
      readKeyFile(over),
      over,
      /^Key file ".*over\.key" is larger than 64 KiB, far more than a key file holds: give the right key path$/,
    );
    const rotation = rotationPathOf(full);
    await Deno.mkdir(rotation);
    await refused(
      readRotationFile(full),
      rotation,
      /^Rotation file ".*\.rotation" is a directory: restore it/,
    );
  });
});
