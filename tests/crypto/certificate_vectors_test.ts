/**
 * The test vectors of docs/protocol.md 2.11, 2.13 and 4.10, computed
 * independently (Python `cryptography`) and checked here against the
 * project's own modules: a certificate issued by the example root for the
 * example child, the v2 bootstrap (transcript, proof, sealed bundle), a
 * request signed by the child with its own key, and a MAC session's key,
 * request and answer signatures. Every key here is example material only.
 */
import assert from "node:assert/strict";
import {
  type CertificateClaims,
  issueCertificate,
  verifyChain,
} from "../../src/crypto/certificate.ts";
import { importFabricKeys } from "../../src/crypto/keys.ts";
import { TrustStore } from "../../src/crypto/trust.ts";
import { clientSession } from "../../src/crypto/mac_sessions.ts";
import {
  bootstrapTranscript,
  derivePasswordKey,
  passwordHandle,
  proveBootstrap,
} from "../../src/crypto/one_time_password.ts";
import { openBundle } from "../../src/crypto/seal.ts";
import { bundleInfo, keyBundleSchema } from "../../src/bootstrap/bundle.ts";
import { signRequest, signResponse, verifyRequest } from "../../src/crypto/signing.ts";
import { ReplayCache } from "../../src/crypto/replay_cache.ts";

/** The example fabric key of section 1 (RFC 8032 §7.1 test 1): the root. */
const ROOT_JWK = {
  kty: "OKP",
  crv: "Ed25519",
  d: "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
  x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
};
/** The child's own signing key (RFC 8032 §7.1 test 2). */
const CHILD_JWK = {
  kty: "OKP",
  crv: "Ed25519",
  d: "TM0Imyj_ltqdtsNG7BFOD1uKMZ81q6Yk2oz27U-4pvs",
  x: "PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw",
};
const ROOT_FINGERPRINT = "sha256:21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9";
const CHILD_FINGERPRINT = "sha256:39f713d0a644253f04529421b9f51b9b08979d08295959c4f3990ee617f5139f";
/** RFC 7748 §6.1: Alice (the child, the session's client) and Bob (the parent, the service). */
const CHILD_X25519 = {
  kty: "OKP",
  crv: "X25519",
  d: "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo",
  x: "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo",
};
const PARENT_X25519_PUBLIC = "3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08";

const CLAIMS: CertificateClaims = {
  sub: "agt-0badc0de",
  role: "agent",
  inc: 1,
  route: ["spw-3f9a0c12", "agt-0badc0de"],
  key: CHILD_JWK.x,
  x25519: CHILD_X25519.x,
  peers: [],
  iss: "root",
  iat: 1700000000,
  exp: 1700003600,
};
const CERTIFICATE = "fc1." +
  "eyJzdWIiOiJhZ3QtMGJhZGMwZGUiLCJyb2xlIjoiYWdlbnQiLCJpbmMiOjEsInJvdXRlIjpbInNwdy0zZjlhMGMxMiIs" +
  "ImFndC0wYmFkYzBkZSJdLCJrZXkiOiJQVUFYdy1oRGlWcVN0d3FuVFJ0LXZKeVlMTTh1eEphTXdNMVY4U3IwWmd3Iiwi" +
  "eDI1NTE5IjoiaFNEd0NZa3dwMVIwaTMzY3RENzNXZzJfT2cwbU9CcjA2NlNwanFxYlRtbyIsInBlZXJzIjpbXSwiaXNz" +
  "Ijoicm9vdCIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ." +
  "AGuepq9O44PMeDt5QgLQ8rslk6X25vc5t1_uAmO1GnjljjFjxONdq6539afgKky0hSrmOtniHsxEcg1gs6m-Cg";

const root = await importFabricKeys(ROOT_JWK);
const child = await importFabricKeys(CHILD_JWK);

