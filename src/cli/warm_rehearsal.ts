/**
 * What a warm process (`fabricd --role R --warm`) does while it waits for its
 * hand-over: one rehearsal of a spawn's hot path, in memory, with throwaway
 * keys, so V8 has compiled it and the runtime has set up its crypto before
 * the real bootstrap. Nothing leaves the process: no socket is opened, and
 * the keys and bundle are dropped at the end.
 * @module
 */
import { createApp } from "../api/app.ts";
import type { ServiceHandlers } from "../api/service_handlers.ts";
import { bundleInfo, keyBundleSchema } from "../bootstrap/bundle.ts";
import { issueCertificate, rawPublicKey, verifyChain } from "../crypto/certificate.ts";
import { generateFabricKeys } from "../crypto/keys.ts";
import {
  bootstrapTranscript,
  derivePasswordKey,
  passwordHandle,
  proveBootstrap,
} from "../crypto/one_time_password.ts";
import { ReplayCache } from "../crypto/replay_cache.ts";
import { generateEphemeralKey, openBundle, sealBundle } from "../crypto/seal.ts";
import { signRequest, verifyResponse } from "../crypto/signing.ts";
import { log } from "../config/logging.ts";

const REHEARSAL_ID = "wrm-rehearsal";

/**
 * Runs the rehearsal; failures are logged and ignored (a warm process that
 * could not rehearse is only slower).
 */
export async function rehearseSpawn(): Promise<void> {
  try {
    await rehearse();
  } catch (error) {
    log("runtime").debug("Warm rehearsal failed: {error}", { error: String(error) });
  }
}

async function rehearse(): Promise<void> {
  const keys = await generateFabricKeys();
  // The bootstrap: proof, sealing and opening of a bundle.
  const password = "warm-rehearsal-password-not-a-secret-000000";
  const passwordKey = derivePasswordKey(password);
  const child = await generateEphemeralKey();
  const own = await generateFabricKeys();
  const signingKey = await rawPublicKey(own.publicKey);
  passwordHandle(password);
  proveBootstrap(
    passwordKey,
    bootstrapTranscript({
      serviceId: REHEARSAL_ID,
      publicKey: child.publicKey,
      endpoint: "http://127.0.0.1:1",
      signingKey,
    }),
  );
  const now = Math.floor(Date.now() / 1000);
  const identity = await issueCertificate(keys.privateKey, {
    sub: REHEARSAL_ID,
    role: "spawner",
    inc: 1,
    route: ["spn-rehearsal", REHEARSAL_ID],
    key: signingKey,
    x25519: child.publicKey,
    peers: [],
    iss: "root",
    iat: now,
    exp: now + 60,
  });
  const bundle = JSON.stringify({
    identity,
    root: await rawPublicKey(keys.publicKey),
    fingerprint: keys.fingerprint,
    registries: [],
    parent: { id: "spn-rehearsal", url: "http://127.0.0.1:1" },
  });
  const info = bundleInfo(REHEARSAL_ID);
  const sealed = await sealBundle(new TextEncoder().encode(bundle), {
    peerPublicKey: child.publicKey,
    passwordKey,
    info,
  });
  const plain = await openBundle(sealed, { privateKey: child.privateKey, passwordKey, info });
  keyBundleSchema.safeParse(JSON.parse(new TextDecoder().decode(plain)));
  await verifyChain({ publicKey: keys.publicKey, fingerprint: keys.fingerprint }, identity, now);
  // A signed request through the management API, and its signed answer.
  const app = createApp({
    serviceId: REHEARSAL_ID,
    keys: () => keys,
    replayCache: new ReplayCache(),
    handlers: {
      status: () => ({
        id: REHEARSAL_ID,
        role: "spawner",
        state: "CONFIGURING",
        incarnation: 1,
        endpoint: "http://127.0.0.1:1",
        sessions: [],
      }),
    } as unknown as ServiceHandlers,
  });
  const url = new URL("/v1/status", "http://127.0.0.1:1");
  const body = new Uint8Array();
  const signed = await signRequest({ method: "GET", url, headers: new Headers(), body }, keys, {
    target: REHEARSAL_ID,
  });
  const answer = await app.request(url, { method: "GET", headers: signed.headers });
  await verifyResponse(
    {
      status: answer.status,
      headers: answer.headers,
      body: new Uint8Array(await answer.arrayBuffer()),
    },
    { publicKey: keys.publicKey, fingerprint: keys.fingerprint, requestNonce: signed.nonce },
  );
}
