/**
 * `fabricd up` against a fabric that runs: --port does not move a running
 * registry (no second registry, the fabric file kept), and `up` exits 0 once
 * "fabricd stop --all" has stopped its fabric, whether it started the roots
 * or adopted them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadFabricFile, saveFabricFile } from "../../src/config/fabric_file.ts";
import { initFabric } from "../../src/cli/init.ts";
import { killQuietly, runFabricd, withLocalFabric, withTempDir } from "../e2e/_fabric.ts";
import { cleanUp, startUp, until } from "./_up_process.ts";

Deno.test("upCommand() refuses --port that would move a running registry, and changes nothing", async () => {
  await withLocalFabric(async (local, dir) => {
    const fabric = join(dir, "fabric.yaml");
    const before = await Deno.readTextFile(fabric);
    const [registry] = (await loadFabricFile(fabric)).registries;
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const other = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const up = startUp(["--port", String(other), "--dir", dir, "--fabric", fabric]);
    try {
      const code = await up.exit(30_000);
      const what = `code ${code}\n${up.output()}`;
      assert.equal(code, 78, what);
      assert.match(
        up.output(),
        new RegExp(`Registry ${registry!.id} .* runs at ${registry!.url}: --port ${other} cannot`),
        what,
      );
      assert.match(up.output(), /stop the fabric first \("fabricd stop --all --fabric /, what);
      assert.equal(await Deno.readTextFile(fabric), before, "the fabric file is unchanged");
      const records = await local.registry.list();
      assert.equal(records.filter((r) => r.role === "registry").length, 1, what);
      assert.ok(records.every((r) => r.incarnation === 1), `nothing was restarted: ${what}`);
    } finally {
      killQuietly(up.child.pid);
      await up.exit(10_000);
    }
  });
});

Deno.test("upCommand() exits 0 once fabricd stop --all stopped the roots it started", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    const up = startUp(["--dir", dir, "--heartbeat-ms", "500"]);
    try {
      await until("up", () => up.output().includes("Press Ctrl-C"));
      const stop = await runFabricd(["stop", "--all", "--fabric", fabric]);
      assert.equal(stop.code, 0, stop.stderr);
      const code = await up.exit(20_000);
      assert.equal(code, 0, `up did not exit after stop --all:\n${up.output()}`);
      assert.match(up.output(), /The fabric was stopped \(fabricd stop --all\)/);
    } finally {
      await cleanUp(fabric, [up]);
    }
  });
});

Deno.test("upCommand() exits 0 once fabricd stop --all stopped the roots it adopted", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    const first = startUp(["--dir", dir, "--heartbeat-ms", "500"]);
    const ups = [first];
    try {
      await until("the first up", () => first.output().includes("Press Ctrl-C"));
      // The roots outlive a SIGKILL of "up"; the next "up" attaches to them.
      first.child.kill("SIGKILL");
      await first.exit(10_000);
      const second = startUp(["--dir", dir, "--heartbeat-ms", "500"]);
      ups.push(second);
      await until("the second up", () => second.output().includes("Press Ctrl-C"));
      assert.match(second.output(), /attached as its supervisor/);
      const stop = await runFabricd(["stop", "--all", "--fabric", fabric]);
      assert.equal(stop.code, 0, stop.stderr);
      const code = await second.exit(20_000);
      assert.equal(code, 0, `up did not exit after stop --all:\n${second.output()}`);
      assert.match(second.output(), /The fabric was stopped \(fabricd stop --all\)/);
      assert.doesNotMatch(second.output(), /starting it again/);
    } finally {
      await cleanUp(fabric, ups);
    }
  });
});

Deno.test("fabricd up whose spawner cannot start exits 1 and leaves none of what it started running", async () => {
  await withTempDir(async (dir) => {
    const fabric = join(dir, "fabric.yaml");
    await initFabric(fabric);
    // The fabric ran before: its spawner keeps its port, which something else now holds.
    const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const file = await loadFabricFile(fabric);
      const port = (busy.addr as Deno.NetAddr).port;
      await saveFabricFile(fabric, {
        ...file,
        spawner: { id: "spw-0000beef", url: `http://127.0.0.1:${port}` },
        dir,
      });
      const out = await runFabricd(["up", "--dir", dir, "--fabric", fabric]);
      assert.equal(out.code, 1, out.stdout + out.stderr);
      assert.match(out.stderr, /spw-0000beef.*Address already in use/s);
      const ps = await new Deno.Command("pgrep", { args: ["-f", "--", `--dir ${dir}`] }).output();
      const left = new TextDecoder().decode(ps.stdout);
      assert.equal(ps.code, 1, `the registry it started is gone, found: ${left}`);
    } finally {
      busy.close();
    }
  });
});