function b64url(text: string): string {
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

Deno.test("the example certificate (docs/protocol.md 4.10) is what issueCertificate() makes from the fixed keys", async () => {
  assert.equal(root.fingerprint, ROOT_FINGERPRINT);
  assert.equal(child.fingerprint, CHILD_FINGERPRINT);
  assert.equal(await issueCertificate(root.privateKey, CLAIMS), CERTIFICATE);
  const payload = CERTIFICATE.split(".")[1]!;
  assert.equal(
    new TextDecoder().decode(
      Uint8Array.from(
        atob(payload.replaceAll("-", "+").replaceAll("_", "/")),
        (c) => c.charCodeAt(0),
      ),
    ),
    JSON.stringify(CLAIMS),
  );
});

Deno.test("verifyChain() accepts the example certificate inside its life and refuses it before and after", async () => {
  const verified = await verifyChain(root, CERTIFICATE, 1700000100);
  assert.ok(typeof verified !== "string", String(verified));
  assert.equal(verified.fingerprint, CHILD_FINGERPRINT);
  assert.deepEqual(verified.signer, {
    kind: "service",
    id: "agt-0badc0de",
    role: "agent",
    incarnation: 1,
    route: ["spw-3f9a0c12", "agt-0badc0de"],
    peers: [],
    x25519: CHILD_X25519.x,
    key: CHILD_JWK.x,
    expires: 1700003600,
  });
  // 5 s of clock skew either side: exp + 5 still passes, a second later it does not.
  assert.ok(typeof await verifyChain(root, CERTIFICATE, 1700003605) !== "string");
  assert.equal(
    await verifyChain(root, CERTIFICATE, 1700003606),
    'certificate of "agt-0badc0de" expired',
  );
  assert.equal(
    await verifyChain(root, CERTIFICATE, 1699999994),
    'certificate of "agt-0badc0de" is not valid yet',
  );
});

Deno.test("changing one byte of the example certificate's payload fails its verification", async () => {
  const [, payload, signature] = CERTIFICATE.split(".");
  // One byte of the JSON: "inc":1 -> "inc":2, re-encoded, the signature kept.
  const forged = b64url(JSON.stringify({ ...CLAIMS, inc: 2 }));
  assert.equal(forged.length, payload!.length);
  assert.equal(
    await verifyChain(root, `fc1.${forged}.${signature}`, 1700000100),
    'certificate of "agt-0badc0de" is not signed by the fabric root',
  );
  // Every single base64url character of the payload changed in turn.
  for (let i = 0; i < payload!.length; i += 7) {
    const swapped = payload![i] === "A" ? "B" : "A";
    const token = `fc1.${payload!.slice(0, i)}${swapped}${payload!.slice(i + 1)}.${signature}`;
    assert.equal(typeof await verifyChain(root, token, 1700000100), "string", `position ${i}`);
  }
});

Deno.test("the v2 bootstrap vector (docs/protocol.md 4.10): transcript, proof and the sealed bundle", async () => {
  const password = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";
  const passwordKey = derivePasswordKey(password);
  assert.equal(
    Array.from(passwordKey, (b) => b.toString(16).padStart(2, "0")).join(""),
    "79fe52ee0344aa284729d52c23c3daffc3ccb41263f61964bd154daed7a44f6c",
  );
  assert.equal(passwordHandle(password), "YzZWQPsJ-olDu2FBOgbqPw");
  const transcript = bootstrapTranscript({
    serviceId: "agt-0badc0de",
    publicKey: CHILD_X25519.x,
    endpoint: "http://127.0.0.1:40123",
    signingKey: CHILD_JWK.x,
  });
  assert.equal(
    transcript,
    "fabricd-bootstrap-v2\nagt-0badc0de\nhSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo\nhttp://127.0.0.1:40123\nPUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw",
  );
  assert.equal(
    proveBootstrap(passwordKey, transcript),
    "ppMHcVB84ZIW2r1Xf5jo7rX_MHNZ7AwDzYB3ivFwoZU",
  );
  const privateKey = await crypto.subtle.importKey("jwk", CHILD_X25519, "X25519", false, [
    "deriveBits",
  ]);
  const plain = new TextDecoder().decode(
    await openBundle(SEALED, { privateKey, passwordKey, info: bundleInfo("agt-0badc0de") }),
  );
  assert.equal(plain, PLAINTEXT);
  const bundle = keyBundleSchema.parse(JSON.parse(plain));
  assert.equal(bundle.identity, CERTIFICATE);
  assert.equal(bundle.fingerprint, ROOT_FINGERPRINT);
});

const PLAINTEXT = JSON.stringify({
  identity: CERTIFICATE,
  root: ROOT_JWK.x,
  fingerprint: ROOT_FINGERPRINT,
  registries: [{ id: "reg-0a1b2c3d", url: "http://127.0.0.1:7701" }],
  parent: { id: "spw-3f9a0c12", url: "http://127.0.0.1:7700" },
});
const SEALED = {
  publicKey: PARENT_X25519_PUBLIC,
  iv: "AAECAwQFBgcICQoL",
  ciphertext: [
    "REmHz6F1t0uO8TmuhJxOzyUpt8CSZ3Ek1_eknS4oNxwEVrr7y4jJj-pat3afVOKNqolSrQEsreXyqbaAMVHsb4D6",
    "kpFvXmHzBgd5eq1_ZQbVt4LC7JgZ2M9oLBogN3NvLmp8aNNBdaEFlXcxCzc9C4j7pEcBj4dwPmHiOzAdJ2d3OGzB",
    "TvG8rW3V-L_J7t3_1u_YDn2TqeyI_GEsiK53pwkFVr3SCw_HzMRK1QX0JaAhKiCGlVzJkvl2sK7vjylSZGrU4YsF",
    "ts-7C_J8OXL7SW5QUCMAvU2B4GgAW9UQoyF19nPXK9XMCLvbDW2QYae5KPtmKBAsEgT6qNHJnzFVEPvRgb4xctrJ",
    "xEbOz4TiNrgPmkcO7R2nMk49UCjvDL9ZKjCAf0LC8jx_gOuHTsDCZJwEoJc39SXV2ez3fq3QCz1PKTAwjQ8sPdWn",
    "XoZcn4CWfzr0OUtg_zHL7Qi1GQk4WU8-8a70du4gYtBEgdtkt5ijR68JIzuHKfQfUdO8iQGSoXFpVLRADJLmFtu4",
    "wASXcMHFa2tXWs98vRTAD47K_ZEzPIOWU5gyEnZ6COmffaLbRpQT-0ZrLpqHknr2f0nyWYV4Xy5bWOsBkQmsOp73",
    "eUjVfeaDFAHtizpHHNvRJI9BgKtObLqF_7p5A2E-dqsD3HjoRUsXQzgjNhTGy4DHgxDN-3hH94PAc35vzmnMenAQ",
    "QfJL4hzD8iqb3Pmq9UP7bVw98sYO5qufxDWZ_nXiKRBTOAe9QmpRuqmL207N6gYLhzkH37aUh4_BiXoNdIGUs3t1",
    "8FMHN3kmhgcb9ArOp4360vxfFt42b6BY_G95gcy1q8f_ltrnpZoiBH6eAm7n1xFIBt3f1Dx5g3jBYRAJwc5XjzhD",
    "ZXpEGQOUvFOmRMH-W0kgZGyOsHa02PjpHewMWxZRskTimhLS2vjwhQAAaZPaGgl1KNUZbgJnc_MUnQdkbNsv5VM",
  ].join(""),
};

Deno.test("a request signed by the example child with its own key carries its chain and verifies to it (docs/protocol.md 2.13)", async () => {
  const keys = { ...child, identity: CERTIFICATE, root, expires: 1700003600 };
  const url = "http://127.0.0.1:7700/v1/session";
  const body = new TextEncoder().encode(`{"x25519":"${CHILD_X25519.x}"}`);
  const signed = await signRequest(
    { method: "POST", url, headers: new Headers({ "content-type": "application/json" }), body },
    keys,
    { target: "spw-3f9a0c12", now: 1700000100_000, nonce: "AAECAwQFBgcICQoLDA0ODw" },
  );
  assert.equal(signed.headers.get("fabric-identity"), CERTIFICATE);
  assert.equal(
    signed.headers.get("content-digest"),
    "sha-256=:2vrRMsy1KA2Ly8w9qrPDtuovBRlhKWI8IjGnfBnGIo8=:",
  );
  assert.equal(
    signed.headers.get("signature-input"),
    'sig1=("@method" "@path" "@query" "content-digest" "fabric-target" "content-type");created=1700000100;expires=1700000130;nonce="AAECAwQFBgcICQoLDA0ODw";keyid="sha256:39f713d0a644253f04529421b9f51b9b08979d08295959c4f3990ee617f5139f";alg="ed25519";tag="fabricd"',
  );
  assert.equal(
    signed.headers.get("signature"),
    "sig1=:e3vW4obf74sNJZaU+Ro980BsPsP8Ui/JJ4xFeK53aMAPhaa6pULZzb+cAr0J+I/EYQMbqtXuDN/1DuX1KuRxDA==:",
  );
  const now = 1700000101_000;
  const verdict = await verifyRequest({ method: "POST", url, headers: signed.headers, body }, {
    trust: new TrustStore(root, { now: () => now }),
    serviceId: "spw-3f9a0c12",
    replayCache: new ReplayCache(),
    now,
  });
  assert.ok(verdict.ok, verdict.ok ? "" : verdict.reason);
  assert.equal(verdict.signer.kind === "service" && verdict.signer.id, "agt-0badc0de");
});

Deno.test("the example MAC session: its key, a request and an answer signed in it (docs/protocol.md 2.13)", async () => {
  const privateKey = await crypto.subtle.importKey("jwk", CHILD_X25519, "X25519", false, [
    "deriveBits",
  ]);
  const session = await clientSession(
    { privateKey, publicKey: CHILD_X25519.x },
    { x25519: PARENT_X25519_PUBLIC, keyid: "mac:AAECAwQFBgcICQoLDA0ODw", expires: 1700003600 },
    { client: "agt-0badc0de#1", service: "spw-3f9a0c12", peer: { kind: "operator" } },
  );
  assert.equal(
    Array.from(session.secret, (b) => b.toString(16).padStart(2, "0")).join(""),
    "90a11bd6a3bb0a8069b16d67eba2035428c2f4d504daf66cd68de0571925e0b8",
  );
  const keys = { ...child, identity: CERTIFICATE, root, expires: 1700003600 };
  const signed = await signRequest(
    { method: "GET", url: "http://127.0.0.1:7700/v1/status", body: new Uint8Array() },
    keys,
    { target: "spw-3f9a0c12", now: 1700000160_000, nonce: "EBESExQVFhcYGRobHB0eHw", session },
  );
  assert.equal(signed.headers.get("fabric-identity"), null, "no chain inside a session");
  assert.equal(
    signed.headers.get("signature-input"),
    'sig1=("@method" "@path" "@query" "content-digest" "fabric-target");created=1700000160;expires=1700000190;nonce="EBESExQVFhcYGRobHB0eHw";keyid="mac:AAECAwQFBgcICQoLDA0ODw";alg="hmac-sha256";tag="fabricd"',
  );
  assert.equal(
    signed.headers.get("signature"),
    "sig1=:TyvTsSbkNzf70EHOxqTV7uhvnzbCUmwg3M7Iszj8khI=:",
  );
  const answer = await signResponse(
    { status: 200, body: new TextEncoder().encode('{"id":"spw-3f9a0c12"}') },
    keys,
    { requestNonce: "EBESExQVFhcYGRobHB0eHw", now: 1700000161_000, session },
  );
  assert.equal(
    answer.get("content-digest"),
    "sha-256=:Wbi9Fp36rBpHEr9WzY2kY8qir6IFr5WklHS/mAxTE8Y=:",
  );
  assert.equal(answer.get("signature"), "sig1=:u8lp+L315GL9rFloNIp/ay3PM5b6Cysm36qmnCi7JO4=:");
});
