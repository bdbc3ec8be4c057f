/**
 * Root key rotation (docs/protocol.md 2.14): the statement both roots sign,
 * and a trust store that trusts both roots until the grace ends.
 */
import assert from "node:assert/strict";
import { issueCertificate, rawPublicKey, verifyChain } from "../../src/crypto/certificate.ts";
import { generateFabricKeys } from "../../src/crypto/keys.ts";
import { issueRotation, verifyRotation } from "../../src/crypto/rotation.ts";
import { TrustStore } from "../../src/crypto/trust.ts";

const NOW = 1_700_000_000;
const X25519 = "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo";
const oldRoot = await generateFabricKeys();
const newRoot = await generateFabricKeys();
const service = await generateFabricKeys();

async function chainFrom(root: typeof oldRoot): Promise<string> {
  return await issueCertificate(root.privateKey, {
    sub: "spn-00000001",
    role: "spawner",
    inc: 1,
    route: ["spn-00000000", "spn-00000001"],
    key: await rawPublicKey(service.publicKey),
    x25519: X25519,
    peers: [],
    iss: "root",
    iat: NOW,
    exp: NOW + 600,
  });
}

function storeAt(seconds: { value: number }): TrustStore {
  return new TrustStore(oldRoot, { now: () => seconds.value * 1000 });
}

Deno.test("verifyRotation() accepts a statement signed by both keys and refuses a changed byte, one signature or a grace out of bounds", async () => {
  const token = await issueRotation(oldRoot, newRoot, { graceSeconds: 60, now: NOW * 1000 });
  const rotation = await verifyRotation(token);
  assert.ok(typeof rotation !== "string", String(rotation));
  assert.equal(rotation.old.fingerprint, oldRoot.fingerprint);
  assert.equal(rotation.new.fingerprint, newRoot.fingerprint);
  assert.equal(rotation.until - rotation.iat, 60);
  const [payload, first, second] = token.slice(4).split(".");
  const changed = `fr1.${payload!.slice(0, -2)}AA.${first}.${second}`;
  assert.equal(typeof await verifyRotation(changed), "string");
  assert.match(String(await verifyRotation(`fr1.${payload}.${first}.${first}`)), /new key/);
  assert.match(String(await verifyRotation(`fr1.${payload}.${first}`)), /two 64-byte/);
  await assert.rejects(issueRotation(oldRoot, newRoot, { graceSeconds: 5 }), RangeError);
  await assert.rejects(issueRotation(oldRoot, oldRoot), RangeError);
});

Deno.test("TrustStore.adopt() trusts both roots until the grace ends, then refuses the old key and its chains as retired", async () => {
  const clock = { value: NOW };
  const store = storeAt(clock);
  const oldChain = await chainFrom(oldRoot);
  const newChain = await chainFrom(newRoot);
  assert.equal((await store.resolve(service.fingerprint, newChain)).ok, false);
  const rotation = await verifyRotation(
    await issueRotation(oldRoot, newRoot, { graceSeconds: 60, now: NOW * 1000 }),
  );
  assert.ok(typeof rotation !== "string");
  assert.equal(store.adopt(rotation), null);
  assert.equal(store.root.fingerprint, newRoot.fingerprint);
  for (const keyid of [oldRoot.fingerprint, newRoot.fingerprint]) {
    assert.equal((await store.resolve(keyid, null)).ok, true, keyid);
  }
  assert.equal((await store.resolve(service.fingerprint, oldChain)).ok, true);
  assert.equal((await store.resolve(service.fingerprint, newChain)).ok, true);
  clock.value = NOW + 61;
  const key = await store.resolve(oldRoot.fingerprint, null);
  assert.ok(!key.ok && /retired fabric root/.test(key.reason), JSON.stringify(key));
  const chain = await store.resolve(service.fingerprint, oldChain);
  assert.ok(
    !chain.ok && /signed by a retired fabric root/.test(chain.reason),
    JSON.stringify(chain),
  );
  assert.equal((await store.resolve(service.fingerprint, newChain)).ok, true);
  assert.deepEqual(store.roots().map((r) => r.fingerprint), [newRoot.fingerprint]);
});

Deno.test("TrustStore.adopt() from the new root trusts the old one for the grace; a statement from another root is refused", async () => {
  const clock = { value: NOW };
  const rotation = await verifyRotation(
    await issueRotation(oldRoot, newRoot, { graceSeconds: 60, now: NOW * 1000 }),
  );
  assert.ok(typeof rotation !== "string");
  const born = new TrustStore(newRoot, { now: () => clock.value * 1000 });
  assert.equal(born.adopt(rotation), null);
  assert.equal((await born.resolve(service.fingerprint, await chainFrom(oldRoot))).ok, true);
  const stranger = new TrustStore(await generateFabricKeys());
  assert.match(String(stranger.adopt(rotation)), /missed an earlier rotation/);
});

Deno.test("TrustStore.resolve() learns a rotation from its source when a chain of an unknown root comes in, at most every 2 s", async () => {
  const clock = { value: NOW };
  const store = storeAt(clock);
  const token = await issueRotation(oldRoot, newRoot, { graceSeconds: 60, now: NOW * 1000 });
  let asked = 0;
  store.source = () => {
    asked++;
    return Promise.resolve(asked === 1 ? null : token);
  };
  const newChain = await chainFrom(newRoot);
  assert.equal((await store.resolve(service.fingerprint, newChain)).ok, false, "source had none");
  assert.equal((await store.resolve(service.fingerprint, newChain)).ok, false, "not asked again");
  assert.equal(asked, 1);
  clock.value += 3;
  assert.equal((await store.resolve(service.fingerprint, newChain)).ok, true);
  assert.equal(asked, 2);
  assert.equal(store.rotation?.token, token);
});

Deno.test("verifyChain() with two roots names the root a chain starts from", async () => {
  const verified = await verifyChain([newRoot, oldRoot], await chainFrom(oldRoot), NOW);
  assert.ok(typeof verified !== "string", String(verified));
  assert.equal(verified.root, oldRoot.fingerprint);
});
