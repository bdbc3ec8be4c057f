/**
 * Learning a root rotation on demand (docs/protocol.md 2.14) without letting
 * a forged request wait for it: before, a request naming any unknown key made
 * a service ask the registry for the rotation statement and kept the request
 * waiting on the answer (up to 5 s when the registry is slow).
 */
import assert from "node:assert/strict";
import { eventually } from "../_eventually.ts";
import { issueCertificate, rawPublicKey } from "../../src/crypto/certificate.ts";
import { type FabricKeys, generateFabricKeys } from "../../src/crypto/keys.ts";
import { issueRotation } from "../../src/crypto/rotation.ts";
import { ReplayCache } from "../../src/crypto/replay_cache.ts";
import { signRequest, verifyRequest, type VerifyResult } from "../../src/crypto/signing.ts";
import { TrustStore } from "../../src/crypto/trust.ts";

const NOW = 1_700_000_000;
const SERVICE = "spn-00000002";
const oldRoot = await generateFabricKeys();
const newRoot = await generateFabricKeys();
const stranger = await generateFabricKeys();
const service = await generateFabricKeys();

/** `service`'s keys with a chain from the new root, as once it was re-certified. */
async function recertified(): Promise<FabricKeys> {
  const identity = await issueCertificate(newRoot.privateKey, {
    sub: "spn-00000001",
    role: "spawner",
    inc: 1,
    route: ["spn-00000000", "spn-00000001"],
    key: await rawPublicKey(service.publicKey),
    x25519: "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo",
    peers: [],
    iss: "root",
    iat: NOW,
    exp: NOW + 600,
  });
  return { ...service, identity, root: newRoot };
}

/** Verifies a request signed with `keys`, or "waited" when that takes 5 s or more. */
async function verifyOnce(keys: FabricKeys, trust: TrustStore): Promise<VerifyResult | "waited"> {
  const url = "http://127.0.0.1:7700/v1/status";
  const body = new Uint8Array();
  const { headers } = await signRequest({ method: "GET", url, body }, keys, {
    target: SERVICE,
    now: NOW * 1000,
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const waited = new Promise<"waited">((resolve) => timer = setTimeout(resolve, 5000, "waited"));
  try {
    return await Promise.race([
      verifyRequest({ method: "GET", url, headers, body }, {
        trust,
        serviceId: SERVICE,
        replayCache: new ReplayCache(),
        now: NOW * 1000 + 1000,
      }),
      waited,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("verifyRequest() refuses a request of an unknown root at once, asks the rotation source in the background, and accepts a later one it taught", async () => {
  const trust = new TrustStore(oldRoot, { now: () => NOW * 1000 });
  const statement = Promise.withResolvers<string | null>();
  let asked = 0;
  trust.source = () => {
    asked++;
    return statement.promise;
  };
  // A slow registry: the ask is not answered while the forged request is verified.
  const forged = await verifyOnce(stranger, trust);
  assert.notEqual(forged, "waited", "the forged request waited on the rotation source");
  assert.ok(forged !== "waited" && !forged.ok && /not this fabric's key/.test(forged.reason));
  assert.equal(asked, 1, "the source is asked, in the background");
  statement.resolve(
    await issueRotation(oldRoot, newRoot, { graceSeconds: 60, now: NOW * 1000 }),
  );
  await eventually(() => trust.root.fingerprint === newRoot.fingerprint, {
    what: "the rotation learnt in the background",
  });
  const verdict = await verifyOnce(await recertified(), trust);
  assert.ok(verdict !== "waited" && verdict.ok, JSON.stringify(verdict));
  assert.equal(verdict.signer.kind, "service");
  assert.equal(asked, 1);
});

Deno.test("TrustStore.resolve() with wait false asks a source that fails without a rejection left unhandled", async () => {
  const trust = new TrustStore(oldRoot, { now: () => NOW * 1000 });
  let asked = 0;
  trust.source = () => {
    asked++;
    return Promise.reject(new Error("registry unreachable"));
  };
  const resolved = await trust.resolve(stranger.fingerprint, null, { wait: false });
  assert.equal(resolved.ok, false);
  assert.equal(asked, 1);
  // The failed ask settles; the store stays on its root.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(trust.root.fingerprint, oldRoot.fingerprint);
});
