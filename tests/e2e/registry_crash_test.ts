import assert from "node:assert/strict";
import { join } from "node:path";
import { FabricClient } from "../../src/client/fabric_client.ts";
import { RegistryClient } from "../../src/client/registry_client.ts";
import { generateFabricKeys, writeKeyFile } from "../../src/crypto/mod.ts";
import { LocalLauncher } from "../../src/launchers/local.ts";
import type { LaunchedProcess } from "../../src/launchers/launcher.ts";
import type { ServiceRecord } from "../../src/types/mod.ts";
import { withTempDir } from "./_fabric.ts";
import { eventually } from "../_eventually.ts";
import { serviceRecord } from "../_fixtures.ts";

function record(id: string): ServiceRecord {
  const now = Date.now();
  return serviceRecord(id, { host: "sim", started: now, lastHeartbeat: now, updated: now });
}

Deno.test("registry killed with SIGKILL while 200 services register keeps every acknowledged registration", async () => {
  await withTempDir(async (dir) => {
    const keys = await generateFabricKeys();
    const keyFile = join(dir, "fabric.key");
    await writeKeyFile(keyFile, keys);
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const launcher = new LocalLauncher({ dir });
    const start = (): Promise<LaunchedProcess> =>
      launcher.launch({
        id: "reg-crash001",
        args: [
          "--role",
          "registry",
          "--id",
          "reg-crash001",
          "--listen",
          `127.0.0.1:${port}`,
          "--key",
          keyFile,
          "--dir",
          dir,
          "--store",
          `sqlite:${join(dir, "registry.db")}`,
        ],
        env: {},
      });
    const target = { id: "reg-crash001", url: `http://127.0.0.1:${port}` };
    const registry = new RegistryClient(new FabricClient(keys, { timeoutMs: 3000 }), [target]);
    const first = await start();
    let second: LaunchedProcess | null = null;
    try {
      await eventually(async () => (await registry.get("reg-crash001"))?.record);
      const acknowledged: string[] = [];
      let failed = 0;
      const ids = Array.from({ length: 200 }, (_, i) => `spw-${String(i).padStart(8, "0")}`);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < ids.length) {
          const id = ids[next++]!;
          try {
            await registry.put(record(id), "registered under fire");
            acknowledged.push(id);
            if (acknowledged.length === 80) first.kill("SIGKILL");
          } catch {
            failed++;
          }
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      assert.equal(await first.exited, 137);
      assert.ok(acknowledged.length >= 80, `only ${acknowledged.length} acknowledged`);
      assert.ok(failed > 0, "the kill should have interrupted some registrations");

      second = await start();
      const listed = await eventually(async () => await registry.list());
      const present = new Set(listed.map((r) => r.id));
      const lost = acknowledged.filter((id) => !present.has(id));
      assert.deepEqual(lost, [], `${lost.length} acknowledged registrations lost`);
    } finally {
      first.kill("SIGKILL");
      second?.kill("SIGKILL");
      await first.exited;
      await second?.exited;
    }
  });
});
