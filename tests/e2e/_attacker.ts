/**
 * An attacker that holds a compute node's kind of identity: a valid chain from
 * the fabric root down a subtree of its own (root -> a bridge -> a compute
 * node), and that node's key. Run on the desktop of the test network by
 * `ssh_fabric_test.ts`: `deno run -A _attacker.ts FABRIC_FILE TARGET_ID`.
 * Prints one JSON line: the HTTP status of each attempt on TARGET (reached
 * through the bridges on its route) and on the registry.
 */
import { loadContext } from "../../src/cli/context.ts";
import { FabricClient, FabricRequestError } from "../../src/client/fabric_client.ts";
import { targetFor } from "../../src/client/route.ts";
import { issueCertificate, rawPublicKey } from "../../src/crypto/certificate.ts";
import { generateFabricKeys } from "../../src/crypto/keys.ts";
import { generateEphemeralKey } from "../../src/crypto/seal.ts";

const [fabricPath, targetId] = Deno.args;
const context = await loadContext(fabricPath);
const records = await context.registry.list();
const root = records.find((r) => r.parent === "" && r.role === "spawner")!;
const now = Math.floor(Date.now() / 1000);
const bridge = await generateFabricKeys();
const node = await generateFabricKeys();
const x25519 = (await generateEphemeralKey()).publicKey;
const first = await issueCertificate(context.keys.privateKey, {
  sub: "brg-0000beef",
  role: "bridge",
  inc: 1,
  route: [root.id, "brg-0000beef"],
  key: await rawPublicKey(bridge.publicKey),
  x25519,
  peers: [],
  iss: "root",
  iat: now,
  exp: now + 600,
});
const second = await issueCertificate(bridge.privateKey, {
  sub: "spn-0000cafe",
  role: "spawner",
  inc: 1,
  route: [root.id, "brg-0000beef", "spn-0000cafe"],
  key: await rawPublicKey(node.publicKey),
  x25519,
  peers: [],
  iss: "brg-0000beef",
  iat: now,
  exp: now + 600,
});
const attacker = new FabricClient({
  ...node,
  identity: `${first},${second}`,
  root: { publicKey: context.keys.publicKey, fingerprint: context.keys.fingerprint },
});
const target = records.find((r) => r.id === targetId)!;
const via = targetFor(target, records);
const registry = records.find((r) => r.role === "registry")!;

async function statusOf(call: Promise<unknown>): Promise<number> {
  try {
    await call;
    return 200;
  } catch (error) {
    return error instanceof FabricRequestError ? error.status : -1;
  }
}

console.log(JSON.stringify({
  spawn: await statusOf(
    attacker.call(via, { method: "POST", path: "/v1/spawn", body: { role: "spawner" } }),
  ),
  stop: await statusOf(
    attacker.call(via, { method: "POST", path: "/v1/stop", body: { reason: "evicted" } }),
  ),
  rewrite: await statusOf(attacker.call(targetFor(registry, records), {
    method: "PUT",
    path: `/v1/registry/services/${target.id}`,
    body: { record: { ...target, endpoint: "http://127.0.0.1:9" }, reason: "taken over" },
  })),
  read: await statusOf(attacker.call(via, { method: "GET", path: "/v1/status" })),
}));
