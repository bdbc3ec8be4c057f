/**
 * Least privilege across processes (issue 15): every service holds its own
 * key and a certificate chain, never the fabric's root key; a node's identity
 * acts only on its own subtree; certificates are renewed before they expire.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FabricClient, FabricRequestError, type Target } from "../../src/client/fabric_client.ts";
import type { FabricKeys } from "../../src/crypto/keys.ts";
import type { LocalFabric } from "../../src/cli/local_fabric.ts";
import type { ServiceRecord, SpawnResult } from "../../src/types/mod.ts";
import { runFabricd, withLocalFabric } from "./_fabric.ts";
import { mintNodeIdentity } from "./_identities.ts";
import { eventually } from "../_eventually.ts";

async function spawnVia(local: LocalFabric, via: Target, role: string): Promise<SpawnResult> {
  return await local.client.call<SpawnResult>(via, {
    method: "POST",
    path: "/v1/spawn",
    body: { role },
  });
}

/** An identity two levels below the root spawner, as a compromised compute node holds one. */
function computeNodeIdentity(local: LocalFabric): Promise<FabricKeys> {
  return mintNodeIdentity(local.keys, local.spawner.id);
}

async function statusOf(error: Promise<unknown>): Promise<number> {
  try {
    await error;
  } catch (e) {
    assert.ok(e instanceof FabricRequestError, String(e));
    return e.status;
  }
  return 200;
}

Deno.test("a compute node's identity cannot spawn on the desktop, rewrite the root spawner's record, stop the registry or join another subtree's session; the desktop can", async () => {
  await withLocalFabric(async (local, dir) => {
    const bridge = await spawnVia(local, local.spawner, "bridge");
    const other = await spawnVia(local, { id: bridge.id, url: bridge.endpoint }, "spawner");
    const attacker = new FabricClient(await computeNodeIdentity(local));
    const rootRecord = (await local.registry.get(local.spawner.id))!.record;

    assert.equal(
      await statusOf(attacker.call(local.spawner, {
        method: "POST",
        path: "/v1/spawn",
        body: { role: "spawner" },
      })),
      403,
      "spawn on the desktop's root spawner",
    );
    const forged: ServiceRecord = {
      ...rootRecord,
      incarnation: rootRecord.incarnation + 1,
      endpoint: "http://127.0.0.1:9",
    };
    assert.equal(
      await statusOf(attacker.call(local.registryTarget, {
        method: "PUT",
        path: `/v1/registry/services/${rootRecord.id}`,
        body: { record: forged, reason: "taken over" },
      })),
      403,
      "rewrite the root spawner's record",
    );
    assert.equal(
      await statusOf(attacker.call(local.registryTarget, {
        method: "POST",
        path: "/v1/stop",
        body: { reason: "evicted" },
      })),
      403,
      "stop the registry",
    );
    assert.equal(
      await statusOf(attacker.call({ id: other.id, url: other.endpoint }, {
        method: "POST",
        path: "/v1/connect",
        body: { session: "s1", client: "attacker" },
      })),
      403,
      "join a session of another subtree",
    );
    // Reading stays open to every member.
    assert.equal(
      await statusOf(attacker.call(local.spawner, { method: "GET", path: "/v1/status" })),
      200,
    );
    assert.equal((await local.registry.get(rootRecord.id))!.record.endpoint, rootRecord.endpoint);
    // The desktop (the operator's key) still does all of it.
    await local.client.call({ id: other.id, url: other.endpoint }, {
      method: "POST",
      path: "/v1/connect",
      body: { session: "s1", client: "desktop" },
    });
    const log = await Deno.readTextFile(join(dir, "logs", `${bridge.id}.log`)).catch(() => "");
    assert.doesNotMatch(log, /"d":/, "no private JWK in a child's log");
  });
});

Deno.test("a service below the root holds its own key, not the fabric key, and signs with its own chain", async () => {
  await withLocalFabric(async (local) => {
    const bridge = await spawnVia(local, local.spawner, "bridge");
    const child = await spawnVia(local, { id: bridge.id, url: bridge.endpoint }, "spawner");
    // An answer of the grandchild verifies through its chain to the root.
    const status = await local.client.call<{ id: string }>(
      { id: child.id, url: child.endpoint },
      { method: "GET", path: "/v1/status" },
    );
    assert.equal(status.id, child.id);
    const raw = await fetch(new URL("/v1/health", child.endpoint));
    await raw.body?.cancel();
    // A request to the grandchild signed by the operator answers with the child's identity.
    const answer = await signedStatus(local, child);
    assert.ok(answer.identity, "the answer carries a Fabric-Identity");
    assert.equal(answer.identity.split(",").length, 2, "root -> bridge -> spawner: two links");
    assert.notEqual(answer.keyid, local.keys.fingerprint, "signed with its own key");
  });
});

