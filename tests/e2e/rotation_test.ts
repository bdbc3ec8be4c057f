/**
 * Root key rotation across processes (issue 15 item 5): `fabricd rotate`
 * replaces the operator's key; a fabric of 20 services is re-certified from
 * the top down while a client keeps calling, and after the grace period a
 * chain from the old root is refused.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FabricClient, FabricRequestError, type Target } from "../../src/client/fabric_client.ts";
import { RegistryClient } from "../../src/client/registry_client.ts";
import { readKeyFile, reloadKeyFile } from "../../src/crypto/keys.ts";
import {
  progressOf,
  type RotationProgress,
  type RotationStatus,
  statusOf,
} from "../../src/cli/rotate.ts";
import { loadContext } from "../../src/cli/context.ts";
import type { SpawnResult } from "../../src/types/mod.ts";
import { killQuietly, runFabricd, spawnLocal, withLocalFabric } from "./_fabric.ts";
import { mintNodeIdentity } from "./_identities.ts";
import { eventually } from "../_eventually.ts";

const GRACE_SECONDS = 40;

async function codeOf(call: Promise<unknown>): Promise<number> {
  try {
    await call;
  } catch (e) {
    assert.ok(e instanceof FabricRequestError, String(e));
    return e.status;
  }
  return 200;
}

/** Calls every target in turn until `stop` aborts; the statuses of refused calls. */
async function keepCalling(
  client: FabricClient,
  targets: Target[],
  stop: AbortSignal,
): Promise<{ calls: number; refused: string[] }> {
  const refused: string[] = [];
  let calls = 0;
  while (!stop.aborted) {
    for (const target of targets) {
      const status = await codeOf(client.call(target, { method: "GET", path: "/v1/status" }));
      calls++;
      if (status === 401 || status === 403) refused.push(`${target.id}: ${status}`);
    }
  }
  return { calls, refused };
}

Deno.test("fabricd rotate re-certifies a fabric of 20 services with no request refused, and refuses the old root after the grace", async () => {
  await withLocalFabric(async (local, dir) => {
    const fabricPath = join(dir, "fabric.yaml");
    // 2 roots + 3 spawners below the root spawner + 5 services below each = 20.
    const tier: SpawnResult[] = [];
    for (let i = 0; i < 3; i++) tier.push(await spawnLocal(local, "spawner"));
    const leaves: SpawnResult[] = [];
    for (const parent of tier) {
      for (let i = 0; i < 5; i++) {
        leaves.push(
          await spawnLocal(local, "spawner", {}, { id: parent.id, url: parent.endpoint }),
        );
      }
    }
    const records = await local.registry.list();
    assert.equal(records.filter((r) => r.state === "ALIVE").length, 20);
    const pids = records.map((r) => r.pid);
    const oldRoot = local.keys.fingerprint;
    const oldChain = new FabricClient(await mintNodeIdentity(local.keys, local.spawner.id));
    assert.equal(
      await codeOf(oldChain.call(local.spawner, { method: "GET", path: "/v1/status" })),
      200,
    );
    try {
      const targets = [...tier, ...leaves].map((s) => ({ id: s.id, url: s.endpoint }));
      const stop = new AbortController();
      // The in-process client keeps the old key: it is trusted through the grace.
      const calling = keepCalling(local.client, [local.spawner, ...targets], stop.signal);
      const rotated = await runFabricd([
        "rotate",
        "--grace",
        String(GRACE_SECONDS),
        "--json",
        "--fabric",
        fabricPath,
      ]);
      assert.equal(rotated.code, 0, rotated.stderr);
      const done = JSON.parse(rotated.stdout) as { previous: string; root: string; until: number };
      assert.equal(done.previous, oldRoot);
      const fresh = await readKeyFile(join(dir, "fabric.key"));
      assert.equal(fresh.fingerprint, done.root, "the key file holds the new root");
      const context = await loadContext(fabricPath);
      let status: RotationStatus | undefined;
      let progress: RotationProgress | undefined;
      await eventually(async () => {
        status = await statusOf(context);
        progress = await progressOf(context, status);
        if (progress.current !== 20) throw new Error(JSON.stringify(progress));
        return true;
      }, { timeoutMs: 30_000, what: "every service answering from the new root" });
      stop.abort();
      const { calls, refused } = await calling;
      assert.ok(calls > targets.length, `the client kept calling (${calls} calls)`);
      assert.deepEqual(refused, [], "no request refused during the rotation");
      assert.equal(status!.root, done.root);
      assert.ok(Date.now() < done.until, "re-certified within the grace");
      const second = await runFabricd(["rotate", "--fabric", fabricPath]);
      assert.equal(second.code, 1, "a second rotation in the grace is refused");
      assert.match(second.stderr, /in its grace until/);

      await new Promise((resolve) => setTimeout(resolve, done.until - Date.now() + 1500));
      // After the grace: a chain from the old root, and the old key itself, are refused.
      const late = await codeOf(
        oldChain.call(local.spawner, { method: "GET", path: "/v1/status" }),
      );
      assert.equal(late, 401);
      assert.equal(
        await codeOf(
          local.client.call(local.registryTarget, { method: "GET", path: "/v1/status" }),
        ),
        401,
      );
      // The registry's audit trail shows the refused request (fabricd events --audit),
      // once its log line is written out.
      await eventually(async () => {
        const audit = await runFabricd(["events", "--audit", "--json", "--fabric", fabricPath]);
        assert.equal(audit.code, 0, audit.stderr);
        const lines = audit.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
        return lines.some((l) => l.properties?.status === 401 && /retired/.test(l.properties?.why));
      }, { timeoutMs: 10_000, intervalMs: 500, what: "the old key's 401 in the audit lines" });
      // Every service answers with a chain from the new root only.
      const after = new FabricClient(await readKeyFile(join(dir, "fabric.key")));
      for (const target of targets) {
        await after.call(target, { method: "GET", path: "/v1/status" });
      }
      const held = await new RegistryClient(after, [local.registryTarget]).list();
      assert.equal(held.filter((r) => r.state === "ALIVE").length, 20, "every service lives on");
    } finally {
      // Sign the clean-up with the new key.
      await reloadKeyFile(local.keys).catch(() => false);
      await local.stopAll("test finished").catch(() => 0);
      for (const pid of pids) killQuietly(pid);
    }
  }, { heartbeatMs: 500 });
});
