/**
 * `fabricd up` started several times at once on one state directory runs one
 * fabric (the others wait for the first and attach); an `up` killed while
 * it starts leaves roots the next one adopts; and `up` refuses a key file
 * that is not the fabric's.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadFabricFile } from "../../src/config/fabric_file.ts";
import { initFabric } from "../../src/cli/init.ts";
import { runFabricd, withTempDir } from "../e2e/_fabric.ts";
import { cleanUp, startUp, until, type UpProcess } from "./_up_process.ts";

/** PIDs of the processes of `role` whose command line names state directory `dir`. */
async function rolePids(dir: string, role: string): Promise<number[]> {
  const out = await new Deno.Command("pgrep", {
    args: ["-f", "--", `--role ${role} --id .*--dir ${dir}( |$)`],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map(Number);
}

Deno.test("three fabricd up started at once on a new directory run one fabric", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    const ups: UpProcess[] = [];
    try {
      for (let i = 0; i < 3; i++) ups.push(startUp(["--dir", dir]));
      await until(
        "every up to be up or attached",
        () => ups.every((up) => /is up|attached as its supervisor/.test(up.output())),
        90_000,
      );
      assert.equal(ups.filter((up) => /Created fabric/.test(up.output())).length, 1);
      assert.equal((await rolePids(dir, "registry")).length, 1, "registries running");
      assert.equal((await rolePids(dir, "spawner")).length, 1, "spawners running");
      const named = await loadFabricFile(fabric);
      for (const up of ups) assert.match(up.output(), new RegExp(named.registries[0]!.id));
      const status = await runFabricd(["status", "--fabric", fabric]);
      assert.equal(status.code, 0, status.stderr);
    } finally {
      await cleanUp(fabric, ups);
    }
  });
});

Deno.test("fabricd up killed while its roots start leaves them to the next up, which adopts them", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    const ups: UpProcess[] = [];
    try {
      const first = startUp(["--dir", dir]);
      ups.push(first);
      let registry: number[] = [];
      const deadline = Date.now() + 60_000;
      while (registry.length === 0 && Date.now() < deadline) {
        registry = await rolePids(dir, "registry");
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(registry.length, 1, "the first up started no registry");
      first.child.kill("SIGKILL");
      await first.exit(10_000);
      const second = startUp(["--dir", dir]);
      ups.push(second);
      await until("the second up", () => /is up|attached/.test(second.output()), 90_000);
      assert.deepEqual(await rolePids(dir, "registry"), registry, "a second registry");
      assert.match(second.output(), /adopted|attached/);
      assert.equal((await rolePids(dir, "spawner")).length, 1, "spawners running");
    } finally {
      await cleanUp(fabric, ups);
    }
  });
});

Deno.test("fabricd up refuses a key file of another fabric (78) and starts nothing", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    await initFabric(fabric);
    await initFabric(join(dir, "other", "fabric.yaml"));
    await Deno.copyFile(join(dir, "other", "fabric.key"), join(dir, "fabric.key"));
    const up = startUp(["--dir", dir]);
    try {
      const code = await up.exit(60_000);
      assert.equal(code, 78, up.output());
      assert.match(
        up.output(),
        /has fingerprint sha256:\S+, the fabric file says sha256:\S+: restore/,
      );
    } finally {
      await cleanUp(fabric, [up]);
    }
    assert.deepEqual(await rolePids(dir, "registry"), []);
  });
});