async function signedStatus(
  local: LocalFabric,
  target: SpawnResult,
): Promise<{ identity: string | null; keyid: string }> {
  const { signRequest } = await import("../../src/crypto/signing.ts");
  const url = new URL("/v1/status", target.endpoint);
  const signed = await signRequest({ method: "GET", url, body: new Uint8Array() }, local.keys, {
    target: target.id,
  });
  const answer = await fetch(url, { headers: signed.headers });
  await answer.body?.cancel();
  const input = answer.headers.get("signature-input") ?? "";
  return {
    identity: answer.headers.get("fabric-identity"),
    keyid: /keyid="([^"]+)"/.exec(input)?.[1] ?? "",
  };
}

Deno.test("certificates are renewed before they expire: a fabric with 12 s certificates keeps working for 30 s", async () => {
  Deno.env.set("FABRIC_CERT_SECONDS", "12");
  try {
    await withLocalFabric(async (local) => {
      const bridge = await spawnVia(local, local.spawner, "bridge");
      const child = await spawnVia(local, { id: bridge.id, url: bridge.endpoint }, "spawner");
      const first = await signedStatus(local, child);
      await eventually(async () => (await signedStatus(local, child)).identity !== first.identity, {
        timeoutMs: 15_000,
        what: "a renewed chain",
      });
      await new Promise((resolve) => setTimeout(resolve, 15_000));
      const record = (await local.registry.get(child.id))!.record;
      assert.equal(record.state, "ALIVE");
      assert.ok(Date.now() - record.lastHeartbeat < 5000, "its heartbeats still get through");
      await local.client.call({ id: child.id, url: child.endpoint }, {
        method: "GET",
        path: "/v1/status",
      });
    });
  } finally {
    Deno.env.delete("FABRIC_CERT_SECONDS");
  }
});

Deno.test("fabricd revoke ID cuts an identity off: every service refuses it within a few heartbeats, and the record is LOST", async () => {
  await withLocalFabric(async (local, dir) => {
    const identity = await computeNodeIdentity(local);
    const attacker = new FabricClient(identity);
    const now = Date.now();
    // The identity's service on record, as a real one would be: spawned, then ALIVE.
    const node = {
      id: "spn-0000cafe",
      role: "spawner" as const,
      state: "LAUNCHING" as const,
      incarnation: 1,
      host: "compute",
      pid: 1,
      endpoint: "http://127.0.0.1:9",
      parent: "brg-0000beef",
      route: [local.spawner.id, "brg-0000beef", "spn-0000cafe"],
      launcher: "local://",
      imageHash: "",
      sessions: [],
      started: now,
      lastHeartbeat: now,
      restarts: 0,
      lastFailure: "",
      updated: now,
      options: {},
    };
    await local.registry.put(node, "a node of the test");
    for (const state of ["BOOTSTRAPPING", "CONFIGURING", "ALIVE"] as const) {
      await local.registry.put({ ...node, state }, "a node of the test");
    }
    const read = () => attacker.call(local.spawner, { method: "GET", path: "/v1/status" });
    assert.equal(await statusOf(read()), 200);
    const revoked = await runFabricd([
      "revoke",
      "spn-0000cafe",
      "--fabric",
      join(dir, "fabric.yaml"),
    ]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, /Revoked spn-0000cafe/);
    assert.equal((await local.registry.get("spn-0000cafe"))!.record.state, "LOST");
    await eventually(async () => (await statusOf(read())) === 401, {
      timeoutMs: 5000,
      what: "the root spawner refusing the revoked identity",
    });
    await eventually(
      async () =>
        (await statusOf(
          attacker.call(local.registryTarget, { method: "GET", path: "/v1/status" }),
        )) ===
          401,
      { timeoutMs: 5000, what: "the registry refusing the revoked identity" },
    );
    const unknown = await runFabricd([
      "revoke",
      "spn-00000bad",
      "--fabric",
      join(dir, "fabric.yaml"),
    ]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /No service "spn-00000bad"/);
  });
});
