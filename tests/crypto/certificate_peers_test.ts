/**
 * The `peers` claim of a certificate (docs/protocol.md 2.11): at most 16
 * service IDs, each a string, whether the certificate is issued or parsed.
 */
import assert from "node:assert/strict";
import {
  type CertificateClaims,
  issueCertificate,
  parseCertificate,
  rawPublicKey,
  verifyChain,
} from "../../src/crypto/certificate.ts";
import { generateFabricKeys } from "../../src/crypto/keys.ts";

const NOW = 1_700_000_000;
const root = await generateFabricKeys();
const holder = await generateFabricKeys();
const encoder = new TextEncoder();

function base64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

async function claims(peers: unknown): Promise<CertificateClaims> {
  return {
    sub: "agt-00000001",
    role: "agent",
    inc: 1,
    route: ["agt-00000001"],
    key: await rawPublicKey(holder.publicKey),
    x25519: "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo",
    peers: peers as string[],
    iss: "root",
    iat: NOW,
    exp: NOW + 600,
  };
}

/** A certificate over `value`'s JSON signed by the root, past issueCertificate()'s checks. */
async function signedByRoot(value: CertificateClaims): Promise<string> {
  const payload = base64Url(encoder.encode(JSON.stringify(value)));
  const signature = new Uint8Array(
    await crypto.subtle.sign(
      "Ed25519",
      root.privateKey,
      encoder.encode(`fabricd-cert-v1.${payload}`),
    ),
  );
  return `fc1.${payload}.${base64Url(signature)}`;
}

const NOT_IDS: unknown[] = [[["que-abc"]], [["que-abc", "pub-abc"]], [1234], [null], ["Que-abc"]];

Deno.test("issueCertificate() refuses peers that are not all service ID strings", async () => {
  for (const peers of NOT_IDS) {
    await assert.rejects(
      async () => issueCertificate(root.privateKey, await claims(peers)),
      (error) =>
        error instanceof TypeError && /peers must be at most 16 service IDs/.test(error.message),
      JSON.stringify(peers),
    );
  }
  const token = await issueCertificate(root.privateKey, await claims(["que-abc", "pub-abc"]));
  const parsed = parseCertificate(token);
  assert.ok(typeof parsed !== "string", String(parsed));
  assert.deepEqual(parsed.claims.peers, ["que-abc", "pub-abc"]);
});

Deno.test("parseCertificate() and verifyChain() refuse a root-signed certificate whose peers nest an ID in an array", async () => {
  for (const peers of NOT_IDS) {
    const token = await signedByRoot(await claims(peers));
    assert.equal(parseCertificate(token), "peers must be at most 16 service IDs");
    assert.match(String(await verifyChain(root, token, NOW + 1)), /peers must be/);
  }
  const good = await verifyChain(root, await signedByRoot(await claims(["que-abc"])), NOW + 1);
  assert.ok(typeof good !== "string", String(good));
  assert.deepEqual(good.signer.peers, ["que-abc"]);
});
