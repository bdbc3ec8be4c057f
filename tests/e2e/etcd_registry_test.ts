/**
 * The registry on a real etcd cluster (scripts/etcd-testcluster): the store
 * contract, two registry replicas with 50 services heartbeating through an
 * etcd leader kill, a replica kill and a paused member. Needs root and
 * Debian's etcd-server; skips with a message otherwise, and fails instead
 * when FABRIC_E2E=require.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FabricClient } from "../../src/client/fabric_client.ts";
import { RegistryClient } from "../../src/client/registry_client.ts";
import { generateFabricKeys, writeKeyFile } from "../../src/crypto/mod.ts";
import { LocalLauncher } from "../../src/launchers/local.ts";
import type { LaunchedProcess } from "../../src/launchers/launcher.ts";
import { EtcdStore } from "../../src/registry/etcd_store.ts";
import type { RegistryEvent } from "../../src/types/mod.ts";
import { serviceRecord } from "../_fixtures.ts";
import { storeContract } from "../registry/_store_contract.ts";
import {
  ETCD_MEMBERS,
  etcdAvailable,
  etcdKill,
  etcdLeader,
  etcdPause,
  etcdResume,
  etcdStart,
  etcdWaitLeader,
  withEtcd,
} from "./_etcd.ts";
import { skipPolicy } from "./_prereq.ts";
import { withTempDir } from "./_fabric.ts";
import { eventually } from "../_eventually.ts";

const { skip, assertReady } = skipPolicy(await etcdAvailable(), "etcd registry e2e tests");
const HEARTBEAT_MS = 500; // lease TTL 2 s (etcd leases are whole seconds)

Deno.test({
  name: "EtcdStore keeps the registry store contract on a three-member cluster",
  ignore: skip,
  // EtcdStore.close() returns before its aborted watch stream has ended (etcd_store.ts).
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  assertReady();
  await withEtcd(async (urls) => {
    const prefix = `/contract-${crypto.randomUUID()}/`;
    const open = () => EtcdStore.open(urls, { prefix, ttlMs: 6000 });
    await storeContract(t, { open, reopen: open });
  });
});

Deno.test({
  name:
    "two registry replicas on etcd keep 50 services through leader, replica and member failures",
  ignore: skip,
}, async (t) => {
  assertReady();
  await withEtcd((urls) =>
    withTempDir(async (dir) => {
      const keys = await generateFabricKeys();
      const keyFile = join(dir, "fabric.key");
      await writeKeyFile(keyFile, keys);
      const store = `etcd://${urls.map((u) => new URL(u).host).join(",")}`;
      const launcher = new LocalLauncher({ dir });
      const replicas: { target: { id: string; url: string }; process: LaunchedProcess }[] = [];
      for (const id of ["reg-replica1", "reg-replica2"]) {
        const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        const port = (listener.addr as Deno.NetAddr).port;
        listener.close();
        const process = await launcher.launch({
          id,
          args: [
            "--role",
            "registry",
            "--id",
            id,
            "--listen",
            `127.0.0.1:${port}`,
            "--key",
            keyFile,
            "--store",
            store,
            "--heartbeat-ms",
            String(HEARTBEAT_MS),
          ],
          env: {},
        });
        replicas.push({ target: { id, url: `http://127.0.0.1:${port}` }, process });
      }
      const client = new FabricClient(keys, { timeoutMs: 5000 });
      const registry = new RegistryClient(client, replicas.map((r) => r.target));
      const bad: RegistryEvent[] = [];
      const stopWatch = new AbortController();
      let beating = true;
      let watching = Promise.resolve();
      const gaps: number[] = [];
      try {
        await eventually(
          async () => (await registry.list()).length >= 2,
          { timeoutMs: 20_000 },
        );
        const ids = Array.from({ length: 50 }, (_, i) => `spw-${String(i).padStart(8, "0")}`);
        for (const id of ids) {
          await registry.put(serviceRecord(id, { started: Date.now() }), "registered");
        }
        // Follow the second replica's stream: it must see the first one's writes too.
        const follower = new RegistryClient(client, [replicas[1]!.target]);
        // The killed replica is a service too and rightly goes DEAD; the 50 must not.
        watching = follower.watch(0, (event) => {
          const down = event.transition && ["SUSPECT", "DEAD"].includes(event.transition.to);
          if (down && event.record.id !== "reg-replica1") bad.push(event);
        }, stopWatch.signal).catch(() => {});
        // 50 services heartbeating, each through the replica list (moving on failure).
        const clients = ids.map(() => new RegistryClient(client, replicas.map((r) => r.target)));
        const loops = ids.map(async (id, i) => {
          let last = Date.now();
          while (beating) {
            try {
              await clients[i]!.heartbeat(id, 1);
              gaps.push(Date.now() - last);
              last = Date.now();
            } catch {
              // counted by the gap to the next success
            }
            await new Promise((r) => setTimeout(r, HEARTBEAT_MS * (0.8 + Math.random() * 0.4)));
          }
        });

        await t.step("killing the etcd leader loses nothing and declares nobody dead", async () => {
          const leader = await etcdLeader();
          await etcdKill(leader.name);
          await etcdWaitLeader({ exclude: [leader.name] });
          // Two lease TTLs of heartbeats with one member down: the scenario.
          await new Promise((r) => setTimeout(r, 4000));
          await etcdStart(leader.name);
          const all = await registry.list();
          for (const id of ids) assert.equal(all.find((r) => r.id === id)?.state, "ALIVE", id);
          assert.deepEqual(bad.map((e) => `${e.record.id} ${e.transition?.to}`), []);
        });

        await t.step(
          "killing a registry replica moves services and clients to the other",
          async () => {
            const before = gaps.length;
            replicas[0]!.process.kill("SIGKILL");
            await replicas[0]!.process.exited;
            // Two lease TTLs of heartbeats through the other replica: the scenario.
            await new Promise((r) => setTimeout(r, 4000));
            const after = gaps.slice(before);
            assert.ok(after.length > 100, `only ${after.length} heartbeats after the replica died`);
            const worst = Math.max(...after);
            assert.ok(worst < 4000, `a service went ${worst} ms without a heartbeat`);
            const all = await registry.list();
            for (const id of ids) assert.equal(all.find((r) => r.id === id)?.state, "ALIVE", id);
            assert.deepEqual(bad.map((e) => `${e.record.id} ${e.transition?.to}`), []);
          },
        );

        await t.step("a paused (partitioned) etcd member does not stop the fabric", async () => {
          const leader = await etcdLeader();
          const follower = ETCD_MEMBERS.find((m) => m !== leader.name)!;
          await etcdPause(follower);
          try {
            await registry.put(
              serviceRecord("spw-late0001", { started: Date.now() }),
              "during a partition",
            );
            for (let i = 0; i < 6; i++) {
              await registry.heartbeat("spw-late0001", 1);
              await new Promise((r) => setTimeout(r, HEARTBEAT_MS));
            }
            assert.equal((await registry.get("spw-late0001"))?.record.state, "ALIVE");
            const all = await registry.list();
            for (const id of ids) assert.equal(all.find((r) => r.id === id)?.state, "ALIVE", id);
          } finally {
            await etcdResume(follower);
          }
          assert.deepEqual(bad.map((e) => `${e.record.id} ${e.transition?.to}`), []);
        });

        await t.step(
          "a service that stops heartbeating is declared DEAD when its lease expires",
          async () => {
            const quiet = "spw-quiet001";
            await registry.put(serviceRecord(quiet, { started: Date.now() }), "will go quiet");
            await registry.heartbeat(quiet, 1);
            const dead = await eventually(async () => {
              const r = (await registry.get(quiet))?.record;
              return r?.state === "DEAD" ? r : undefined;
            }, { timeoutMs: 10_000 });
            assert.match(dead.lastFailure, /lease expired/);
          },
        );
        beating = false;
        await Promise.all(loops);
      } finally {
        beating = false;
        stopWatch.abort();
        for (const r of replicas) r.process.kill("SIGKILL");
        await Promise.all(replicas.map((r) => r.process.exited));
        await watching;
      }
    })
  );
});
