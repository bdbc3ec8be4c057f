/**
 * A node identity as a compromised compute node holds one, for attacker tests:
 * a valid chain from the fabric root down a subtree of its own (root -> a
 * made-up bridge -> a made-up spawner) and that spawner's key.
 */
import { issueCertificate, rawPublicKey } from "../../src/crypto/certificate.ts";
import { type FabricKeys, generateFabricKeys } from "../../src/crypto/keys.ts";
import { generateEphemeralKey } from "../../src/crypto/seal.ts";
import { FabricRequestError } from "../../src/client/fabric_client.ts";

/** The IDs of the made-up bridge and node. */
export const MINTED = { bridge: "brg-0000beef", node: "spn-0000cafe" } as const;

/** The node's keys and chain, issued with the operator's `root` keys below `rootSpawner`. */
export async function mintNodeIdentity(root: FabricKeys, rootSpawner: string): Promise<FabricKeys> {
  const now = Math.floor(Date.now() / 1000);
  const bridge = await generateFabricKeys();
  const node = await generateFabricKeys();
  const x25519 = (await generateEphemeralKey()).publicKey;
  const claims = { inc: 1, x25519, peers: [], iat: now, exp: now + 600 };
  const first = await issueCertificate(root.privateKey, {
    ...claims,
    sub: MINTED.bridge,
    role: "bridge",
    route: [rootSpawner, MINTED.bridge],
    key: await rawPublicKey(bridge.publicKey),
    iss: "root",
  });
  const second = await issueCertificate(bridge.privateKey, {
    ...claims,
    sub: MINTED.node,
    role: "spawner",
    route: [rootSpawner, MINTED.bridge, MINTED.node],
    key: await rawPublicKey(node.publicKey),
    iss: MINTED.bridge,
  });
  return {
    ...node,
    identity: `${first},${second}`,
    root: { publicKey: root.publicKey, fingerprint: root.fingerprint },
  };
}

/** The HTTP status a call ends with: 200, the refusal's status, or -1 for anything else. */
export async function statusOf(call: Promise<unknown>): Promise<number> {
  try {
    await call;
    return 200;
  } catch (error) {
    return error instanceof FabricRequestError ? error.status : -1;
  }
}
