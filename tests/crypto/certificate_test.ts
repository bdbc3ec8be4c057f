import assert from "node:assert/strict";
import {
  type CertificateClaims,
  issueCertificate,
  rawPublicKey,
  verifyChain,
} from "../../src/crypto/certificate.ts";
import { type FabricKeys, generateFabricKeys } from "../../src/crypto/keys.ts";
import { TrustStore } from "../../src/crypto/trust.ts";
import { freshX25519, MacSessions, sessionKey } from "../../src/crypto/mac_sessions.ts";

const NOW = 1_700_000_000;
const root = await generateFabricKeys();
const bridge = await generateFabricKeys();
const node = await generateFabricKeys();
const X25519 = "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo";

async function claims(
  sub: string,
  route: string[],
  holder: FabricKeys,
  patch: Partial<CertificateClaims> = {},
): Promise<CertificateClaims> {
  return {
    sub,
    role: "spawner",
    inc: 1,
    route,
    key: await rawPublicKey(holder.publicKey),
    x25519: X25519,
    peers: [],
    iss: "root",
    iat: NOW,
    exp: NOW + 600,
    ...patch,
  };
}

async function chain(patch: Partial<CertificateClaims> = {}): Promise<string> {
  const first = await issueCertificate(
    root.privateKey,
    await claims("brg-00000001", ["spn-00000000", "brg-00000001"], bridge),
  );
  const second = await issueCertificate(
    bridge.privateKey,
    await claims("spn-00000002", ["spn-00000000", "brg-00000001", "spn-00000002"], node, {
      iss: "brg-00000001",
      ...patch,
    }),
  );
  return `${first},${second}`;
}

Deno.test("verifyChain() accepts a chain from the root, each link issued by the one above it for its own child", async () => {
  const verified = await verifyChain(root, await chain(), NOW + 10);
  assert.ok(typeof verified !== "string", String(verified));
  assert.equal(verified.signer.id, "spn-00000002");
  assert.deepEqual(verified.signer.route, ["spn-00000000", "brg-00000001", "spn-00000002"]);
  assert.equal(verified.fingerprint, node.fingerprint);
});

Deno.test("verifyChain() refuses a link for a service outside the issuer's subtree", async () => {
  const outside = await chain({ route: ["spn-00000000", "spn-00000002"] });
  assert.match(String(await verifyChain(root, outside, NOW)), /only its own children/);
});

Deno.test("verifyChain() refuses an issuer out of order, a chain of another root, an expired or tampered link", async () => {
  assert.match(
    String(await verifyChain(root, await chain({ iss: "brg-00000009" }), NOW)),
    /out of order/,
  );
  const other = await generateFabricKeys();
  assert.match(
    String(await verifyChain(other, await chain(), NOW)),
    /not signed by the fabric root/,
  );
  assert.match(String(await verifyChain(root, await chain(), NOW + 700)), /expired/);
  const [first, second] = (await chain()).split(",");
  const tampered = `${first},${second!.slice(0, 20)}${second![20] === "A" ? "B" : "A"}${
    second!.slice(21)
  }`;
  assert.equal(typeof await verifyChain(root, tampered, NOW), "string");
});

Deno.test("issueCertificate() refuses malformed claims: unknown field, route not ending with sub, too long a life", async () => {
  const good = await claims("spn-00000002", ["spn-00000000", "spn-00000002"], node);
  await assert.rejects(
    issueCertificate(root.privateKey, { ...good, route: ["spn-00000000"] }),
    TypeError,
  );
  await assert.rejects(
    issueCertificate(root.privateKey, { ...good, exp: NOW + 90_000 }),
    TypeError,
  );
  await assert.rejects(
    issueCertificate(root.privateKey, { ...good, extra: 1 } as unknown as CertificateClaims),
    TypeError,
  );
});

Deno.test("TrustStore resolves the root to the operator, a chain to its service, and refuses revoked or mismatched keys", async () => {
  const trust = new TrustStore(root, { now: () => NOW * 1000 });
  assert.deepEqual((await trust.resolve(root.fingerprint, null)).ok && "operator", "operator");
  const identity = await chain();
  const resolved = await trust.resolve(node.fingerprint, identity);
  assert.ok(
    resolved.ok && resolved.signer.kind === "service" && resolved.signer.id === "spn-00000002",
  );
  const wrongKey = await trust.resolve(bridge.fingerprint, identity);
  assert.ok(!wrongKey.ok && /not the key/.test(wrongKey.reason));
  assert.ok(!(await trust.resolve(node.fingerprint, null)).ok, "a service key without its chain");
  trust.revoke("spn-00000002", 1);
  const revoked = await trust.resolve(node.fingerprint, identity);
  assert.ok(!revoked.ok && /revoked/.test(revoked.reason));
  assert.ok(!trust.isRevoked("spn-00000002", 2), "the next incarnation is not revoked");
});

Deno.test("TrustStore refuses a chain through a link revoked with cascade (fabricd revoke), not through one that only ended", async () => {
  const trust = new TrustStore(root, { now: () => NOW * 1000 });
  const identity = await chain();
  assert.ok((await trust.resolve(node.fingerprint, identity)).ok);
  trust.revoke("brg-00000001", 1);
  assert.ok(
    (await trust.resolve(node.fingerprint, identity)).ok,
    "a bridge that ended leaves its children valid",
  );
  trust.revoke("brg-00000001", 1, true);
  const refused = await trust.resolve(node.fingerprint, identity);
  assert.ok(!refused.ok && /"brg-00000001" incarnation 1 is revoked/.test(refused.reason));
});

Deno.test("verifyChain() refuses a route that repeats an ID, and a key that is not 32 bytes, without throwing", async () => {
  const repeated = await issueCertificate(
    root.privateKey,
    await claims("spn-00000002", ["spn-00000000", "brg-00000001"], node),
  ).catch((error) => error);
  assert.ok(repeated instanceof TypeError, "route must end with sub");
  await assert.rejects(
    issueCertificate(
      root.privateKey,
      await claims("spn-00000000", ["spn-00000000", "spn-00000000"], node),
    ),
    /distinct/,
  );
  const good = await issueCertificate(
    root.privateKey,
    await claims("spn-00000002", ["spn-00000000", "spn-00000002"], node),
  );
  const payload = JSON.parse(new TextDecoder().decode(
    Uint8Array.from(
      atob(good.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/")),
      (c) => c.charCodeAt(0),
    ),
  ));
  assert.equal(payload.sub, "spn-00000002");
  assert.equal(typeof await verifyChain(root, "fc1.AAAA.BBBB", NOW), "string");
});

Deno.test("a MAC session opened through a chain dies with a link above it revoked with cascade (fabricd revoke)", async () => {
  const trust = new TrustStore(root, { now: () => NOW * 1000 });
  const resolved = await trust.resolve(node.fingerprint, await chain());
  assert.ok(resolved.ok);
  const sessions = new MacSessions({ now: () => NOW * 1000 });
  const opened = await sessions.open(resolved.signer, (await freshX25519()).publicKey, "reg-1");
  assert.equal(sessionKey(sessions, trust, opened.keyid, NOW * 1000).ok, true);
  trust.revoke("brg-00000001", 1);
  assert.equal(
    sessionKey(sessions, trust, opened.keyid, NOW * 1000).ok,
    true,
    "a bridge that only ended leaves the session of its child valid",
  );
  trust.revoke("brg-00000001", 1, true);
  const refused = sessionKey(sessions, trust, opened.keyid, NOW * 1000);
  assert.ok(!refused.ok && /"brg-00000001" incarnation 1 is revoked/.test(refused.reason));
});
